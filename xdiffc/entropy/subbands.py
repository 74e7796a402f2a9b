"""Context-modelled rANS coding of quantised wavelet coefficients, subband by subband (numba).

Coefficients are visited band by band in the order of :func:`xdiffc.predict.wavelet.subbands`
(low-pass corner, then coarse to fine), each band in C order. A coefficient ``q`` becomes

- a symbol: 0 for ``q = 0``; ``2|q| - 1`` (positive) or ``2|q|`` (negative) for ``|q| < 16``;
  else ``31 + 2 (e - 5) + (q < 0)`` with ``e`` the bit length of ``|q|`` (5 to 53),
- and, in that last case, ``e - 1`` raw bits: ``|q| - 2**(e - 1)``, least significant first,
  appended to a bit string (bit ``p`` is bit ``p mod 8`` of byte ``p div 8``).

Each symbol is coded under a model chosen from what the decoder already has: its *fine context*
``cls * N_BUCKETS + bucket``, where ``cls`` is 0 for the low-pass corner and
``1 + 3 min(level, 7) + min(high axes, 3) - 1`` for a detail band (level 0 the finest), and
``bucket = BUCKET_OF[a]`` of the activity ``a``, the sum of ``min(|q'|, 7)`` over the coefficients
``q'`` one step back along each axis inside the same band. A table maps fine contexts to models
(the encoder merges them where that is estimated smaller). So a band of zeros in a quiet context
costs next to nothing: its model gives 0 almost all of the frequency, or all of it (no bits).
"""

from __future__ import annotations

import numpy as np

from ..kernels import grown, kernel
from .crans import STATE, decode_step


#: Symbols of the alphabet (the largest is 31 + 2 * 48 + 1 for |q| < 2**53).
N_SYMBOLS = 129
#: Largest |q| the alphabet holds.
MAX_Q = (1 << 53) - 1
N_CLASSES = 25
#: Activity (0 to 21) to fine bucket.
BUCKET_OF = np.array([0, 1, 2, 3, 4, 5, 5, 6, 6, 6, 7, 7, 7, 7, 7, 8, 8, 8, 8, 8, 8, 8], np.int64)
N_BUCKETS = 9
N_FINE = N_CLASSES * N_BUCKETS
_CAP = 7


def band_arrays(bands: list, shape3: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The bands tuple of the kernels, of ``subbands`` output on a field of ``shape3``: (``shape3`` as int64,
    start [band, 3], stop [band, 3], class [band]), padded to 3 axes at the front."""
    n = len(bands)
    start, stop = np.zeros((n, 3), np.int64), np.zeros((n, 3), np.int64)
    cls = np.zeros(n, np.int64)
    pad = 3 - len(bands[0][1])
    for b, (level, lo, hi) in enumerate(bands):
        start[b, pad:], stop[b, pad:] = lo, hi
        stop[b, :pad] = 1
        n_high = sum(1 for a, n_ in zip(lo, hi) if a > 0)
        cls[b] = 0 if b == 0 else 1 + 3 * min(level, 7) + min(n_high, 3) - 1
    if any(s != t for s, t in zip(stop[0, :pad], shape3[:pad])):
        raise ValueError("bands and shape disagree")
    return np.array(shape3, np.int64), start, stop, cls


@kernel(inline="always")
def _activity(q, f, i0, i1, i2, a0, a1, a2, st0, st1):
    """The activity of coefficient ``f`` at (i0, i1, i2) of the band starting at (a0, a1, a2): ``min(|q'|, 7)`` summed
    over the neighbours one step back inside the band (the encoder's; :func:`decode` computes the same sum with the
    west neighbour's share kept in a local). Written without branches (an absent neighbour reads ``q[f]`` and
    counts 0), which lets the compiler drop the reference counts of ``q`` in the loop: 2x faster."""
    n0 = q[f - st0 if i0 > a0 else f]
    n1 = q[f - st1 if i1 > a1 else f]
    n2 = q[f - 1 if i2 > a2 else f]
    return ((min(abs(n0), _CAP) if i0 > a0 else 0) + (min(abs(n1), _CAP) if i1 > a1 else 0)
            + (min(abs(n2), _CAP) if i2 > a2 else 0))


@kernel
def symbols(q, bands):
    """Encoder: (symbols uint8, fine contexts uint8, raw bit bytes, raw bit count) of the coefficients ``q``
    (flat int64, C order of the shape of ``bands``: :func:`band_arrays`), in coding order."""
    shape3, start, stop, cls = bands
    n = q.size
    sym = np.empty(n, np.uint8)
    fine = np.empty(n, np.uint8)  # N_FINE = 225 contexts
    st1 = shape3[2]
    st0 = shape3[1] * st1
    raw = np.zeros(64, np.uint8)
    p = 0
    k = 0
    for b in range(start.shape[0]):
        c = cls[b] * N_BUCKETS
        for i0 in range(start[b, 0], stop[b, 0]):
            for i1 in range(start[b, 1], stop[b, 1]):
                for i2 in range(start[b, 2], stop[b, 2]):
                    f = i0 * st0 + i1 * st1 + i2
                    v = q[f]
                    fine[k] = c + BUCKET_OF[_activity(q, f, i0, i1, i2, start[b, 0], start[b, 1], start[b, 2], st0,
                                                      st1)]
                    m = abs(v)
                    if m < 16:
                        sym[k] = 0 if m == 0 else 2 * m - 1 + (v < 0)
                    else:
                        e = 0
                        t = m
                        while t:
                            e += 1
                            t >>= 1
                        sym[k] = 31 + 2 * (e - 5) + (v < 0)
                        if (p + e) // 8 + 1 >= raw.size:
                            raw = grown(raw, raw.size, 2 * raw.size + e)
                        r = m - (np.int64(1) << (e - 1))
                        for j in range(e - 1):
                            raw[p >> 3] |= np.uint8(((r >> j) & 1) << (p & 7))
                            p += 1
                    k += 1
    return sym, fine, raw[: (p + 7) // 8].copy(), p


@kernel
def decode(dec, model_of, raw, n_raw, bands, q):
    """Decoder: fill ``q`` (flat int64) band by band, fine context ``f`` under the model ``model_of[f]`` of the
    rANS decoder tuple ``dec`` (:func:`~xdiffc.entropy.crans.open_decoder`); returns 0, or -1 on a damaged
    stream (a symbol the rANS cannot give, a symbol outside the alphabet, or raw bits past ``n_raw``).

    A coefficient's model depends on the one decoded just before it (its west neighbour), so the loop is one
    chain from symbol to symbol; it is kept short: the west neighbour's share of the activity stays in a local
    (not stored and read back), and each band's activity-to-model table is built once (one lookup, not two):
    TREFHT's coefficients at eps 1e-2 in 11.7 ms, not 14.6."""
    shape3, start, stop, cls = bands
    st1 = shape3[2]
    st0 = shape3[1] * st1
    state = dec[STATE]
    x, wp = state[0], state[1]  # in locals: the loop keeps them in registers
    p = 0
    model_at = np.empty(BUCKET_OF.size, np.int64)  # the band's model of each activity
    for b in range(start.shape[0]):
        c = cls[b] * N_BUCKETS
        for a in range(BUCKET_OF.size):
            model_at[a] = model_of[c + BUCKET_OF[a]]
        a0, a1 = start[b, 0], start[b, 1]
        for i0 in range(a0, stop[b, 0]):
            for i1 in range(a1, stop[b, 1]):
                west = np.int64(0)  # min(|q|, 7) of the coefficient one step back along the last axis
                for i2 in range(start[b, 2], stop[b, 2]):
                    f = i0 * st0 + i1 * st1 + i2
                    n0 = q[f - st0 if i0 > a0 else f]  # no branch: an absent neighbour reads q[f] and counts 0
                    n1 = q[f - st1 if i1 > a1 else f]
                    act = (min(abs(n0), _CAP) if i0 > a0 else 0) + (min(abs(n1), _CAP) if i1 > a1 else 0) + west
                    s, x, wp = decode_step(x, wp, dec, model_at[act])
                    if s < 0 or s >= N_SYMBOLS:
                        return -1
                    if s < 31:
                        m = (s + 1) // 2
                        neg = s > 0 and s % 2 == 0
                    else:
                        e = 5 + (s - 31) // 2
                        neg = (s - 31) % 2 == 1
                        if p + e - 1 > n_raw:
                            return -1
                        m = np.int64(1) << (e - 1)
                        for j in range(e - 1):
                            m |= np.int64((raw[p >> 3] >> (p & 7)) & 1) << j
                            p += 1
                    q[f] = -m if neg else m
                    west = min(m, _CAP)
    state[0], state[1] = x, wp
    return 0 if p == n_raw else -1
