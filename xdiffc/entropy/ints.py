"""A block of non-negative integers below 2**16: the smaller of zstd byte planes and rANS.

Block bytes: ``u8`` 0 then a zstd frame of the low and high byte planes, or ``u8`` 1 then a
sparse histogram and the rANS words (:mod:`.rans`).
"""

from __future__ import annotations

import numpy as np

from ..byteio import Reader
from ..errors import CorruptStreamError
from . import codes, rans, zstd

ZSTD, ANS = 0, 1
_BINS = 1 << 16


def pack(values: np.ndarray) -> bytes:
    """Code ``values`` (integers in [0, 2**16)); whichever of the two forms is smaller."""
    sym = np.asarray(values, np.int64)
    plain = bytes([ZSTD]) + zstd.frame(codes.to_planes(sym))
    hist = np.bincount(sym, minlength=1)
    if np.count_nonzero(hist) <= 1:
        return plain
    nz, counts = rans.sparse(hist)
    words = rans.encode_segments([(0, sym)], [rans.model_of(nz, counts)])
    ans = bytes([ANS]) + rans.histogram_bytes(nz, counts) + rans.words_bytes(words)
    return min(ans, plain, key=len)


def unpack(r: Reader, n: int, limit: int, what: str) -> np.ndarray:
    """Inverse of :func:`pack` for ``n`` values, each checked to be below ``limit``."""
    kind = r.u8()
    if kind == ZSTD:
        sym = codes.from_planes(zstd.read_frame(r, 2 * n, f"a frame of {what}"), n)
    elif kind == ANS:
        nz, counts = rans.read_histogram(r, _BINS, n, what)
        if nz.size < 2 or counts.sum() != n:
            raise CorruptStreamError(f"{what} holds a malformed histogram")
        dec = rans.Decoder(r, [rans.model_of(nz, counts)], n, what)
        sym = dec.take(0, n)
        dec.finish()
    else:
        raise CorruptStreamError(f"{what} names an unknown integer coding")
    if sym.size != n or (n and (sym.min() < 0 or sym.max() >= limit)):
        raise CorruptStreamError(f"{what} holds out-of-range values")
    return sym
