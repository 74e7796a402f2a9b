"""xdiffc: error-bounded lossy compression for climate model output.

    >>> import xdiffc
    >>> blob = xdiffc.compress(x, rel_tol=1e-3)   # every valid value within 0.1% of the range
    >>> y = xdiffc.decompress(blob)               # same shape and dtype as x
"""

from .codec import GCDTCCodec
from .conversion import convert, verify
from .core import compress, decompress
from .errors import CorruptStreamError, ModelMismatchError, XdiffcError
from . import accessor  # registers ds.gcdtc

__all__ = ["compress", "decompress", "convert", "verify", "GCDTCCodec", "CorruptStreamError", "ModelMismatchError", "XdiffcError"]
__version__ = "0.1.0"
