"""xdiffc for xarray: which variables are lossy, how they are encoded, how stores are written.

- :mod:`~xdiffc.xarray.variables`: CF classification, valid points, fill values, native-grid layouts;
- :mod:`~xdiffc.xarray.encoding`: bounds, chunks and codecs of the lossy variables (``encode_dataset``);
- :mod:`~xdiffc.xarray.writes`: ``to_zarr`` and ``roundtrip``; appends, regions and fresh stores;
- :mod:`~xdiffc.xarray.accessor`: ``ds.gcdtc``, one method per public function of the above
  (registered as soon as xdiffc and xarray are both imported, see :mod:`xdiffc`).
"""
