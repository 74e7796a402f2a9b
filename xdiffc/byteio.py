"""Bounds-checked reading, LEB128 varints and zstd frames, shared by the container and the coders' payloads.

Every shortfall, overrun or out-of-range count raises :class:`~xdiffc.errors.CorruptStreamError`
naming the part of the stream being read, so a damaged stream never surfaces as IndexError,
struct.error or MemoryError.
"""

from __future__ import annotations

import struct

import zstandard

from .errors import CorruptStreamError

#: Largest value a varint may hold unless the caller gives a tighter limit.
MAX_VARINT = (1 << 63) - 1


def uvarint(n: int) -> bytes:
    """Unsigned LEB128 encoding of ``n`` (7 bits per byte, high bit set on all but the last)."""
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


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
        """The next LEB128 integer, which must not exceed ``limit``."""
        n = shift = 0
        while True:
            byte = self.u8()
            n |= (byte & 0x7F) << shift
            shift += 7
            if n > limit or shift > 70:
                raise CorruptStreamError(f"{self.what} holds an out-of-range count")
            if not byte & 0x80:
                return n

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
        raw = zstandard.ZstdDecompressor().decompress(frame, max_output_size=max(declared, 1))
    except zstandard.ZstdError as err:
        raise CorruptStreamError(f"{what} is damaged ({err})") from None
    if len(raw) != declared:
        raise CorruptStreamError(f"{what} is damaged (it holds {len(raw)} bytes, not the {declared} it declares)")
    return raw
