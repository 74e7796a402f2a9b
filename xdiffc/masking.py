"""Points that are not data: NaN, +-inf and fill values. They come back bit-exactly.

The mask is stored as a bitmap (:func:`encode_bits`: context-coded, or packed bits under zstd,
whichever is smaller) and the exact values as raw bytes under zstd; a land mask repeated over time
costs almost nothing. Masked points are "don't care" for the predictors and residual coders, which
never read their values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from .byteio import deflate, inflate
from .entropy import bitmap
from .errors import CorruptStreamError

#: Values at least this large in magnitude are treated as fill (remapped junk such as -9.97e36).
FILL_THRESHOLD = 1e30

_ZSTD_LEVEL = 9
#: zstd's level for packed mask bits, and the frame size up to which its strong level is tried too. Measured
#: (2026-12-08) on the masks of the benchmark fields, 12-step chunks of them and two synthetic masks: level 1 is
#: 0.9-1.1x level 9's size in 1/3 to 1/20 of the time (a 384 x 320 ocean mask: 0.05 against 0.96 ms, a tenth of a
#: level-1 encode), and the context-coded bitmap wins wherever the two differ by more than a few dozen bytes; but a
#: small frame (a repetitive bitmap) is up to a third smaller at level 9 (42 against 32 bytes), which then takes
#: 0.01-0.1 ms.
_BITS_LEVEL = 1
_BITS_STRONG_BELOW = 1 << 10


def special_mask(x: np.ndarray, fill_values: Iterable[float] = (), threshold: float = FILL_THRESHOLD) -> np.ndarray:
    """True where ``x`` is NaN, infinite, one of ``fill_values``, or at least ``threshold`` in magnitude."""
    mask = ~np.isfinite(x)
    if threshold is not None and np.isfinite(threshold):
        with np.errstate(invalid="ignore"):
            mask |= np.abs(x) >= threshold
    for v in fill_values:
        if v is None or np.isnan(v):
            continue
        mask |= x == x.dtype.type(v)
    return mask


def encode_bits(mask: np.ndarray) -> bytes:
    """A boolean array as the smaller of two bitmap payloads: context-modelled arithmetic coding
    (:mod:`xdiffc.entropy.bitmap`: coastlines, and rows repeated from the previous slice, cost
    little; on a 384 x 320 ocean mask half the size of zstd's) or zstd of the C-order packed bits
    (long exact repeats); the first byte tells them apart (zstd frames start with 0x28)."""
    raw = np.packbits(mask.ravel()).tobytes()
    packed = deflate(raw, _BITS_LEVEL)
    if len(packed) <= _BITS_STRONG_BELOW:
        packed = min(packed, deflate(raw, _ZSTD_LEVEL), key=len)
    coded = bitmap.encode(mask)
    return coded if len(coded) < len(packed) else packed


def decode_bits(payload: bytes, shape: tuple[int, ...], what: str) -> np.ndarray:
    """Inverse of :func:`encode_bits`; packed bits must be exactly the array's count (``what`` names the section)."""
    if payload[:1] == bytes([bitmap.FORMAT]):
        return bitmap.decode(payload, shape, what)
    size = math.prod(shape)
    packed = inflate(payload, what, size=(size + 7) // 8)
    return np.unpackbits(np.frombuffer(packed, np.uint8), count=size).astype(bool).reshape(shape)


def encode(x: np.ndarray, mask: np.ndarray) -> tuple[bytes, bytes]:
    """Return (packed mask, exact masked values), each zstd-compressed."""
    values = deflate(np.ascontiguousarray(x[mask]).tobytes(), _ZSTD_LEVEL)
    return encode_bits(mask), values


def decode(bits: bytes, values: bytes, shape: tuple[int, ...], dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`encode`: the boolean mask and the exact values at its True points.

    The packed mask must have exactly the array's bit count, and the values exactly one entry per
    True bit: a value short or over would otherwise be broadcast or shifted onto the wrong points.
    """
    mask = decode_bits(bits, shape, "the stream's mask of missing values")
    count = int(np.count_nonzero(mask))
    limit = (count + 1) * dtype.itemsize
    raw = inflate(values, "the stream's 'special' section (the exact missing values)", limit=limit)
    if len(raw) != count * dtype.itemsize:
        raise CorruptStreamError(f"the stream's mask marks {count} missing values, its 'special' section "
                                 f"holds {len(raw) / dtype.itemsize:g}")
    return mask, np.frombuffer(raw, dtype)


def fill_gaps(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A copy of ``x`` with masked points replaced by the previous valid value in C order.

    Predictors that cannot skip points (SZ3) then see a field without artificial jumps.
    Leading masked points take the first valid value; an all-masked array becomes zeros.
    """
    flat = np.ascontiguousarray(x).ravel().copy()
    m = mask.ravel()
    if not m.any():
        return flat.reshape(x.shape)
    valid = np.flatnonzero(~m)
    if valid.size == 0:
        return np.zeros_like(x)
    idx = np.where(m, 0, np.arange(flat.size))
    np.maximum.accumulate(idx, out=idx)
    idx[: valid[0]] = valid[0]
    return flat[idx].reshape(x.shape)
