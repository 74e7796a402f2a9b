"""Zigzag codes and byte planes: the one integer convention of every xdiffc payload.

``zigzag(q)`` maps 0, -1, 1, -2, 2, ... to 0, 1, 2, 3, 4, ...; the interpolation coder reserves
code 0 for unpredictable values and stores ``zigzag(q) + 1`` otherwise.  Codes below 2**16 are
stored as a low-byte plane followed by a high-byte plane, which keeps the mostly-zero high bytes
from breaking up zstd's matches among the low bytes.
"""

from __future__ import annotations

import numpy as np

from ..kernels import kernel


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


@kernel
def offset_planes(sym, offset):
    """Byte planes of ``0`` for symbol 0 and ``zigzag(sym - offset) + 1`` otherwise (the interpolation body)."""
    n = sym.size
    out = np.empty(2 * n, np.uint8)
    for i in range(n):
        s = np.int64(sym[i])
        z = 0
        if s != 0:
            q = s - offset
            z = (2 * q if q >= 0 else -2 * q - 1) + 1
        out[i] = z & 0xFF
        out[n + i] = z >> 8
    return out


@kernel
def offset_symbols(raw, n, offset):
    """Inverse of :func:`offset_planes` for ``n`` codes (``raw`` holds 2n bytes), as int64."""
    out = np.empty(n, np.int64)
    for i in range(n):
        z = np.int64(raw[i]) | (np.int64(raw[n + i]) << 8)
        if z == 0:
            out[i] = 0
        else:
            z -= 1
            out[i] = (-(z >> 1) - 1 if z & 1 else z >> 1) + offset
    return out
