"""Convert an archive (netCDF files or one Zarr store) into one xdiffc-compressed Zarr store on Dask.

    summary = xdiffc.convert(["h0/*.nc"], "archive.zarr", tol={"T": 0.1}, rel_tol=1e-3, workers=4)
    report = xdiffc.verify(["h0/*.nc"], "archive.zarr")          # report.ok, report.table

How a conversion runs:

1. The inputs are opened lazily and combined along time by their coordinates (``use_cftime``
   decodes every file's times as cftime dates, for calendars or dates numpy cannot hold alike).
   ``ds.gcdtc.compress`` gives each lossy variable its codec and absolute bound (``rel_tol``
   costs one reduction pass over the data, on the cluster, for the global value range).
2. Nothing is written at ``OUT``. The conversion builds the store in a sibling folder,
   ``OUT.xdiffc-partial/``: the store itself, ``data.zarr``, with the root attribute
   ``xdiffc_complete = False``, every array's metadata and the index coordinates; beside it the
   progress log, ``progress``, records the conversion's inputs and options.
3. The data are written in *units*: one variable, one Zarr chunk along time, and as many whole
   chunks of the other dimensions as fit in :data:`UNIT_BYTES`. Each unit is a small task
   (paths and slices, never data or a model) that reads its slab from the inputs, encodes and
   writes whole chunks, so no chunk is written twice and a worker's memory stays flat however
   long the archive. The codec loads its model once per worker process (the model cache in
   :mod:`xdiffc.model`). A unit's index is appended to the progress log only after its chunks
   are written.
4. ``--resume`` finds the partial folder, reads the log and runs only the units not recorded.
   Encoding is deterministic, so a unit redone after a kill writes the same bytes: the store ends
   up identical to one from an uninterrupted run.
5. Last: optional verification, then ``xdiffc_complete = True`` and consolidated metadata, and
   then ``data.zarr`` is renamed to ``OUT`` (one atomic rename; with ``--overwrite`` an existing
   ``OUT`` is first moved into the partial folder, and deleted with it afterwards).

What a reader sees: ``OUT`` appears, whole and consolidated, only at that rename. While a
conversion runs, and after it is killed at any moment, plain ``xr.open_zarr(OUT)`` raises
``FileNotFoundError`` (or, with ``--overwrite``, still opens the previous store, untouched). It
never returns the NaNs of chunks not yet written. Opening ``OUT.xdiffc-partial`` fails too (it is
not a Zarr store); only a reader who opens ``OUT.xdiffc-partial/data.zarr`` on purpose gets
unfinished data, marked ``xdiffc_complete = False`` and without consolidated metadata.
:func:`is_complete` and :func:`verify` report such a store as incomplete.

Stores are local directories (or a shared filesystem the workers see at the same path): the
final step is a filesystem rename.
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
from dataclasses import dataclass, field, replace
from functools import lru_cache
from itertools import product
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import xarray as xr
import zarr

from . import grids
from .api import PW_REL_LIMIT, check_bound, check_chunks, check_mode
from .errors import CorruptStreamError, XdiffcError
from .metrics import error_report
from .xarray.encoding import DEFAULT_CHUNK_BYTES, encode_dataset
from .xarray.variables import is_lossy, never_lossy
from .xarray.writes import for_new_store, quiet_zarr

#: Root attribute of a store being converted: False until every chunk is written and verified.
COMPLETE_ATTR = "xdiffc_complete"
#: The sibling folder ``OUT<suffix>`` where a conversion into ``OUT`` builds the store until it is complete.
PARTIAL_SUFFIX = ".xdiffc-partial"
#: The store being built, inside the partial folder; renamed to ``OUT`` when complete.
PARTIAL_STORE = "data.zarr"
#: The model ``--train-model`` trains, in the partial folder (its checkpoint beside it): the store then carries it.
ARCHIVE_MODEL = "archive.pt"
#: ``--train-model`` trains on input files evenly spread over the inputs, up to this many bytes of them.
TRAIN_BYTES = 2 * 2**30
#: The progress log, inside the partial folder: a JSON header line, then one finished unit index per line.
PROGRESS_FILE = "progress"
#: A unit (one task) holds at most about this many bytes of uncompressed data, in whole chunks.
UNIT_BYTES = 64 * 2**20
#: Test hook: seconds each unit sleeps before writing, so that a test can kill a conversion mid-way.
DELAY_ENV = "XDIFFC_TEST_UNIT_DELAY"
#: Attributes that xdiffc adds (bounds, layout, the completion mark): not compared with the inputs.
_OWN_ATTRS = "xdiffc_"


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
    #: time decoding: "auto" (xarray's choice), "cftime" (cftime dates in every file) or "raw" (numbers, undecoded)
    times: str = "auto"


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


def time_decoding(use_cftime: bool, decode_times: bool) -> str:
    """The :attr:`Inputs.times` of ``convert``'s and ``verify``'s options."""
    if use_cftime and not decode_times:
        raise ValueError("use_cftime=True (--use-cftime) decodes times, decode_times=False (--no-decode-times) "
                         "keeps them as numbers: give one of them")
    return "cftime" if use_cftime else "auto" if decode_times else "raw"


def _decoding(times: str) -> dict:
    """xarray's time decoding for :attr:`Inputs.times`."""
    if times == "cftime":
        return {"decode_times": xr.coders.CFDatetimeCoder(use_cftime=True)}
    return {"decode_times": False} if times == "raw" else {}


def first_sentence(err: Exception) -> str:
    """The first sentence of an error from xarray or Zarr, whose messages run on over lines of advice and links."""
    return str(err).strip().split("\n")[0].split(". ")[0].rstrip(".:")


def _open_input(path: str, is_zarr: bool, times: str) -> xr.Dataset:
    """One input, opened lazily without Dask; a ValueError naming the file if xarray cannot open or decode it."""
    try:
        if is_zarr:
            return xr.open_zarr(path, chunks=None, **_decoding(times))
        return xr.open_dataset(path, chunks=None, **_decoding(times))
    except (OSError, ValueError, TypeError) as err:  # xarray: no backend for it, damaged, undecodable times
        hint = ""
        if "time" in str(err) and times == "auto":
            hint = ("; if its calendar is the cause, try use_cftime=True (--use-cftime); if no calendar decodes its "
                    "time units (such as 'months since'), decode_times=False (--no-decode-times) keeps them as numbers")
        elif "time" in str(err) and times == "cftime":
            hint = "; decode_times=False (--no-decode-times) keeps the times as numbers"
        raise ValueError(f"cannot open input {path!r}: {first_sentence(err)}{hint}") from err


def _scan(paths: Sequence[str], is_zarr: bool, times: str) -> tuple[str | None, xr.Dataset]:
    """The time dimension, and the first input opened lazily; raises ValueError for inputs that do not fit together.

    Files fit together when they hold the same variables, the same sizes and coordinate values
    along every dimension but time, and times of one kind that no two files share: one grid,
    split in time.
    """
    first = _open_input(paths[0], is_zarr, times)
    time_dim = _time_dim(first)
    if len(paths) > 1 and time_dim is None:
        raise ValueError(f"{paths[0]!r} has no time dimension, so {len(paths)} files cannot be combined along time; "
                         f"convert them one at a time")
    indexes = {paths[0]: first.indexes.get(time_dim)}
    for path in paths[1:]:
        with _open_input(path, is_zarr, times) as other:
            _check_same_grid(first, other, time_dim, paths[0], path)
            indexes[path] = other.indexes.get(time_dim)
    if len(paths) > 1:
        _check_times({p: t for p, t in indexes.items() if t is not None})
    return time_dim, first


def _time_steps(paths: Sequence[str], is_zarr: bool, times: str, time_dim: str) -> int:
    """Time steps of the inputs combined along time."""
    total = 0
    for path in paths:
        with _open_input(path, is_zarr, times) as ds:
            total += ds.sizes[time_dim]
    return total


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


def _check_times(times: Mapping[str, pd.Index]) -> None:
    """A ValueError unless every file's times decode to one kind of date and no two files share a time."""
    (first, kind), *_ = times.items()
    owner: dict = {}
    for path, index in times.items():
        if type(index) is not type(kind):
            raise ValueError(f"inputs {first!r} and {path!r} decode their times to different kinds of date "
                             f"({type(kind).__name__} and {type(index).__name__}), so they cannot be combined "
                             f"along time; pass use_cftime=True (--use-cftime) to decode all of them as cftime dates")
        for t in index:
            other = owner.setdefault(t, path)
            if other != path:
                shared = len(index.intersection(times[other]))
                raise ValueError(f"inputs {other!r} and {path!r} share {shared} time value(s) (the first: {t}), and "
                                 f"files are combined along time, where each time may appear once. Ensemble members "
                                 f"or other runs of the same period: convert each into its own store")


def open_inputs(inputs: Inputs) -> xr.Dataset:
    """The inputs as one lazy Dataset, combined along time, Dask-chunked with ``inputs.chunks``."""
    decoding = _decoding(inputs.times)
    if inputs.is_zarr:
        ds = xr.open_zarr(inputs.paths[0], chunks={}, **decoding)
    else:
        try:
            ds = xr.open_mfdataset(inputs.paths, combine="by_coords", parallel=False, chunks={}, data_vars="minimal",
                                   coords="minimal", compat="override", join="exact", **decoding)
        except ValueError as err:
            raise ValueError(f"cannot combine the {len(inputs.paths)} inputs ({inputs.paths[0]!r} ... "
                             f"{inputs.paths[-1]!r}) along time: {first_sentence(err)}") from err
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


@quiet_zarr()
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
    def start(cls, partial: Path, header: dict) -> Progress:
        """Write a fresh log into the partial folder (atomically: a kill leaves either no log or a whole header)."""
        path = partial / PROGRESS_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(header) + "\n")
        os.replace(tmp, path)
        return cls(path, header)

    @classmethod
    def load(cls, partial: Path) -> Progress | None:
        """The log in the partial folder, or None; a last line cut short by a kill is ignored."""
        path = partial / PROGRESS_FILE
        if not path.exists():
            return None
        head, *lines = path.read_text().split("\n")
        return cls(path, json.loads(head), {int(s) for s in lines[:-1] if s})

    def record(self, index: int) -> None:
        """Append a finished unit; called only after the unit's chunks are written."""
        with open(self.path, "a") as f:
            f.write(f"{index}\n")
        self.done.add(index)


def partial_path(store: str | os.PathLike) -> Path:
    """The folder where a conversion into ``store`` works until it is complete: ``store`` + :data:`PARTIAL_SUFFIX`."""
    store = Path(store)
    return store.with_name(store.name + PARTIAL_SUFFIX)


def is_complete(store: str | os.PathLike) -> tuple[bool, str]:
    """Whether ``store`` is a finished conversion, and if not, why (for messages)."""
    store, partial = Path(store), partial_path(store)
    if not store.exists() and partial.exists():
        return False, (f"{str(store)!r} is incomplete: a conversion into it has not finished (its work so far is in "
                       f"{str(partial)!r}); rerun it with --resume")
    if not store.exists():
        return False, f"{str(store)!r} does not exist"
    if not (store / "zarr.json").exists() and not (store / ".zgroup").exists():
        return False, f"{str(store)!r} is not a Zarr store"
    if zarr.open_group(str(store), mode="r").attrs.get(COMPLETE_ATTR, True) is not True:
        return False, (f"{str(store)!r} is incomplete: {COMPLETE_ATTR} is false (an unfinished conversion, moved or "
                       f"made by an older xdiffc: convert again with --overwrite)")
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
    #: uncompressed bytes and units written by this run (counted as the units finish)
    written_bytes: int
    units_done: int
    #: units found done in the progress log of an interrupted run, and not redone
    units_skipped: int
    workers: dict[str, int]

    @property
    def mb_per_s(self) -> float:
        return self.written_bytes / 2**20 / self.seconds if self.seconds else math.nan

    def __str__(self) -> str:
        if not self.units_done and not self.units_skipped:
            return f"{self.store}: already complete, nothing to do"
        total = self.table[["MB", "stored_MB"]].sum()
        return (f"{self.table.to_string(float_format=lambda v: f'{v:.4g}')}\n"
                f"{self.store}: {total['MB']:.1f} MB -> {total['stored_MB']:.2f} MB "
                f"(ratio {total['MB'] / total['stored_MB']:.1f}), {self.units_done} units written "
                f"({self.units_skipped} already done) in {self.seconds:.1f} s, {self.mb_per_s:.2f} MB/s")


def _bound_kwargs(mode: str, tol, rel_tol: float | None, pw_rel_tol=None, preserve_zero: bool | None = None) -> dict:
    """The bound arguments of ``ds.gcdtc.compress``: pointwise ``tol``/``rel_tol``, or for ``l2`` ``rel_tol`` as the NRMSE bound.

    Every bound is checked here, before a cluster starts: a ValueError unless it is finite and >= 0.
    """
    check_bound("rel_tol (--rel-tol)", rel_tol)
    for name, value in (tol.items() if isinstance(tol, Mapping) else [(None, tol)]):
        if not isinstance(value, str):  # 'auto' is resolved later
            check_bound("tol (--tol)" if name is None else f"tol of {name!r} (--tol {name}=...)", value)
    for name, value in (pw_rel_tol.items() if isinstance(pw_rel_tol, Mapping) else [(None, pw_rel_tol)]):
        check_bound("pw_rel_tol (--pw-rel-tol)" if name is None else f"pw_rel_tol of {name!r} (--pw-rel-tol {name}=...)",
                    value, PW_REL_LIMIT)
    if mode != "l2":
        check_mode(mode)  # "pointwise", or the one message for an unknown mode
        return {"tol": tol, "rel_tol": rel_tol, "pw_rel_tol": pw_rel_tol, "preserve_zero": preserve_zero}
    if tol is not None or rel_tol is None or pw_rel_tol is not None or preserve_zero:
        raise ValueError("mode 'l2' bounds the NRMSE of every lossy variable by --rel-tol (rel_tol=); "
                         "it takes no --tol, --pw-rel-tol or --preserve-zero")
    return {"tol": None, "mode": "l2", "nrmse": rel_tol}


def _auto_tol(tol: str, spec: Inputs, model: str | None) -> tuple[dict[Hashable, float], dict[Hashable, float] | None]:
    """``tol="auto"``: the bounds :func:`xdiffc.tuning.suggest_tol` finds on a sample of the inputs:
    (absolute bounds, pointwise-relative bounds or None)."""
    if tol != "auto":
        raise ValueError(f"tol must be a number, a mapping of variable to number, or 'auto'; got {tol!r}")
    from .tuning import suggest_tol

    chunks = dict(spec.chunks)
    ds = open_inputs(replace(spec, chunks=()))
    suggestion = suggest_tol(ds, variables=spec.variables, model=model, chunks=chunks)
    print(suggestion.table.to_string(float_format=lambda v: f"{v:.4g}"), file=sys.stderr)
    return dict(suggestion), suggestion.pw_rel_tol or None


def _prepare_output(store: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to touch an existing store, or the partial folder of an interrupted conversion, without --overwrite
    or --resume; fail early where nothing can be written."""
    partial = partial_path(store)
    if not (resume or overwrite):
        if store.exists():
            raise FileExistsError(f"{str(store)!r} already exists; pass --overwrite to replace it, or --resume to "
                                  f"finish an interrupted conversion into it")
        if partial.exists():
            raise FileExistsError(f"an interrupted conversion into {str(store)!r} left {str(partial)!r}; pass --resume "
                                  f"to finish it, or --overwrite to start again")
    parent = store.parent
    if not parent.is_dir():
        raise PermissionError(f"cannot write {str(store)!r}: {str(parent)!r} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write {str(store)!r}: no write permission in {str(parent)!r}")


def _fingerprint(inputs: Inputs, bounds: Mapping, model, mode, chunks, layout, grid) -> dict:
    """What a resumed conversion must share with the first run (JSON): ``bounds`` are :func:`_bound_kwargs`'s."""
    def plain(value):
        return {str(k): float(v) for k, v in value.items()} if isinstance(value, Mapping) else value

    return {"inputs": [[p, os.path.getsize(p) if os.path.isfile(p) else None] for p in inputs.paths],
            "use_cftime": inputs.times == "cftime", "variables": inputs.variables, **{k: plain(v) for k, v in bounds.items()},
            "model": model, "mode": mode, "chunks": dict(chunks), "layout": layout,
            "grid": None if grid is None else str(grid)} | ({"decode_times": False} if inputs.times == "raw" else {})


def _set_up(store: Path, inputs: Inputs, compress_kwargs: dict) -> list[str]:
    """Create the store (in the partial folder), marked incomplete: all metadata, the index coordinates; returns
    the arrays left to units."""
    ds = open_inputs(inputs)
    enc = encode_dataset(ds, **compress_kwargs)
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
    enc = for_new_store(enc, [n for n, v in enc.data_vars.items() if is_lossy(v.attrs)], zarr_format=3)
    zarr.open_group(str(store), mode="w", zarr_format=3, attributes={COMPLETE_ATTR: False})
    enc.attrs[COMPLETE_ATTR] = False
    enc.to_zarr(str(store), mode="a", compute=False, consolidated=False, zarr_format=3)
    return [str(n) for n, v in enc.variables.items() if v.chunks is not None]


@quiet_zarr()
def convert(inputs: Iterable[str | os.PathLike] | str, store: str | os.PathLike, *,
            tol: float | Mapping[Hashable, float] | None = None, rel_tol: float | None = 1e-3,
            pw_rel_tol: float | Mapping[Hashable, float] | None = None, preserve_zero: bool | None = None,
            model: str | None = None, mode: str = "pointwise", chunks: Mapping[str, int] | None = None,
            variables: Sequence[str] | None = None, scheduler: str | None = None, workers: int | None = None,
            threads_per_worker: int | None = None, gpus: int = 0, resume: bool = False, verify: bool = False,
            overwrite: bool = False, progress: bool = True, layout: str = "auto", grid: str | None = None,
            use_cftime: bool = False, decode_times: bool = True, train_model: int = 0) -> ConvertSummary:
    """Convert netCDF files (or one Zarr store) into one compressed Zarr store on a Dask cluster.

    ``tol``, ``rel_tol``, ``pw_rel_tol``, ``preserve_zero``, ``model``, ``chunks``, ``layout`` and
    ``grid`` are those of ``ds.gcdtc.compress``; ``tol="auto"`` picks, per variable, the loosest bound that passes the
    Baker et al. criteria on a sample (:func:`xdiffc.tuning.suggest_tol`). ``mode`` is
    ``"pointwise"`` or ``"l2"``. ``scheduler``: address of an existing cluster; otherwise a local
    one with ``workers`` x ``threads_per_worker``, or with ``gpus`` one worker per GPU. With
    ``gpus`` the units need the worker resource ``GPU=1``. ``resume`` finishes an interrupted
    conversion; ``overwrite`` replaces an existing store (at the end: until then it is untouched);
    ``verify`` checks every bound before the store is put in place. ``use_cftime`` decodes every
    input's times as cftime dates; ``decode_times=False`` keeps them as numbers (for units that no
    calendar decodes, such as "months since"). ``train_model=STEPS`` first trains a model for ``STEPS`` steps on
    the inputs themselves (each variable's last 15% of time steps held out for validation;
    checkpointed, so a resumed conversion continues it) and compresses with it; the store carries
    the model in its codec configurations. The store is built in :func:`partial_path` and appears
    at ``store`` only when complete. Returns the :class:`ConvertSummary`.
    """
    store = Path(store).absolute()
    paths, is_zarr = resolve_paths([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs)
    _prepare_output(store, resume, overwrite)
    bounds = _bound_kwargs(mode, tol, rel_tol, pw_rel_tol, preserve_zero)
    times = time_decoding(use_cftime, decode_times)
    time_dim, first = _scan(paths, is_zarr, times)
    if variables is not None:
        _select(first, variables)  # unknown names fail here, before any work
    chunks = dict(chunks or {})
    if time_dim is not None and chunks.get(time_dim) == -1:  # the whole time axis of the combined inputs
        chunks[time_dim] = _time_steps(paths, is_zarr, times, time_dim)
    chunks = check_chunks(chunks, first.sizes)
    if time_dim is not None and time_dim not in chunks:
        chunks[time_dim] = _default_time_chunk(first, time_dim, chunks)
    spec = Inputs(paths, is_zarr, time_dim, None if variables is None else tuple(variables),
                  tuple(sorted(chunks.items())), _stamps(paths), times)
    if isinstance(tol, str):
        (tol, found_pw), rel_tol = _auto_tol(tol, spec, model), None
        pw_rel_tol = {**(found_pw or {}), **(pw_rel_tol if isinstance(pw_rel_tol, Mapping) else {})} or pw_rel_tol
        bounds = _bound_kwargs(mode, tol, rel_tol, pw_rel_tol, preserve_zero)
    if train_model and (isinstance(train_model, bool) or not isinstance(train_model, int) or train_model < 0):
        raise ValueError(f"train_model must be a number of training steps >= 1, got {train_model!r}")
    if train_model and model is not None:
        raise ValueError("give either model= or train_model=, not both")
    fingerprint = {**_fingerprint(spec, bounds, model, mode, chunks, layout, grid), "train_model": train_model}
    with _client(scheduler, workers, threads_per_worker, gpus) as client:
        log = _open_progress(store, spec, fingerprint, resume, overwrite,
                             dict(model=model, chunks=chunks, layout=layout, grid=grid, **bounds),
                             train_model, progress)
        if log is None:  # resuming a store that is already complete
            return _summarise(store, store, spec, {}, 0.0, 0, verify=verify)
        work = log.path.parent / PARTIAL_STORE
        units = plan_units(zarr.open_group(str(work), mode="r"), log.header["arrays"], time_dim)
        skipped = len(log.done)
        start = time.perf_counter()
        stats = _run_units(client, spec, work, units, log, gpus, progress)
        seconds = time.perf_counter() - start
        summary = _summarise(work, store, spec, stats, seconds, skipped, verify=verify)
        _finish(store)
    return summary


def _open_progress(store: Path, spec: Inputs, fingerprint: dict, resume: bool, overwrite: bool,
                   compress_kwargs: dict, train_model: int = 0, progress: bool = True) -> Progress | None:
    """The progress log to run against: on resume the one in the partial folder, else a fresh partial folder
    (after training the archive model, when asked); None when resuming a conversion that has already finished."""
    partial = partial_path(store)
    if resume:
        log = Progress.load(partial)
        if log is not None and (partial / PARTIAL_STORE).exists():
            if log.header["fingerprint"] != fingerprint:
                raise ValueError(f"{str(store)!r} was started from other inputs or options; rerun with the same "
                                 f"ones, or pass --overwrite to start again\n  then: {log.header['fingerprint']}\n"
                                 f"  now:  {fingerprint}")
            return log
        if is_complete(store)[0]:
            shutil.rmtree(partial, ignore_errors=True)  # left behind by a kill just after the final rename
            return None
        if store.exists() and not overwrite:
            raise FileExistsError(f"{str(store)!r} is not a finished xdiffc conversion, and no interrupted one was "
                                  f"found in {str(partial)!r}; pass --overwrite to replace it")
        # killed while training or while the partial folder was being set up, or never started: start again,
        # keeping the archive model's training (its checkpoint resumes)
        _clear(partial, keep=(ARCHIVE_MODEL, ARCHIVE_MODEL + ".ckpt") if train_model else ())
    elif partial.exists():
        shutil.rmtree(partial)
    if train_model:
        compress_kwargs = {**compress_kwargs, "model": str(_train_archive_model(partial, spec, train_model, progress))}
    arrays = _set_up(partial / PARTIAL_STORE, spec, compress_kwargs)
    return Progress.start(partial, {"fingerprint": fingerprint, "arrays": arrays})


def _clear(folder: Path, keep: Sequence[str] = ()) -> None:
    """Remove everything in ``folder`` but the entries named in ``keep``."""
    if not folder.exists():
        return
    for entry in folder.iterdir():
        if entry.name not in keep:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def _train_archive_model(partial: Path, spec: Inputs, steps: int, progress: bool) -> Path:
    """The archive model in ``partial``: trained for ``steps`` on a sample of the inputs (resuming its
    checkpoint), or the finished file of an earlier run."""
    from .core import default_device
    from .training import train

    output = partial / ARCHIVE_MODEL
    if output.exists():
        return output
    partial.mkdir(parents=True, exist_ok=True)
    paths = _training_sample(spec.paths)
    return train(paths, output, steps=steps, resume=True, variables=spec.variables, device=default_device(),
                 eval_every=max(10, min(250, steps // 10)), progress=progress)


def _training_sample(paths: Sequence[str]) -> list[str]:
    """Input files evenly spread over ``paths`` (time order), at most :data:`TRAIN_BYTES` of them, at least one."""
    sizes = [os.path.getsize(p) if os.path.isfile(p) else 0 for p in paths]
    total = sum(sizes)
    if total <= TRAIN_BYTES:
        return list(paths)
    keep = max(1, int(len(paths) * TRAIN_BYTES / total))
    return [paths[i] for i in np.linspace(0, len(paths) - 1, keep).round().astype(int)]


def _run_units(client, spec: Inputs, store: Path, units: list[Unit], log: Progress, gpus: int,
               progress: bool) -> dict[str, dict]:
    """Run the units not in ``log`` on the cluster, a few per thread at a time; record each as it finishes.

    Returns, per variable, what was really done: units and bytes written, seconds, units per worker.
    """
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
            s = stats.setdefault(unit.name, {"units": 0, "bytes": 0, "seconds": 0.0, "workers": {}})
            s["units"] += 1
            s["bytes"] += unit.nbytes
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


def _summarise(path: Path, store: Path, spec: Inputs, stats: dict[str, dict], seconds: float, skipped: int, *,
               verify: bool) -> ConvertSummary:
    """The summary of a conversion into ``store``, read from ``path`` (where it is built): per variable, size,
    stored size, ratio, time (error over bound with ``verify``); in total, the units that ``stats`` says were
    written."""
    group = zarr.open_group(str(path), mode="r")
    lossy = [n for n, a in group.arrays() if is_lossy(a.attrs)]
    rows = {n: {"MB": group[n].nbytes / 2**20, "stored_MB": group[n].nbytes_stored() / 2**20,
                "seconds": stats.get(n, {}).get("seconds", 0.0)} for n in lossy}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.insert(2, "ratio", table["MB"] / table["stored_MB"])
    if verify:
        report = verify_store(spec, path, require_complete=False)
        if not report.ok:
            raise VerificationError(f"the conversion into {str(store)!r} fails verification; it stays unfinished in "
                                    f"{str(path)!r}:\n" + "\n".join(report.problems))
        table.insert(3, "max_err/bound", report.table["max_err_over_bound"])
        table.insert(4, "nrmse", report.table["nrmse"])
        if "nrmse_over_bound" in report.table:
            table.insert(5, "nrmse/bound", report.table["nrmse_over_bound"])
    workers: dict[str, int] = {}
    for s in stats.values():
        for w, n in s["workers"].items():
            workers[w] = workers.get(w, 0) + n
    return ConvertSummary(str(store), table, seconds, sum(s["bytes"] for s in stats.values()),
                          sum(s["units"] for s in stats.values()), skipped, workers)


def _finish(store: Path) -> None:
    """Mark the store in the partial folder complete, consolidate its metadata (so they include the mark), put it
    in place with one rename (an existing store moved aside first), then delete the partial folder."""
    partial = partial_path(store)
    work = partial / PARTIAL_STORE
    zarr.open_group(str(work), mode="r+").attrs[COMPLETE_ATTR] = True
    with warnings.catch_warnings():  # xarray reads consolidated metadata fastest; Zarr v3 has no spec for them yet
        warnings.filterwarnings("ignore", "Consolidated metadata is currently not part", category=UserWarning)
        zarr.consolidate_metadata(str(work))
    if store.exists():
        os.rename(store, partial / "replaced.zarr")
    os.rename(work, store)
    shutil.rmtree(partial)


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


@quiet_zarr()
def verify(inputs: Iterable[str | os.PathLike] | str, store: str | os.PathLike, *,
           use_cftime: bool = False, decode_times: bool = True) -> VerifyReport:
    """Compare ``store`` with the inputs it was converted from: bounds, NRMSE, ratio, metadata, completeness,
    and every chunk decodes (a damaged one is reported with its variable and chunk index, and the rest is
    still checked). ``use_cftime`` and ``decode_times`` as for :func:`convert`.

    Streams chunk by chunk (Dask reductions), never loading a whole variable.
    """
    paths, is_zarr = resolve_paths([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs)
    times = time_decoding(use_cftime, decode_times)
    time_dim, _ = _scan(paths, is_zarr, times)
    spec = Inputs(paths, is_zarr, time_dim, times=times)
    return verify_store(spec, Path(store).absolute(), require_complete=True)


def verify_store(spec: Inputs, store: Path, *, require_complete: bool) -> VerifyReport:
    """:func:`verify` on resolved inputs; ``require_complete=False`` checks a store that is about to be finished."""
    complete, why = is_complete(store)
    if not complete and (require_complete or not store.exists()):
        return VerifyReport(str(store), pd.DataFrame(), [why])
    out = xr.open_zarr(str(store), consolidated=None if complete else False, **_decoding(spec.times))
    out.encoding["source"] = str(store)
    lossy = [n for n in out.data_vars if is_lossy(out[n].attrs)]
    chunks = {d: c[0] for n in lossy[:1] for d, c in out[n].chunksizes.items()}  # read the inputs in store chunks
    ds = open_inputs(replace(spec, chunks=tuple(chunks.items()), variables=None))
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
    for name in lossy:
        problems += _layout_problems(out, name)
    rows = []
    for name in lossy:  # one variable at a time, so that a damaged chunk stops only its own variable's check
        try:
            rows.append(error_report(ds, out[[name]]))
        except CorruptStreamError as err:
            problems += _damaged_chunks(store, str(name)) or [f"{name!r} cannot be decoded: {err}"]
    table = pd.concat(rows) if rows else pd.DataFrame()
    for name, row in table.iterrows():
        if pd.notna(row["max_err_over_bound"]) and not row["max_err_over_bound"] <= 1:
            bound = (f"the bound min({row['tol']:.6g}, {row['pw_rel_tol']:.6g} |x|)" if pd.notna(row.get("pw_rel_tol"))
                     else f"the bound {row['tol']:.6g}")
            problems.append(f"{name!r}: max error {row['max_abs_err']:.6g} exceeds {bound} "
                            f"({row['max_err_over_bound']:.6g} times it at worst)")
        if pd.isna(row["max_err_over_bound"]) and not row.get("nrmse_over_bound", math.nan) <= 1:
            problems.append(f"{name!r}: NRMSE {row['nrmse']:.6g} exceeds its L2 bound")
        if row["specials_moved"]:
            problems.append(f"{name!r}: {row['specials_moved']} NaN/fill points moved")
    return VerifyReport(str(store), table, problems)


def _layout_problems(out: xr.Dataset, name: Hashable) -> list[str]:
    """A problem when the store's lat/lon no longer give the native-grid layout its data was written with.

    The data always decode (the permutation travels in the codec's configuration), but a reader who
    re-derives the map from these coordinates would put the columns elsewhere. Layouts taken from
    a separate grid file (no lat/lon in the store) cannot be checked here.
    """
    attrs = out[name].attrs
    if "xdiffc_layout" not in attrs or attrs["xdiffc_layout"] == "none":
        return []
    for dim in out[name].dims:
        found = grids.find_latlon(out, str(dim))
        if found is not None:
            try:
                grids.restore(attrs, *found)
            except ValueError as err:
                return [f"{name!r}: {err}"]
            return []
    return []


def _damaged_chunks(store: Path, name: str) -> list[str]:
    """One problem per chunk of array ``name`` that does not decode, naming its index and extent along each dimension.

    Each chunk is read on its own, so this finds every damaged chunk, not only the first.
    """
    array = zarr.open_group(str(store), mode="r")[name]
    dims = array.metadata.dimension_names or [f"axis{i}" for i in range(array.ndim)]
    problems = []
    for index in product(*map(range, array.cdata_shape)):
        try:
            array.get_block_selection(index)
        except CorruptStreamError as err:
            at = ", ".join(f"{d}={i}" for d, i in zip(dims, index))
            extent = ", ".join(f"{d} {i * c}:{min((i + 1) * c, n)}"
                               for d, i, c, n in zip(dims, index, array.chunks, array.shape))
            problems.append(f"{name!r}: chunk ({at}) is damaged, values {extent}: {err}")
    return problems
