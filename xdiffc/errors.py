"""Typed errors that users can catch, each naming what is wrong and what to do."""


class XdiffcError(Exception):
    """Base class of every error raised on purpose by xdiffc."""


class CorruptStreamError(XdiffcError, ValueError):
    """A compressed stream is truncated, damaged, foreign, or of an unknown format version.

    Raised instead of returning garbage: the stream's checksum, magic and section
    lengths are all verified before any value is reconstructed.
    """


class ModelMismatchError(XdiffcError):
    """A stream (or store) was encoded with a model that is not the one offered for decoding."""


class ModelNotFoundError(XdiffcError, FileNotFoundError, ValueError):
    """No shipped model has that name and no file has that path.

    The same error from ``compress``, the codecs, the accessor and ``convert``; it is a
    FileNotFoundError (a path that does not exist) and a ValueError (a bad argument).
    """


class VerificationError(XdiffcError):
    """A converted store does not hold its inputs within the bounds; the store is left incomplete."""


class TruncatedFileError(XdiffcError, ValueError):
    """An input file is shorter than its own header says: it was cut short (an interrupted copy or download)."""


class MemberMismatchError(XdiffcError, ValueError):
    """The members of an ensemble (``convert --member-dim``) differ: in their variables, dimensions, dtypes,
    coordinates, times or calendar. The message names the two files and the first difference."""


class OutputLockedError(XdiffcError):
    """Another conversion holds the output: its lock in the partial folder names it (pid, host, since when)."""


class ResumeMismatchError(XdiffcError, ValueError):
    """``--resume`` with inputs or options other than those of the run it would finish, or of the finished store it
    names: the message says what differs."""


class AppendError(XdiffcError, ValueError):
    """``--append`` of inputs that do not continue the store (its time axis, variables, grid, calendar), or onto a
    store that cannot take them: the message says what and where."""


def first_sentence(err: Exception) -> str:
    """The first sentence of an error from xarray or Zarr, whose messages run on over lines of advice and links."""
    return str(err).strip().split("\n")[0].split(". ")[0].rstrip(".:")


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` attributed to the first caller outside xdiffc (and the ``contextlib`` of its decorators):
    the line of the user's own code that the warning is about."""
    import contextlib
    import os
    import sys
    import warnings

    skip = (os.path.dirname(__file__) + os.sep, contextlib.__file__)
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(skip):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level + 1)
