"""Exact storage: byte-shuffled zstd. Used for ``tol=0``, integer data, and as the floor every chunk falls back to."""

from __future__ import annotations

import numpy as np
import zstandard

from ..errors import CorruptStreamError

_ZSTD_LEVEL = 6


def encode(x: np.ndarray) -> bytes:
    """Compress the bytes of a C-contiguous array, grouping byte k of every value together first."""
    raw = np.ascontiguousarray(x).view(np.uint8).reshape(-1, x.dtype.itemsize)
    return zstandard.ZstdCompressor(level=_ZSTD_LEVEL).compress(np.ascontiguousarray(raw.T).tobytes())


def decode(payload: bytes, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    size = int(np.prod(shape, dtype=np.int64))
    nbytes = size * dtype.itemsize
    try:
        raw = zstandard.ZstdDecompressor().decompress(payload, max_output_size=max(nbytes, 1))
    except zstandard.ZstdError as err:
        raise CorruptStreamError(f"the stream's lossless section is damaged ({err})") from None
    if len(raw) != nbytes:
        raise CorruptStreamError("the stream's lossless section has the wrong length")
    planes = np.frombuffer(raw, np.uint8).reshape(dtype.itemsize, size)
    return np.ascontiguousarray(planes.T).view(dtype).reshape(shape)
