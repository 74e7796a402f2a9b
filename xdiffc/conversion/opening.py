"""The inputs of a conversion as one lazy Dataset: a single run's files along time (:mod:`.inputs`) or an
ensemble's members stacked (:mod:`.members`), chunked and narrowed to the variables asked for."""

from __future__ import annotations

from functools import lru_cache

import xarray as xr

from .inputs import Inputs, open_along_time, select
from .members import open_members


def open_inputs(inputs: Inputs) -> xr.Dataset:
    """The inputs as one lazy Dataset, combined along time (and stacked along the member dimension of an
    ensemble), Dask-chunked with ``inputs.chunks``."""
    if inputs.member_dim is None:
        ds = open_along_time(inputs.paths, inputs.is_zarr, inputs.times)
    else:
        ds = open_members(inputs)
    chunks = {d: n for d, n in inputs.chunks if d in ds.dims}
    ds = ds.chunk(chunks) if chunks else ds
    return ds if inputs.variables is None else select(ds, inputs.variables)


@lru_cache(maxsize=4)
def cached_inputs(inputs: Inputs) -> xr.Dataset:
    """``open_inputs``, once per worker process and set of inputs."""
    return open_inputs(inputs)
