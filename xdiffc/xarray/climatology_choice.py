"""A variable's archive-level climatology (:mod:`xdiffc.archive_climatology`): its period, its means, and whether it pays
(the same measurement decides whether a store carries a model).

The period comes from the time coordinate: 12 for monthly data (the seasonal cycle), 24, 8 or 4
for hourly, 3-hourly and 6-hourly data (the diurnal cycle), else 1 (the time mean: annual means,
daily data, whose 365-field cycle would weigh more in metadata than it saves). The means are one
reduction per phase over the whole variable (lazy with Dask). A climatology is kept only where it
measures better (:func:`pays_for_itself`): one chunk from the middle of the variable is encoded
with and without it, and the saving times the number of chunks must exceed its bytes in the
metadata (counted as zarr writes them: in the array's own metadata and in the consolidated copy).

An ensemble's members share one reference (``shared``, :mod:`xdiffc.conversion.members`): each phase's
mean over every member, one blob in the codec's configuration that every member's chunks use.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Hashable

import dask
import numpy as np
import pandas as pd
import xarray as xr
import zarr

from ..codec import GCDTCCodec
from ..archive_climatology import Climatology
from .variables import time_like, valid

log = logging.getLogger(__name__)

#: Nesting level of a codec configuration's entries in the array's ``zarr.json`` and in the consolidated metadata
#: (one copy each), and of an array's attributes, as zarr writes them.
CONFIG_DEPTHS = (4, 7)
ATTRS_DEPTHS = (2, 5)
#: Steps per cycle for each sampling interval (hours) with a cycle worth a climatology.
DIURNAL = {1: 24, 3: 8, 6: 4}


def period_of(times: xr.DataArray) -> int:
    """The climatology's period for a time coordinate: 12 (monthly), 24 / 8 / 4 (1-, 3-, 6-hourly), else 1."""
    if times.size < 3:
        return 1
    try:
        freq = xr.infer_freq(times)
    except (TypeError, ValueError):
        freq = None
    if freq is None:
        return 1
    offset = pd.tseries.frequencies.to_offset(freq)
    if isinstance(offset, (pd.offsets.MonthBegin, pd.offsets.MonthEnd)) and offset.n == 1:
        return 12
    if isinstance(offset, pd.offsets.Hour):
        return DIURNAL.get(offset.n, 1)
    return 1


def time_dim(ds: xr.Dataset, var: xr.Variable) -> Hashable | None:
    """The variable's first dimension when it is time (a datetime coordinate, or a dimension named time)."""
    if var.ndim < 2:
        return None
    dim = var.dims[0]
    if dim in ds.coords and time_like(ds[dim].variable) or str(dim).lower() == "time":
        return dim
    return None


def phase_means(da: xr.DataArray, dim: Hashable, period: int, across: Hashable | None = None) -> np.ndarray:
    """``(period,) + other dims`` means over the valid values of each phase (NaN where a phase has none); with
    ``across``, over that dimension too (kept, of size 1)."""
    masked = da.where(valid(da))
    over = [dim] if across is None else [dim, across]
    lazy = [masked.isel({dim: slice(p, None, period)}).mean(over, skipna=True, keepdims=True).isel({dim: 0})
            for p in range(period)]
    return np.stack([np.asarray(m, dtype=np.float64) for m in dask.compute(*lazy)])


def choose(ds: xr.Dataset, name: Hashable, config: dict, chunks: tuple[int, ...], layout=None,
           shared: Hashable | None = None) -> dict | None:
    """The codec configuration of ``name``'s climatology where it pays, else None.

    ``config`` is the variable's codec configuration so far (pointwise, with an absolute ``tol``);
    ``chunks`` its Zarr chunk shape; ``layout`` its native-grid layout (the chunk's column axis).
    ``shared``: a dimension (an ensemble's members) whose chunks all use one reference, the means
    over it, repeated along it to the chunk's size.
    """
    da, var = ds[name], ds[name].variable
    dim = time_dim(ds, var)
    tol = config.get("tol")
    if dim is None or tol is None or not (math.isfinite(tol) and tol > 0) or chunks[0] >= var.shape[0]:
        return None
    across = var.dims.index(shared) if shared in var.dims else None
    if any(c < n for axis, (c, n) in enumerate(zip(chunks, var.shape)) if axis not in (0, across)) and layout is None:
        return None  # chunks split space: the reference cannot be aligned with them
    period = min(period_of(ds[dim]) if dim in ds.coords else 1, var.shape[0])
    means = phase_means(da, dim, period, None if across is None else shared)
    if across is not None:
        means = np.repeat(means, chunks[across], axis=across)
    if layout is not None:
        means = layout[0].to_grid(means, layout[1])
    try:
        clim = Climatology.build(means, tol)
    except ValueError as err:
        log.info("%s: no climatology (%s)", name, err)
        return None
    entry = clim.to_config()
    return entry if pays_for_itself(da, config, {"climatology": entry}, chunks) else None


def metadata_bytes(config: dict, attrs: dict | None = None) -> int:
    """Bytes that codec configuration entries ``config`` and attributes ``attrs`` add to a Zarr v3 store: their
    JSON as zarr writes it (indented), in the array's own ``zarr.json`` and in the consolidated copy."""
    indent = zarr.config.get("json_indent") or 0
    total = 0
    for entries, depths in ((config, CONFIG_DEPTHS), (attrs or {}, ATTRS_DEPTHS)):
        for key, value in entries.items():
            text = json.dumps({key: value}, indent=indent or None)[1:-1].strip() + ","
            total += sum(len(text) + (1 + text.count("\n") * (depth - 1) + depth) * indent for depth in depths)
    return total


def middle_chunk(da: xr.DataArray, chunks: tuple[int, ...]) -> np.ndarray:
    """The values of the chunk in the middle of the first axis (the first along the others): a sample chunk."""
    start = (da.shape[0] // chunks[0]) // 2 * chunks[0]
    return np.asarray(da[(slice(start, start + chunks[0]),) + tuple(slice(0, c) for c in chunks[1:])].values)


def pays_for_itself(da: xr.DataArray, config: dict, extra: dict, chunks: tuple[int, ...]) -> bool:
    """Whether the codec configuration entries ``extra`` (a climatology, a carried model) save more bytes over
    all chunks than they add to the metadata.

    One chunk from the middle of the first axis is encoded with ``config`` and with ``config | extra``;
    the saving times the number of chunks must exceed the entries' bytes in the store's metadata
    (:func:`metadata_bytes`).
    """
    n_chunks = math.prod(-(-n // c) for n, c in zip(da.shape, chunks))
    sample = middle_chunk(da, chunks)
    plain = len(GCDTCCodec(**config).encode_chunk(sample))
    with_extra = len(GCDTCCodec(**{**config, **extra}).encode_chunk(sample))
    cost = metadata_bytes(extra)
    log.info("%s: %s cost %d bytes of metadata; a sample chunk %d -> %d bytes (x %d chunks)",
             da.name, sorted(extra), cost, plain, with_extra, n_chunks)
    return (plain - with_extra) * n_chunks > cost
