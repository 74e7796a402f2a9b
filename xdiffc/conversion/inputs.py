"""The inputs of a conversion: finding them, opening them lazily, decoding their times, and checking that
they are one grid split in time."""

from __future__ import annotations

import contextlib
import glob
import math
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import TruncatedFileError, first_sentence
from ..xarray.encoding import DEFAULT_CHUNK_BYTES
from ..xarray.variables import never_lossy
from .netcdf3 import expected_size


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
    #: an ensemble (:mod:`.members`): the new dimension the members are stacked along, each member's paths (a
    #: partition of ``paths``, in member order) and each member's label (the values of its coordinate)
    member_dim: str | None = None
    members: tuple[tuple[str, ...], ...] = ()
    labels: tuple[str | int, ...] = ()


def stamps(paths: Sequence[str]) -> tuple[tuple[int, int], ...]:
    """:attr:`Inputs.stamps` of ``paths``."""
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


def ignore_dates_beyond_numpy() -> None:
    """Silence xarray's SerializationWarning for times numpy's ``datetime64[ns]`` cannot hold (before 1678 or after
    2262, common in model calendars such as noleap): xarray decodes them as cftime dates instead, which a
    conversion stores exactly. It came at every open and every read of every input, in every worker: three
    to a dozen identical paragraphs, none of which the user needed to act on."""
    warnings.filterwarnings("ignore", "Unable to decode time axis into full numpy.datetime64",
                            xr.coding.times.SerializationWarning)


@contextlib.contextmanager
def quiet_dates() -> Iterator[None]:
    """:func:`ignore_dates_beyond_numpy` for the block (in this process, its threads included)."""
    with warnings.catch_warnings():
        ignore_dates_beyond_numpy()
        yield


def decoding(times: str) -> dict:
    """xarray's time decoding for :attr:`Inputs.times`."""
    if times == "cftime":
        return {"decode_times": xr.coders.CFDatetimeCoder(use_cftime=True)}
    return {"decode_times": False} if times == "raw" else {}


def _check_length(path: str) -> None:
    """A :class:`TruncatedFileError` for a netCDF-3 file shorter than its header says: netCDF reads such a file
    without complaint, as zeros past its end."""
    try:
        sizes = expected_size(path) if os.path.isfile(path) else None
    except OSError:  # unreadable: xarray says so
        return
    if sizes is not None and (sizes[1] is None or sizes[0] < sizes[1]):
        actual, promised = sizes
        what = "its header itself is cut short" if promised is None else f"its netCDF-3 header promises {promised}"
        raise TruncatedFileError(f"input {path!r} is cut short: it has {actual} bytes, and {what}; copy or download "
                                 f"it again")


def _open_input(path: str, is_zarr: bool, times: str) -> xr.Dataset:
    """One input, opened lazily without Dask; a ValueError naming the file if xarray cannot open or decode it, or if
    it is cut short."""
    if not is_zarr:
        _check_length(path)
    try:
        if is_zarr:
            return xr.open_zarr(path, chunks=None, **decoding(times))
        return xr.open_dataset(path, chunks=None, **decoding(times))
    except (OSError, ValueError, TypeError) as err:  # xarray: no backend for it, damaged, undecodable times
        hint = ""
        if "time" in str(err) and times == "auto":
            hint = ("; if its calendar is the cause, try use_cftime=True (--use-cftime); if no calendar decodes its "
                    "time units (such as 'months since'), decode_times=False (--no-decode-times) keeps them as numbers")
        elif "time" in str(err) and times == "cftime":
            hint = "; decode_times=False (--no-decode-times) keeps the times as numbers"
        raise ValueError(f"cannot open input {path!r}: {first_sentence(err)}{hint}") from err


def scan(paths: Sequence[str], is_zarr: bool, times: str) -> tuple[str | None, xr.Dataset]:
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
    for path, index in indexes.items():
        _check_time_order(path, index, time_dim)
    if len(paths) > 1:
        _check_times({p: t for p, t in indexes.items() if t is not None})
    return time_dim, first


def time_steps(paths: Sequence[str], is_zarr: bool, times: str, time_dim: str) -> int:
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


def _check_time_order(path: str, index: pd.Index | None, time_dim: str | None) -> None:
    """A ValueError unless the times inside one input are distinct and in order (rising or falling)."""
    if index is None or index.is_unique and (index.is_monotonic_increasing or index.is_monotonic_decreasing):
        return
    advice = ("each time may appear once, in order; a file cut short or damaged reads as repeated times (zeros), "
              "so check the file")
    values = list(index)
    if not index.is_unique:
        j = int(np.flatnonzero(index.duplicated())[0])
        t = values[j]
        i = next((k for k in range(j) if values[k] == t), 0)
        raise ValueError(f"input {path!r} repeats the time {t} along {time_dim!r} (steps {i} and {j} of "
                         f"{len(values)}): {advice}")
    rising = values[1] > values[0]
    i = next((k for k in range(1, len(values) - 1) if (values[k + 1] > values[k]) != rising), 0)
    raise ValueError(f"input {path!r} has its times out of order along {time_dim!r} (step {i}: {values[i]}, step "
                     f"{i + 1}: {values[i + 1]}): {advice}")


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
                                 f"or other runs of the same period: stack them with member_dim (--member-dim "
                                 f"NAME), one member per argument, or convert each into its own store")


def open_along_time(paths: Sequence[str], is_zarr: bool, times: str) -> xr.Dataset:
    """Inputs as one lazy Dataset, combined along time, in the files' own Dask chunks."""
    how = decoding(times)
    if is_zarr:
        return xr.open_zarr(paths[0], chunks={}, **how)
    try:
        return xr.open_mfdataset(paths, combine="by_coords", parallel=False, chunks={}, data_vars="minimal",
                                 coords="minimal", compat="override", join="exact", **how)
    except ValueError as err:
        raise ValueError(f"cannot combine the {len(paths)} inputs ({paths[0]!r} ... {paths[-1]!r}) along time: "
                         f"{first_sentence(err)}") from err


def select(ds: xr.Dataset, variables: Sequence[str]) -> xr.Dataset:
    """The named data variables, plus the ones that are never lossy (bounds, grid, time, integers)."""
    unknown = [v for v in variables if v not in ds.data_vars]
    if unknown:
        raise ValueError(f"--variables names {unknown}, which the inputs lack; their data variables are "
                         f"{sorted(map(str, ds.data_vars))}")
    keep = set(variables) | (never_lossy(ds) & set(ds.data_vars))
    return ds[[n for n in ds.data_vars if n in keep]]


def default_time_chunk(ds: xr.Dataset, time_dim: str, chunks: Mapping[str, int], steps: int | None = None) -> int:
    """Time steps per chunk so that the largest float variable's chunks hold about ``DEFAULT_CHUNK_BYTES``, at most
    ``steps`` (the time steps of all the inputs; default ``ds``'s own): a chunk may span input files, so monthly
    files of one step each still get chunks of many steps (one-step chunks coded 35% larger: CR 17 against 26)."""
    step = max((v.dtype.itemsize * math.prod(min(chunks.get(d, n), n) for d, n in v.sizes.items() if d != time_dim)
                for v in ds.data_vars.values() if time_dim in v.dims and v.dtype.kind == "f"), default=1)
    return max(1, min(ds.sizes[time_dim] if steps is None else steps, DEFAULT_CHUNK_BYTES // step))
