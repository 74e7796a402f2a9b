"""Length-prefixed zstd frames (``uv`` length, then the frame, which declares its content size).

Levels were chosen by measurement (benchmarks/speed.py).  On the interpolation coder's symbol
planes level 19 is 16-28% smaller than level 3 on fields whose residuals repeat from one time
step to the next (TREFHT annual means), and no level below 17 keeps that gain (level 9: 8-15%
larger, btopt with a short search: 3-9% larger), so :data:`LEVEL` stays 19 for xdiffc's smallest
streams. Below that xdiffc level, :data:`FASTER_LEVEL` 17: on the interpolation bodies of the benchmark
fields (2026-12-08, ihesp14 TS and homme T at eps 1e-3 and 1e-4) the whole encodes took 0.55-0.7x the time
and its streams were -0.7% to +1.4% the size. Encoders run either only where a :data:`FAST_LEVEL` frame
says it may win.
"""

from __future__ import annotations


from ..byteio import Reader, deflate, inflate, uvarint

#: Level of the frames of coded symbols (interpolation body, L2 blocks).
LEVEL = 19
#: ... below xdiffc's smallest level (:data:`~xdiffc.options.FULL_SEARCH_LEVEL`).
FASTER_LEVEL = 17
#: Level of the estimates (about 300 MB/s).
FAST_LEVEL = 3
#: Inputs up to this many bytes get :data:`SMALL_LEVEL`: on a 16 KB frame level 15 is as small as
#: level 19 (to a few bytes) at half the time; the larger levels pay off only with long inputs.
SMALL_BYTES = 1 << 17
SMALL_LEVEL = 15


def strong_level(nbytes: int, smallest: bool = True) -> int:
    """The level for a frame of ``nbytes`` that should be as small as zstd can make it (``smallest``), or nearly
    so in about 0.6x the time."""
    if nbytes <= SMALL_BYTES:
        return SMALL_LEVEL
    return LEVEL if smallest else FASTER_LEVEL


def frame(raw: bytes, level: int | None = None) -> bytes:
    """``uv`` length + one zstd frame of ``raw`` (its content size declared; default level :data:`LEVEL`)."""
    body = deflate(raw, LEVEL if level is None else level)
    return uvarint(len(body)) + body


def read_frame(r: Reader, size: int, what: str) -> bytes:
    """The next length-prefixed frame of ``r``, which must declare exactly ``size`` bytes."""
    return inflate(r.take(r.uvarint(r.end)), what, size=size)
