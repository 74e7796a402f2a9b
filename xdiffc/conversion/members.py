"""Ensembles: members stacked along a new dimension (``xdiffc convert IN... -o OUT --member-dim NAME``).

Each input argument is one member: a file, a quoted glob, or (from Python) a list of files. A member
of several files is combined along time exactly as a conversion without members combines its
files; then the members are stacked along the new dimension ``NAME`` in the order given.

Members must agree: the same variables with the same dimensions, sizes and dtypes, the same
coordinate values, the same times (values and calendar), and the same values of everything that
is stored once. Otherwise a :class:`~xdiffc.errors.MemberMismatchError` names the two files and
the first difference.

What is stacked: the data variables along time, except time-like ones and those that CF
attributes name (bounds, auxiliary coordinates, cell measures). Everything else (the grid, the
time bounds, static fields) is stored once. Global attributes that differ between members (a
member id, a creation date) are dropped; the member coordinate carries the ids.

Where the member dimension goes: right after time, as ``(time, member, lat, lon)``. The codec
sees each chunk as an array with time on its first axis (the temporal decomposition and the
archive climatology work along it), so time must come first. CF recommends the other order
(further dimensions to the left of time). ``ds.transpose("member", ...)`` is lazy, so a reader
who wants that order can have it.

Chunks: one member per chunk along ``NAME`` unless ``chunks`` says otherwise, so that a chunk is one
member's time series and a reader of one member reads only its chunks. Stacking members in a chunk
pays only where they differ by less than the bound (benchmarks/RESULTS.md, "Ensembles").

The member labels (the coordinate's values) are taken from the first global attribute of
:data:`LABEL_ATTRS` that every member has with a distinct value (CMIP's ``variant_label``, CESM's
``case``). Otherwise the file names are used (a member of several files gets their common prefix),
else the folder names, else ``0 ... M-1``.

The archive climatology (:mod:`xdiffc.xarray.climatology_choice`) is shared by the members: one
reference per variable (each phase's mean over all members), stored once in the codec's
configuration and used by every member's chunks.

The store records the member dimension in its root attribute :data:`MEMBER_ATTR`:
:func:`~.verify.verify` then stacks its inputs the same way.
"""

from __future__ import annotations

import os
import re
from collections.abc import Hashable, Iterable, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import MemberMismatchError
from ..xarray.variables import MEMBER_ATTR, referenced, time_like
from .inputs import Inputs, open_along_time, resolve_paths, scan, stamps

#: Global attributes that name a member, in order of preference.
LABEL_ATTRS = ("member_id", "variant_label", "realization", "realization_index", "ensemble_member", "case")
#: Calendars that CF names twice.
_SAME_CALENDAR = {"gregorian": "standard", "noleap": "365_day", "all_leap": "366_day"}


def resolve_members(arguments: Iterable) -> tuple[tuple[tuple[str, ...], ...], bool]:
    """Each member's absolute paths (one argument each: a path, a glob, or a sequence of them), and whether
    the members are Zarr stores."""
    groups: list[tuple[str, ...]] = []
    kinds = set()
    for argument in arguments:
        paths, is_zarr = resolve_paths([argument] if isinstance(argument, (str, os.PathLike)) else argument)
        groups.append(paths)
        kinds.add(is_zarr)
    if not groups:
        raise ValueError("no inputs given: name one file, glob or list of files per ensemble member")
    if len(kinds) > 1:
        raise ValueError("ensemble members are either all netCDF files or all Zarr stores, not a mix")
    owner: dict[str, int] = {}
    for i, group in enumerate(groups):
        for path in group:
            j = owner.setdefault(path, i)
            if j != i:
                raise ValueError(f"{path!r} is named by member {j} and by member {i}: each file belongs to one "
                                 f"member")
    return tuple(groups), kinds.pop()


def scan_members(groups: Sequence[Sequence[str]], is_zarr: bool, times: str, member_dim: str) -> Inputs:
    """The :class:`~.inputs.Inputs` of an ensemble, after checking that each member is one grid split in time
    and that the members agree (:class:`~xdiffc.errors.MemberMismatchError` otherwise)."""
    if not isinstance(member_dim, str) or not member_dim:
        raise ValueError(f"member_dim (--member-dim) must be a dimension name, got {member_dim!r}")
    time_dims = []
    for group in groups:
        dim, first = scan(group, is_zarr, times)
        first.close()
        time_dims.append(dim)
    parts = [open_along_time(group, is_zarr, times) for group in groups]
    try:
        if member_dim in parts[0].dims or member_dim in parts[0].variables:
            raise ValueError(f"the inputs already have a dimension or variable named {member_dim!r}; give "
                             f"member_dim (--member-dim) another name")
        labels = member_labels(parts, groups)
        for i in range(1, len(groups)):
            why = (f"time dimensions {time_dims[0]!r} and {time_dims[i]!r}" if time_dims[i] != time_dims[0]
                   else _difference(parts[0], parts[i], time_dims[0]))
            if why:
                raise MemberMismatchError(
                    f"ensemble members {labels[0]!r} ({_where(groups[0])}) and {labels[i]!r} ({_where(groups[i])}) "
                    f"differ: {why}. Members must hold the same variables on the same grid at the same times"
                    f"{_hint(groups)}")
    finally:
        for part in parts:
            part.close()
    paths = tuple(p for group in groups for p in group)
    return Inputs(paths, is_zarr, time_dims[0], stamps=stamps(paths), times=times, member_dim=member_dim,
                  members=tuple(map(tuple, groups)), labels=tuple(labels))


def _where(group: Sequence[str]) -> str:
    return repr(group[0]) if len(group) == 1 else f"{group[0]!r} and {len(group) - 1} more files"


def _hint(groups: Sequence[Sequence[str]]) -> str:
    """Advice where every member is one file: a shell that expanded a glob made each file a member."""
    if all(len(g) == 1 for g in groups):
        return "; each argument is one member: quote a glob ('r1/*.nc') to give a member of several files"
    return ""


def member_labels(parts: Sequence[xr.Dataset], groups: Sequence[Sequence[str]]) -> list[str | int]:
    """The values of the member coordinate: a distinct global attribute of :data:`LABEL_ATTRS`, else the file
    names (common prefix), else the folder names, else ``0 ... M-1``."""
    for attr in LABEL_ATTRS:
        values = [ds.attrs.get(attr) for ds in parts]
        if all(v is not None and np.ndim(v) == 0 for v in values) and len({str(v) for v in values}) == len(values):
            if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
                return [int(v) for v in values]
            return [str(v) for v in values]
    for names in ([_stem(g) for g in groups], [_folder(g) for g in groups]):
        if all(names) and len(set(names)) == len(names):
            return names
    return list(range(len(groups)))


def _stem(group: Sequence[str]) -> str:
    """A member's file name without its extension; for several files, the prefix their names share."""
    names = [Path(p).name for p in group]
    if len(names) == 1:
        name = names[0]
        return name[: -len(Path(name).suffix)] if Path(name).suffix else name
    parts = [re.split(r"([._-])", name) for name in names]  # whole words: tas_r1.1850, tas_r1.1900 -> tas_r1
    return "".join(os.path.commonprefix(parts)).rstrip("._-")


def _folder(group: Sequence[str]) -> str:
    """The name of the folder that holds a member's files."""
    return Path(os.path.commonpath([str(Path(p).parent) for p in group])).name


def stacked(ds: xr.Dataset, time_dim: Hashable | None) -> list[Hashable]:
    """The data variables that get the member dimension: those along time, but time-like ones and those that CF
    attributes name (bounds, coordinates, cell measures)."""
    named = referenced(ds)
    return [n for n, v in ds.data_vars.items()
            if (time_dim is None or time_dim in v.dims) and n not in named and not time_like(v.variable)]


def _calendar(var: xr.Variable) -> str:
    name = str(var.encoding.get("calendar", var.attrs.get("calendar", "standard"))).lower()
    return _SAME_CALENDAR.get(name, name)


def _difference(a: xr.Dataset, b: xr.Dataset, time_dim: Hashable | None) -> str | None:
    """The first difference between two members (lazy, combined along time), or None."""
    if set(a.variables) != set(b.variables):
        only_a, only_b = (sorted(map(str, set(x.variables) - set(y.variables))) for x, y in ((a, b), (b, a)))
        return f"variables {only_a} are only in the first, {only_b} only in the second"
    for name, va in a.variables.items():
        vb = b.variables[name]
        for what, x, y in (("dimensions", va.dims, vb.dims), ("sizes", dict(va.sizes), dict(vb.sizes)),
                           ("dtype", va.dtype, vb.dtype)):
            if x != y:
                return f"{name!r} has {what} {x} and {y}"
    if time_dim is not None and time_dim in a.variables:
        calendars = _calendar(a[time_dim].variable), _calendar(b[time_dim].variable)
        if calendars[0] != calendars[1]:
            return f"their times are in the calendars {calendars[0]!r} and {calendars[1]!r}"
        ta, tb = a[time_dim].values, b[time_dim].values
        if not np.array_equal(ta, tb):
            k = int(np.flatnonzero(ta != tb)[0]) if ta.shape == tb.shape else 0
            return f"their times differ from step {k} on ({ta[k]} and {tb[k]})"
    for dim, index in a.indexes.items():
        if dim != time_dim and not index.equals(b.indexes[dim]):
            return f"their coordinate {dim!r} differs"
    shared = set(a.variables) - set(stacked(a, time_dim)) - set(a.indexes)
    for name in sorted(shared, key=str):  # stored once for all members: small (grid, bounds, static fields)
        if not a[name].variable.equals(b[name].variable):
            return f"{name!r}, which is stored once for all members, differs"
    return None


def open_members(inputs: Inputs) -> xr.Dataset:
    """The members of ``inputs``, each combined along time, stacked lazily along ``inputs.member_dim`` right
    after time; root attribute :data:`MEMBER_ATTR` names the dimension."""
    dim, time_dim = inputs.member_dim, inputs.time_dim
    parts = [open_along_time(paths, inputs.is_zarr, inputs.times) for paths in inputs.members]
    names = stacked(parts[0], time_dim)
    labels = np.array(inputs.labels, dtype=object if isinstance(inputs.labels[0], str) else np.int64)
    ds = xr.concat(parts, dim=dim, data_vars=names, coords="minimal", compat="override", join="exact",
                   combine_attrs="drop_conflicts")
    # strings as objects: Zarr stores them as its variable-length "string" type, which the Zarr v3 spec has
    ds = ds.assign_coords({dim: xr.Variable(dim, labels)})
    ds[dim].attrs["long_name"] = "ensemble member"
    for name in names:
        dims = [d for d in ds[name].dims if d != dim]
        at = dims.index(time_dim) + 1 if time_dim in dims else 0
        ds[name] = ds[name].transpose(*dims[:at], dim, *dims[at:])
    ds.attrs[MEMBER_ATTR] = dim
    return ds
