"""xdiffc for xarray: which variables are lossy, how they are encoded, how stores are written.

- :mod:`~xdiffc.xarray.variables`: CF classification, valid points, fill values, native-grid layouts;
- :mod:`~xdiffc.xarray.encoding`: bounds, chunks and codecs of the lossy variables (``encode_dataset``);
- :mod:`~xdiffc.xarray.writes`: ``to_zarr`` and ``roundtrip``; appends, regions and fresh stores;
- :mod:`~xdiffc.xarray.accessor`: ``ds.gcdtc``, one line per method over the above.
"""

from . import accessor  # noqa: F401  (registers ds.gcdtc)
from .encoding import encode_dataset
from .writes import roundtrip, to_zarr

__all__ = ["encode_dataset", "roundtrip", "to_zarr"]
