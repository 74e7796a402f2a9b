"""How long a netCDF-3 file must be, from its header: a file cut short (an interrupted copy or download) still
opens, and reads as zeros past its end.

The header is that of the netCDF classic format specification (CDF-1 classic, CDF-2 64-bit offset, CDF-5
64-bit data), big-endian throughout. netCDF-4 files are HDF5 files, whose library refuses a truncated file
itself.
"""

from __future__ import annotations

import math
import os
import struct

#: Bytes per value of each netCDF type (NC_BYTE ... NC_UINT64).
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 4, 6: 8, 7: 1, 8: 2, 9: 4, 10: 8, 11: 8}
_STREAMING = {1: 0xFFFFFFFF, 2: 0xFFFFFFFF, 5: 0xFFFFFFFFFFFFFFFF}


class _CutShort(Exception):
    """The header itself ends before it is complete."""


class _Reader:
    def __init__(self, data: bytes, version: int):
        self.data, self.at = data, 4
        self.size = 8 if version == 5 else 4  # NON_NEG: counts, lengths, vsize
        self.offset = 4 if version == 1 else 8  # OFFSET: where a variable begins

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise _CutShort
        chunk, self.at = self.data[self.at:self.at + n], self.at + n
        return chunk

    def int(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def count(self) -> int:
        return self.int(self.size)

    def name(self) -> None:
        self.take(-(-self.count() // 4) * 4)

    def attributes(self) -> None:
        self.int(4)  # NC_ATTRIBUTE, or ZERO when absent
        for _ in range(self.count()):
            self.name()
            kind = self.int(4)
            if kind not in _TYPE_SIZES:
                raise ValueError(f"unknown type {kind}")
            self.take(-(-self.count() * _TYPE_SIZES[kind] // 4) * 4)


def expected_size(path: str | os.PathLike, header_bytes: int = 2**20) -> tuple[int, int | None] | None:
    """(bytes the file has, bytes its netCDF-3 header says it holds, or None where the header itself is cut
    short), or None for a file that is not netCDF-3 or whose header cannot be read (xarray then reports it). A
    header longer than ``header_bytes`` is read whole."""
    with open(path, "rb") as f:
        data = f.read(header_bytes)
        actual = os.fstat(f.fileno()).st_size
        if len(data) < 4 or data[:3] != b"CDF" or data[3] not in (1, 2, 5):
            return None
        while True:
            try:
                return actual, _expected(data)
            except _CutShort:
                if len(data) == actual:
                    return actual, None
                data += f.read(len(data))
            except (ValueError, IndexError, struct.error):
                return None


def _expected(data: bytes) -> int:
    version = data[3]
    r = _Reader(data, version)
    numrecs = r.count()
    if numrecs == _STREAMING[version]:
        numrecs = 0  # still being written: the records cannot be counted from the header
    r.int(4)  # NC_DIMENSION, or ZERO
    dims = []
    for _ in range(r.count()):
        r.name()
        dims.append(r.count())
    r.attributes()
    r.int(4)  # NC_VARIABLE, or ZERO
    fixed, records = [], []  # (begin, bytes of the variable, or of one record of it)
    for _ in range(r.count()):
        r.name()
        ids = [r.count() for _ in range(r.count())]
        r.attributes()
        kind = r.int(4)
        r.count()  # vsize: overflows for variables over 4 GiB, so computed from the dimensions instead
        begin = r.int(r.offset)
        is_record = bool(ids) and dims[ids[0]] == 0
        nbytes = _TYPE_SIZES[kind] * math.prod(dims[i] for i in ids[is_record:])
        (records if is_record else fixed).append((begin, nbytes))
    end = max([r.at] + [begin + n for begin, n in fixed])
    if records and numrecs:
        # one record holds a slab of every record variable, each padded to 4 bytes unless it is the only one
        record = records[0][1] if len(records) == 1 else sum(-(-n // 4) * 4 for _, n in records)
        end = max(end, *(begin + (numrecs - 1) * record + n for begin, n in records))
    return end
