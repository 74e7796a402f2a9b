"""xdiffc: error-bounded lossy compression for climate model output.

    >>> import xdiffc
    >>> blob = xdiffc.compress(x, rel_tol=1e-3)   # every valid value within 0.1% of the range
    >>> y = xdiffc.decompress(blob)               # same shape and dtype as x
"""

import wrapt

from .codec import GCDTCCodec
from .core import compress, decompress
from .errors import (AppendError, CorruptStreamError, ModelMismatchError, ModelNotFoundError, OutputLockedError,
                     ResumeMismatchError, TruncatedFileError, XdiffcError)

__all__ = ["compress", "decompress", "convert", "verify", "train", "GCDTCCodec", "CorruptStreamError",
           "ModelMismatchError", "ModelNotFoundError", "OutputLockedError", "TruncatedFileError", "XdiffcError",
           "AppendError", "ResumeMismatchError"]
__version__ = "0.1.0"




@wrapt.when_imported("xarray")
def _register_accessor(_xarray) -> None:
    """``ds.gcdtc`` exists as soon as both xdiffc and xarray are imported, in either order.

    Importing xdiffc (as Zarr's codec entry points do) loads neither xarray nor Dask nor torch.
    """
    from .xarray import accessor  # noqa: F401  (imports nothing of xdiffc: safe whatever is half-imported)


def __getattr__(name: str):
    """``convert``/``verify`` (Dask) and ``train`` (torch), imported on first use."""
    if name == "convert":
        from .conversion.run import convert

        return convert
    if name == "verify":
        from .conversion.verify import verify

        return verify
    if name == "train":
        from .training import train

        return train
    raise AttributeError(f"module 'xdiffc' has no attribute {name!r}")
