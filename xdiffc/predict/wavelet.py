"""The CDF 9/7 wavelet transform by lifting, in 1 to 3 dimensions, as numba kernels.

One level along one axis splits a line of ``n`` values into ``ceil(n / 2)`` low-pass (even
samples) and ``floor(n / 2)`` high-pass (odd samples) coefficients, stored low first. The four
lifting steps (predict ``ALPHA``, update ``BETA``, predict ``GAMMA``, update ``DELTA``) use whole-
sample symmetric extension at both ends (``x[-1] = x[1]``, ``x[n] = x[n - 2]``), so any length
``n >= 2`` works, odd too, and no boundary jump enters the high-pass band. The scaling makes the
transform nearly orthonormal (synthesis norms 0.99 and 1.02), so one quantisation step serves
every subband.

The multilevel transform (:func:`forward`, :func:`inverse`) is Mallat's: each level transforms
every axis whose current low-pass extent is at least :data:`MIN_LEN`, in axis order, on the
low-pass corner of the array; :func:`plan` gives the extents level by level.

The inverse is the decoder's reconstruction, so it must give the same bits on every machine:
compiled under :mod:`xdiffc.kernels`' rule, no transcendental functions, and
every value computed by the same sequence of IEEE float64 operations whatever the layout.
The encoder runs the very same :func:`inverse` to find the points its bound misses.
"""

from __future__ import annotations

import functools

import numpy as np

from ..kernels import kernel


ALPHA = -1.586134342059924
BETA = -0.052980118572961
GAMMA = 0.882911075530934
DELTA = 0.443506852043971
#: Scalings of the low and high bands, sqrt(2) / K and K / sqrt(2) with K = 1.230174104914001.
LOW_GAIN = 1.1496043988602411
HIGH_GAIN = 0.8698644516247813
#: An axis is transformed at a level only while its low-pass extent is at least this long.
MIN_LEN = 8
#: Most levels of the multilevel transform.
MAX_LEVELS = 8


def plan(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Low-pass extents before each level (``plan[l]``), one entry per level; an axis is split at level
    ``l`` where ``plan[l][k] >= MIN_LEN``."""
    ext = tuple(int(n) for n in shape)
    out = []
    while len(out) < MAX_LEVELS and any(n >= MIN_LEN for n in ext):
        out.append(ext)
        ext = tuple((n + 1) // 2 if n >= MIN_LEN else n for n in ext)
    return out


@kernel(inline="always")
def _lift_step(t, n, start, c):
    """``t[i] += c * (t[i - 1] + t[i + 1])`` on rows ``i = start, start + 2, ...`` (mirrored at both ends)."""
    for i in range(start, n, 2):
        lo = i - 1 if i >= 1 else 1
        hi = i + 1 if i + 1 < n else n - 2
        for j in range(t.shape[1]):
            t[i, j] = t[i, j] + c * (t[lo, j] + t[hi, j])


#: Lines lifted at once: the scratch is ``n x`` this many values, not a copy of the corner (each line is lifted
#: on its own, so the blocks give the same bits; 128 measured a little faster than 256 and 512).
_BLOCK = 128


@kernel(inline="always")
def _line_block(first, count, n_inner, ps, qs):
    """Outer and inner indices of the lines ``first .. first + count - 1`` (line ``L`` is ``(L // n_inner, L % n_inner)``)."""
    for j in range(count):
        ps[j], qs[j] = divmod(first + j, n_inner)


@kernel
def forward_axis(v, n):
    """One level along the middle axis of the view ``v`` (outer, m, inner; any strides) on its first ``n`` rows,
    in place. Blocks of lines are gathered into a scratch ``(n, lines)`` and lifted across the lines together."""
    lines = v.shape[0] * v.shape[2]
    width = min(lines, _BLOCK)
    t = np.empty((n, width))
    ps, qs = np.empty(width, np.int64), np.empty(width, np.int64)
    nl = (n + 1) // 2
    for first in range(0, lines, width):
        w = min(width, lines - first)
        _line_block(first, w, v.shape[2], ps, qs)
        u = t[:, :w]
        for i in range(n):
            for j in range(w):
                u[i, j] = v[ps[j], i, qs[j]]
        _lift_step(u, n, 1, ALPHA)
        _lift_step(u, n, 0, BETA)
        _lift_step(u, n, 1, GAMMA)
        _lift_step(u, n, 0, DELTA)
        for i in range(n):
            k = i // 2 if i % 2 == 0 else nl + i // 2
            g = LOW_GAIN if i % 2 == 0 else HIGH_GAIN
            for j in range(w):
                v[ps[j], k, qs[j]] = u[i, j] * g


@kernel
def inverse_axis(v, n):
    """Inverse of :func:`forward_axis` (the decoder's arithmetic)."""
    lines = v.shape[0] * v.shape[2]
    width = min(lines, _BLOCK)
    t = np.empty((n, width))
    ps, qs = np.empty(width, np.int64), np.empty(width, np.int64)
    nl = (n + 1) // 2
    for first in range(0, lines, width):
        w = min(width, lines - first)
        _line_block(first, w, v.shape[2], ps, qs)
        u = t[:, :w]
        for i in range(n):
            k = i // 2 if i % 2 == 0 else nl + i // 2
            g = LOW_GAIN if i % 2 == 0 else HIGH_GAIN
            for j in range(w):
                u[i, j] = v[ps[j], k, qs[j]] / g
        _lift_step(u, n, 0, -DELTA)
        _lift_step(u, n, 1, -GAMMA)
        _lift_step(u, n, 0, -BETA)
        _lift_step(u, n, 1, -ALPHA)
        for i in range(n):
            for j in range(w):
                v[ps[j], i, qs[j]] = u[i, j]


#: The axes of a 3-D corner that put axis ``k`` in the middle (the kernels' line axis).
_MIDDLE = ((1, 0, 2), (0, 1, 2), (0, 2, 1))


def _along(c: np.ndarray, ext: tuple[int, ...], axis: int, fn) -> None:
    """Apply ``fn`` along ``axis`` to the low-pass corner ``c[:ext[0], :ext[1], ...]`` of ``c``, in place: on a
    strided view of the corner (no copy), with ``axis`` in the middle of three."""
    pad = 3 - c.ndim
    corner = c.reshape((1,) * pad + c.shape)[tuple(slice(0, e) for e in (1,) * pad + tuple(ext))]
    fn(corner.transpose(_MIDDLE[axis + pad]), ext[axis])


@functools.lru_cache(maxsize=64)
def _steps(shape: tuple[int, ...], packet: bool) -> tuple[tuple[tuple[int, ...], int], ...]:
    """Every one-level step of the forward transform as (extents of the corner it works on, axis), in order.

    Dyadic (Mallat): level by level, every axis that :func:`plan` splits. Packet: first the whole
    multilevel transform along axis 0 (time, in a chunk of climate output) on the full array, then the
    dyadic transform of the other axes on every row of axis 0, so that each temporal band is also
    decomposed in space.
    """
    if packet and len(shape) > 1:
        out = [((ext[0],) + tuple(shape[1:]), 0) for ext in plan(shape[:1])]
        for ext in plan(tuple(shape[1:])):
            out += [((shape[0],) + ext, k + 1) for k, n in enumerate(ext) if n >= MIN_LEN]
        return tuple(out)
    return tuple((ext, k) for ext in plan(tuple(shape)) for k, n in enumerate(ext) if n >= MIN_LEN)


def forward(x: np.ndarray, packet: bool = False, *, overwrite: bool = False) -> np.ndarray:
    """The multilevel coefficients of ``x`` (float64, same shape, Mallat layout along every axis); with
    ``overwrite``, computed in ``x`` itself where it is a C-contiguous float64 array (no copy)."""
    if np.ndim(x) > 3:
        raise ValueError(f"the wavelet transform takes 1 to 3 axes, got shape {np.shape(x)} (merge the leading ones)")
    c = x if overwrite and x.dtype == np.float64 and x.flags.c_contiguous else np.array(x, np.float64, order="C")
    for ext, k in _steps(c.shape, packet):
        _along(c, ext, k, forward_axis)
    return c


def inverse(c: np.ndarray, packet: bool = False) -> np.ndarray:
    """The field whose :func:`forward` is ``c`` (in place on ``c``, which must be C-contiguous float64)."""
    if c.ndim > 3:
        raise ValueError(f"the wavelet transform takes 1 to 3 axes, got shape {c.shape} (merge the leading ones)")
    for ext, k in reversed(_steps(c.shape, packet)):
        _along(c, ext, k, inverse_axis)
    return c


def _dyadic_bands(shape: tuple[int, ...]) -> list[tuple[int, tuple[int, ...], tuple[int, ...]]]:
    levels = plan(shape)
    ndim = len(shape)
    last = tuple(shape) if not levels else tuple((n + 1) // 2 if n >= MIN_LEN else n for n in levels[-1])
    out = [(len(levels), (0,) * ndim, last)]
    for lv in range(len(levels) - 1, -1, -1):
        ext = levels[lv]
        split = [n >= MIN_LEN for n in ext]
        for code in range(1, 1 << ndim):
            high = [(code >> (ndim - 1 - k)) & 1 for k in range(ndim)]
            if any(h and not s for h, s in zip(high, split)):
                continue
            start, stop = [], []
            for k, n in enumerate(ext):
                nl = (n + 1) // 2 if split[k] else n
                start.append(nl if high[k] else 0)
                stop.append(n if high[k] else nl)
            out.append((lv, tuple(start), tuple(stop)))
    return out


def subbands(shape: tuple[int, ...], packet: bool = False) -> list[tuple[int, tuple[int, ...], tuple[int, ...]]]:
    """Every subband as ``(level, start, stop)``, in coding order, the low-pass corner first (the only band
    with all starts 0). Dyadic: the corner (level ``len(plan)``), then coarsest to finest level, each
    level's bands in order of their high-pass axis sets (as binary numbers, axis 0 the highest bit).
    Packet: every pair (band along axis 0, dyadic band of the other axes), both in those orders; its
    level is the spatial band's where that is a detail band, else the temporal band's."""
    shape = tuple(int(n) for n in shape)
    if not packet or len(shape) == 1:
        return _dyadic_bands(shape)
    out = []
    for tl, ts, te in _dyadic_bands(shape[:1]):
        for k, (sl, ss, se) in enumerate(_dyadic_bands(shape[1:])):
            out.append((sl if k else tl, ts + ss, te + se))
    return out
