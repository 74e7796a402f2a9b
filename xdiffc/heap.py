"""Freed memory given back to the operating system between the candidates of a large chunk.

glibc's allocator serves arrays below its mmap threshold (which grows to 32 MB as large arrays are freed) from its
heap, and keeps what they leave when freed: after interp's candidate for a 108 MB float32 chunk, about 27 MB of
freed heap (its fine classes) stayed resident while the wavelet allocated its 216 MB of coefficients, and made
compress peak at 3.1-3.2x the chunk instead of 2.95x (``benchmarks/speed.py``). ``malloc_trim`` returns such memory
(dask.distributed trims its workers the same way). Elsewhere (musl, macOS, Windows) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

#: Chunks of at least this many bytes trim between candidates: a trim walks the heap (under a millisecond), which a
#: small chunk's encode (a few milliseconds) should not pay for memory that does not matter.
TRIM_FROM_BYTES = 1 << 24


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim``, or None where the C library has none."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def release_freed(nbytes: int) -> bool:
    """Give freed heap memory back to the OS where the chunk being coded has at least :data:`TRIM_FROM_BYTES`
    bytes; whether memory was returned."""
    trim = _malloc_trim() if nbytes >= TRIM_FROM_BYTES else None
    return bool(trim(0)) if trim is not None else False
