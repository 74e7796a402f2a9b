"""The inputs of a conversion as one lazy Dataset: a single run's files along time (:mod:`.inputs`) or an
ensemble's members stacked (:mod:`.members`), chunked and narrowed to the variables asked for; and the copies a
worker keeps open while a conversion's units read them (:func:`cached_inputs`, :func:`release_inputs`)."""

from __future__ import annotations

import threading
from collections import OrderedDict

import xarray as xr

from .inputs import Inputs, open_along_time, select
from .members import open_members

#: Input sets a process keeps open at once; the least recently used one is closed beyond.
_KEEP = 4
_open: OrderedDict[Inputs, xr.Dataset] = OrderedDict()
_lock = threading.Lock()


def open_inputs(inputs: Inputs) -> xr.Dataset:
    """The inputs as one lazy Dataset, combined along time (and stacked along the member dimension of an
    ensemble), Dask-chunked with ``inputs.chunks``; its ``close()`` closes the files."""
    if inputs.member_dim is None:
        opened = open_along_time(inputs.paths, inputs.is_zarr, inputs.times)
    else:
        opened = open_members(inputs)
    chunks = {d: n for d, n in inputs.chunks if d in opened.dims}
    ds = opened.chunk(chunks) if chunks else opened
    ds = ds if inputs.variables is None else select(ds, inputs.variables)
    if ds is not opened:  # closing what is returned closes the files (chunk and select drop the closer)
        ds.set_close(opened.close)
    return ds


def cached_inputs(inputs: Inputs) -> xr.Dataset:
    """``open_inputs``, once per process and set of inputs, until :func:`release_inputs`. Opened outside the lock
    (opening may compute on the cluster, through the worker's own client: a lock held then deadlocked the units);
    where two threads opened the same inputs, the first copy is kept and the second closed."""
    with _lock:
        ds = _open.get(inputs)
        if ds is not None:
            _open.move_to_end(inputs)
            return ds
    opened = open_inputs(inputs)
    with _lock:
        ds = _open.setdefault(inputs, opened)
        evicted = [_open.popitem(last=False)[1] for _ in range(len(_open) - _KEEP)]
    for other in evicted + ([opened] if ds is not opened else []):
        other.close()
    return ds


def release_inputs(inputs: Inputs) -> None:
    """Close ``inputs`` where this process holds them open (every worker runs this when a conversion ends). An idle
    worker would otherwise keep the files open for as long as the cluster lives, and HDF5's file locking then
    stops anyone from rewriting them (PermissionError), leaving the file cut short."""
    with _lock:
        ds = _open.pop(inputs, None)
    if ds is not None:
        ds.close()
