"""xdiffc: error-bounded lossy compression for climate model output.

    >>> import xdiffc
    >>> blob = xdiffc.compress(x, rel_tol=1e-3)   # every valid value within 0.1% of the range
    >>> y = xdiffc.decompress(blob)               # same shape and dtype as x
"""

from . import accessor  # noqa: F401  (registers ds.gcdtc)
from .codec import GCDTCCodec
from .conversion import convert, verify
from .core import compress, decompress
from .errors import CorruptStreamError, ModelMismatchError, ModelNotFoundError, XdiffcError

__all__ = ["compress", "decompress", "convert", "verify", "train", "GCDTCCodec", "CorruptStreamError",
           "ModelMismatchError", "ModelNotFoundError", "XdiffcError"]
__version__ = "0.1.0"


def __getattr__(name: str):
    """``xdiffc.train`` is :func:`xdiffc.training.train`, imported on first use: it needs torch."""
    if name == "train":
        from .training import train

        return train
    raise AttributeError(f"module 'xdiffc' has no attribute {name!r}")
