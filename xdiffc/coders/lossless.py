"""Exact storage: byte-shuffled zstd. Used for ``tol=0``, integer data, and as the floor every chunk falls back to."""

from __future__ import annotations

import math

import numpy as np

from ..byteio import deflate, inflate

_ZSTD_LEVEL = 6


def _planes(x: np.ndarray) -> bytes:
    raw = np.ascontiguousarray(x).view(np.uint8).reshape(-1, x.dtype.itemsize)
    return np.ascontiguousarray(raw.T).tobytes()


def encode(x: np.ndarray) -> bytes:
    """Compress the bytes of a C-contiguous array, grouping byte k of every value together first."""
    return deflate(_planes(x), _ZSTD_LEVEL)


#: Values of the slices that :func:`estimate` compresses. On the 11 benchmark fields (2026-12-08) 2**16 gave
#: estimates 0.4-21% above the real frame (2**18: 0.7-8%) in 0.2-0.9x the time (TREFHT: 1.8 against 5.7 ms, a tenth
#: of a level-1 encode); the core's margin (``LOSSLESS_MARGIN``, 2x) covers either.
_SAMPLE = 1 << 16


def estimate(x: np.ndarray) -> float:
    """Bytes of :func:`encode`'s frame estimated at zstd's fastest level on up to four spread slices."""
    flat = np.ascontiguousarray(x).reshape(-1)
    if flat.size <= 4 * _SAMPLE:
        return len(deflate(_planes(flat), 1))
    starts = np.linspace(0, flat.size - _SAMPLE, 4).astype(np.int64)
    size = sum(len(deflate(_planes(flat[a : a + _SAMPLE]), 1)) for a in starts)
    return size * flat.size / (4 * _SAMPLE)


def decode(payload: bytes, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Inverse of :func:`encode`; the frame must declare exactly the array's byte count."""
    size = math.prod(shape)
    raw = inflate(payload, "the stream's lossless section", size=size * dtype.itemsize)
    planes = np.frombuffer(raw, np.uint8).reshape(dtype.itemsize, size)
    return np.ascontiguousarray(planes.T).view(dtype).reshape(shape)
