"""``ds.gcdtc``: a thin namespace over the public functions of :mod:`xdiffc.xarray` and :mod:`xdiffc.metrics`.

    ds.gcdtc.to_zarr("out.zarr", tol={"T": 0.1}, rel_tol=1e-3)   # then: xr.open_zarr("out.zarr")

Each method is the function of the same name applied to the Dataset, with its signature and docstring.
"""

from __future__ import annotations

import functools
import inspect

import xarray as xr

from .. import metrics, tuning
from .encoding import encode_dataset
from .writes import roundtrip, to_zarr


def _method(func):
    """``func(ds, ...)`` as a method of the accessor, with ``func``'s name, docstring and signature."""

    def method(self, *args, **kwargs):
        return func(self._ds, *args, **kwargs)

    functools.update_wrapper(method, func)
    params = list(inspect.signature(func).parameters.values())
    method.__signature__ = inspect.Signature([inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY),
                                              *params[1:]])
    return method


@xr.register_dataset_accessor("gcdtc")
class GCDTCAccessor:
    """``ds.gcdtc``: compress, write, read back and judge a Dataset with xdiffc."""

    def __init__(self, ds: xr.Dataset):
        self._ds = ds

    compress = _method(encode_dataset)
    to_zarr = _method(to_zarr)
    roundtrip = _method(roundtrip)
    error_report = _method(metrics.error_report)
    assess = _method(metrics.assess)
    suggest_tol = _method(tuning.suggest_tol)
