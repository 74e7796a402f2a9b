"""Smooth filling of missing points before a transform (encoder only: the decoder never needs it).

A transform coder has no way to skip points: a constant or a previous value in a hole leaves a
step at its rim that costs coefficients at every scale. Here the holes get a smooth surface
from the valid points around them, by push-pull: the valid values are averaged 2 x 2 (x 2) into
ever coarser grids until every coarse cell has data; going back down, each hole takes the
multilinear interpolation of the coarser grid, then a few Jacobi sweeps (each hole the mean of
its neighbours) smooth the seams. The values at missing points are restored exactly by the
stream's mask, so this choice affects only the size of the coefficients.
"""

from __future__ import annotations

import math

import numpy as np

from ..kernels import kernel

#: Jacobi sweeps on the holes at each level of the pyramid.
SWEEPS = 4


def _down(v: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sums of ``v * w`` and of ``w`` over 2 x 2 (x 2) cells (axes of length 1 are kept)."""
    for k in range(v.ndim):
        n = v.shape[k]
        if n == 1:
            continue
        if n % 2:
            pad = [(0, 0)] * v.ndim
            pad[k] = (0, 1)
            v, w = np.pad(v, pad), np.pad(w, pad)
        v = v.reshape(v.shape[:k] + (-1, 2) + v.shape[k + 1 :]).sum(axis=k + 1)
        w = w.reshape(w.shape[:k] + (-1, 2) + w.shape[k + 1 :]).sum(axis=k + 1)
    return v, w


def _up(c: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The coarse grid ``c`` interpolated (linearly, cell centres) onto the fine ``shape``, one axis at a time."""
    for k, n in enumerate(shape):
        m = c.shape[k]
        if m == n:
            continue
        pos = (np.arange(n) + 0.5) / 2 - 0.5
        lo = np.clip(np.floor(pos).astype(np.int64), 0, m - 1)
        hi = np.clip(lo + 1, 0, m - 1)
        t = np.clip(pos - lo, 0.0, 1.0)
        flat = np.ascontiguousarray(c).reshape(math.prod(c.shape[:k]), m, -1)
        c = _up_axis(flat, lo, hi, t).reshape(c.shape[:k] + (n,) + c.shape[k + 1 :])
    return c


@kernel
def _up_axis(c, lo, hi, t):
    """``c[:, lo] * (1 - t) + c[:, hi] * t`` along the middle axis of a (before, m, after) array (numpy's
    ``take`` along the last axis of a 6-million-point field took 0.3 s a call)."""
    n_before, _, n_after = c.shape
    out = np.empty((n_before, lo.size, n_after))
    for p in range(n_before):
        for i in range(lo.size):
            a, b, w = lo[i], hi[i], t[i]
            for q in range(n_after):
                out[p, i, q] = c[p, a, q] * (1.0 - w) + c[p, b, q] * w
    return out


@kernel
def _sweeps(v, hole, sweeps):
    """Jacobi sweeps on a (d0, d1, d2) array: each hole the mean of its in-range neighbours. Two buffers take turns
    (only holes are written, so the others agree in both): no copy of the field per sweep."""
    d0, d1, d2 = v.shape
    src, dst = v, v.copy()
    for _ in range(sweeps):
        for i in range(d0):
            for j in range(d1):
                for k in range(d2):
                    if not hole[i, j, k]:
                        continue
                    s, c = 0.0, 0
                    if i > 0:
                        s += src[i - 1, j, k]; c += 1
                    if i + 1 < d0:
                        s += src[i + 1, j, k]; c += 1
                    if j > 0:
                        s += src[i, j - 1, k]; c += 1
                    if j + 1 < d1:
                        s += src[i, j + 1, k]; c += 1
                    if k > 0:
                        s += src[i, j, k - 1]; c += 1
                    if k + 1 < d2:
                        s += src[i, j, k + 1]; c += 1
                    if c:
                        dst[i, j, k] = s / c
        src, dst = dst, src
    if sweeps % 2:
        v[...] = src


def _as3(a: np.ndarray) -> np.ndarray:
    shape = (1,) * (3 - a.ndim) + a.shape if a.ndim <= 3 else (-1,) + a.shape[-2:]
    return a.reshape(shape)


def inpaint(values: np.ndarray, skip: np.ndarray) -> np.ndarray:
    """A float64 copy of ``values`` whose ``skip`` points are filled smoothly from the others (0 if none)."""
    keep = ~np.asarray(skip, bool)
    w = keep.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        v = np.where(keep, np.asarray(values, np.float64), 0.0)
    if not keep.any():
        return np.zeros(values.shape)
    if keep.all():
        return v
    levels = [(v, w)]
    while (levels[-1][1] == 0).any() and max(levels[-1][0].shape) > 1:
        levels.append(_down(*levels[-1]))
    sv, sw = levels[-1]
    fill = np.where(sw > 0, sv / np.maximum(sw, 1e-300), 0.0)
    for lv in range(len(levels) - 2, -1, -1):
        sv, sw = levels[lv]
        coarse = _up(fill, sv.shape)
        hole = sw == 0
        # the finest level's weights are 0 or 1, so its valid values are v / 1 = v: no division there
        fill = np.where(hole, coarse, sv if lv == 0 else sv / np.maximum(sw, 1e-300))
        f3 = np.ascontiguousarray(_as3(fill))
        _sweeps(f3, np.ascontiguousarray(_as3(hole)), SWEEPS)
        fill = f3.reshape(fill.shape)
    return fill
