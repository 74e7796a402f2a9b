"""``xdiffc verify``: a converted store checked against its inputs, chunk by chunk."""

from __future__ import annotations

import math
import os
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, replace
from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
import zarr

from .. import grids
from ..errors import CorruptStreamError
from ..metrics import error_report
from ..xarray.variables import is_lossy
from ..xarray.writes import quiet_zarr
from .inputs import Inputs, decoding, quiet_dates, resolve_paths, scan, time_decoding
from .opening import open_inputs
from ..xarray.variables import MEMBER_ATTR
from .members import resolve_members, scan_members
from .progress import is_complete

#: Attributes that xdiffc adds (bounds, layout, the completion mark): not compared with the inputs.
_OWN_ATTRS = "xdiffc_"


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
@quiet_dates()
def verify(inputs: Iterable[str | os.PathLike] | str, store: str | os.PathLike, *,
           use_cftime: bool = False, decode_times: bool = True) -> VerifyReport:
    """Compare ``store`` with the inputs it was converted from: bounds, NRMSE, ratio, metadata, completeness,
    and every chunk decodes (a damaged one is reported with its variable and chunk index, and the rest is
    still checked). ``use_cftime`` and ``decode_times`` as for :func:`xdiffc.convert`. An ensemble store
    (``convert(..., member_dim=...)``) is checked against the same inputs, one member per item.

    Streams chunk by chunk (Dask reductions), never loading a whole variable.
    """
    store = Path(store).absolute()
    arguments = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    times = time_decoding(use_cftime, decode_times)
    member_dim = _member_dim(store)
    if member_dim is not None:  # an ensemble: one member per argument, as convert stacked them
        spec = scan_members(*resolve_members(arguments), times, member_dim)
    else:
        paths, is_zarr = resolve_paths(arguments)
        time_dim, first = scan(paths, is_zarr, times)
        first.close()
        spec = Inputs(paths, is_zarr, time_dim, times=times)
    return verify_store(spec, store, require_complete=True)


def _member_dim(store: Path) -> str | None:
    """The member dimension an ensemble store records (:data:`~.members.MEMBER_ATTR`), else None."""
    try:
        return zarr.open_group(str(store), mode="r").attrs.get(MEMBER_ATTR)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, ValueError):
        return None  # no store: verify_store says so


def verify_store(spec: Inputs, store: Path, *, require_complete: bool, since: int = 0) -> VerifyReport:
    """:func:`verify` on resolved inputs; ``require_complete=False`` checks a store that is about to be finished.

    ``since``: the inputs are the store's time steps from ``since`` on (an append's); its global attributes,
    which come from its first conversion, are not compared.
    """
    complete, why = is_complete(store)
    if not complete and (require_complete or not store.exists()):
        return VerifyReport(str(store), pd.DataFrame(), [why])
    out = xr.open_zarr(str(store), consolidated=None if complete else False, **decoding(spec.times))
    lossy = [n for n in out.data_vars if is_lossy(out[n].attrs)]
    # read the inputs in the store's chunks: the first lossy variable's own (a coordinate along time may be chunked
    # otherwise, so the DataArray's chunks, coordinates included, may disagree)
    chunks = {d: c[0] for n in lossy[:1] for d, c in out[n].variable.chunksizes.items()}
    if since:
        out = out.isel({spec.time_dim: slice(since, None)})
    out.encoding["source"] = str(store)
    with open_inputs(replace(spec, chunks=tuple(chunks.items()), variables=None)) as ds:  # closed as it returns
        return _compare(store, out, ds, lossy, since)


def _compare(store: Path, out: xr.Dataset, ds: xr.Dataset, lossy: list, since: int) -> VerifyReport:
    """:func:`verify_store`'s checks of the store ``out`` against the inputs ``ds``."""
    problems = [] if since else _attr_problems("global", ds.attrs, out.attrs)
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
            relative = row.get("pw_rel_tol")  # the error report's column, where a variable has one
            bound = (f"the bound min({row['tol']:.6g}, {relative:.6g} |x|)" if pd.notna(relative)
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
