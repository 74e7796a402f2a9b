"""The pointwise guarantee: every valid value ends within its bound of the original, in the output dtype.

The bound is ``tol`` (absolute), or ``min(tol, r |x|)`` with a pointwise-relative bound r, optionally
with zeros and signs kept (:func:`violations`).

Predictors and residual coders work in float64; the cast to float32 (or float64 rounding in
``prediction + residual``) can push a value just past the bound. This module finds every such
point *after* the final cast and stores its exact value, so the bound holds by construction,
not by hoping the arithmetic was exact.

Exceptions payload: zstd( varint count, then delta-coded flat indices as u64 ) + zstd( exact values ).
"""

from __future__ import annotations

import numpy as np

from .byteio import deflate, inflate
from .errors import CorruptStreamError
from .kernels import kernel
from .options import Options

_ZSTD_LEVEL = 9


def violations(x: np.ndarray, y: np.ndarray, tol: float, valid: np.ndarray | None,
               options: Options | None = None) -> np.ndarray:
    """Flat indices of the valid points where ``y`` breaks the bound, computed in float64 on the output-dtype values.

    The bound at a point is ``|y - x| <= tol`` (which may be inf), tightened to ``min(tol, r |x|)`` by the
    pointwise-relative bound r of ``options`` where it has one. Where ``options`` keep zeros and signs, ``y == 0``
    is also required where ``x == 0`` and, elsewhere, ``y != 0`` with the sign of ``x`` (a pointwise-relative
    bound implies it below 1, not at or above).
    """
    x, y = np.ascontiguousarray(x).reshape(-1), np.ascontiguousarray(y).reshape(-1)
    masked = valid is not None
    ok = np.ascontiguousarray(valid).reshape(-1) if masked else np.ones(1, bool)
    relative = None if options is None else options.pw_rel_tol
    keep_sign = options is not None and options.keep_sign
    return _violations(x, y, float(tol), -1.0 if relative is None else float(relative), keep_sign, ok, masked)


@kernel
def _bad(xi, yi, tol, rel, keep_sign):
    a, b = np.float64(xi), np.float64(yi)
    allowed = tol if rel < 0 else min(tol, rel * abs(a))
    if not abs(b - a) <= allowed:
        return True
    return keep_sign and (b != 0 if a == 0 else b == 0 or (a < 0) != (b < 0))


@kernel
def _violations(x, y, tol, rel, keep_sign, valid, masked):
    n = 0
    for i in range(x.size):
        if (not masked or valid[i]) and _bad(x[i], y[i], tol, rel, keep_sign):
            n += 1
    out = np.empty(n, np.int64)
    n = 0
    for i in range(x.size):
        if (not masked or valid[i]) and _bad(x[i], y[i], tol, rel, keep_sign):
            out[n] = i
            n += 1
    return out


def encode_exceptions(x: np.ndarray, idx: np.ndarray) -> bytes:
    """Store the exact values of ``x`` at flat indices ``idx`` (sorted)."""
    if idx.size == 0:
        return b""
    deltas = np.diff(idx.astype(np.uint64), prepend=np.uint64(0))
    body = np.uint64(idx.size).tobytes() + deltas.tobytes() + np.ascontiguousarray(x.ravel()[idx]).tobytes()
    return deflate(body, _ZSTD_LEVEL)


def apply_exceptions(y: np.ndarray, payload: bytes) -> None:
    """Write the exact values stored by :func:`encode_exceptions` into ``y`` in place.

    Checked exactly, so that a damaged section never writes a value at a wrong place: the count
    must match the length, and the indices must be strictly increasing and inside ``y``.
    """
    if not payload:
        return
    body = inflate(payload, "the stream's exception section", limit=8 + y.size * (8 + y.itemsize))
    if len(body) < 8:
        raise CorruptStreamError("the stream's exception section is truncated")
    n = int(np.frombuffer(body[:8], np.uint64)[0])
    if not 0 < n <= y.size or len(body) != 8 + n * (8 + y.itemsize):
        raise CorruptStreamError(f"the stream's exception section counts {n} values in {len(body)} bytes")
    deltas = np.frombuffer(body, np.uint64, n, 8)
    idx = np.cumsum(deltas, dtype=np.uint64)  # a wrap-around shows up as a decrease below
    if idx[-1] >= y.size or np.any(idx[1:] <= idx[:-1]):
        raise CorruptStreamError("the stream's exception section holds indices out of order or outside the array")
    y.ravel()[idx.astype(np.int64)] = np.frombuffer(body, y.dtype, n, 8 + 8 * n)
