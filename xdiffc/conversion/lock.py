"""One conversion at a time into one output: a lock file in the partial folder, which names the process that
holds it (pid, host, since when).

The holder keeps an ``flock`` on the file for as long as it runs; the kernel drops it when the process dies,
however it dies. A lock whose ``flock`` is free and whose process is gone from this host was left by a killed
run: it is taken over, with a word on stderr. A lock written on another host cannot be checked from here
(``flock`` does not reach across hosts on every shared filesystem): it is refused, with how to remove it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from ..errors import OutputLockedError
from .progress import partial_path

#: The lock, inside the partial folder: JSON with the holder's pid, host, start time and process start time.
LOCK_FILE = "lock"


def _started(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), to tell a pid that was reused; None if
    unknown."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return None


def _runs_here(holder: dict) -> bool:
    """Whether the process that ``holder`` names still runs, on this host."""
    pid = holder.get("pid")
    if holder.get("host") != socket.gethostname() or not isinstance(pid, int) or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        pass
    started = _started(pid)
    return holder.get("started") is None or started is None or started == holder["started"]


def _describe(holder: dict) -> str:
    if not holder:
        return "a process that has not yet written its name"
    return f"pid {holder.get('pid')} on host {holder.get('host')}, since {holder.get('since')}"


def _read(path: Path) -> dict:
    try:
        holder = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _take(store: Path, path: Path, fd: int) -> dict:
    """``flock`` the lock file open as ``fd``, or raise :class:`OutputLockedError` naming its holder. Returns the
    record of the run that left it ({} if none)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise OutputLockedError(f"another conversion into {str(store)!r} is running: {_describe(_read(path))} (its "
                                f"lock is {str(path)!r}); wait for it to finish, or stop it and then finish its work "
                                f"with --resume") from None
    holder = _read(path)
    if holder and holder.get("host") != socket.gethostname():
        raise OutputLockedError(f"{str(store)!r} is locked by a conversion on another host: {_describe(holder)}; "
                                f"{socket.gethostname()} cannot tell whether it still runs. If it does not, delete "
                                f"{str(path)!r} and rerun with --resume")
    if _runs_here(holder):  # a filesystem without flock: the pid tells
        raise OutputLockedError(f"another conversion into {str(store)!r} is running: {_describe(holder)} (its lock "
                                f"is {str(path)!r}); wait for it to finish, or stop it and then finish its work with "
                                f"--resume")
    return holder


def _open(path: Path, create: bool) -> int:
    try:
        return os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o644)
    except PermissionError:
        return os.open(path, os.O_RDONLY)


def check_unlocked(store: Path) -> None:
    """Raise :class:`OutputLockedError` if another conversion into ``store`` holds it (or may, on another host)."""
    path = partial_path(store) / LOCK_FILE
    try:
        fd = _open(path, create=False)
    except (FileNotFoundError, NotADirectoryError):  # no lock, or no folder for one (then reported after this)
        return
    try:
        _take(store, path, fd)
    finally:
        os.close(fd)  # and with it the flock


@contextlib.contextmanager
def locked(store: Path) -> Iterator[None]:
    """Hold the lock of the conversion into ``store`` for the block (creating the partial folder for it, and
    removing it again if the lock is all it holds at the end). A lock left by a run that no longer runs is
    taken over, and said so on stderr."""
    partial = partial_path(store)
    partial.mkdir(exist_ok=True)
    path = partial / LOCK_FILE
    fd = _open(path, create=True)
    try:
        left = _take(store, path, fd)
        if left:
            print(f"xdiffc: the lock in {str(partial)!r} was left by a conversion that no longer runs "
                  f"({_describe(left)}); taking it over", file=sys.stderr)
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "since": datetime.now().astimezone().isoformat(timespec="seconds"), "started": _started(os.getpid())}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    try:
        yield
    finally:
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:  # the partial folder may be gone, or made anew
                path.unlink()
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)
        with contextlib.suppress(OSError):
            partial.rmdir()  # only if the lock was all it held
