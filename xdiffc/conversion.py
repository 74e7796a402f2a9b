"""Convert an archive (netCDF files or one Zarr store) into one xdiffc-compressed Zarr store on Dask.

    summary = xdiffc.convert(["h0/*.nc"], "archive.zarr", tol={"T": 0.1}, rel_tol=1e-3, workers=4)
    report = xdiffc.verify(["h0/*.nc"], "archive.zarr")          # report.ok, report.table

How a conversion runs:

1. The inputs are opened lazily and combined along time by their coordinates. ``ds.gcdtc.compress``
   gives each lossy variable its codec and absolute bound (``rel_tol`` costs one reduction pass
   over the data, on the cluster, for the global value range).
2. The store is created with the root attribute ``xdiffc_complete = False`` in its first metadata
   write, then every array's metadata and the index coordinates are written. A progress log,
   the file ``.xdiffc-progress`` inside the store, records the conversion's inputs and options.
3. The data are written in *units*: one variable, one Zarr chunk along time, and as many whole
   chunks of the other dimensions as fit in :data:`UNIT_BYTES`. Each unit is a small task
   (paths and slices, never data or a model) that reads its slab from the inputs, encodes and
   writes whole chunks, so no chunk is written twice and a worker's memory stays flat however
   long the archive. The codec loads its model once per worker process (the model cache in
   :mod:`xdiffc.model`). A unit's index is appended to the progress log only after its chunks
   are written.
4. ``--resume`` reads the log and runs only the units not recorded. Encoding is deterministic,
   so a unit redone after a kill writes the same bytes: the store ends up identical to one from
   an uninterrupted run.
5. Last: optional verification, then ``xdiffc_complete = True``, consolidated metadata, and the
   progress log is removed. A store is complete when ``xdiffc_complete`` is true and no
   progress log remains; :func:`verify` refuses any other.

Stores are local directories (the progress log is a plain file written next to the chunks).
"""

from __future__ import annotations

import contextlib
import glob
import json
import math
import os
import shutil
import sys
import time
import uuid
import warnings
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import product
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import xarray as xr
import zarr

from .accessor import DEFAULT_CHUNK_BYTES, is_lossy, never_lossy
from .errors import XdiffcError

#: Root attribute of a store being converted: False until every chunk is written and verified.
COMPLETE_ATTR = "xdiffc_complete"
#: The progress log inside the store: a JSON header line, then one finished unit index per line.
#: It sits in a folder without Zarr metadata, which Zarr skips when it lists the group.
PROGRESS_FILE = ".xdiffc/progress"
#: A unit (one task) holds at most about this many bytes of uncompressed data, in whole chunks.
UNIT_BYTES = 64 * 2**20
#: Test hook: seconds each unit sleeps before writing, so that a test can kill a conversion mid-way.
DELAY_ENV = "XDIFFC_TEST_UNIT_DELAY"
#: Attributes that xdiffc adds (bounds, layout, the completion mark): not compared with the inputs.
_OWN_ATTRS = "xdiffc_"
# Zarr warns about the progress folder each time it lists an unfinished store's group: that is expected.
warnings.filterwarnings("ignore", f"Object at {PROGRESS_FILE.split('/')[0]} is not recognized", UserWarning)


class VerificationError(XdiffcError):
    """A converted store does not hold its inputs within the bounds; the store is left incomplete."""


# ---------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Inputs:
    """What to read: plain, hashable values, so that a task can carry it and a worker can cache the open Dataset."""

    paths: tuple[str, ...]
    is_zarr: bool
    time_dim: str | None
    variables: tuple[str, ...] | None = None
    chunks: tuple[tuple[str, int], ...] = ()
    #: (size, mtime) of each path: a worker's cached Dataset is never reused for files changed since
    stamps: tuple[tuple[int, int], ...] = ()


def _stamps(paths: Sequence[str]) -> tuple[tuple[int, int], ...]:
    return tuple((os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in paths)


def _is_zarr(path: str) -> bool:
    return path.rstrip("/").endswith(".zarr") or any(
        os.path.exists(os.path.join(path, name)) for name in ("zarr.json", ".zgroup"))


def resolve_paths(patterns: Iterable[str | os.PathLike]) -> tuple[tuple[str, ...], bool]:
    """Absolute input paths (globs expanded, sorted, de-duplicated) and whether the input is one Zarr store."""
    paths: list[str] = []
    for pattern in map(str, patterns):
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not matches or not all(os.path.exists(m) for m in matches):
            raise FileNotFoundError(f"input {pattern!r} does not exist{' (the glob matches nothing)' if glob.has_magic(pattern) else ''}; "
                                    f"check the path")
        paths.extend(os.path.abspath(m) for m in matches)
    if not paths:
        raise ValueError("no inputs given: name netCDF files, globs, or one Zarr store")
    paths = list(dict.fromkeys(paths))
    stores = [p for p in paths if _is_zarr(p)]
    if stores and len(paths) > 1:
        raise ValueError(f"give either netCDF files or one Zarr store, not {len(paths)} inputs including {stores[0]!r}")
    return tuple(paths), bool(stores)


def _time_dim(ds: xr.Dataset) -> str | None:
    """The dimension of the CF time axis, else a dimension named ``time``, else None."""
    for name in ds.cf.axes.get("T", []):
        if ds[name].ndim == 1:
            return str(ds[name].dims[0])
    return "time" if "time" in ds.dims else None


def _scan(paths: Sequence[str], is_zarr: bool) -> tuple[str | None, xr.Dataset]:
    """The time dimension, and the first input opened lazily; raises ValueError for inputs that do not fit together.

    Files fit together when they hold the same variables, and the same sizes and coordinate values
    along every dimension but time: one grid, split in time.
    """
    open_one = (lambda p: xr.open_zarr(p, chunks=None)) if is_zarr else (lambda p: xr.open_dataset(p, chunks=None))
    first = open_one(paths[0])
    time_dim = _time_dim(first)
    if len(paths) > 1 and time_dim is None:
        raise ValueError(f"{paths[0]!r} has no time dimension, so {len(paths)} files cannot be combined along time; "
                         f"convert them one at a time")
    for path in paths[1:]:
        with open_one(path) as other:
            _check_same_grid(first, other, time_dim, paths[0], path)
    return time_dim, first


def _check_same_grid(a: xr.Dataset, b: xr.Dataset, time_dim: str | None, path_a: str, path_b: str) -> None:
    if set(a.variables) != set(b.variables):
        diff = sorted(map(str, set(a.variables) ^ set(b.variables)))
        raise ValueError(f"inputs {path_a!r} and {path_b!r} hold different variables ({diff}); "
                         f"convert files of one kind together, or select shared ones with --variables")
    for dim, size in a.sizes.items():
        other = b.sizes.get(dim)
        if dim != time_dim and other != size:
            raise ValueError(f"inputs {path_a!r} and {path_b!r} are on different grids: dimension {dim!r} has "
                             f"size {size} and {other}; convert each grid into its own store")
        if dim != time_dim and dim in a.indexes and not a.indexes[dim].equals(b.indexes[dim]):
            raise ValueError(f"inputs {path_a!r} and {path_b!r} are on different grids: coordinate {dim!r} "
                             f"differs; convert each grid into its own store")


def open_inputs(inputs: Inputs) -> xr.Dataset:
    """The inputs as one lazy Dataset, combined along time, Dask-chunked with ``inputs.chunks``."""
    if inputs.is_zarr:
        ds = xr.open_zarr(inputs.paths[0], chunks={})
    else:
        ds = xr.open_mfdataset(inputs.paths, combine="by_coords", parallel=False, chunks={},
                               data_vars="minimal", coords="minimal", compat="override", join="exact")
    chunks = {d: n for d, n in inputs.chunks if d in ds.dims}
    ds = ds.chunk(chunks) if chunks else ds
    return ds if inputs.variables is None else _select(ds, inputs.variables)


def _select(ds: xr.Dataset, variables: Sequence[str]) -> xr.Dataset:
    """The named data variables, plus the ones that are never lossy (bounds, grid, time, integers)."""
    unknown = [v for v in variables if v not in ds.data_vars]
    if unknown:
        raise ValueError(f"--variables names {unknown}, which the inputs lack; their data variables are "
                         f"{sorted(map(str, ds.data_vars))}")
    keep = set(variables) | (never_lossy(ds) & set(ds.data_vars))
    return ds[[n for n in ds.data_vars if n in keep]]


@lru_cache(maxsize=4)
def _cached_inputs(inputs: Inputs) -> xr.Dataset:
    """``open_inputs``, once per worker process and set of inputs."""
    return open_inputs(inputs)


def _default_time_chunk(ds: xr.Dataset, time_dim: str, chunks: Mapping[str, int]) -> int:
    """Time steps per chunk so that the largest float variable's chunks hold about ``DEFAULT_CHUNK_BYTES``."""
    step = max((v.dtype.itemsize * math.prod(min(chunks.get(d, n), n) for d, n in v.sizes.items() if d != time_dim)
                for v in ds.data_vars.values() if time_dim in v.dims and v.dtype.kind == "f"), default=1)
    return max(1, min(ds.sizes[time_dim], DEFAULT_CHUNK_BYTES // step))


# ---------------------------------------------------------------------------------------- units


@dataclass(frozen=True)
class Unit:
    """One task: the slab ``region`` (start, stop per dimension) of array ``name``, in whole Zarr chunks."""

    name: str
    region: tuple[tuple[str, int, int], ...]
    nbytes: int
    nchunks: int

    @property
    def slices(self) -> dict[str, slice]:
        return {d: slice(a, b) for d, a, b in self.region}


def _block_counts(shape: Sequence[int], chunks: Sequence[int], itemsize: int, lead: int) -> list[int]:
    """Chunks per unit along each axis: one along ``lead``, then the trailing axes filled up to ``UNIT_BYTES``."""
    counts = [1] * len(shape)
    budget = max(1, UNIT_BYTES // (itemsize * math.prod(chunks)))
    for axis in reversed(range(len(shape))):
        if axis == lead:
            continue
        n = min(-(-shape[axis] // chunks[axis]), budget)
        counts[axis] = max(1, n)
        budget = max(1, budget // counts[axis])
    return counts


def plan_units(group: zarr.Group, names: Sequence[str], time_dim: str | None) -> list[Unit]:
    """Every unit of the arrays ``names``, in time order: the same list for the same store."""
    units: list[tuple[int, int, Unit]] = []
    for order, name in enumerate(names):
        array = group[name]
        dims = tuple(array.metadata.dimension_names or ())
        shape, chunks = array.shape, array.chunks
        lead = dims.index(time_dim) if time_dim in dims else 0
        counts = _block_counts(shape, chunks, array.dtype.itemsize, lead)
        steps = [c * k for c, k in zip(chunks, counts)]
        starts = [range(0, n, s) for n, s in zip(shape, steps)] or [range(1)]
        for corner in product(*starts):
            region = tuple((d, a, min(a + s, n)) for d, a, s, n in zip(dims, corner, steps, shape))
            extent = [b - a for _, a, b in region]
            nchunks = math.prod(-(-e // c) for e, c in zip(extent, chunks))
            unit = Unit(name, region, array.dtype.itemsize * math.prod(extent), nchunks)
            units.append((corner[lead] if dims else 0, order, unit))
    return [u for *_, u in sorted(units, key=lambda t: t[:2])]


def _write_unit(inputs: Inputs, store: str, unit: Unit) -> tuple[float, str]:
    """Read one unit from the inputs, encode it and write its chunks (runs on a worker).

    Returns the seconds it took and the worker's address. The variable is rebuilt without its
    input encoding: xarray then encodes it exactly like the array already in the store.
    """
    from distributed import get_worker

    start = time.perf_counter()
    time.sleep(float(os.environ.get(DELAY_ENV, 0)))
    with dask.config.set(scheduler="synchronous"):
        var = _cached_inputs(inputs)[unit.name].variable[unit.slices].load()
    part = xr.Dataset({unit.name: xr.Variable(var.dims, var.data)})
    part.to_zarr(store, region=unit.slices, mode="r+", consolidated=False, zarr_format=3)
    return time.perf_counter() - start, get_worker().address


# ---------------------------------------------------------------------------------------- progress


@dataclass
class Progress:
    """The progress log of a conversion: its header (inputs, options, arrays) and the units done."""

    path: Path
    header: dict
    done: set[int] = field(default_factory=set)

    @classmethod
    def start(cls, store: Path, header: dict) -> Progress:
        """Write a fresh log (atomically: a kill leaves either no log or a whole header)."""
        path = store / PROGRESS_FILE
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(header) + "\n")
        os.replace(tmp, path)
        return cls(path, header)

    @classmethod
    def load(cls, store: Path) -> Progress | None:
        """The log of ``store``, or None; a last line cut short by a kill is ignored."""
        path = store / PROGRESS_FILE
        if not path.exists():
            return None
        head, *lines = path.read_text().split("\n")
        return cls(path, json.loads(head), {int(s) for s in lines[:-1] if s})

    def record(self, index: int) -> None:
        """Append a finished unit; called only after the unit's chunks are written."""
        with open(self.path, "a") as f:
            f.write(f"{index}\n")
        self.done.add(index)


def is_complete(store: str | os.PathLike) -> tuple[bool, str]:
    """Whether ``store`` is a finished conversion, and if not, why (for messages)."""
    store = Path(store)
    if not store.exists():
        return False, f"{str(store)!r} does not exist"
    if not (store / "zarr.json").exists() and not (store / ".zgroup").exists():
        return False, f"{str(store)!r} is not a Zarr store"
    if (store / PROGRESS_FILE).exists():
        return False, f"{str(store)!r} is incomplete: a conversion into it has not finished (rerun it with --resume)"
    if zarr.open_group(str(store), mode="r").attrs.get(COMPLETE_ATTR, True) is not True:
        return False, f"{str(store)!r} is incomplete: {COMPLETE_ATTR} is false (rerun the conversion with --resume)"
    return True, ""


# ---------------------------------------------------------------------------------------- cluster


@contextlib.contextmanager
def _client(scheduler: str | None, workers: int | None, threads_per_worker: int | None,
            gpus: int) -> Iterator:
    """A ``distributed.Client``: on ``scheduler`` if given, else on a local cluster (one worker per GPU with ``gpus``)."""
    import logging

    from distributed import Client, LocalCluster, Nanny, Scheduler, SpecCluster

    if scheduler is not None:
        with Client(scheduler) as client:
            yield client
        return
    if gpus:
        spec = {f"gpu{i}": {"cls": Nanny, "options": {"nthreads": threads_per_worker or 1, "resources": {"GPU": 1},
                                                      "env": {"CUDA_VISIBLE_DEVICES": str(i)}}} for i in range(gpus)}
        scheduler_spec = {"cls": Scheduler, "options": {"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"}}
        cluster = SpecCluster(workers=spec, scheduler=scheduler_spec, silence_logs=logging.ERROR)
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker, host="127.0.0.1",
                               dashboard_address=None, silence_logs=logging.ERROR)
    with cluster, Client(cluster) as client:
        yield client


# ---------------------------------------------------------------------------------------- convert


@dataclass
class ConvertSummary:
    """What :func:`convert` did: per variable, the table; in total, the rates."""

    store: str
    table: pd.DataFrame
    seconds: float
    written_bytes: int
    units_done: int
    units_skipped: int
    workers: dict[str, int]

    @property
    def mb_per_s(self) -> float:
        return self.written_bytes / 2**20 / self.seconds if self.seconds else math.nan

    def __str__(self) -> str:
        if not self.units_done:
            return f"{self.store}: already complete, nothing to do"
        total = self.table[["MB", "stored_MB"]].sum()
        return (f"{self.table.to_string(float_format=lambda v: f'{v:.4g}')}\n"
                f"{self.store}: {total['MB']:.1f} MB -> {total['stored_MB']:.2f} MB "
                f"(ratio {total['MB'] / total['stored_MB']:.1f}), {self.units_done} units written "
                f"({self.units_skipped} already done) in {self.seconds:.1f} s, {self.mb_per_s:.2f} MB/s")


def _bound_kwargs(mode: str, tol, rel_tol: float | None) -> dict:
    """The bound arguments of ``ds.gcdtc.compress``: pointwise ``tol``/``rel_tol``, or for ``l2`` ``rel_tol`` as the NRMSE bound."""
    if mode == "pointwise":
        return {"tol": tol, "rel_tol": rel_tol}
    if mode != "l2":
        raise ValueError(f"mode must be 'pointwise' or 'l2', got {mode!r}")
    if tol is not None or rel_tol is None:
        raise ValueError("mode 'l2' bounds the NRMSE of every lossy variable by --rel-tol (rel_tol=); "
                         "it takes no --tol")
    return {"tol": None, "mode": "l2", "nrmse": rel_tol}


def _auto_tol(tol: str, paths: list[str], is_zarr: bool, variables, model, chunks) -> dict[Hashable, float]:
    """``tol="auto"``: the bounds :func:`xdiffc.tuning.suggest_tol` finds on a sample of the inputs."""
    if tol != "auto":
        raise ValueError(f"tol must be a number, a mapping of variable to number, or 'auto'; got {tol!r}")
    from .tuning import suggest_tol

    spec = Inputs(tuple(paths), is_zarr, None, None if variables is None else tuple(variables))
    suggestion = suggest_tol(open_inputs(spec), variables=variables, model=model, chunks=chunks)
    print(suggestion.table.to_string(float_format=lambda v: f"{v:.4g}"), file=sys.stderr)
    return dict(suggestion)


def _prepare_output(store: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to touch an existing store without --overwrite/--resume; fail early where nothing can be written."""
    if store.exists() and not (resume or overwrite):
        raise FileExistsError(f"{str(store)!r} already exists; pass --overwrite to replace it, or --resume to finish "
                              f"an interrupted conversion into it")
    parent = store.parent
    if not parent.is_dir():
        raise PermissionError(f"cannot write {str(store)!r}: {str(parent)!r} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write {str(store)!r}: no write permission in {str(parent)!r}")


def _remove_store(store: Path) -> None:
    """Delete a store, its root metadata first: a kill half-way leaves no group that could pass as complete."""
    for name in ("zarr.json", ".zgroup", ".zattrs", ".zmetadata"):
        with contextlib.suppress(FileNotFoundError):
            (store / name).unlink()
    shutil.rmtree(store)


def _fingerprint(inputs: Inputs, tol, rel_tol, model, mode, chunks, layout, grid) -> dict:
    """What a resumed conversion must share with the first run (JSON)."""
    tol = {str(k): float(v) for k, v in tol.items()} if isinstance(tol, Mapping) else tol
    return {"inputs": [[p, os.path.getsize(p) if os.path.isfile(p) else None] for p in inputs.paths],
            "variables": inputs.variables, "tol": tol, "rel_tol": rel_tol, "model": model, "mode": mode,
            "chunks": dict(chunks), "layout": layout, "grid": None if grid is None else str(grid)}


def _set_up(store: Path, inputs: Inputs, compress_kwargs: dict) -> list[str]:
    """Create the store, marked incomplete: all metadata, the index coordinates; returns the arrays left to units."""
    ds = open_inputs(inputs)
    enc = ds.gcdtc.compress(**compress_kwargs)
    if not any(is_lossy(v.attrs) for v in enc.data_vars.values()):
        floats = [str(n) for n, v in ds.data_vars.items() if v.dtype.kind == "f"]
        raise ValueError(f"nothing to compress: no data variable of the inputs is a lossy float field "
                         f"(float data variables: {floats or 'none'}); name one in --tol, or give a --rel-tol")
    chunks = dict(inputs.chunks)
    for name, var in list(enc.variables.items()):
        if var.chunks is None or is_lossy(var.attrs):
            continue
        if var.dtype.kind in "mMO":
            # dates (time bounds): xarray cannot write a region of a date array that is still empty; they are small
            new = var.compute()
        else:
            # exact variables: one chunk along time per region, whole along the other dimensions
            target = {d: chunks.get(d, n) if d == inputs.time_dim else n for d, n in var.sizes.items()}
            new = var.chunk(target)
            new.encoding = {k: v for k, v in var.encoding.items() if k not in ("chunks", "preferred_chunks")}
            new.encoding["chunks"] = tuple(min(target[d], n) for d, n in var.sizes.items()) or None
        enc = enc.assign_coords({name: new}) if name in enc.coords else enc.assign({name: new})
    if store.exists():
        _remove_store(store)
    zarr.open_group(str(store), mode="w", zarr_format=3, attributes={COMPLETE_ATTR: False})
    enc.attrs[COMPLETE_ATTR] = False
    enc.to_zarr(str(store), mode="a", compute=False, consolidated=False, zarr_format=3)
    return [str(n) for n, v in enc.variables.items() if v.chunks is not None]


def convert(inputs: Iterable[str | os.PathLike] | str, store: str | os.PathLike, *,
            tol: float | Mapping[Hashable, float] | None = None, rel_tol: float | None = 1e-3,
            model: str | None = None, mode: str = "pointwise", chunks: Mapping[str, int] | None = None,
            variables: Sequence[str] | None = None, scheduler: str | None = None, workers: int | None = None,
            threads_per_worker: int | None = None, gpus: int = 0, resume: bool = False, verify: bool = False,
            overwrite: bool = False, progress: bool = True, layout: str = "auto", grid: str | None = None
            ) -> ConvertSummary:
    """Convert netCDF files (or one Zarr store) into one compressed Zarr store on a Dask cluster.

    ``tol``, ``rel_tol``, ``model``, ``chunks``, ``layout`` and ``grid`` are those of
    ``ds.gcdtc.compress``; ``tol="auto"`` picks, per variable, the loosest bound that passes the
    Baker et al. criteria on a sample (:func:`xdiffc.tuning.suggest_tol`). ``mode`` is
    ``"pointwise"`` or ``"l2"``. ``scheduler``: address of an existing cluster; otherwise a local
    one with ``workers`` x ``threads_per_worker``, or with ``gpus`` one worker per GPU. With
    ``gpus`` the units need the worker resource ``GPU=1``. ``resume`` finishes an interrupted
    conversion; ``overwrite`` replaces an existing store; ``verify`` checks every bound before the
    store is marked complete. Returns the :class:`ConvertSummary`.
    """
    store = Path(store).absolute()
    paths, is_zarr = resolve_paths([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs)
    _prepare_output(store, resume, overwrite)
    bounds = _bound_kwargs(mode, tol, rel_tol)
    time_dim, first = _scan(paths, is_zarr)
    if variables is not None:
        _select(first, variables)  # unknown names fail here, before any work
    chunks = dict(chunks or {})
    if time_dim is not None and time_dim not in chunks:
        chunks[time_dim] = _default_time_chunk(first, time_dim, chunks)
    if isinstance(tol, str):
        tol, rel_tol = _auto_tol(tol, paths, is_zarr, variables, model, chunks), None
        bounds = _bound_kwargs(mode, tol, rel_tol)
    spec = Inputs(paths, is_zarr, time_dim, None if variables is None else tuple(variables),
                  tuple(sorted(chunks.items())), _stamps(paths))
    fingerprint = _fingerprint(spec, tol, rel_tol, model, mode, chunks, layout, grid)
    with _client(scheduler, workers, threads_per_worker, gpus) as client:
        log = _open_progress(store, spec, fingerprint, resume, overwrite,
                             dict(model=model, chunks=chunks, layout=layout, grid=grid, **bounds))
        if log is None:  # resuming a store that is already complete
            return _summarise(store, spec, {}, 0.0, [], set(), verify=verify)
        group = zarr.open_group(str(store), mode="r")
        units = plan_units(group, log.header["arrays"], time_dim)
        skipped = set(log.done)
        start = time.perf_counter()
        stats = _run_units(client, spec, store, units, log, gpus, progress)
        seconds = time.perf_counter() - start
        summary = _summarise(store, spec, stats, seconds, units, skipped, verify=verify)
        _finish(store)
    return summary


def _open_progress(store: Path, spec: Inputs, fingerprint: dict, resume: bool, overwrite: bool,
                   compress_kwargs: dict) -> Progress | None:
    """The progress log to run against: the existing one on resume, else a fresh store; None if already complete."""
    if resume and store.exists():
        log = Progress.load(store)
        if log is not None:
            if log.header["fingerprint"] != fingerprint:
                raise ValueError(f"{str(store)!r} was started from other inputs or options; rerun with the same "
                                 f"ones, or pass --overwrite to start again\n  then: {log.header['fingerprint']}\n"
                                 f"  now:  {fingerprint}")
            return log
        attrs = zarr.open_group(str(store), mode="r").attrs if (store / "zarr.json").exists() else {}
        if attrs.get(COMPLETE_ATTR) is True:
            return None
        if COMPLETE_ATTR not in attrs and not overwrite and any(store.iterdir()):
            raise FileExistsError(f"{str(store)!r} was not made by xdiffc convert, so it cannot be resumed; "
                                  f"pass --overwrite to replace it")
        # killed while the store was being set up: nothing was recorded, start again
    arrays = _set_up(store, spec, compress_kwargs)
    return Progress.start(store, {"fingerprint": fingerprint, "arrays": arrays})


def _run_units(client, spec: Inputs, store: Path, units: list[Unit], log: Progress, gpus: int,
               progress: bool) -> dict[str, dict]:
    """Run the units not in ``log`` on the cluster, a few per thread at a time; record each as it finishes."""
    from distributed import as_completed
    from tqdm.auto import tqdm

    todo = [i for i in range(len(units)) if i not in log.done]
    window = 2 * max(1, sum(client.nthreads().values()))
    resources = {"GPU": 1} if gpus else None
    stats: dict[str, dict] = {}
    done_chunks = sum(units[i].nchunks for i in log.done if i < len(units))
    bar = tqdm(total=sum(u.nchunks for u in units), initial=done_chunks, unit="chunk", disable=not progress,
               desc="converting", dynamic_ncols=True)
    start, written = time.perf_counter(), 0

    token, index_of = uuid.uuid4().hex[:8], {}

    def submit(i: int):
        future = client.submit(_write_unit, spec, str(store), units[i], resources=resources, pure=False,
                               key=f"xdiffc-unit-{token}-{i}")
        index_of[future.key] = i
        return future

    queue = iter(todo)
    running = as_completed([submit(i) for i in _take(queue, window)])
    with bar:
        for future in running:
            seconds, worker = future.result()
            index = index_of.pop(future.key)
            unit = units[index]
            log.record(index)
            s = stats.setdefault(unit.name, {"seconds": 0.0, "workers": {}})
            s["seconds"] += seconds
            s["workers"][worker] = s["workers"].get(worker, 0) + 1
            written += unit.nbytes
            bar.set_postfix_str(f"{written / 2**20 / (time.perf_counter() - start):.2f} MB/s", refresh=False)
            bar.update(unit.nchunks)
            for i in _take(queue, 1):
                running.add(submit(i))
    return stats


def _take(iterator: Iterator[int], n: int) -> list[int]:
    return [i for _, i in zip(range(n), iterator)]


def _summarise(store: Path, spec: Inputs, stats: dict[str, dict], seconds: float, units: list[Unit],
               skipped: set[int], *, verify: bool) -> ConvertSummary:
    """The per-variable table (size, stored size, ratio, time; error over bound with ``verify``)."""
    group = zarr.open_group(str(store), mode="r")
    lossy = [n for n, a in group.arrays() if is_lossy(a.attrs)]
    rows = {n: {"MB": group[n].nbytes / 2**20, "stored_MB": group[n].nbytes_stored() / 2**20,
                "seconds": stats.get(n, {}).get("seconds", 0.0)} for n in lossy}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.insert(2, "ratio", table["MB"] / table["stored_MB"])
    if verify:
        report = verify_store(spec, store, require_complete=False)
        if not report.ok:
            raise VerificationError(f"{str(store)!r} fails verification and stays marked incomplete:\n"
                                    + "\n".join(report.problems))
        table.insert(3, "max_err/bound", report.table["max_err_over_bound"])
        table.insert(4, "nrmse", report.table["nrmse"])
        if "nrmse_over_bound" in report.table:
            table.insert(5, "nrmse/bound", report.table["nrmse_over_bound"])
    workers: dict[str, int] = {}
    for s in stats.values():
        for w, n in s["workers"].items():
            workers[w] = workers.get(w, 0) + n
    return ConvertSummary(str(store), table, seconds, sum(units[i].nbytes for i in range(len(units)) if i not in skipped),
                          len(units) - len(skipped), len(skipped), workers)


def _finish(store: Path) -> None:
    """Mark complete, consolidate the metadata (so it includes the mark), then drop the progress log."""
    group = zarr.open_group(str(store), mode="r+")
    group.attrs[COMPLETE_ATTR] = True
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Consolidated metadata is currently not part", category=UserWarning)
        zarr.consolidate_metadata(str(store))
    shutil.rmtree((store / PROGRESS_FILE).parent, ignore_errors=True)


# ---------------------------------------------------------------------------------------- verify


@dataclass
class VerifyReport:
    """Per lossy variable: bound, max error / bound, NRMSE, ratio; and every problem found."""

    store: str
    table: pd.DataFrame
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        lines = [self.table.to_string(float_format=lambda v: f"{v:.4g}")] if len(self.table) else []
        lines += [f"FAIL: {p}" for p in self.problems] or [f"{self.store}: OK"]
        return "\n".join(lines)


def _same(a, b) -> bool:
    """Attribute values equal (arrays compared by value)."""
    try:
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    except (TypeError, ValueError):
        return a == b


def _attr_problems(where: str, want: Mapping, got: Mapping) -> list[str]:
    want = {k: v for k, v in want.items() if not str(k).startswith(_OWN_ATTRS)}
    got = {k: v for k, v in got.items() if not str(k).startswith(_OWN_ATTRS)}
    bad = sorted({k for k in want.keys() ^ got.keys()} | {k for k in want.keys() & got.keys() if not _same(want[k], got[k])})
    return [f"{where}: attributes {bad} differ from the inputs"] if bad else []


def verify(inputs: Iterable[str | os.PathLike] | str, store: str | os.PathLike) -> VerifyReport:
    """Compare ``store`` with the inputs it was converted from: bounds, NRMSE, ratio, metadata, completeness.

    Streams chunk by chunk (Dask reductions), never loading a whole variable.
    """
    paths, is_zarr = resolve_paths([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs)
    time_dim, _ = _scan(paths, is_zarr)
    return verify_store(Inputs(paths, is_zarr, time_dim), Path(store).absolute(), require_complete=True)


def verify_store(spec: Inputs, store: Path, *, require_complete: bool) -> VerifyReport:
    """:func:`verify` on resolved inputs; ``require_complete=False`` checks a store that is about to be finished."""
    complete, why = is_complete(store)
    if not complete and (require_complete or not store.exists()):
        return VerifyReport(str(store), pd.DataFrame(), [why])
    out = xr.open_zarr(str(store), consolidated=None if complete else False)
    out.encoding["source"] = str(store)
    lossy = [n for n in out.data_vars if is_lossy(out[n].attrs)]
    chunks = {d: c[0] for n in lossy[:1] for d, c in out[n].chunksizes.items()}  # read the inputs in store chunks
    ds = open_inputs(Inputs(spec.paths, spec.is_zarr, spec.time_dim, chunks=tuple(chunks.items())))
    problems = _attr_problems("global", ds.attrs, out.attrs)
    missing = [str(n) for n in out.variables if n not in ds.variables]
    if missing:
        return VerifyReport(str(store), pd.DataFrame(), [f"variables {missing} are in the store but not in the inputs"])
    if set(out.coords) != set(ds.coords) & set(out.variables):
        problems.append(f"coordinates differ: store {sorted(map(str, out.coords))}, inputs {sorted(map(str, ds.coords))}")
    for name in out.variables:
        x, y = ds[name].variable, out[name].variable
        problems += _attr_problems(f"{name!r}", x.attrs, y.attrs)
        if (x.dims, x.shape) != (y.dims, y.shape):
            problems.append(f"{name!r}: dims {y.dims} {y.shape} in the store, {x.dims} {x.shape} in the inputs")
        elif name not in lossy and not x.equals(y):  # a chunked comparison
            problems.append(f"{name!r} is stored exactly but differs from the inputs")
    table = ds.gcdtc.error_report(out) if lossy else pd.DataFrame()
    for name, row in table.iterrows():
        if pd.notna(row["max_err_over_bound"]) and not row["max_err_over_bound"] <= 1:
            problems.append(f"{name!r}: max error {row['max_abs_err']:.6g} exceeds the bound {row['tol']:.6g}")
        if pd.isna(row["max_err_over_bound"]) and not row.get("nrmse_over_bound", math.nan) <= 1:
            problems.append(f"{name!r}: NRMSE {row['nrmse']:.6g} exceeds its L2 bound")
        if row["specials_moved"]:
            problems.append(f"{name!r}: {row['specials_moved']} NaN/fill points moved")
    return VerifyReport(str(store), table, problems)
