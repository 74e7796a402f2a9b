"""Writing a compressed Dataset to Zarr: what a write may do to an existing store, and how a fresh store stays faithful.

A lossy chunk can be written once, from the original values. Zarr writes a chunk that a write
covers only in part by reading it, decoding it, merging the new values and encoding it again:
for an xdiffc chunk that re-quantises values that were already moved by up to the bound, and the
error grows to twice the bound. So every write into an existing store is checked here first:

- appending along a dimension completes the store's partial last chunk of a lossy variable only
  where that chunk is stored exactly (:mod:`.edges`: the codec stores a chunk padded along its first
  axis exactly); onto a partial chunk stored lossily it is refused, with the chunk sizes that would
  have worked;
- a region write is refused when it covers a lossy chunk only in part;
- the store's chunk shape and bound of each lossy variable are kept: the appended or rewritten
  chunks use the codec already in the store, so a bound other than the store's is an error
  (``rel_tol`` at its default, 1e-3, is taken as not given).

We refuse rather than repair: the original values of a chunk already in the store are gone, so
no later write can rebuild it within the bound. The message says how to write in whole chunks.

A fresh store (:func:`for_new_store`, used by the accessor and by ``convert``) gets no attribute the
input lacked: no ``_FillValue`` on exact variables that had none, no ``calendar`` on a time that
had none; and its exact chunks carry zstd's checksum, as its lossy chunks carry xdiffc's CRC.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import warnings
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass, replace

import pandas as pd
import xarray as xr
import zarr
import zarr.errors

from ..core import DEFAULT_STEPS
from ..options import DEFAULT_LEVEL, Options
from .archive_model import trained_model
from .edges import lossy_edge_chunks
from .encoding import CONSOLIDATED_WARNING, align_chunks, dataset_options, encode_variables
from .variables import BOUND_ATTRS, is_lossy, time_dims, time_like

#: ``rel_tol`` when none is given. An update that leaves it at this value uses the store's bounds silently;
#: any other bound given for a variable already in the store must be the store's.
DEFAULT_REL_TOL = 1e-3
#: xarray write modes that change an existing store in place (``"w"`` replaces it, ``"w-"`` refuses it).
UPDATE_MODES = ("a", "a-", "r+")


@dataclass(frozen=True)
class StoredArray:
    """One array already in a store: what a later write must respect."""

    name: str
    dims: tuple[str, ...]
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    attrs: dict


def describe(store) -> str:
    """The store as a user would name it in a message: its path, else its repr."""
    return repr(os.fspath(store)) if isinstance(store, (str, os.PathLike)) else repr(store)


def stored_arrays(store) -> dict[str, StoredArray] | None:
    """The arrays of the Zarr group at ``store``, or None when there is no group there yet."""
    try:
        with quiet_zarr():
            group = zarr.open_group(store, mode="r")
    except FileNotFoundError:  # zarr's GroupNotFoundError is one too
        return None
    out = {}
    for name, array in group.arrays():
        if array.metadata.zarr_format == 3:
            dims = tuple(array.metadata.dimension_names or ())
        else:
            dims = tuple(array.attrs.get("_ARRAY_DIMENSIONS", ()))
        out[name] = StoredArray(name, dims, tuple(array.shape), tuple(array.chunks), dict(array.attrs))
    return out


@contextlib.contextmanager
def quiet_zarr() -> Iterator[None]:
    """Silence the two warnings Zarr gives on every ordinary xdiffc store, and nothing else.

    Consolidated metadata is not (yet) in the Zarr v3 specification, but xarray relies on it to
    open a store in one read; fixed-length byte strings (E3SM's ``date_written``) have no v3
    specification either. Both are known and harmless for stores that xarray reads back.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", CONSOLIDATED_WARNING, UserWarning)
        warnings.filterwarnings("ignore", r"The data type \((NullTerminatedBytes|FixedLengthBytes|FixedLengthUTF32)",
                                zarr.errors.UnstableSpecificationWarning)
        yield


def refuse_overwrite(store, kwargs: Mapping) -> None:
    """FileExistsError naming ``store`` when a plain write (xarray's default ``mode="w-"``) meets an existing store."""
    if kwargs.get("mode", "w-") != "w-" or kwargs.get("append_dim") or kwargs.get("region"):
        return
    if stored_arrays(store) is not None:
        raise FileExistsError(f"{describe(store)} already holds a Zarr store; pass mode='w' to replace it, or "
                              f"append_dim=... to append to it")


def to_zarr(ds: xr.Dataset, store, tol=None, rel_tol: float | None = DEFAULT_REL_TOL, *, model: str | None = None,
            chunks: Mapping[Hashable, int] | None = None, exclude=(), steps: int = DEFAULT_STEPS,
            layout: str = "auto", grid=None, nrmse: float | None = None, pw_rel_tol=None,
            preserve_zero: bool | Mapping[Hashable, bool] | None = None, climatology: bool = True,
            train_model: int = 0, level: int = DEFAULT_LEVEL, progress: bool | None = None, **to_zarr_kwargs):
    """Compress ``ds`` and write it to ``store`` with consolidated metadata (``ds.gcdtc.to_zarr``).

    The bounds are those of :func:`~xdiffc.xarray.encoding.encode_dataset`; ``nrmse=eps`` asks for the per-block L2
    bound; ``mode`` here is xarray's write mode: the
    default refuses an existing store (FileExistsError naming it), ``mode="w"`` replaces it.
    ``append_dim=`` and ``region=`` update a store in place (see the module docstring); their chunks use
    the climatology the store's codec carries (``climatology``: see ``encode_dataset``).
    ``train_model=STEPS`` first trains a model on ``ds`` itself for ``STEPS`` steps and compresses
    with it; the store carries the model, so readers need no model file. ``level``: 1 (fastest) to 9
    (smallest; default 8), as for :func:`xdiffc.compress`. ``progress``: the bar over the passes before the
    write, as for ``encode_dataset``. Returns
    ``store``, or with ``compute=False`` the Dask object to ``.compute()``. A write that fails to a path
    that did not exist leaves nothing there.
    """
    options = dataset_options(tol=tol, rel_tol=rel_tol, mode="pointwise" if nrmse is None else "l2", nrmse=nrmse,
                              pw_rel_tol=pw_rel_tol, preserve_zero=preserve_zero, level=level)
    refuse_overwrite(store, to_zarr_kwargs)
    zarr_format = to_zarr_kwargs.get("zarr_format") or zarr.config.get("default_zarr_format")
    updating = (to_zarr_kwargs.get("mode") in UPDATE_MODES or to_zarr_kwargs.get("append_dim")
                or to_zarr_kwargs.get("region"))
    with trained_model(ds, model, 0 if updating else train_model) as model:  # an update keeps the store's codec
        out = encode_variables(ds, options, model, chunks, exclude, steps=steps, zarr_format=zarr_format,
                               layout=layout, grid=grid, climatology=climatology and not updating,
                               choose_layout=not updating, progress=progress)
    lossy = [n for n in out.data_vars if is_lossy(out[n].attrs)]
    clash = [n for n in to_zarr_kwargs.get("encoding") or {} if n in lossy]
    if clash:
        # xarray would replace, not merge, their encoding: the codec would silently be dropped
        raise ValueError(f"encoding= names lossy variables {clash}, whose encoding xdiffc sets; "
                         f"give their chunks through chunks= instead, or exclude them")
    given = replace(options, rel_tol=None) if rel_tol == DEFAULT_REL_TOL else options
    out = conform(out, store, lossy, given, to_zarr_kwargs) if updating else for_new_store(out, lossy, zarr_format)
    to_zarr_kwargs.setdefault("consolidated", True)
    created = isinstance(store, (str, os.PathLike)) and not os.path.exists(store)
    try:
        with quiet_zarr():
            result = out.to_zarr(store, **to_zarr_kwargs)
    except BaseException:
        if created:  # xarray creates the group first: a failed write would leave a store that opens as empty
            shutil.rmtree(store, ignore_errors=True)
        raise
    return store if to_zarr_kwargs.get("compute", True) else result


def roundtrip(ds: xr.Dataset, tol=None, rel_tol: float | None = 1e-3, **kwargs) -> xr.Dataset:
    """``ds`` compressed into an in-memory Zarr store and read back, loaded: the Dataset a reader would get."""
    store = zarr.storage.MemoryStore()
    to_zarr(ds, store, tol, rel_tol, **kwargs)
    with quiet_zarr():
        out = xr.open_zarr(store).load()
    out.encoding["source"] = store
    return out


def conform(ds: xr.Dataset, store, lossy: list[Hashable], given: Options, kwargs: Mapping) -> xr.Dataset:
    """``ds`` ready to update the store in place: each lossy variable already there keeps the store's
    chunks and bound; a write that would re-encode part of a lossy chunk, or a bound ``given`` (as the user gave
    it) other than the store's, raises ValueError."""
    existing = stored_arrays(store) or {}
    append_dim, region = kwargs.get("append_dim"), kwargs.get("region")
    if region == "auto":
        region = _auto_region(ds, store)
    if append_dim is not None:
        _check_new_steps(ds, store, append_dim)
    out = ds.copy(deep=False)
    for name in lossy:
        stored = existing.get(str(name))
        if stored is None or not is_lossy(stored.attrs):
            continue
        _check_bound(name, stored, given)
        if append_dim is not None:
            _check_append(stored, append_dim, store)
        if region is not None:
            _check_region(stored, region, store)
        out[name] = _restore(out[name].variable, stored, _offsets(stored, append_dim))
    if append_dim is not None:  # exact variables too: each Dask chunk inside one of the store's chunks
        for name, var in ds.variables.items():
            stored = existing.get(str(name))
            if name not in lossy and stored is not None and append_dim in var.dims and var.chunks is not None:
                var = align_chunks(var, stored.chunks, _offsets(stored, append_dim))
                out = out.assign_coords({name: var}) if name in ds.coords else out.assign({name: var})
    return out


def _offsets(stored: StoredArray, append_dim: Hashable | None) -> dict[Hashable, int]:
    """Where an append along ``append_dim`` starts in the stored array: ``{append_dim: its length}``."""
    if append_dim is None or append_dim not in stored.dims:
        return {}
    return {append_dim: stored.shape[stored.dims.index(append_dim)]}


def _check_bound(name: Hashable, stored: StoredArray, given: Options) -> None:
    """A bound given for a variable already in the store (by name, or one for every variable) must be the store's:
    appended and rewritten chunks use the store's codec, so another bound would be silently ignored."""
    own = given.for_variable(name)
    for option, attr in BOUND_ATTRS.items():
        value = getattr(own, option)
        if value is None or option == "rel_tol" and not own.uses_rel_tol:  # rel_tol: where no other bound names it
            continue
        have = stored.attrs.get(attr)
        if have is None or not math.isclose(float(value), float(have), rel_tol=1e-12):
            held = f"with {attr}={have!r}" if have is not None else f"without a {option} bound"
            raise ValueError(f"{option}={value!r} for {name!r}, but the store already holds it {held}; appended and "
                             f"rewritten chunks use the store's codec and bounds, so leave {option} out of this "
                             f"write (or rewrite the whole variable with mode='w')")


def _chunk_hint(done: int, chunk: int) -> str:
    sizes = [c for c in range(1, done + 1) if done % c == 0 and c <= max(chunk, 1) * 4][-3:]
    return f"chunk sizes that divide {done}, such as {sizes}" if sizes else f"a chunk size that divides {done}"


def _check_append(stored: StoredArray, dim: Hashable, store) -> None:
    """An append may complete the partial last chunk of a lossy array only where that chunk is stored exactly."""
    if dim not in stored.dims:
        return
    axis = stored.dims.index(dim)
    done, chunk = stored.shape[axis], stored.chunks[axis]
    if not done % chunk:
        return
    lossy = lossy_edge_chunks(store, stored.name, axis)
    if lossy:
        where = ", ".join(f"{d}={i}" for d, i in zip(stored.dims, lossy[0]))
        raise ValueError(
            f"cannot append to {stored.name!r} in {describe(store)} along {dim!r}: its last chunk is partial "
            f"({done} values in chunks of {chunk}) and stored lossily (chunk ({where})), and appending would decode "
            f"and re-encode it, up to doubling its error. xdiffc stores a partial chunk exactly only along an "
            f"array's first dimension. Rewrite the store with mode='w' and {_chunk_hint(done, chunk)} along "
            f"{dim!r}, or write all the data at once.")


def _check_new_steps(ds: xr.Dataset, store, dim: Hashable) -> None:
    """Appended coordinate values must be new: a time already in the store would be there twice (``convert``
    refuses the same)."""
    if dim not in ds.indexes:
        return
    with quiet_zarr():
        on_disk = xr.open_zarr(store, consolidated=None, chunks=None)
    if dim not in on_disk.indexes:
        return
    shared = on_disk.indexes[dim].intersection(ds.indexes[dim])
    if len(shared):
        raise ValueError(f"cannot append to {describe(store)} along {dim!r}: {len(shared)} of the {ds.sizes[dim]} "
                         f"appended {dim!r} values are already in the store (the first: {shared[0]}); append only "
                         f"new ones, or write the overlap with region=... (whole chunks)")


def _check_region(stored: StoredArray, region: Mapping, store) -> None:
    for dim, where in region.items():
        if dim not in stored.dims or not isinstance(where, slice):
            continue
        axis = stored.dims.index(dim)
        n, chunk = stored.shape[axis], stored.chunks[axis]
        start, stop, _ = where.indices(n)
        if start % chunk or (stop % chunk and stop != n):
            raise ValueError(
                f"cannot write region {dim}={start}:{stop} of {stored.name!r} in {describe(store)}: it covers "
                f"lossy chunks of {chunk} along {dim!r} only in part, and Zarr would decode and re-encode them, "
                f"up to doubling their error. Write regions that start and stop on multiples of {chunk} "
                f"(or at the end, {n}).")


def _auto_region(ds: xr.Dataset, store) -> dict[Hashable, slice]:
    """``region="auto"`` resolved the way xarray does it: each indexed dimension located by its coordinate."""
    with quiet_zarr():
        on_disk = xr.open_zarr(store, consolidated=None, chunks=None)
    region = {}
    for dim in ds.dims:
        if dim in ds.indexes and dim in on_disk.indexes:
            where = pd.Index(on_disk.indexes[dim]).get_indexer(ds.indexes[dim])
            if where.size and (where >= 0).all():
                region[dim] = slice(int(where.min()), int(where.max()) + 1)
    return region


def _restore(var: xr.Variable, stored: StoredArray, offsets: Mapping[Hashable, int]) -> xr.Variable:
    """``var`` in the store's chunks (written at ``offsets``, see :func:`align_chunks`), with the store's xdiffc
    attributes (its bound and layout)."""
    out = align_chunks(var, stored.chunks, offsets).copy(deep=False)
    out.attrs = {**{k: v for k, v in var.attrs.items() if not str(k).startswith("xdiffc_")},
                 **{k: v for k, v in stored.attrs.items() if str(k).startswith("xdiffc_")}}
    out.encoding = {**var.encoding, "chunks": stored.chunks}
    return out


def for_new_store(ds: xr.Dataset, lossy: list[Hashable], zarr_format: int) -> xr.Dataset:
    """``ds`` prepared for a fresh store: it adds no attribute its variables lacked, and exact chunks are checked.

    xarray gives every variable it stores as floats ``_FillValue = NaN`` (dates too, which it may
    encode as floats) and every date a ``calendar``. Exact variables without a fill value get
    ``_FillValue = None``; lossy ones keep NaN, so that a chunk never written reads as NaN, not as zero. Dates without a calendar are CF-encoded here, with their
    own units, and written without one (a CF reader then assumes "standard", as for the input).

    Lossy chunks carry xdiffc's CRC; exact variables without a compressor of their own get zstd
    with its content checksum, so a damaged coordinate chunk raises on reading instead of
    decoding to wrong values.

    Exact variables along time (bounds, dates, per-step numbers), index coordinates aside, are chunked
    along it as the lossy variables are: a reader's Dask chunks then agree along time (xarray refuses
    a DataArray whose coordinates are chunked otherwise), and appends fill their chunks alike.
    """
    out = ds.copy(deep=False)
    along_time = _time_chunks(ds, lossy)
    for name, var in ds.variables.items():
        if name in lossy:
            continue
        if var.dtype.kind == "M" and "calendar" not in var.encoding and "calendar" not in var.attrs:
            var = _without_calendar(name, var)
        var = var.copy(deep=False)
        var.encoding = dict(var.encoding)
        # floats and times (dates, cftime dates, durations: xarray encodes them as floats where they need it)
        if (var.dtype.kind == "f" or time_like(var)) and not {"_FillValue"} & (var.encoding.keys() | var.attrs.keys()):
            var.encoding["_FillValue"] = None
        if not {"compressor", "compressors"} & set(var.encoding):
            var.encoding["compressors"] = [_checked_zstd(zarr_format)]
        if set(var.dims) & along_time.keys() and var.dims != (name,):
            var = _chunked_along(var, along_time)
        out = out.assign_coords({name: var}) if name in ds.coords else out.assign({name: var})
    return out


def _time_chunks(ds: xr.Dataset, lossy: list[Hashable]) -> dict[Hashable, int]:
    """``{time dimension: chunk}`` where every lossy variable along that dimension has the same Zarr chunk."""
    found = {}
    for dim in time_dims(ds):
        sizes = {ds[n].encoding["chunks"][ds[n].dims.index(dim)] for n in lossy
                 if dim in ds[n].dims and ds[n].encoding.get("chunks")}
        if len(sizes) == 1:
            found[dim] = sizes.pop()
    return found


def _chunked_along(var: xr.Variable, chunks: Mapping[Hashable, int]) -> xr.Variable:
    """``var`` chunked by ``chunks`` along those dimensions; along the others as its Dask chunks are, else whole."""
    shape = tuple(chunks[d] if d in chunks else var.chunks[i][0] if var.chunks is not None else n
                  for i, (d, n) in enumerate(var.sizes.items()))
    out = align_chunks(var, shape)
    out.encoding = {**var.encoding, "chunks": shape}
    out.encoding.pop("preferred_chunks", None)
    return out


def _checked_zstd(zarr_format: int):
    """zstd with its content checksum (xxhash64 of the decoded bytes), for Zarr v3 or v2."""
    if zarr_format == 2:
        import numcodecs

        return numcodecs.Zstd(level=3, checksum=True)
    return zarr.codecs.ZstdCodec(level=3, checksum=True)


def _without_calendar(name: Hashable, var: xr.Variable) -> xr.Variable:
    encoded = xr.conventions.encode_cf_variable(var.compute() if var.chunks else var, name=name)
    attrs = {k: v for k, v in encoded.attrs.items() if k not in ("calendar", "_FillValue")}
    out = xr.Variable(encoded.dims, encoded.data, attrs)
    out.encoding = {k: v for k, v in var.encoding.items() if k in ("chunks", "preferred_chunks", "compressors")}
    out.encoding["_FillValue"] = None
    return out
