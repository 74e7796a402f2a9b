"""Which variables of a Dataset are data, and what in them is valid: CF, found through cf-xarray.

What is lossy: floating-point data variables (float32, float64), including CF-packed ones. What is
never lossy, found through cf-xarray and the CF attributes rather than through names: coordinates,
axes, cell bounds, cell measures, coefficients of a parametric vertical coordinate,
latitude/longitude and time stored as data variables (E3SM's ``lat(ncol)``), time-like values, and
integer, boolean and string variables. Data variables without the time dimension of a Dataset
that has one (cell areas and weights that CF does not mark, static fields), or along time alone
(one number per step), are stored exactly too, unless a bound names them. Variables along an
unstructured column dimension get a native-grid layout (:mod:`xdiffc.grids`).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping

import cf_xarray  # noqa: F401  (registers ds.cf)
import numpy as np
import xarray as xr

from .. import grids
from ..api import FLOAT_DTYPES
from ..masking import FILL_THRESHOLD
from ..options import Options

#: Attributes xdiffc writes on each lossy variable: its absolute bound, the relative bound it came from, an L2
#: bound, a pointwise-relative bound, and 1 where exact zeros and signs are kept. (CF 1.12's lossy-compression
#: attributes describe quantization, by an algorithm from a fixed list and a number of digits or bits; they
#: cannot say "every value within this bound", so xdiffc's own attributes say it.)
ATTR_TOL = "xdiffc_tol"
ATTR_REL_TOL = "xdiffc_rel_tol"
ATTR_NRMSE = "xdiffc_nrmse"
ATTR_PW_REL_TOL = "xdiffc_pw_rel_tol"
ATTR_PRESERVE_ZERO = "xdiffc_preserve_zero"
#: Root attribute of an ensemble (a Dataset, and its store): the name of its member dimension, across which the
#: archive climatology is shared (:mod:`xdiffc.conversion.members`).
MEMBER_ATTR = "xdiffc_member_dim"
#: The attribute that records each pointwise bound, by its option's name.
BOUND_ATTRS = {"tol": ATTR_TOL, "rel_tol": ATTR_REL_TOL, "pw_rel_tol": ATTR_PW_REL_TOL}
LOSSY_DTYPES = FLOAT_DTYPES
#: Column dimensions of unstructured grids, laid out even when no lat/lon is found (with a warning).
UNSTRUCTURED_DIMS = ("ncol", "nCells", "ncells", "cell")
#: Attributes whose values name other variables that belong to the coordinate system.
REFERENCE_ATTRS = ("bounds", "climatology", "cell_measures", "coordinates")


def referenced(ds: xr.Dataset) -> set[Hashable]:
    """Variables named by CF references: bounds, cell measures, coordinates, parametric-coordinate terms."""
    names: set[Hashable] = set()
    for var in ds.variables.values():
        for attr in REFERENCE_ATTRS:
            text = var.attrs.get(attr, var.encoding.get(attr))
            if isinstance(text, str):
                names.update(w for w in text.replace(":", " ").split() if w in ds.variables)
    for dim_coord, terms in ds.cf.formula_terms.items():
        # coefficients such as hyam(lev) and P0 are part of the coordinate; a field such as PS(time, lat, lon) is not
        dims = set(ds[dim_coord].dims)
        names.update(n for n in terms.values() if n in ds.variables and set(ds[n].dims) <= dims)
    return names


def time_like(var: xr.Variable) -> bool:
    """Dates, durations, or numbers with CF time units (``days since ...``)."""
    units = var.attrs.get("units", var.encoding.get("units"))
    return var.dtype.kind in "mMO" or isinstance(units, str) and " since " in units


def never_lossy(ds: xr.Dataset) -> set[Hashable]:
    """Names of the variables of ``ds`` that must be stored exactly."""
    names: set[Hashable] = set(ds.coords) | referenced(ds)
    cf = ds.cf
    for mapping in (cf.bounds, cf.cell_measures, cf.coordinates, cf.axes):
        for values in mapping.values():
            names.update(values)
    # latitude, longitude and time held as data variables (E3SM's lat(ncol)), found by CF criteria
    promoted = ds.set_coords([n for n in ds.data_vars if n not in names]).cf.coordinates
    for key in ("latitude", "longitude", "time"):
        names.update(promoted.get(key, ()))
    names.update(n for n, v in ds.variables.items() if time_like(v) or v.dtype.kind not in "fc")
    return names


def time_dims(ds: xr.Dataset) -> set[Hashable]:
    """The dimensions of the CF time axis, else a dimension named ``time`` (a time without units or ``axis``)."""
    dims = {d for name in ds.cf.axes.get("T", []) for d in ds[name].dims}
    return dims or ({"time"} if "time" in ds.dims else set())


def exact_by_default(ds: xr.Dataset) -> set[Hashable]:
    """Data variables stored exactly unless a bound names them, in a Dataset with a time dimension: those
    without it (grid metadata such as E3SM's ``area`` and CESM's ``gw``, small static fields) and those
    along time alone (one number per step, such as E3SM's ``co2vmr``: a lossy chunk of a few values costs
    more than the values)."""
    found = time_dims(ds)
    return {n for n, v in ds.data_vars.items() if found and (not found & set(v.dims) or set(v.dims) <= found)}


def fill_values(var: xr.Variable) -> list[float]:
    """The CF fill values of a variable (``_FillValue``, ``missing_value``), from its encoding or attrs."""
    out: list[float] = []
    for key in ("_FillValue", "missing_value"):
        value = var.encoding.get(key, var.attrs.get(key))
        if value is not None:
            out.extend(float(v) for v in np.ravel(value))
    return out


def valid(da: xr.DataArray) -> xr.DataArray:
    """True where a value is data: finite, below the fill threshold, and not a fill value."""
    ok = np.isfinite(da) & (abs(da) < FILL_THRESHOLD)
    for fill in fill_values(da.variable):
        ok &= da != da.dtype.type(fill)
    return ok


def is_lossy(attrs: Mapping) -> bool:
    """Whether xdiffc wrote the variable with these attrs lossily (pointwise or l2)."""
    return ATTR_TOL in attrs or ATTR_NRMSE in attrs or ATTR_PW_REL_TOL in attrs


def stored_bound(attrs: Mapping) -> Options | None:
    """The pointwise bound recorded in a variable's attrs (:data:`BOUND_ATTRS`; :meth:`~xdiffc.options.Options.bound_at`
    gives it at each point): its absolute ``tol`` (the one ``rel_tol`` came to, where given) and its pointwise-relative
    bound, either of them None. None without a pointwise bound (an l2 one, or no xdiffc attrs)."""
    if ATTR_TOL not in attrs and ATTR_PW_REL_TOL not in attrs:
        return None
    return Options(**{option: attrs.get(attr) for option, attr in BOUND_ATTRS.items()})


def cf_valid_range(var: xr.Variable) -> tuple[float, float] | None:
    """The CF ``valid_range`` (or ``valid_min``/``valid_max``) of a variable in its decoded units, or None.

    CF gives them in the packed units of a packed variable: they are unpacked here with its
    ``scale_factor`` and ``add_offset``. A missing side is the float64 limit.
    """
    get = lambda key: var.attrs.get(key, var.encoding.get(key))  # noqa: E731
    pair = get("valid_range")
    lo, hi = (pair[0], pair[1]) if pair is not None and np.size(pair) == 2 else (get("valid_min"), get("valid_max"))
    if lo is None and hi is None:
        return None
    scale, offset = float(var.encoding.get("scale_factor", 1.0)), float(var.encoding.get("add_offset", 0.0))
    lo, hi = (None if v is None else float(v) * scale + offset for v in (lo, hi))
    if scale < 0:
        lo, hi = hi, lo
    big = float(np.finfo(np.float64).max)
    lo, hi = -big if lo is None else lo, big if hi is None else hi
    return (lo, hi) if math.isfinite(lo) and math.isfinite(hi) and lo <= hi else None


class NativeLayouts:
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


