"""The xdiffc container: a small binary header, named sections, and a CRC32.

Layout (all integers little-endian; see docs/format.md for the full description)::

    magic      4 bytes  b"XDFC"
    version    u8       FORMAT_VERSION
    header     varint length + bytes (see :class:`Header`)
    nsections  u8
    sections   nsections x (u8 name length, name, varint length, payload)
    crc32      u32      over every byte before it

Everything is validated before a value is reconstructed: a truncated, damaged or
foreign stream raises :class:`~xdiffc.errors.CorruptStreamError`.

Size rule: the declared array holds at most :data:`MAX_RATIO` bytes per byte of stream, so a
hostile header cannot make a decoder allocate more than the stream's length justifies. zstd
cannot beat 2**15 (4 bytes per 128 KiB block), so exact storage always meets the rule; a
coder that can (a constant or linear field costs the interpolation coder a few bytes whatever
its size) is padded by :meth:`Stream.to_bytes` with a ``pad`` section of zeros.
"""

from __future__ import annotations

import functools
import math
import re
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from .byteio import Reader, uvarint
from .errors import CorruptStreamError

MAGIC = b"XDFC"
FORMAT_VERSION = 1

MODES = ("pointwise", "lossless", "l2")
#: Bytes of declared array per byte of stream, at most (twice zstd's own limit).
MAX_RATIO = 1 << 16
#: Dimensions a header may declare (NumPy's own limit is 64).
MAX_NDIM = 32
#: The dtype strings a header may hold: a byte order and a float, integer, unsigned or boolean type with its size.
_DTYPE = re.compile(r"[<>|=]?[fiub][1248]")
#: Name of the section of zero bytes that brings a stream up to the size rule.
PAD = "pad"
#: The sections of the container and of the layers around the residual coders (whose sections are named
#: after them: :data:`xdiffc.coders.REGISTRY`); docs/format.md documents each, a golden stream holds each.
SECTIONS = ("raw", "mask", "special", "exc", "model", "l2base", "pca", "range", "zeros", "log2", "bound", PAD, "ref")


@dataclass(frozen=True)
class Header:
    """What a decoder needs before it reads any section.

    ``tol`` is the absolute bound that was enforced (0 for lossless);
    ``rel_tol`` is recorded for information when the user gave one (NaN otherwise).
    ``model_id``/``model_sha256`` are empty when no model was used.
    """

    dtype: str
    shape: tuple[int, ...]
    order: str = "C"
    mode: str = "pointwise"
    tol: float = 0.0
    rel_tol: float = float("nan")
    model_id: str = ""
    model_sha256: str = ""

    @property
    def nbytes(self) -> int:
        """Bytes of the declared array (a Python int: no overflow, however hostile the shape)."""
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize

    def pack(self) -> bytes:
        out = bytearray()
        for s in (self.dtype, self.order, self.mode, self.model_id, self.model_sha256):
            raw = s.encode("ascii")
            out += bytes([len(raw)]) + raw
        out += bytes([len(self.shape)])
        for n in self.shape:
            out += uvarint(n)
        out += struct.pack("<dd", self.tol, self.rel_tol)
        return bytes(out)

    @classmethod
    def unpack(cls, r: Reader) -> "Header":
        dtype, order, mode, model_id, model_sha = (r.text() for _ in range(5))
        ndim = r.u8()
        if ndim > MAX_NDIM:
            raise CorruptStreamError(f"the stream header declares {ndim} dimensions (at most {MAX_NDIM})")
        shape = tuple(r.uvarint() for _ in range(ndim))
        tol, rel_tol = r.f64(), r.f64()
        if order not in ("C", "F") or mode not in MODES:
            raise CorruptStreamError(f"the stream header is malformed (order={order!r}, mode={mode!r})")
        if not _DTYPE.fullmatch(dtype):  # numpy would parse anything else, e.g. "f," through ast.literal_eval
            raise CorruptStreamError(f"the stream names an unknown dtype {dtype!r}")
        try:
            dt = np.dtype(dtype)
        except TypeError:
            raise CorruptStreamError(f"the stream names an unknown dtype {dtype!r}") from None
        if dt.kind not in "fiub" or not (tol >= 0):
            raise CorruptStreamError(f"the stream header is malformed (dtype={dtype!r}, tol={tol!r})")
        return cls(dtype, shape, order, mode, tol, rel_tol, model_id, model_sha)


@functools.lru_cache(maxsize=256)
def _header(raw: bytes) -> Header:
    """The :class:`Header` packed in ``raw``, parsed once per process: the chunks of a variable share theirs, and
    its parsing took a tenth of a small chunk's decode. (A malformed one raises each time: errors are not cached.)"""
    return Header.unpack(Reader(raw, "the stream header"))


@dataclass
class Stream:
    """A header plus named byte sections, in the order they were added."""

    header: Header
    sections: dict[str, bytes] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        """The stream's bytes, padded (a ``pad`` section) up to the size rule where needed."""
        out = self._assemble(self.sections)
        short = -(-self.header.nbytes // MAX_RATIO) - len(out)
        if short > 0:  # the pad section's own name and length take at most 13 bytes
            out = self._assemble({**self.sections, PAD: bytes(short)})
        return out

    def _assemble(self, sections: dict[str, bytes]) -> bytes:
        out = bytearray(MAGIC) + bytes([FORMAT_VERSION])
        head = self.header.pack()
        out += uvarint(len(head)) + head
        out += bytes([len(sections)])
        for name, payload in sections.items():
            raw = name.encode("ascii")
            out += bytes([len(raw)]) + raw + uvarint(len(payload)) + payload
        out += struct.pack("<I", zlib.crc32(out))
        return bytes(out)

    @classmethod
    def from_bytes(cls, blob: bytes | bytearray | memoryview) -> "Stream":
        buf = memoryview(blob).cast("B")
        if len(buf) < len(MAGIC) + 1 + 4 or bytes(buf[:4]) != MAGIC:
            raise CorruptStreamError("not an xdiffc stream (the magic bytes b'XDFC' are missing)")
        version = buf[4]
        if version != FORMAT_VERSION:
            raise CorruptStreamError(
                f"this stream uses xdiffc format version {version}; this xdiffc reads version "
                f"{FORMAT_VERSION}. Decode it with the xdiffc release that wrote it."
            )
        (crc,) = struct.unpack("<I", buf[-4:])
        if zlib.crc32(buf[:-4]) != crc:
            raise CorruptStreamError("the stream's checksum does not match: it is truncated or damaged")
        r = Reader(buf, "the stream", 5, len(buf) - 4)
        header = _header(bytes(r.take(r.uvarint())))
        if header.nbytes > MAX_RATIO * len(buf):
            raise CorruptStreamError(
                f"the stream header declares an array of shape {header.shape} ({header.nbytes} bytes), more "
                f"than a stream of {len(buf)} bytes can hold (at most {MAX_RATIO} bytes per stream byte)"
            )
        sections: dict[str, bytes] = {}
        for _ in range(r.u8()):
            name = r.text()
            sections[name] = bytes(r.take(r.uvarint()))
        r.done()
        return cls(header, sections)

    def section(self, name: str) -> bytes:
        try:
            return self.sections[name]
        except KeyError:
            raise CorruptStreamError(f"the stream lacks its {name!r} section") from None
