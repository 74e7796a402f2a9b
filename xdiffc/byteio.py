"""Bounds-checked reading, LEB128 varints and zstd frames, shared by the container and the coders' payloads.

The varint reader and writer are numba kernels (:func:`read_varint`, :func:`put_varint`), the one
copy of each that the compiled table and correction parsers inline and :meth:`Reader.uvarint` calls.

Every shortfall, overrun or out-of-range count raises :class:`~xdiffc.errors.CorruptStreamError`
naming the part of the stream being read, so a damaged stream never surfaces as IndexError,
struct.error or MemoryError.
"""

from __future__ import annotations

import struct
import threading

import numpy as np
import zstandard

from .errors import CorruptStreamError
from .kernels import kernel

#: Inputs up to this many bytes are compressed by a context kept per thread and level (its memory grows with the
#: inputs it has seen, so larger ones get a fresh context, whose setup then costs nothing by comparison).
_REUSE_BYTES = 1 << 16
#: Contexts kept per thread: a new zstd context costs 15-25 us (a (1, 64, 128) chunk compresses 3-5 frames).
_contexts = threading.local()

#: Largest value a varint may hold unless the caller gives a tighter limit.
MAX_VARINT = (1 << 63) - 1
#: :func:`read_varint`'s positions on failure: the bytes ran out; the value is too large (or longer than 9 bytes).
VARINT_TRUNCATED, VARINT_RANGE = -1, -2


def uvarint(n: int) -> bytes:
    """Unsigned LEB128 encoding of ``n`` (7 bits per byte, high bit set on all but the last)."""
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


@kernel
def put_varint(out, at, v):
    """Write ``v >= 0`` as an unsigned LEB128 varint into ``out[at:]``; return the next free index."""
    while True:
        b = v & 0x7F
        v >>= 7
        out[at] = b | (0x80 if v else 0)
        at += 1
        if not v:
            return at


@kernel(inline="always")
def read_varint(buf, at, end, limit):
    """(value, next position) of the unsigned LEB128 varint at ``buf[at:end]``, which must not exceed ``limit``
    (at most ``2**63 - 1``: 9 bytes). On failure the position is :data:`VARINT_TRUNCATED` (no last byte before
    ``end``) or :data:`VARINT_RANGE` (above ``limit``, or a 10th byte)."""
    v, shift = np.int64(0), 0
    while True:
        if shift > 56:
            return np.int64(0), VARINT_RANGE
        if at >= end:
            return np.int64(0), VARINT_TRUNCATED
        b = np.int64(buf[at])
        at += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if v > limit:
            return np.int64(0), VARINT_RANGE
        if not b & 0x80:
            return v, at


class Reader:
    """A cursor over ``data[pos:end]``; ``what`` names it in error messages ("the interp payload")."""

    def __init__(self, data: bytes | memoryview, what: str, pos: int = 0, end: int | None = None) -> None:
        self.data = memoryview(data).cast("B") if not isinstance(data, memoryview) else data
        self.what, self.pos = what, pos
        self.end = len(self.data) if end is None else end

    def take(self, n: int) -> memoryview:
        """The next ``n`` bytes."""
        if n < 0 or self.pos + n > self.end:
            raise CorruptStreamError(f"{self.what} is truncated")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def f64(self) -> float:
        """The next little-endian float64."""
        return struct.unpack("<d", self.take(8))[0]

    def uvarint(self, limit: int = MAX_VARINT) -> int:
        """The next LEB128 integer (:func:`read_varint`), which must not exceed ``limit``."""
        n, at = read_varint(self.data, self.pos, self.end, limit)
        if at == VARINT_TRUNCATED:
            raise CorruptStreamError(f"{self.what} is truncated")
        if at < 0:
            raise CorruptStreamError(f"{self.what} holds an out-of-range count")
        self.pos = at
        return int(n)

    def text(self) -> str:
        """A u8-length-prefixed ASCII string."""
        raw = bytes(self.take(self.u8()))
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise CorruptStreamError(f"{self.what} holds a malformed name") from None

    def rest(self) -> memoryview:
        """All remaining bytes."""
        return self.take(self.end - self.pos)

    def done(self) -> None:
        """Raise unless every byte was read."""
        if self.pos != self.end:
            raise CorruptStreamError(f"{self.what} has trailing bytes")


def inflate(frame: bytes | memoryview, what: str, *, size: int | None = None, limit: int | None = None) -> bytes:
    """Decompress one zstd frame that declares ``size`` bytes exactly (or at most ``limit``).

    The declared size is checked before anything is allocated: python-zstandard allocates a
    frame's declared content size whatever ``max_output_size`` says, so an unchecked frame could
    ask for any amount of memory. xdiffc's encoders always declare the size.
    """
    try:
        declared = zstandard.get_frame_parameters(frame).content_size
        if declared != size if size is not None else declared > limit:
            expected = size if size is not None else f"at most {limit}"
            raise CorruptStreamError(f"{what} declares {declared} bytes, where {expected} belong")
        raw = _decompressor().decompress(frame, max_output_size=max(declared, 1))
    except zstandard.ZstdError as err:
        raise CorruptStreamError(f"{what} is damaged ({err})") from None
    if len(raw) != declared:
        raise CorruptStreamError(f"{what} is damaged (it holds {len(raw)} bytes, not the {declared} it declares)")
    return raw


def deflate(raw: bytes | memoryview, level: int) -> bytes:
    """One zstd frame of ``raw`` at ``level``, its content size declared (what :func:`inflate` requires)."""
    if len(raw) > _REUSE_BYTES:
        return zstandard.ZstdCompressor(level=level).compress(raw)
    kept = _contexts.__dict__.setdefault("compressors", {})
    if level not in kept:
        kept[level] = zstandard.ZstdCompressor(level=level)
    return kept[level].compress(raw)


def _decompressor() -> zstandard.ZstdDecompressor:
    """This thread's decompression context (zstandard's contexts are not shared between threads)."""
    if not hasattr(_contexts, "decompressor"):
        _contexts.decompressor = zstandard.ZstdDecompressor()
    return _contexts.decompressor
