"""Zigzag codes and byte planes: the one integer convention of every xdiffc payload.

``zigzag(q)`` maps 0, -1, 1, -2, 2, ... to 0, 1, 2, 3, 4, ...; the interpolation coder reserves
code 0 for unpredictable values and stores ``zigzag(q) + 1`` otherwise.  Codes below 2**16 are
stored as a low-byte plane followed by a high-byte plane, which keeps the mostly-zero high bytes
from breaking up zstd's matches among the low bytes.
"""

from __future__ import annotations

import numpy as np


def zigzag(q: np.ndarray) -> np.ndarray:
    """Signed integers to non-negative ones: ``2q`` for ``q >= 0``, ``-2q - 1`` otherwise."""
    q = np.asarray(q, np.int64)
    return np.where(q >= 0, 2 * q, -2 * q - 1)


def unzigzag(z: np.ndarray) -> np.ndarray:
    """Inverse of :func:`zigzag`."""
    z = np.asarray(z, np.int64)
    return np.where(z & 1, -(z >> 1) - 1, z >> 1)


def to_planes(codes: np.ndarray) -> bytes:
    """Codes below 2**16 as a low-byte plane then a high-byte plane."""
    c = np.asarray(codes).astype(np.uint16, copy=False)
    out = np.empty(2 * c.size, np.uint8)
    out[: c.size] = c & 0xFF
    out[c.size :] = c >> 8
    return out.tobytes()


def from_planes(raw: bytes, n: int) -> np.ndarray:
    """Inverse of :func:`to_planes` for ``n`` codes (``raw`` must hold exactly 2n bytes), as int64."""
    planes = np.frombuffer(raw, np.uint8)
    return planes[:n].astype(np.int64) | (planes[n : 2 * n].astype(np.int64) << 8)
