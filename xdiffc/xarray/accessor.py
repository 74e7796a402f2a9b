"""``ds.gcdtc``: a thin namespace over public functions, each applied to the Dataset.

    ds.gcdtc.to_zarr("out.zarr", tol={"T": 0.1}, rel_tol=1e-3)   # then: xr.open_zarr("out.zarr")

Each method is the function it names, with that function's signature and docstring; the
function's module is imported on first use. So this module imports nothing of xdiffc, and
registering the accessor (when xarray is imported) can never meet a half-imported xdiffc module.
"""

from __future__ import annotations

import functools
import importlib
import inspect

import xarray as xr


class _Function:
    """An accessor method: ``module.name(ds, ...)``, imported when first looked up."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def __get__(self, accessor, owner=None):
        func = getattr(importlib.import_module(self.module), self.name)
        if accessor is None:
            return func

        def method(*args, **kwargs):
            return func(accessor._ds, *args, **kwargs)

        functools.update_wrapper(method, func)
        params = list(inspect.signature(func).parameters.values())
        method.__signature__ = inspect.Signature(params[1:])
        return method


@xr.register_dataset_accessor("gcdtc")
class GCDTCAccessor:
    """``ds.gcdtc``: compress, write, read back and judge a Dataset with xdiffc."""

    def __init__(self, ds: xr.Dataset):
        self._ds = ds

    compress = _Function("xdiffc.xarray.encoding", "encode_dataset")
    to_zarr = _Function("xdiffc.xarray.writes", "to_zarr")
    roundtrip = _Function("xdiffc.xarray.writes", "roundtrip")
    error_report = _Function("xdiffc.metrics", "error_report")
    assess = _Function("xdiffc.metrics", "assess")
    suggest_tol = _Function("xdiffc.tuning", "suggest_tol")
