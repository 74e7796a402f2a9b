"""Length-prefixed zstd frames (``uv`` length, then the frame, which declares its content size).

Levels were chosen by measurement (benchmarks/speed.py).  On the interpolation coder's symbol
planes level 19 is 16-28% smaller than level 3 on fields whose residuals repeat from one time
step to the next (TREFHT annual means), and no lower level keeps that gain (level 9: 8-15%
larger, btopt with a short search: 3-9% larger), so :data:`LEVEL` stays 19; encoders run it
only where a :data:`FAST_LEVEL` frame says it may win.
"""

from __future__ import annotations


from ..byteio import Reader, deflate, inflate, uvarint

#: Level of the frames of coded symbols (interpolation body, L2 blocks).
LEVEL = 19
#: Level of the estimates (about 300 MB/s).
FAST_LEVEL = 3
#: Inputs up to this many bytes get :data:`SMALL_LEVEL`: on a 16 KB frame level 15 is as small as
#: level 19 (to a few bytes) at half the time; the larger levels pay off only with long inputs.
SMALL_BYTES = 1 << 17
SMALL_LEVEL = 15


def strong_level(nbytes: int) -> int:
    """The level for a frame of ``nbytes`` that should be as small as zstd can make it."""
    return SMALL_LEVEL if nbytes <= SMALL_BYTES else LEVEL


def frame(raw: bytes, level: int | None = None) -> bytes:
    """``uv`` length + one zstd frame of ``raw`` (its content size declared; default level :data:`LEVEL`)."""
    body = deflate(raw, LEVEL if level is None else level)
    return uvarint(len(body)) + body


def read_frame(r: Reader, size: int, what: str) -> bytes:
    """The next length-prefixed frame of ``r``, which must declare exactly ``size`` bytes."""
    return inflate(r.take(r.uvarint(r.end)), what, size=size)
