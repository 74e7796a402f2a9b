"""``xdiffc convert NEW... -o OUT.zarr --append``: new times added to a finished store, with its own bounds, codec
and climatology.

    xdiffc convert h0/2011-01.nc -o archive.zarr --append
    xdiffc.convert(["h0/2011-01.nc"], "archive.zarr", append=True)

:func:`plan` checks an append before any work; :func:`xdiffc.convert` then runs it on its cluster as it runs a
conversion, with :func:`open_progress` (which sets up the new store), :func:`units` and :func:`write_unit`.

The new inputs must continue the store: its data variables (those ``--variables`` selected when it
was converted), of the same dtypes and dimensions, on its grid (the same sizes and coordinates along
every dimension but time, the same static variables), with times of the same kind, calendar and
units, every one after the store's last. Anything else is an :class:`~xdiffc.errors.AppendError`
that names what differs. The store's codec encodes the new chunks: its bounds, its archive
climatology, its layout, its level. Options that shape a store (bounds, model, chunks, layout,
level) come from it; one given that differs from what the store records is refused.

Crash safety is the conversion's (:mod:`xdiffc.conversion`): the lock, the progress log, the partial
folder and the final rename. ``OUT`` stays the store it was, whole and readable, until the append is
complete and renamed into place. The new store starts in the partial folder as a copy of ``OUT`` made
of hard links (new chunks are new files; the files an append rewrites, the metadata and the chunks
that hold the store's last step, are copied), so an append costs the new data, not the archive. Its
units are those of the new steps. A partial last chunk is written whole again, from the store's own
values of it (stored exactly, :mod:`xdiffc.xarray.edges`) and the new ones: a unit redone after a
kill writes the same bytes. ``--append --resume`` finishes an interrupted append; ``--append`` alone
refuses to start while its partial folder exists.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import product
from pathlib import Path

import dask
import xarray as xr
import zarr

from ..errors import AppendError, ResumeMismatchError
from ..options import BOUNDS, DEFAULT_LEVEL
from ..xarray.edges import lossy_edge_chunks
from ..xarray.variables import is_lossy
from ..xarray.writes import quiet_zarr, stored_arrays
from .inputs import Inputs, decoding, resolve_paths, scan, stamps, time_decoding
from .lock import LOCK_FILE, check_unlocked
from .opening import cached_inputs, open_inputs
from .prepare import differences, input_sizes, recorded
from .progress import (COMPLETE_ATTR, DELAY_ENV, PARTIAL_STORE, RECORD_ATTR, Progress, Unit, is_complete, partial_path,
                       plan_units)
from .summary import ConvertSummary, summarise

#: The options that shape a store, each with its value when not given: an append takes them from the store.
SHAPING = {**{name: None for name in BOUNDS}, "rel_tol": 1e-3, "preserve_zero": None, "model": None,
           "mode": "pointwise", "chunks": None, "layout": "auto", "grid": None, "train_model": 0, "level": DEFAULT_LEVEL}
#: Files of a Zarr store that hold metadata: copied into the new store, never linked.
METADATA = frozenset({"zarr.json", ".zarray", ".zattrs", ".zgroup"})
#: Zarr v2's consolidated metadata, left out of the new store until it is consolidated again (v3 keeps them in the
#: root's zarr.json, which drops them when its attributes are written).
STALE = ".zmetadata"
#: Where ``OUT`` is, inside its partial folder, between the two renames that put the new store in place.
REPLACED = "replaced.zarr"
#: Calendar names that CF gives to one calendar.
CALENDARS = {"gregorian": "standard", "365_day": "noleap", "366_day": "all_leap"}


@dataclass(frozen=True)
class Source:
    """What an append's unit reads: the store as it was (``base``, with ``length`` steps along time; ``stamp``, the
    mtime of its metadata, so that a worker never reuses a store opened before it changed) and the new inputs."""

    base: str
    length: int
    stamp: int
    inputs: Inputs


@dataclass
class Append:
    """An append, checked and ready to run (:func:`plan`): what :func:`xdiffc.convert` needs to run it."""

    store: Path
    #: the store appended to: ``store``, or where it is between the final renames of an interrupted append
    base: Path
    spec: Inputs
    source: Source
    new: xr.Dataset
    #: the new index coordinate's values, encoded as the store's
    times: object
    #: what a resumed append must repeat (its progress log's fingerprint)
    signature: dict
    #: the store's record of its conversion with the new inputs added (None for a store that records none)
    record: dict | None
    #: the summary, when a resumed append finds the store already holds every input
    finished: ConvertSummary | None = None


def plan(inputs: Iterable[str | os.PathLike] | str, store: str | os.PathLike, shaping: Mapping, *,
         variables: Sequence[str] | None, resume: bool, use_cftime: bool, decode_times: bool) -> Append:
    """Check ``convert(inputs, store, append=True, ...)`` before any work; ``shaping`` holds the options of
    :data:`SHAPING` as given. Raises :class:`AppendError` naming what does not fit."""
    store = Path(store).absolute()
    paths, is_zarr = resolve_paths([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs)
    base_path = _check_store(store, resume)
    record = recorded(base_path)
    _check_options(store, shaping, record)
    if resume and record is not None and _done_before(paths, record, store):
        done = summarise(store, store, Inputs(paths, is_zarr, None), {}, 0.0, 0, verify=False)
        return Append(store, base_path, Inputs(paths, is_zarr, None), None, None, None, {}, record, done)
    times = _times(time_decoding(use_cftime, decode_times), record)
    time_dim, first = scan(paths, is_zarr, times)
    first.close()
    base = _open_store(base_path, times)
    if time_dim is None or time_dim not in base.dims:
        raise AppendError(f"cannot append {paths[0]!r} to {str(store)!r}: "
                          + ("the input has no time dimension" if time_dim is None else
                             f"the store has no dimension {time_dim!r}, the inputs' time"))
    variables = variables if variables is not None else (record or {}).get("variables")
    chunk = _time_chunk(base_path, time_dim)
    spec = Inputs(paths, is_zarr, time_dim, None if variables is None else tuple(variables), ((time_dim, chunk),),
                  stamps(paths), times)
    new = open_inputs(spec)
    what = f"cannot append {paths[0]!r}{f' and {len(paths) - 1} more' if len(paths) > 1 else ''} to {str(store)!r}:"
    _check_continues(what, base, new, time_dim)
    _check_edges(store, base_path, time_dim)
    encoded = _encoded_times(what, base_path, base, new, time_dim)
    length = base.sizes[time_dim]
    sizes = input_sizes(paths)
    signature = {"append": True, "inputs": sizes, "onto": length, "use_cftime": times == "cftime",
                 "decode_times": times != "raw", "variables": variables}
    return Append(store, base_path, spec, Source(str(base_path), length, base_path.stat().st_mtime_ns, spec), new,
                  encoded, signature, None if record is None else {**record, "inputs": record["inputs"] + sizes})


def units(job: Append, log: Progress) -> list[Unit]:
    """The units of the new store (in the partial folder) that hold new steps: those of the new times."""
    work, dim = log.path.parent / PARTIAL_STORE, job.spec.time_dim
    return [u for u in plan_units(zarr.open_group(str(work), mode="r"), log.header["arrays"], dim, job.source.length)
            if u.slices[dim].stop > job.source.length]


# ---------------------------------------------------------------------------------------- checks


def _check_store(store: Path, resume: bool) -> Path:
    """The store to append to (``OUT``, or where it is between the final renames of an interrupted append); an
    error for an output another run holds, one that is not a finished store, or an interrupted run's folder."""
    check_unlocked(store)
    partial = partial_path(store)
    if partial.exists() and not resume:
        raise AppendError(f"an interrupted run into {str(store)!r} left {str(partial)!r}; pass --resume (with "
                          f"--append, for an interrupted append) to finish it")
    base = store if store.exists() else partial / REPLACED
    if not base.exists():
        raise AppendError(f"cannot append to {str(store)!r}: it does not exist; convert the first inputs without "
                          f"--append")
    complete, why = is_complete(base)
    if not complete:
        raise AppendError(f"cannot append to {str(store)!r}: {why}")
    return base


def _check_options(store: Path, given: Mapping, record: Mapping | None) -> None:
    """An :class:`AppendError` for an option that shapes the store, given with a value other than the store's."""
    for name, value in given.items():
        if _plain(value) == _plain(SHAPING[name]):
            continue
        if record is None:
            raise AppendError(f"{name}={value!r}: --append takes the bounds, codec and chunks from the store, and "
                              f"{str(store)!r} records no options to check it against; leave {name} out")
        have = record.get(name, SHAPING[name])
        if name == "chunks":  # the dimensions given, against the conversion's resolved chunks
            have = {d: (have or {}).get(d) for d in value}
        if _plain(value) != _plain(have):
            raise AppendError(f"{name}={value!r}, but {str(store)!r} was converted with {name}={have!r}; --append "
                              f"takes the bounds, codec and chunks from the store: leave {name} out")


def _plain(value):
    return json.loads(json.dumps(value, default=str))


def _times(given: str, record: Mapping | None) -> str:
    """The time decoding of an append: the one the store was converted with, which the options may repeat."""
    if record is None:
        return given
    then = "cftime" if record.get("use_cftime") else "raw" if record.get("decode_times") is False else "auto"
    if given not in ("auto", then):
        raise AppendError(f"the store was converted with time decoding {then!r}, and this append asks for {given!r}: "
                          f"leave --use-cftime and --no-decode-times as they were")
    return then


def _done_before(paths: Sequence[str], record: Mapping, store: Path) -> bool:
    """Whether the store records every one of ``paths``, at its size: an append finished before (``--resume``)."""
    have = {p: n for p, n in record.get("inputs", [])}
    return all(p in have and have[p] == n for p, n in input_sizes(paths)) and not partial_path(store).exists()


def _check_continues(what: str, base: xr.Dataset, new: xr.Dataset, dim: str) -> None:
    """An :class:`AppendError` (its message starting with ``what``) unless ``new`` continues ``base`` along ``dim``."""
    stored, given = set(map(str, base.variables)), set(map(str, new.variables))
    if stored - given:
        raise AppendError(f"{what} the inputs lack {sorted(stored - given)}, which the store holds")
    if given - stored:
        raise AppendError(f"{what} the inputs hold {sorted(given - stored)}, which the store does not; select the "
                          f"store's variables with --variables")
    for name, old in base.variables.items():
        var = new[name].variable
        if var.dims != old.dims or any(var.sizes[d] != n for d, n in old.sizes.items() if d != dim):
            raise AppendError(f"{what} {name!r} has dims {dict(var.sizes)} in the inputs, {dict(old.sizes)} in the "
                              f"store (only {dim!r} may differ)")
        if name != dim and old.dtype.kind in "fiub" and var.dtype != old.dtype:  # times: _encoded_times
            raise AppendError(f"{what} {name!r} is {var.dtype} in the inputs, {old.dtype} in the store")
        if dim not in old.dims and not is_lossy(old.attrs) and not var.equals(old):
            raise AppendError(f"{what} {name!r} differs from the store's (its grid or static fields must be the same)")
    _check_times(what, base[dim].variable, new[dim].variable, base.indexes[dim], new.indexes[dim])


def _check_times(what: str, old: xr.Variable, new: xr.Variable, stored, given) -> None:
    """New times of the same kind, calendar and units as the store's, each after its last."""
    if type(stored) is not type(given):
        raise AppendError(f"{what} the store's times decode to {type(stored).__name__}, the inputs' to "
                          f"{type(given).__name__}; pass --use-cftime if the store was converted with it")
    for key, normal in (("calendar", _calendar), ("units", _units)):
        a, b = (normal(v.encoding.get(key, v.attrs.get(key))) for v in (old, new))
        if a != b:
            raise AppendError(f"{what} the time {key} is {b!r} in the inputs, {a!r} in the store")
    if len(given) and len(stored) and not given.min() > stored.max():
        raise AppendError(f"{what} its first time, {given.min()}, is not after the store's last, {stored.max()}: "
                          f"--append adds times after the last one")


def _calendar(value) -> str:
    name = str(value or "standard").lower()
    return CALENDARS.get(name, name)


def _units(value) -> str | None:
    """Time units in one spelling: words separated by one space, a reference time of midnight left out."""
    if value is None:
        return None
    text = " ".join(str(value).split())
    return re.sub(r"[ T]0?0:00(:00(\.0+)?)?Z?$", "", text)


def _encoded_times(what: str, base_path: Path, base: xr.Dataset, new: xr.Dataset, dim: str):
    """The new times as the store holds its own (its units, calendar and dtype); an :class:`AppendError` where
    that dtype cannot hold them (whole days in the store, a new time at noon)."""
    times = new[dim].variable.copy(deep=False)
    # not its dtype: xarray would rather change the units than the dtype (hours for days)
    times.encoding = {k: v for k, v in base[dim].encoding.items() if k in ("units", "calendar")}
    values = xr.conventions.encode_cf_variable(times, name=dim).values
    dtype = zarr.open_group(str(base_path), mode="r")[dim].dtype
    if not (values.astype(dtype) == values).all():
        raise AppendError(f"{what} the new times, in the store's units "
                          f"({base[dim].encoding.get('units')!r}), are not all whole numbers, and its times are "
                          f"stored as {dtype}")
    return values.astype(dtype)


def _check_edges(store: Path, base: Path, dim: str) -> None:
    """An :class:`AppendError` where the store's partial last chunk of a lossy variable is stored lossily (an older
    xdiffc): completing it would re-encode values already moved by up to the bound."""
    for name, array in (stored_arrays(str(base)) or {}).items():
        if dim not in array.dims or not is_lossy(array.attrs):
            continue
        axis = array.dims.index(dim)
        if array.shape[axis] % array.chunks[axis] and lossy_edge_chunks(str(base), name, axis):
            raise AppendError(f"cannot append to {str(store)!r}: the last chunk of {name!r} along {dim!r} is partial "
                              f"({array.shape[axis]} steps in chunks of {array.chunks[axis]}) and stored lossily (by "
                              f"an xdiffc older than exact partial chunks); completing it could double its error. "
                              f"Convert all the inputs again")


# ---------------------------------------------------------------------------------------- the new store


def _open_store(path: Path, times: str) -> xr.Dataset:
    with quiet_zarr():
        return xr.open_zarr(str(path), chunks=None, **decoding(times))


def _time_chunk(store: Path, dim: str) -> int:
    """The store's chunk along time (that of its first lossy variable along it)."""
    return next((a.chunks[a.dims.index(dim)] for a in (stored_arrays(str(store)) or {}).values()
                 if dim in a.dims and is_lossy(a.attrs)), 1)


def open_progress(job: Append, resume: bool) -> Progress:
    """The progress log of the append: with ``resume``, that of the interrupted append; else a new store set up in
    the partial folder (call it holding the lock)."""
    partial = partial_path(job.store)
    if resume:
        log = Progress.load(partial)
        if log is not None and (partial / PARTIAL_STORE).exists():
            diff = differences(log.header["fingerprint"], job.signature)
            if diff:
                raise ResumeMismatchError(f"the interrupted run into {str(job.store)!r} was started from other inputs "
                                          f"or options; rerun it with the same ones, or remove {str(partial)!r}: "
                                          + "; ".join(diff))
            return log
    for entry in partial.iterdir():  # killed while setting up, or nothing to resume: start again
        if entry.name != LOCK_FILE:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    arrays = _set_up(job.base, partial / PARTIAL_STORE, job.new, job.spec.time_dim, job.times, job.source.length,
                     job.record)
    return Progress.start(partial, {"fingerprint": job.signature, "arrays": arrays})


def _set_up(base: Path, work: Path, new: xr.Dataset, dim: str, times, length: int,
            record: Mapping | None) -> list[str]:
    """The new store at ``work``: ``base`` linked, marked incomplete, its arrays along time grown by the new steps,
    its index coordinate (``times``, encoded as the store's) and dates written; returns the arrays left to units."""
    total = length + new.sizes[dim]
    stored = stored_arrays(str(base)) or {}
    rewritten = set()
    for name, array in stored.items():
        if dim in array.dims and length % array.chunks[array.dims.index(dim)]:
            rewritten |= _edge_files(base, name, array.dims.index(dim))
    _link_copy(base, work, rewritten)
    with quiet_zarr():
        group = zarr.open_group(str(work), mode="r+", use_consolidated=False)
        group.attrs.update({COMPLETE_ATTR: False} | ({} if record is None else {RECORD_ATTR: json.dumps(record)}))
        units = []
        for name, array in stored.items():
            if dim not in array.dims:
                continue
            axis = array.dims.index(dim)
            group[name].resize(array.shape[:axis] + (total,) + array.shape[axis + 1:])
            if name != dim and new[name].dtype.kind not in "mMO":
                units.append(name)
        group[dim][length:total] = times  # the index coordinate, which xarray's region writes leave out
        steps = new[[n for n in new.data_vars if dim in new[n].dims and str(n) not in units]].load()
        steps = steps.drop_vars([n for n in steps.variables if dim not in steps[n].dims])
        if steps.data_vars:
            steps.to_zarr(str(work), region={dim: slice(length, total)}, mode="r+", consolidated=False)
    return units


def _edge_files(store: Path, name: str, axis: int) -> set[Path]:
    """The files (relative to ``store``) of array ``name``'s chunks in its last row along ``axis``."""
    array = zarr.open_group(str(store), mode="r")[name]
    rows = [range(n) for n in array.cdata_shape]
    rows[axis] = range(array.cdata_shape[axis] - 1, array.cdata_shape[axis])
    return {Path(array.path) / array.metadata.encode_chunk_key(index) for index in product(*rows)}


def _link_copy(source: Path, target: Path, copied: set[Path]) -> None:
    """``target``: the store at ``source`` with every file hard-linked, but metadata documents and ``copied``
    (relative paths), which are copied, and consolidated metadata, left out: a write into ``target`` then never reaches ``source``, however the store
    writes a file (Zarr replaces a file it writes; writing one in place would write through a link). Where the
    filesystem has no hard links, every file is copied."""
    for folder, _, files in os.walk(source):
        inside = Path(folder).relative_to(source)
        (target / inside).mkdir(parents=True, exist_ok=True)
        for name in files:
            src, dst = Path(folder, name), target / inside / name
            if name == STALE:
                continue
            if name in METADATA or inside / name in copied:
                shutil.copy2(src, dst)
                continue
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)


@lru_cache(maxsize=4)
def _base(source: Source) -> xr.Dataset:
    """The store as it was, opened once per worker process and append."""
    return _open_store(Path(source.base), source.inputs.times)


@quiet_zarr()
def write_unit(source: Source, store: str, unit: Unit) -> tuple[float, str]:
    """Read one unit (the store's own steps it covers, then the new ones), encode it and write its chunks, whole
    (runs on a worker). Returns the seconds it took and the worker's address."""
    from distributed import get_worker

    start = time.perf_counter()
    time.sleep(float(os.environ.get(DELAY_ENV, 0)))
    dim, length, where = source.inputs.time_dim, source.length, unit.slices
    steps = where[dim]
    parts = []
    with dask.config.set(scheduler="synchronous"):
        if steps.start < length:
            parts.append(_base(source)[unit.name].variable[{**where, dim: slice(steps.start, length)}].load())
        later = slice(max(steps.start, length) - length, steps.stop - length)
        parts.append(cached_inputs(source.inputs)[unit.name].variable[{**where, dim: later}].load())
    var = xr.Variable.concat(parts, dim) if len(parts) > 1 else parts[0]
    xr.Dataset({unit.name: xr.Variable(var.dims, var.data)}).to_zarr(store, region=where, mode="r+",
                                                                     consolidated=False)
    return time.perf_counter() - start, get_worker().address
