"""Context-modelled binary arithmetic coding of bitmaps: masks of missing values, signs, kept zeros.

A land mask is a few large regions with smooth coasts, and it repeats from one time step to the
next. Packed bits under zstd see neither the coastline's geometry nor the repetition when the
slices are far apart in the byte stream; this coder models both. The bitmap is read as slices
``(T, H, W)`` (its last two axes; a 1-D bitmap is one row). Each slice row first gets one flag:
1 where it equals the same row of the previous slice (then it costs nothing more), else each
bit is coded under a context made of eight neighbours already decoded in its slice (west, two
west, north-west, north, north-east, two north, north-two-west, two-north-east; outside the
slice they read 0) and the same bit of the previous slice (none / 0 / 1).

Coder (integers only, the same on every machine): a range coder with a 32-bit range and carry
propagation through pending 0xFF bytes. A context's probability of a 0 is the mean of two 16-bit
estimates adapted at rates 1/16 and 1/128 after each bit, both starting at one half. To code
bit ``b`` with ``p`` (the probability of a 0, times 2**16): ``bound = (range >> 16) * p``; a 0
keeps ``[low, low + bound)``, a 1 ``[low + bound, low + range)``; while ``range < 2**24``, a
byte is shifted out. The decoder reads 5 bytes to start (the first is always 0) and mirrors
each step, keeping ``code < range``; a stream that breaks that, runs out of bytes or has bytes left
over (the decoder reads exactly the bytes the encoder wrote) is damaged.

Payload: ``u8`` 1 (the format; a zstd frame of packed bits starts with 0x28 instead), then the
coder's bytes.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import CorruptStreamError
from ..kernels import grown, kernel

FORMAT = 1
_TOP = np.int64(1) << 24
_N_CTX = 3 << 8


def slices(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """The ``(T, H, W)`` view of a bitmap of ``shape``: its last two axes as slices, a 1-D bitmap as one row."""
    if len(shape) == 0:
        return 1, 1, 1
    if len(shape) == 1:
        return 1, 1, shape[0]
    return math.prod(shape[:-2]), shape[-2], shape[-1]


@kernel(inline="always")
def _context(b, t, i, j, H, W):
    n = b[t, i - 1, j] if i > 0 else 0
    w = b[t, i, j - 1] if j > 0 else 0
    nw = b[t, i - 1, j - 1] if i > 0 and j > 0 else 0
    ne = b[t, i - 1, j + 1] if i > 0 and j + 1 < W else 0
    ww = b[t, i, j - 2] if j > 1 else 0
    nn = b[t, i - 2, j] if i > 1 else 0
    nww = b[t, i - 1, j - 2] if i > 0 and j > 1 else 0
    nne = b[t, i - 2, j + 1] if i > 1 and j + 1 < W else 0
    prev = b[t - 1, i, j] + 1 if t > 0 else 0
    return (n | w << 1 | nw << 2 | ne << 3 | ww << 4 | nn << 5 | nww << 6 | nne << 7) | prev << 8


@kernel(inline="always")
def _p0(fast, slow, c):
    return (fast[c] + slow[c]) >> 1


@kernel(inline="always")
def _adapt(fast, slow, c, bit):
    if bit:
        fast[c] -= fast[c] >> 4
        slow[c] -= slow[c] >> 7
    else:
        fast[c] += (65536 - fast[c]) >> 4
        slow[c] += (65536 - slow[c]) >> 7


@kernel
def _encode(b):
    """The coder's bytes of the bitmap ``b`` (T, H, W).

    Each bit is coded with ``low`` and ``range`` in locals, as the decoder decodes (a call per bit holding the
    state in an array took 3 ms on a 384 x 320 ocean mask); only the bytes shifted out go through the
    coder's state array (:func:`_shift_low`)."""
    T, H, W = b.shape
    out = np.empty(64 + T * H * W // 4 + T * H // 4, np.uint8)
    st = np.zeros(5, np.int64)  # low, range, cache, pending bytes, position
    st[3] = 1
    low, rng = np.int64(0), np.int64(0xFFFFFFFF)
    fast = np.full(_N_CTX + 1, 32768, np.int64)
    slow = np.full(_N_CTX + 1, 32768, np.int64)
    for t in range(T):
        for i in range(H):
            if t > 0:
                same = 1
                for j in range(W):
                    if b[t, i, j] != b[t - 1, i, j]:
                        same = 0
                        break
                low, rng = _code(low, rng, fast, slow, _N_CTX, same)
                while rng < _TOP:
                    rng <<= 8
                    st[0] = low
                    out = _shift_low(st, out)
                    low = st[0]
                if same:
                    continue
            for j in range(W):
                low, rng = _code(low, rng, fast, slow, _context(b, t, i, j, H, W), b[t, i, j])
                while rng < _TOP:
                    rng <<= 8
                    st[0] = low
                    out = _shift_low(st, out)
                    low = st[0]
    st[0] = low
    for _ in range(5):
        out = _shift_low(st, out)
    return out[: st[4]].copy()


@kernel(inline="always")
def _code(low, rng, fast, slow, c, bit):
    """(low, range) after coding ``bit`` under context ``c``, which then adapts; the caller shifts bytes out."""
    bound = (rng >> 16) * _p0(fast, slow, c)
    if bit:
        low += bound
        rng -= bound
    else:
        rng = bound
    _adapt(fast, slow, c, bit)
    return low, rng


@kernel
def _shift_low(st, out):
    """Move the top byte of ``low`` out, holding back 0xFF bytes a later carry may still change."""
    low = st[0]
    if low < 0xFF000000 or low >= np.int64(1) << 32:
        carry = low >> 32
        if st[4] + st[3] + 1 > out.size:
            out = grown(out, st[4], 2 * out.size + st[3] + 8)
        temp = st[2]
        while True:
            out[st[4]] = (temp + carry) & 0xFF
            st[4] += 1
            temp = 0xFF
            st[3] -= 1
            if st[3] == 0:
                break
        st[2] = (low >> 24) & 0xFF
    st[3] += 1
    st[0] = (low & 0x00FFFFFF) << 8
    return out


@kernel(inline="always")
def _decode_bit(code, rng, fa, sl):
    """The decoder's step: (bit, code, range, fast, slow) from the probability of a 0 ``(fa + sl) / 2``, the two
    estimates adapted as :func:`_adapt` adapts them.

    The decoder keeps the probability pair of the context in use in locals, ``(lc, fa, sl)``, and stores it back
    only when the context changes: a mask's contexts come in long runs (a neighbourhood of land or of sea), and
    adapting the pair in memory at every bit made a chain through memory from bit to bit (a 384 x 320 ocean mask
    decodes in 0.91 ms, not 1.15; the sea ice's in 4.0, not 4.7). The switch is written out where it is used: a
    function taking the arrays kept reference counts per bit and was slower than the pair in memory. The encoder
    keeps the pair in memory: in locals it was 10% slower (1.15 against 1.0 ms on that mask)."""
    bound = (rng >> 16) * ((fa + sl) >> 1)
    if code < bound:
        return 0, code, bound, fa + ((65536 - fa) >> 4), sl + ((65536 - sl) >> 7)
    return 1, code - bound, rng - bound, fa - (fa >> 4), sl - (sl >> 7)


@kernel
def _decode(buf, T, H, W):
    """The bitmap (T, H, W), whether the stream was consistent, and how many bytes it read.

    The coder's state stays in locals, passed to and returned from :func:`_decode_bit` (a shared function holding
    it in an array decoded 4-6x slower: tos mask 0.8 -> 5.3 ms), and so does the probability pair of the context in
    use (see :func:`_decode_bit`)."""
    b = np.zeros((T, H, W), np.uint8)
    if buf.size < 5 or buf[0] != 0:
        return b, False, 0
    code, rng, pos = np.int64(0), np.int64(0xFFFFFFFF), 1
    for k in range(1, 5):
        code = (code << 8) | np.int64(buf[k])
    pos = 5
    fast = np.full(_N_CTX + 1, 32768, np.int64)
    slow = np.full(_N_CTX + 1, 32768, np.int64)
    lc, fa, sl = np.int64(0), fast[0], slow[0]
    for t in range(T):
        for i in range(H):
            if t > 0:
                if lc != _N_CTX:  # the context in use keeps its pair in locals (see _decode_bit)
                    fast[lc], slow[lc] = fa, sl
                    lc, fa, sl = _N_CTX, fast[_N_CTX], slow[_N_CTX]
                same, code, rng, fa, sl = _decode_bit(code, rng, fa, sl)
                while rng < _TOP:
                    if pos >= buf.size:
                        return b, False, pos
                    rng <<= 8
                    code = (code << 8) | np.int64(buf[pos])
                    pos += 1
                if code >= rng:
                    return b, False, pos
                if same:
                    for j in range(W):
                        b[t, i, j] = b[t - 1, i, j]
                    continue
            for j in range(W):
                c = _context(b, t, i, j, H, W)
                if c != lc:
                    fast[lc], slow[lc] = fa, sl
                    lc, fa, sl = c, fast[c], slow[c]
                bit, code, rng, fa, sl = _decode_bit(code, rng, fa, sl)
                b[t, i, j] = bit
                while rng < _TOP:
                    if pos >= buf.size:
                        return b, False, pos
                    rng <<= 8
                    code = (code << 8) | np.int64(buf[pos])
                    pos += 1
                if code >= rng:
                    return b, False, pos
    return b, True, pos


def encode(bits: np.ndarray) -> bytes:
    """The payload of a boolean array (any shape): the format byte, then the coder's bytes."""
    b = np.ascontiguousarray(bits, dtype=np.uint8).reshape(slices(bits.shape))
    return bytes([FORMAT]) + _encode(b).tobytes()


def decode(payload: bytes, shape: tuple[int, ...], what: str) -> np.ndarray:
    """The boolean array of ``shape`` that :func:`encode` coded into ``payload`` (``what`` names it in errors)."""
    if len(payload) < 1 or payload[0] != FORMAT:
        raise CorruptStreamError(f"{what} has an unknown bitmap format")
    b, ok, used = _decode(np.frombuffer(payload, np.uint8)[1:], *slices(tuple(shape)))
    if not ok:
        raise CorruptStreamError(f"{what} is damaged (its bitmap coder ran out of bytes or off its range)")
    if used != len(payload) - 1:  # the decoder reads exactly the bytes the encoder wrote
        raise CorruptStreamError(f"{what} has {len(payload) - 1 - used} trailing bytes")
    return b.astype(bool).reshape(shape)
