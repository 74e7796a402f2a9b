"""``ds.gcdtc``: compress a Dataset in one line, write it to Zarr, and look at the error.

    ds.gcdtc.to_zarr("out.zarr", tol={"T": 0.1}, rel_tol=1e-3)   # then: xr.open_zarr("out.zarr")

What is lossy: floating-point data variables (float32, float64), including CF-packed ones, which
are unpacked and compressed as floats with the bound in physical units. What is never lossy,
found through cf-xarray and the CF attributes rather than through names: coordinates, axes, cell
bounds, cell measures, coefficients of a parametric vertical coordinate, latitude/longitude and
time stored as data variables (E3SM's ``lat(ncol)``), time-like values, and integer, boolean and
string variables. They keep their own encoding. Data variables without the time dimension of a
Dataset that has one (cell areas and weights that CF does not mark, static fields) are stored
exactly too, unless ``tol`` names them.

Each lossy variable gets an absolute bound: its entry in ``tol``, or ``rel_tol`` times the range
of its valid values over the *whole* variable (one reduction, lazy with Dask), so that every
chunk of a variable has the same bound. Its attrs record the bound (``xdiffc_tol``, and
``xdiffc_rel_tol`` where a relative bound was given). With ``mode="l2", nrmse=eps`` each lossy
variable instead meets the paper's per-block L2 bound (:mod:`xdiffc.l2`), recorded as
``xdiffc_nrmse``. Every attribute xdiffc adds starts with ``xdiffc_``; all others come back as
they were.

Native grids: a variable along an unstructured column dimension (E3SM's ``ncol``, MPAS's ``nCells``)
is coded with its columns laid out on a 2-D canvas that keeps neighbours together
(:mod:`xdiffc.grids`: cube faces, or a Hilbert order). The layout travels in the codec's
configuration, so the store keeps its ``ncol`` dimension and ``xr.open_zarr`` needs nothing more;
each Zarr chunk then holds every column. ``layout=`` overrides the detection, ``grid=`` names a
file or Dataset with the columns' lat/lon when the data has none.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Iterable, Mapping

import cf_xarray  # noqa: F401  (registers ds.cf)
import dask
import numpy as np
import pandas as pd
import xarray as xr
import zarr

from . import grids, writes
from .codec import GCDTCCodec, _resolve_model
from .core import DEFAULT_STEPS, check_bound
from .masking import FILL_THRESHOLD
from .zarr_codec import GCDTCZarrCodec

ATTR_TOL = "xdiffc_tol"
ATTR_REL_TOL = "xdiffc_rel_tol"
ATTR_NRMSE = "xdiffc_nrmse"
LOSSY_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
#: CF packing keys dropped from a lossy variable's encoding: it is stored as the float it decodes to.
PACKING_KEYS = ("scale_factor", "add_offset", "dtype")
#: Chunks of variables without Dask chunks hold about this many bytes, split along leading dimensions.
DEFAULT_CHUNK_BYTES = 16 * 2**20
#: Column dimensions of unstructured grids, laid out even when no lat/lon is found (with a warning).
UNSTRUCTURED_DIMS = ("ncol", "nCells", "ncells", "cell")
#: Attributes whose values name other variables that belong to the coordinate system.
_REFERENCE_ATTRS = ("bounds", "climatology", "cell_measures", "coordinates")


def _referenced(ds: xr.Dataset) -> set[Hashable]:
    """Variables named by CF references: bounds, cell measures, coordinates, parametric-coordinate terms."""
    names: set[Hashable] = set()
    for var in ds.variables.values():
        for attr in _REFERENCE_ATTRS:
            text = var.attrs.get(attr, var.encoding.get(attr))
            if isinstance(text, str):
                names.update(w for w in text.replace(":", " ").split() if w in ds.variables)
    for dim_coord, terms in ds.cf.formula_terms.items():
        # coefficients such as hyam(lev) and P0 are part of the coordinate; a field such as PS(time, lat, lon) is not
        dims = set(ds[dim_coord].dims)
        names.update(n for n in terms.values() if n in ds.variables and set(ds[n].dims) <= dims)
    return names


def _time_like(var: xr.Variable) -> bool:
    units = var.attrs.get("units", var.encoding.get("units"))
    return var.dtype.kind in "mMO" or isinstance(units, str) and " since " in units


def never_lossy(ds: xr.Dataset) -> set[Hashable]:
    """Names of the variables of ``ds`` that must be stored exactly."""
    names: set[Hashable] = set(ds.coords) | _referenced(ds)
    cf = ds.cf
    for mapping in (cf.bounds, cf.cell_measures, cf.coordinates, cf.axes):
        for values in mapping.values():
            names.update(values)
    # latitude, longitude and time held as data variables (E3SM's lat(ncol)), found by CF criteria
    promoted = ds.set_coords([n for n in ds.data_vars if n not in names]).cf.coordinates
    for key in ("latitude", "longitude", "time"):
        names.update(promoted.get(key, ()))
    names.update(n for n, v in ds.variables.items() if _time_like(v) or v.dtype.kind not in "fc")
    return names


def static_fields(ds: xr.Dataset) -> set[Hashable]:
    """Data variables without the time dimension in a Dataset that has one (E3SM's ``area``, CESM's ``gw``).

    They are grid metadata (weights, areas) or small static fields: stored exactly, unless named in ``tol``.
    """
    time_dims = {d for name in ds.cf.axes.get("T", []) for d in ds[name].dims}
    return {n for n, v in ds.data_vars.items() if time_dims and not time_dims & set(v.dims)}


def _fill_values(var: xr.Variable) -> list[float]:
    """The CF fill values of a variable (``_FillValue``, ``missing_value``), from its encoding or attrs."""
    out: list[float] = []
    for key in ("_FillValue", "missing_value"):
        value = var.encoding.get(key, var.attrs.get(key))
        if value is not None:
            out.extend(float(v) for v in np.ravel(value))
    return out


def _valid(da: xr.DataArray) -> xr.DataArray:
    """True where a value is data: finite, below the fill threshold, and not a fill value."""
    ok = np.isfinite(da) & (abs(da) < FILL_THRESHOLD)
    for fill in _fill_values(da.variable):
        ok &= da != da.dtype.type(fill)
    return ok


def _zarr_chunks(var: xr.Variable, chunks: Mapping[Hashable, int] | None) -> tuple[int, ...]:
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


class _Plan:
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
        lazy = [ds[n].where(_valid(ds[n])) for n in self.rel_tol]
        ranges = dask.compute(*[(d.max(), d.min()) for d in lazy])
        for name, (hi, lo) in zip(list(self.rel_tol), ranges):
            span = float(hi) - float(lo)
            self.tol[name] = self.rel_tol[name] * span if math.isfinite(span) else 0.0

    @property
    def lossy(self) -> list[Hashable]:
        return list(self.tol)


class _Layouts:
    """The native-grid layout of each unstructured column dimension of a Dataset, found once per dimension."""

    def __init__(self, ds: xr.Dataset, layout: str, grid):
        if layout not in ("auto", *grids.KINDS):
            raise ValueError(f"layout must be 'auto' or one of {grids.KINDS}, got {layout!r}")
        self.ds, self.layout, self.grid = ds, layout, grid
        self._found: dict[Hashable, grids.Layout | None] = {}

    def _is_columns(self, dim: Hashable) -> bool:
        return dim in UNSTRUCTURED_DIMS or grids.find_latlon(self.ds, dim) is not None

    def of(self, var: xr.Variable) -> tuple[Hashable, grids.Layout] | None:
        """(column dimension, layout) of ``var``, or None to code it as it is."""
        for dim in var.dims:
            if dim not in self._found and self._is_columns(dim):
                self._found[dim] = grids.layout_for(self.ds, str(dim), self.grid, self.layout)
            if self._found.get(dim) is not None:
                return dim, self._found[dim]
        return None


class _Encoder:
    """Builds one lossy variable: encoding for ``to_zarr`` and the attrs that record its bound."""

    def __init__(self, model: str | None, steps: int, chunks, zarr_format: int, mode: str = "pointwise"):
        self.model = _resolve_model(model)
        self.steps, self.chunks, self.zarr_format, self.mode = steps, chunks, zarr_format, mode

    def __call__(self, name: Hashable, var: xr.Variable, tol: float, rel_tol: float | None,
                 native: tuple[Hashable, grids.Layout] | None = None) -> xr.Variable:
        encoding = {k: v for k, v in var.encoding.items() if k not in PACKING_KEYS}
        config = dict(variable=str(name), model_id=self.model[0], model_sha256=self.model[1], steps=self.steps,
                      fill_values=_fill_values(var))
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
        encoding["chunks"] = _zarr_chunks(var, chunks)
        out = writes.align_chunks(var, encoding["chunks"]).copy(deep=False)
        out.attrs, out.encoding = attrs, encoding
        return out


def is_lossy(attrs: Mapping) -> bool:
    """Whether xdiffc wrote the variable with these attrs lossily (pointwise or l2)."""
    return ATTR_TOL in attrs or ATTR_NRMSE in attrs


def _stored_bytes(source, names: Iterable[Hashable]) -> dict[Hashable, float]:
    """Bytes each array occupies in a Zarr store (chunks plus its metadata document); NaN without a store."""
    if source is None:
        return {n: math.nan for n in names}
    group = zarr.open_group(source, mode="r")
    return {n: float(group[str(n)].nbytes_stored()) for n in names}


@xr.register_dataset_accessor("gcdtc")
class GCDTCAccessor:
    """``ds.gcdtc``: xdiffc for xarray Datasets (see :mod:`xdiffc.accessor`)."""

    def __init__(self, ds: xr.Dataset):
        self._ds = ds

    def compress(self, tol: float | Mapping[Hashable, float] | None = None, rel_tol: float | None = 1e-3,
                 model: str | None = None, chunks: Mapping[Hashable, int] | None = None,
                 exclude: Iterable[Hashable] = (), *, steps: int = DEFAULT_STEPS, zarr_format: int = 3,
                 layout: str = "auto", grid=None, mode: str = "pointwise", nrmse: float | None = None) -> xr.Dataset:
        """The same Dataset (same values, attrs, coords), its lossy variables carrying the codec for ``to_zarr``.

        ``tol``: absolute bound for every lossy variable, or ``{name: bound}``; ``rel_tol`` (a fraction
        of each variable's value range) covers the variables ``tol`` does not name. ``chunks``:
        ``{dim: size}`` for the Zarr chunks (default: the Dask chunks, else about 16 MiB). Dask
        chunks are re-chunked to the Zarr chunks. ``exclude``: names to keep exact. ``layout``:
        "auto" (detect native grids), "cubed-sphere", "hilbert" or "none"; ``grid``: a file or
        Dataset with the columns' lat/lon, for data that lacks them. ``mode="l2", nrmse=eps``: the
        per-block L2 bound of the paper instead of a pointwise one, for every lossy variable.
        """
        if mode == "l2":
            if tol is not None or nrmse is None:
                raise ValueError("mode='l2' takes nrmse= (the NRMSE bound of every lossy variable), not tol")
            rel_tol = nrmse
        elif mode != "pointwise":
            raise ValueError(f"mode must be 'pointwise' or 'l2', got {mode!r}")
        elif nrmse is not None:
            raise ValueError("nrmse= is the bound of mode='l2'; for a pointwise bound give tol or rel_tol")
        chunks = writes.check_chunks(chunks, self._ds.sizes)
        plan = _Plan(self._ds, tol, rel_tol, exclude)
        encode = _Encoder(model, steps, chunks, zarr_format, mode)
        layouts = _Layouts(self._ds, layout, grid)
        out = self._ds.copy(deep=False)
        for name in plan.lossy:
            var = self._ds[name].variable
            out[name] = encode(name, var, plan.tol[name], plan.rel_tol.get(name), layouts.of(var))
        return out

    def to_zarr(self, store, tol: float | Mapping[Hashable, float] | None = None, rel_tol: float | None = 1e-3, *,
                model: str | None = None, chunks: Mapping[Hashable, int] | None = None,
                exclude: Iterable[Hashable] = (), steps: int = DEFAULT_STEPS, layout: str = "auto", grid=None,
                nrmse: float | None = None, **to_zarr_kwargs):
        """Compress and write to ``store`` with consolidated metadata; ``xr.open_zarr(store)`` reads it back.

        ``nrmse=eps`` asks for the per-block L2 bound (``compress(mode="l2")``); ``mode`` here is
        xarray's write mode: the default refuses an existing store (FileExistsError naming it),
        ``mode="w"`` replaces it. ``append_dim=`` and ``region=`` update a store in place: lossy
        variables already there keep the store's chunks and bound, and a write that would re-encode
        part of a lossy chunk is refused (:mod:`xdiffc.writes`). Returns ``store``, or with
        ``compute=False`` the Dask object to ``.compute()``.
        """
        writes.refuse_overwrite(store, to_zarr_kwargs)
        zarr_format = to_zarr_kwargs.get("zarr_format") or zarr.config.get("default_zarr_format")
        ds = self.compress(tol, rel_tol, model, chunks, exclude, steps=steps,
                           zarr_format=zarr_format, layout=layout, grid=grid,
                           mode="pointwise" if nrmse is None else "l2", nrmse=nrmse)
        lossy = [n for n in ds.data_vars if is_lossy(ds[n].attrs)]
        clash = [n for n in to_zarr_kwargs.get("encoding") or {} if n in lossy]
        if clash:
            # xarray would replace, not merge, their encoding: the codec would silently be dropped
            raise ValueError(f"encoding= names lossy variables {clash}, whose encoding xdiffc sets; "
                             f"give their chunks through chunks= instead, or exclude them")
        updating = (to_zarr_kwargs.get("mode") in writes.UPDATE_MODES or to_zarr_kwargs.get("append_dim")
                    or to_zarr_kwargs.get("region"))
        ds = writes.conform(ds, store, lossy, tol, to_zarr_kwargs) if updating else writes.for_new_store(ds, lossy, zarr_format)
        to_zarr_kwargs.setdefault("consolidated", True)
        with writes.quiet_zarr():
            result = ds.to_zarr(store, **to_zarr_kwargs)
        return store if to_zarr_kwargs.get("compute", True) else result

    def roundtrip(self, tol: float | Mapping[Hashable, float] | None = None, rel_tol: float | None = 1e-3,
                  **kwargs) -> xr.Dataset:
        """Compress into an in-memory Zarr store and read it back, loaded: the Dataset a reader would get."""
        store = zarr.storage.MemoryStore()
        self.to_zarr(store, tol, rel_tol, **kwargs)
        with writes.quiet_zarr():
            out = xr.open_zarr(store).load()
        out.encoding["source"] = store
        return out

    def error_report(self, other: xr.Dataset) -> pd.DataFrame:
        """Per lossy variable of ``other`` (a decompressed copy of this Dataset): the error against the bound.

        Columns: ``tol``, ``max_abs_err``, ``max_err_over_bound`` (must be <= 1), ``nrmse`` (RMSE over
        the range of the valid values), ``nrmse_over_bound`` (only when there are ``mode="l2"``
        variables, whose bound is on the NRMSE: must be <= 1; NaN for pointwise ones, and ``tol`` and
        ``max_err_over_bound`` NaN for l2 ones), ``specials_moved`` (points whose NaN/fill status changed: must be 0) and ``ratio`` (in-memory bytes over the bytes stored in ``other.encoding["source"]``,
        chunks plus array metadata; NaN when ``other`` did not come from a Zarr store).
        """
        names = [n for n in other.data_vars if is_lossy(other[n].attrs)]
        lazy = []
        for n in names:
            x, y = self._ds[n], other[n]
            ok = _valid(x)
            moved = (ok != _valid(y)).sum()
            err = abs(y.astype(np.float64) - x.astype(np.float64)).where(ok)
            lazy.append((err.max(), (err**2).mean(), x.where(ok).max() - x.where(ok).min(), moved))
        stats = dask.compute(*lazy)
        stored = _stored_bytes(other.encoding.get("source"), names)
        rows = {}
        for n, (max_err, mse, span, moved) in zip(names, stats):
            tol = float(other[n].attrs.get(ATTR_TOL, math.nan))
            bound_nrmse = float(other[n].attrs.get(ATTR_NRMSE, math.nan))
            max_err, span = np.nan_to_num(float(max_err)), float(span)
            nrmse = math.sqrt(float(mse)) / span if span > 0 else 0.0
            rows[n] = {"tol": tol, "max_abs_err": max_err,
                       "max_err_over_bound": max_err / tol if tol else (0.0 if max_err == 0 else math.inf),
                       "nrmse": nrmse, "nrmse_over_bound": nrmse / bound_nrmse,
                       "specials_moved": int(moved), "ratio": self._ds[n].nbytes / stored[n]}
        report = pd.DataFrame.from_dict(rows, orient="index")
        return report if report["nrmse_over_bound"].notna().any() else report.drop(columns="nrmse_over_bound")

    def assess(self, other: xr.Dataset, criteria=None) -> pd.DataFrame:
        """Climate acceptance metrics of ``other`` (a decompressed copy) per variable, with pass or fail.

        Baker et al.'s criteria by default (Pearson, KS p-value, spatial relative error, DSSIM); see
        :func:`xdiffc.metrics.assess` for the columns and for ``criteria``.
        """
        from .metrics import assess

        return assess(self._ds, other, criteria)

    def suggest_tol(self, criteria="baker", sample=None, variables=None):
        """Per variable, the loosest absolute bound that passes ``criteria`` on a sample of chunks.

        A dict ready for ``compress(tol=...)``, whose ``.table`` has the ratio reached; see
        :func:`xdiffc.tuning.suggest_tol`.
        """
        from .tuning import suggest_tol

        return suggest_tol(self._ds, criteria, sample, variables)
