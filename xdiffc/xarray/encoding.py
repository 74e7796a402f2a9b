"""How each lossy variable is encoded for Zarr: its absolute bound, its chunks, its codec and the attrs that record them.

Each lossy variable gets an absolute bound: its entry in ``tol``, or ``rel_tol`` times the range
of its valid values over the *whole* variable (one reduction, lazy with Dask), so that every
chunk of a variable has the same bound. Its attrs record the bound (``xdiffc_tol``, and
``xdiffc_rel_tol`` where a relative bound was given). With ``mode="l2", nrmse=eps`` each lossy
variable instead meets the paper's per-block L2 bound (:mod:`xdiffc.l2`), recorded as
``xdiffc_nrmse``. Every attribute xdiffc adds starts with ``xdiffc_``; all others come back as
they were.

Native grids: a variable along an unstructured column dimension is coded with its columns laid
out on a 2-D canvas (:mod:`xdiffc.grids`). The layout travels in the codec's configuration, so
the store keeps its ``ncol`` dimension; each Zarr chunk then holds every column.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Iterable, Mapping

import dask
import numpy as np
import xarray as xr
import zarr

from .. import grids
from ..codec import GCDTCCodec
from ..core import DEFAULT_STEPS, check_bound
from ..model_lookup import codec_model
from ..zarr_codec import GCDTCZarrCodec
from .variables import (ATTR_NRMSE, ATTR_REL_TOL, ATTR_TOL, LOSSY_DTYPES, NativeLayouts, fill_values, never_lossy,
                        static_fields, valid)

#: CF packing keys dropped from a lossy variable's encoding: it is stored as the float it decodes to.
PACKING_KEYS = ("scale_factor", "add_offset", "dtype")
#: Chunks of variables without Dask chunks hold about this many bytes, split along leading dimensions.
DEFAULT_CHUNK_BYTES = 16 * 2**20


def zarr_chunks(var: xr.Variable, chunks: Mapping[Hashable, int] | None) -> tuple[int, ...]:
    """The Zarr chunk shape: ``chunks[dim]`` where given, else the Dask chunk, else about 16 MiB per chunk."""
    chunks = chunks or {}
    out = []
    budget = max(1, DEFAULT_CHUNK_BYTES // var.dtype.itemsize)
    for axis in reversed(range(var.ndim)):
        dim, size = var.dims[axis], var.shape[axis]
        if dim in chunks:
            n = int(chunks[dim])
        elif var.chunks is not None:
            n = var.chunks[axis][0]
        else:
            n = max(1, min(size, budget))
        n = max(1, min(n, size))
        budget = max(1, budget // n)
        out.append(n)
    return tuple(reversed(out))


class BoundPlan:
    """Which variables are lossy, and the absolute bound (and relative one, if any) of each."""

    def __init__(self, ds: xr.Dataset, tol, rel_tol, exclude: Iterable[Hashable]):
        fixed, static = never_lossy(ds), static_fields(ds)
        exclude = set(exclude)
        per_var = dict(tol) if isinstance(tol, Mapping) else {}
        scalar_tol = None if isinstance(tol, Mapping) else check_bound("tol", tol)
        rel_tol = check_bound("rel_tol", rel_tol)
        for name, value in per_var.items():
            check_bound(f"tol[{name!r}]", value)
        unknown = [n for n in (*per_var, *exclude) if n not in ds.variables]
        if unknown:
            raise ValueError(f"no variable named {unknown} in this Dataset; its variables are {sorted(map(str, ds.variables))}")
        for name in per_var:
            if ds[name].dtype not in LOSSY_DTYPES:
                raise TypeError(f"tol names {name!r}, of dtype {ds[name].dtype}: xdiffc compresses float32 and "
                                f"float64 lossily; cast it first (ds[{name!r}].astype('float32'))")
            if name in fixed or name in exclude:
                why = "is excluded" if name in exclude else "is a coordinate, bound, cell measure or time: never lossy"
                raise ValueError(f"tol names {name!r}, which {why}")
        self.tol: dict[Hashable, float] = {}
        self.rel_tol: dict[Hashable, float] = {}
        for name, da in ds.data_vars.items():
            if name in fixed or name in exclude or name in static and name not in per_var:
                continue
            if da.dtype not in LOSSY_DTYPES:
                warnings.warn(f"{name!r} has dtype {da.dtype}, which xdiffc cannot compress lossily: stored losslessly",
                              stacklevel=3)
            elif name in per_var or scalar_tol is not None:
                self.tol[name] = float(per_var.get(name, scalar_tol))
            elif rel_tol is not None:
                self.rel_tol[name] = rel_tol
        lazy = [ds[n].where(valid(ds[n])) for n in self.rel_tol]
        ranges = dask.compute(*[(d.max(), d.min()) for d in lazy])
        for name, (hi, lo) in zip(list(self.rel_tol), ranges):
            span = float(hi) - float(lo)
            self.tol[name] = self.rel_tol[name] * span if math.isfinite(span) else 0.0

    @property
    def lossy(self) -> list[Hashable]:
        return list(self.tol)


class VariableEncoder:
    """Builds one lossy variable: encoding for ``to_zarr`` and the attrs that record its bound."""

    def __init__(self, model: str | None, steps: int, chunks, zarr_format: int, mode: str = "pointwise"):
        self.model = codec_model(model)
        self.steps, self.chunks, self.zarr_format, self.mode = steps, chunks, zarr_format, mode

    def __call__(self, name: Hashable, var: xr.Variable, tol: float, rel_tol: float | None,
                 native: tuple[Hashable, grids.Layout] | None = None) -> xr.Variable:
        encoding = {k: v for k, v in var.encoding.items() if k not in PACKING_KEYS}
        config = dict(variable=str(name), model_id=self.model[0], model_sha256=self.model[1], steps=self.steps,
                      fill_values=fill_values(var))
        chunks = dict(self.chunks or {})
        if self.mode == "l2":  # rel_tol carries nrmse; each chunk normalises by its own (smaller) range
            config.update(mode="l2", nrmse=rel_tol)
            attrs = {**var.attrs, ATTR_NRMSE: rel_tol}
        else:
            config["tol"] = tol
            attrs = {**var.attrs, ATTR_TOL: tol}
            if rel_tol is not None:
                attrs[ATTR_REL_TOL] = rel_tol
        if native is not None:
            dim, layout = native
            config["layout"] = layout.to_config(var.dims.index(dim))
            chunks[dim] = var.sizes[dim]  # the layout needs every column of a chunk
            attrs.update(layout.attrs())
        if self.zarr_format == 2:
            encoding.update(compressors=[GCDTCCodec(**config)], filters=None)
            encoding.pop("serializer", None)
        else:
            encoding.update(serializer=GCDTCZarrCodec(**config), compressors=None, filters=None)
        encoding["chunks"] = zarr_chunks(var, chunks)
        out = align_chunks(var, encoding["chunks"]).copy(deep=False)
        out.attrs, out.encoding = attrs, encoding
        return out


def encode_dataset(ds: xr.Dataset, tol=None, rel_tol: float | None = 1e-3, model: str | None = None,
                   chunks: Mapping[Hashable, int] | None = None, exclude: Iterable[Hashable] = (), *,
                   steps: int = DEFAULT_STEPS, zarr_format: int = 3, layout: str = "auto", grid=None,
                   mode: str = "pointwise", nrmse: float | None = None) -> xr.Dataset:
    """``ds`` with each lossy variable carrying its codec, chunks and bound for ``to_zarr`` (``ds.gcdtc.compress``).

    ``tol``: absolute bound for every lossy variable, or ``{name: bound}``; ``rel_tol`` (a fraction
    of each variable's value range) covers the variables ``tol`` does not name. ``chunks``:
    ``{dim: size}`` for the Zarr chunks (-1: the whole dimension; default: the Dask chunks, else
    about 16 MiB). Dask chunks are re-chunked to the Zarr chunks. ``exclude``: names to keep exact.
    ``layout``: "auto" (detect native grids), "cubed-sphere", "hilbert" or "none"; ``grid``: a
    file or Dataset with the columns' lat/lon, for data that lacks them. ``mode="l2", nrmse=eps``:
    the per-block L2 bound of the paper instead of a pointwise one, for every lossy variable.
    """
    if mode == "l2":
        if tol is not None or nrmse is None:
            raise ValueError("mode='l2' takes nrmse= (the NRMSE bound of every lossy variable), not tol")
        rel_tol = nrmse
    elif mode != "pointwise":
        raise ValueError(f"mode must be 'pointwise' or 'l2', got {mode!r}")
    elif nrmse is not None:
        raise ValueError("nrmse= is the bound of mode='l2'; for a pointwise bound give tol or rel_tol")
    chunks = check_chunks(chunks, ds.sizes)
    plan = BoundPlan(ds, tol, rel_tol, exclude)
    encode = VariableEncoder(model, steps, chunks, zarr_format, mode)
    layouts = NativeLayouts(ds, layout, grid)
    out = ds.copy(deep=False)
    for name in plan.lossy:
        var = ds[name].variable
        out[name] = encode(name, var, plan.tol[name], plan.rel_tol.get(name), layouts.of(var))
    return out


def stored_bytes(source, names: Iterable[Hashable]) -> dict[Hashable, float]:
    """Bytes each array occupies in a Zarr store (chunks plus its metadata document); NaN without a store."""
    if source is None:
        return {n: math.nan for n in names}
    group = zarr.open_group(source, mode="r")
    return {n: float(group[str(n)].nbytes_stored()) for n in names}


def check_chunks(chunks: Mapping[Hashable, int] | None, sizes: Mapping[Hashable, int]) -> dict[Hashable, int]:
    """``chunks`` with ``-1`` replaced by the whole dimension; ValueError for an unknown dimension or a bad size."""
    out: dict[Hashable, int] = {}
    for dim, n in (chunks or {}).items():
        if dim not in sizes:
            raise ValueError(f"chunks names dimension {dim!r}, which this Dataset lacks; its dimensions are "
                             f"{dict(sizes)}")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < -1 or n == 0:
            raise ValueError(f"chunks[{dim!r}] must be a positive number of elements, or -1 for the whole "
                             f"dimension; got {n!r}")
        out[dim] = sizes[dim] if n == -1 else int(n)
    return out


def align_chunks(var: xr.Variable, chunks: tuple[int, ...]) -> xr.Variable:
    """``var`` with Dask chunks equal to the Zarr ``chunks``: each task then writes whole Zarr chunks,
    never decoding and re-encoding a chunk that another task wrote (which would compound the error)."""
    if var.chunks is None:
        return var
    wanted = tuple(tuple(min(c, n - i) for i in range(0, n, c)) for c, n in zip(chunks, var.shape))
    return var if var.chunks == wanted else var.chunk(dict(zip(var.dims, chunks)))
