"""Climate acceptance metrics: the tests a lossy reconstruction must pass before scientists trust it.

The community's tests are the criteria of Baker et al. as used by NCAR's ldcpy
(``ldcpy.util.check_metrics``): Pearson correlation >= 0.99999, KS-test p-value >= 0.05,
spatial relative error <= 5 % and DSSIM >= 0.995. ldcpy itself cannot be a dependency (it
fails to import with setuptools>=82), so every metric is computed here from its published
definition. x is the original, y the reconstruction; only *valid* points of x count (finite,
not a fill value, |x| < 1e30), everywhere:

- Pearson correlation  r = cov(x, y) / (std(x) std(y))        (:func:`pearson`)
- KS test              scipy.stats.ks_2samp(x, y), two-sided  (:func:`ks_test`)
- spatial rel. error   100 * #{|x - y| / |x| > 1e-4} / #valid, with |x - y| itself where x == 0
                                                              (:func:`spatial_rel_error`, in %)
- DSSIM                ldcpy's data SSIM, min over 2-D slices (:func:`dssim`)
- max err / bound      max |x - y| / tol                       (:func:`max_err_over_bound`)
- NRMSE                sqrt(mean((x - y)^2)) / (max x - min x) (:func:`nrmse`)
- PSNR                 20 log10((max x - min x) / RMSE), in dB  (:func:`psnr`)
- spectral error       RMS of ln E_y(k) - ln E_x(k) over the radially averaged energy spectrum
                       of the 2-D slices (:func:`xdiffc.spectra.spectral_error`, every k >= 1);
                       reported, not a criterion. :func:`radial_spectrum` and :func:`relative_l2`
                       are re-exported from :mod:`xdiffc.spectra` too.

Multi-slice fields. ldcpy's ``check_metrics`` is applied to one 2-D (lat, lon) slice. On a
field with more slices, Pearson, KS and the spatial relative error here pool every valid
point of the field (ldcpy's global definitions, ``aggregate_dims=None``), and DSSIM is the
minimum of the per-slice means (ldcpy's rule over levels). On a single slice both agree with
ldcpy. DSSIM needs horizontal slices (:func:`horizontal`): the last two dimensions of a gridded
field, or, on an E3SM cubed sphere (time, ncol, lev), each horizontal field over ``ncol`` (one
per time and level), scored face by face with the neighbouring faces' columns as a halo. It is
not defined (NaN, and its criterion not applied) for 1-D data, for Hilbert-curve and 1-D
layouts (MPAS, ICON, columns without lat/lon), and for slices smaller than the 11 x 11 window.
A slice whose original holds a single value (pressure above the hybrid levels, a well-mixed gas)
is left out of DSSIM: it has no structure, and ldcpy's rescaling to the slice's own range would
score any change of it, however far below the bound, near 0.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Hashable, Mapping
from dataclasses import asdict, dataclass, fields, replace

import numpy as np
import pandas as pd
import dask
import xarray as xr

from .spectra import radial_spectrum, relative_l2, spectral_error  # noqa: F401  (re-exported)
from scipy import ndimage, stats

from . import grids
from .grids import Layout
from .masking import special_mask
from .options import Options
from .xarray.encoding import stored_bytes
from .xarray.variables import ATTR_NRMSE, UNSTRUCTURED_DIMS, NativeLayouts, is_lossy, stored_bound, valid

#: DSSIM's window: an 11 x 11 Gaussian of standard deviation 1.5, and the border cropped after filtering.
DSSIM_SIZE, DSSIM_SIGMA, DSSIM_CROP = 11, 1.5, 5
#: DSSIM's stabilising constants (ldcpy: C1 = C2 = 1e-8) and quantisation levels (256).
DSSIM_C1 = DSSIM_C2 = 1e-8
DSSIM_LEVELS = 256


@dataclass(frozen=True)
class Criteria:
    """Pass thresholds; the defaults are Baker et al.'s, as in ``ldcpy.util.check_metrics``.

    A reconstruction passes when ``pcc >= pcc_min``, ``ks_p >= ks_p_min``,
    ``spre_pct <= spre_max_pct`` (relative error threshold ``spre_rel_tol``),
    ``dssim >= dssim_min`` where DSSIM is defined, and ``max_err_over_bound <= 1`` where a bound is known.
    """

    pcc_min: float = 0.99999
    ks_p_min: float = 0.05
    spre_max_pct: float = 5.0
    spre_rel_tol: float = 1e-4
    dssim_min: float = 0.995

    def checks(self, m: Mapping[str, float]) -> dict[str, bool | None]:
        """Pass (True), fail (False) or not applicable (None) for each criterion, from a :func:`compare` dict."""
        def at_least(v: float, lo: float) -> bool | None:
            return None if math.isnan(v) else bool(v >= lo)

        bound = m.get("max_err_over_bound", math.nan)
        return {"pcc": at_least(m["pcc"], self.pcc_min),
                "ks_p": at_least(m["ks_p"], self.ks_p_min),
                "spre_pct": None if math.isnan(m["spre_pct"]) else bool(m["spre_pct"] <= self.spre_max_pct),
                "dssim": at_least(m["dssim"], self.dssim_min),
                "max_err_over_bound": None if math.isnan(bound) else bool(bound <= 1.0)}

    def passes(self, m: Mapping[str, float]) -> bool:
        """True when no applicable criterion fails."""
        return all(ok is not False for ok in self.checks(m).values())

    def failures(self, m: Mapping[str, float]) -> list[str]:
        """Each criterion that ``m`` fails, with its value and threshold, e.g. ``"dssim 0.412 < 0.995"``."""
        limits = {"pcc": ("<", self.pcc_min), "ks_p": ("<", self.ks_p_min), "spre_pct": (">", self.spre_max_pct),
                  "dssim": ("<", self.dssim_min), "max_err_over_bound": (">", 1.0)}
        return [f"{k} {m[k]:.4g} {limits[k][0]} {limits[k][1]:g}" for k, ok in self.checks(m).items() if ok is False]


#: Named criteria sets for ``criteria=``.
CRITERIA: dict[str, Criteria] = {"baker": Criteria()}


def resolve_criteria(criteria: str | Criteria | Mapping[str, float] | None = None) -> Criteria:
    """A :class:`Criteria` from a name ("baker"), an instance, or a mapping of overrides of Baker's."""
    if criteria is None:
        return CRITERIA["baker"]
    if isinstance(criteria, Criteria):
        return criteria
    if isinstance(criteria, str):
        try:
            return CRITERIA[criteria]
        except KeyError:
            raise ValueError(f"unknown criteria {criteria!r}; choose one of {sorted(CRITERIA)}") from None
    if isinstance(criteria, Mapping):
        known = {f.name for f in fields(Criteria)}
        unknown = sorted(set(criteria) - known)
        if unknown:
            raise ValueError(f"unknown criteria keys {unknown}; known: {sorted(known)}")
        return replace(CRITERIA["baker"], **{k: float(v) for k, v in criteria.items()})
    raise ValueError(f"criteria must be a name, a Criteria or a mapping, got {criteria!r}")


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation r = sum((x - mx)(y - my)) / sqrt(sum((x - mx)^2) sum((y - my)^2)) over the given points.

    Where a standard deviation is 0, ldcpy returns -1 (a fail); here too, unless y == x exactly
    (a constant field kept exactly), which gives 1.
    """
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    dx, dy = x - x.mean(), y - y.mean()
    # einsum's own loop, not BLAS: OpenBLAS's threads take milliseconds per product where the cores are busy
    sxx, syy = float(np.einsum("i,i->", dx, dx)), float(np.einsum("i,i->", dy, dy))
    if sxx == 0 or syy == 0:
        return 1.0 if np.array_equal(x, y) else -1.0
    return float(np.einsum("i,i->", dx, dy)) / math.sqrt(sxx * syy)


def ks_test(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov test (two-sided): D = max_v |F_x(v) - F_y(v)| and its p-value.

    F are the empirical CDFs of the two samples; this is ``scipy.stats.ks_2samp(x, y)``, as in ldcpy.
    """
    with warnings.catch_warnings():  # scipy falling back from its exact to its asymptotic p-value is expected
        warnings.filterwarnings("ignore", "ks_2samp: Exact calculation unsuccessful", RuntimeWarning)
        res = stats.ks_2samp(np.ravel(x), np.ravel(y))
    return float(res.statistic), float(res.pvalue)


def spatial_rel_error(x: np.ndarray, y: np.ndarray, rel_tol: float = 1e-4) -> float:
    """Share of points, in %, whose relative error |x - y| / |x| exceeds ``rel_tol`` (ldcpy's ``spatial_rel_error``).

    As in ldcpy, at points where x == 0 the absolute error |x - y| is compared with ``rel_tol``.
    """
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    if x.size == 0:
        return math.nan
    err = np.abs(x - y)
    rel = np.where(x == 0, err, err / np.where(x == 0, 1.0, np.abs(x)))
    return 100.0 * float(np.count_nonzero(rel > rel_tol)) / x.size


def max_err_over_bound(x: np.ndarray, y: np.ndarray, bound: Options) -> float:
    """max over the points of |x - y| / the pointwise ``bound`` at each (:meth:`~xdiffc.options.Options.bound_at`);
    where the bound is 0, the ratio is 0 if y == x and inf otherwise."""
    x = np.asarray(x, np.float64)
    err = np.abs(x - y)
    limit = np.asarray(bound.bound_at(x), np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(limit > 0, err / limit, np.where(err == 0, 0.0, math.inf))
    return float(np.max(ratio, initial=0.0))


def _rmse_range(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    x = np.asarray(x, np.float64)
    rmse = math.sqrt(float(np.mean((x - y) ** 2))) if x.size else math.nan
    return rmse, (float(x.max() - x.min()) if x.size else math.nan)


def nrmse(x: np.ndarray, y: np.ndarray) -> float:
    """NRMSE = sqrt(mean((x - y)^2)) / (max x - min x); 0 for a constant x kept exactly."""
    rmse, span = _rmse_range(x, y)
    return rmse / span if span > 0 else (0.0 if rmse == 0 else math.inf)


def psnr(x: np.ndarray, y: np.ndarray) -> float:
    """PSNR = 20 log10((max x - min x) / RMSE) in dB; inf when y == x."""
    rmse, span = _rmse_range(x, y)
    return 20 * math.log10(span / rmse) if rmse > 0 and span > 0 else (math.inf if rmse == 0 else -math.inf)


def gaussian_window(size: int = DSSIM_SIZE, sigma: float = DSSIM_SIGMA) -> np.ndarray:
    """The 1-D factor g of DSSIM's window: g_i = exp(-i^2 / (2 sigma^2)) for i = -size//2..size//2, summing to 1.

    The 2-D window is the outer product g g^T (astropy's normalised ``Gaussian2DKernel``).
    """
    i = np.arange(size, dtype=np.float64) - size // 2
    g = np.exp(-(i**2) / (2 * sigma**2))
    return g / g.sum()


def _filter(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 2-D filtering of the last two dimensions of ``a`` with g g^T (outside a slice counts as 0;
    cropping removes it)."""
    return ndimage.correlate1d(ndimage.correlate1d(a, g, axis=-2, mode="constant"), g, axis=-1, mode="constant")


def dssim_map(a: np.ndarray, b: np.ndarray, slice_ndim: int = 2) -> np.ndarray:
    """ldcpy's data SSIM (``ssim_value_fp_fast``) at each point of slices, border not yet cropped.

    A slice is the last ``slice_ndim`` dimensions (2: one image; 3: a stack of images, such as the six
    faces of a cubed sphere, that form one horizontal field); leading ones stack slices, each treated
    on its own. The window moves over the last two dimensions. NaN marks points that are not data;
    they stay NaN. Steps, per slice:
    1. rescale both to [0, 1] over their joint range: s = (v - min) / (max - min); a constant slice
       is divided by its max instead (left as it is if that is 0);
    2. quantise to 256 levels: s = round(255 s) / 255;
    3. filter with the normalised 11 x 11 Gaussian (sigma 1.5), NaN-preserving: filter s with NaN
       set to 0, divide by the filtered weight of the valid points, keep NaN where the input was NaN.
       This gives mu_a, mu_b and the local moments E[a^2], E[b^2], E[ab];
    4. SSIM = (2 mu_a mu_b + C1)(2 cov_ab + C2) / ((mu_a^2 + mu_b^2 + C1)(var_a + var_b + C2)),
       var = E[a^2] - mu^2, cov = E[ab] - mu_a mu_b, C1 = C2 = 1e-8.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    axes = tuple(range(-slice_ndim, 0))
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    nan = nan_a | nan_b
    # joint bounds of each slice's data, as nanmin/nanmax without their warning (a slice without data stays NaN)
    lo = np.minimum(np.where(nan_a, np.inf, a), np.where(nan_b, np.inf, b)).min(axis=axes, keepdims=True)
    hi = np.maximum(np.where(nan_a, -np.inf, a), np.where(nan_b, -np.inf, b)).max(axis=axes, keepdims=True)
    ranged = hi > lo
    shift = np.where(ranged, lo, 0.0)
    scale = np.where(ranged, hi - lo, np.where(hi != 0, hi, 1.0))
    a, b = (a - shift) / scale, (b - shift) / scale
    q = DSSIM_LEVELS - 1
    a, b = np.round(a * q) / q, np.round(b * q) / q
    g = gaussian_window()
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = _filter((~nan).astype(np.float64), g)

        def local_mean(v: np.ndarray) -> np.ndarray:
            return np.where(nan, np.nan, _filter(np.where(nan, 0.0, v), g) / weight)

        mu_a, mu_b = local_mean(a), local_mean(b)
        var_a, var_b = local_mean(a * a) - mu_a**2, local_mean(b * b) - mu_b**2
        cov = local_mean(a * b) - mu_a * mu_b
        return ((2 * mu_a * mu_b + DSSIM_C1) * (2 * cov + DSSIM_C2)
                / ((mu_a**2 + mu_b**2 + DSSIM_C1) * (var_a + var_b + DSSIM_C2)))


#: Points of the slices that :func:`dssim` filters at once (bounds its working memory, about 20 arrays this big).
DSSIM_BATCH = 1 << 20


def dssim(a: np.ndarray, b: np.ndarray, slice_ndim: int = 2) -> float:
    """DSSIM of an original ``a`` and its reconstruction ``b`` whose last ``slice_ndim`` dimensions are the slices
    (NaN = not data; see :func:`dssim_map`).

    Per slice: the mean of :func:`dssim_map` over the valid points left after cropping a 5-point
    border from the last two dimensions; over slices: the minimum. A slice where ``a`` holds one
    value only (a pressure level above the hybrid levels, a constant gas) has no structure to compare,
    and an error far below the bound would score near 0 on it: it is left out, and the bound judges it.
    NaN where no slice is left.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim < max(slice_ndim, 2):
        return math.nan
    k = DSSIM_CROP
    shape = a.shape[-slice_ndim:]
    a, b = a.reshape(-1, *shape), b.reshape(-1, *shape)
    axes = tuple(range(1, slice_ndim + 1))
    nan = np.isnan(a)
    varied = np.where(nan, -np.inf, a).max(axis=axes) > np.where(nan, np.inf, a).min(axis=axes)
    data = np.flatnonzero(varied)
    step = max(1, DSSIM_BATCH // max(1, a[0].size))
    means = []
    for i in range(0, data.size, step):
        pick = data[i : i + step]
        for core in dssim_map(a[pick], b[pick], slice_ndim)[..., k:-k, k:-k]:
            if np.isfinite(core).any():
                means.append(float(np.nanmean(core)))
    return min(means) if means else math.nan


class _ByDigest:
    """A layout as a cache key: layouts with the same sha256 are the same map."""

    def __init__(self, layout: Layout):
        self.layout = layout

    def __hash__(self) -> int:
        return hash(self.layout.digest)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ByDigest) and other.layout.digest == self.layout.digest


@functools.lru_cache(maxsize=8)
def _halo(key: _ByDigest) -> np.ndarray:
    return grids.face_halo(key.layout, DSSIM_CROP)


def horizontal(x: np.ndarray, valid: np.ndarray,
               native: tuple[int, Layout] | None = None) -> tuple[np.ndarray, int] | None:
    """``x`` as float64 horizontal fields for DSSIM, NaN where not valid: (array, slice_ndim) for
    :func:`dssim`, or None where DSSIM is not defined.

    Gridded data: the last two dimensions are a slice. Columns of a cubed sphere (``native`` =
    (column axis, layout)): each horizontal field (every index of the other dimensions, levels
    included) is one slice of the six faces, each with a halo of the 5 columns beyond its edges
    (:func:`xdiffc.grids.face_halo`), as the last three dimensions (6, n + 10, n + 10); the crop of
    :func:`dssim` removes the halo exactly, so every column is scored once, with the neighbours it
    has on the sphere. Hilbert and 1-D layouts: None (no 2-D neighbourhood).
    """
    data = np.where(valid, np.asarray(x, np.float64), np.nan)
    if native is None:
        return (data, 2) if data.ndim >= 2 else None
    axis, layout = native
    if layout.kind != "cubed-sphere":
        return None
    return np.moveaxis(data, axis, -1)[..., _halo(_ByDigest(layout))], 3


def canvas(x: np.ndarray, valid: np.ndarray, native: tuple[int, Layout] | None = None) -> np.ndarray | None:
    """``x`` as float64 2-D slices for the spectral error, NaN where not valid; None where it is not defined.

    Gridded data: the last two dimensions. Columns of an unstructured grid (``native`` =
    (column axis, layout)): the layout's 2-D canvas, as the last two dimensions, with its
    padding slots (``permutation == -1``) NaN.
    """
    data = np.where(valid, np.asarray(x, np.float64), np.nan)
    if native is None:
        return data if data.ndim >= 2 else None
    axis, layout = native
    if len(layout.shape2d) != 2:
        return None
    grid = layout.to_grid(np.moveaxis(data, axis, -1), axis=-1)
    grid[..., layout.permutation.reshape(layout.shape2d) < 0] = np.nan
    return grid


def compare_blocks(blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]], bound: Options | None = None,
                   native: tuple[int, Layout] | None = None, spre_rel_tol: float = 1e-4, spectral: bool = True,
                   enough: Callable[[dict[str, float]], bool] | None = None) -> dict[str, float]:
    """Every metric of reconstructions ``y`` against originals ``x``, over blocks ``(x, y, valid)`` pooled.

    Pearson, KS, spatial relative error, max error, NRMSE and PSNR pool the valid points of all
    blocks; DSSIM is the minimum over all horizontal slices of all blocks, and the spectral error the
    mean over blocks of :func:`spectral_error` on their 2-D slices (``spectral=False`` leaves it
    NaN: it is no criterion, and a search need not pay for it). Keys: ``pcc``, ``ks_d``,
    ``ks_p``, ``spre_pct``, ``dssim``, ``spectral_err``, ``max_abs_err``, ``max_err_over_bound``
    (NaN without a pointwise ``bound``: :func:`max_err_over_bound`),
    ``nrmse``, ``psnr``, ``valid_points``.

    ``enough``, if given, sees the metrics computed so far after the cheap ones and again after
    KS; where it says True, the costlier ones left (KS, DSSIM, the spectral error) stay NaN.
    A search uses it to stop paying once a criterion has failed.
    """
    xs = np.concatenate([np.asarray(x, np.float64)[v] for x, _, v in blocks])
    ys = np.concatenate([np.asarray(y, np.float64)[v] for _, y, v in blocks])
    if xs.size == 0:
        return dict(pcc=math.nan, ks_d=math.nan, ks_p=math.nan, spre_pct=math.nan, dssim=math.nan,
                    spectral_err=math.nan, max_abs_err=0.0, max_err_over_bound=math.nan, nrmse=math.nan,
                    psnr=math.nan, valid_points=0)
    m = dict(pcc=pearson(xs, ys), ks_d=math.nan, ks_p=math.nan, spre_pct=spatial_rel_error(xs, ys, spre_rel_tol),
             dssim=math.nan, spectral_err=math.nan, max_abs_err=float(np.max(np.abs(xs - ys))),
             max_err_over_bound=math.nan if bound is None else max_err_over_bound(xs, ys, bound),
             nrmse=nrmse(xs, ys), psnr=psnr(xs, ys), valid_points=int(xs.size))
    if enough is not None and enough(m):
        return m
    m["ks_d"], m["ks_p"] = ks_test(xs, ys)
    if enough is not None and enough(m):
        return m
    fields_ = [(horizontal(x, v, native), horizontal(y, v, native)) for x, y, v in blocks]
    finite = [s for s in (dssim(a[0], b[0], a[1]) for a, b in fields_ if a is not None) if not math.isnan(s)]
    m["dssim"] = min(finite) if finite else math.nan
    if spectral:
        m["spectral_err"] = _spectral([(canvas(x, v, native), canvas(y, v, native)) for x, y, v in blocks])
    return m


def _spectral(canvases: list[tuple[np.ndarray | None, np.ndarray | None]]) -> float:
    """Mean spectral error over the blocks' 2-D slices that have a valid point (NaN where none do)."""
    errs = [spectral_error(a, b) for a, b in canvases
            if a is not None and np.isfinite(a).reshape(-1, *a.shape[-2:]).any(axis=(1, 2)).all()]
    return float(np.mean(errs)) if errs else math.nan


def compare(x: np.ndarray, y: np.ndarray, valid: np.ndarray | None = None, bound: Options | None = None,
            native: tuple[int, Layout] | None = None, spre_rel_tol: float = 1e-4) -> dict[str, float]:
    """Every metric of ``y`` against ``x`` over the points where ``valid``.

    The default is the module's notion of valid without named fill values: finite and below
    :data:`~xdiffc.masking.FILL_THRESHOLD` in magnitude; pass ``valid`` to exclude a ``_FillValue``.
    """
    x = np.asarray(x)
    valid = ~special_mask(x) if valid is None else np.asarray(valid, bool)
    return compare_blocks([(x, np.asarray(y), valid)], bound, native, spre_rel_tol)


def native_layout(ds: xr.Dataset, name: Hashable) -> tuple[int, Layout] | None:
    """(column axis, layout) of variable ``name`` on an unstructured grid, as the accessor codes it; else None.

    Columns without lat/lon (coded as a 1-D line) get the identity layout, kind "none", whose 1-D
    canvas leaves DSSIM undefined rather than taking (time, ncol) for a 2-D slice.
    """
    var = ds[name].variable
    found = NativeLayouts(ds, "auto", None).of(var)
    if found is not None:
        return var.dims.index(found[0]), found[1]
    dim = next((d for d in var.dims if d in UNSTRUCTURED_DIMS), None)
    if dim is None:
        return None
    n = var.sizes[dim]
    return var.dims.index(dim), Layout("none", n, (n,), np.arange(n))


def lossy_names(other: xr.Dataset) -> list[Hashable]:
    """The variables of a decompressed Dataset that xdiffc wrote lossily (pointwise or l2 bound in attrs)."""
    return [n for n in other.data_vars if is_lossy(other[n].attrs)]


def error_report(original: xr.Dataset, other: xr.Dataset) -> pd.DataFrame:
    """Per lossy variable of ``other`` (a decompressed copy of ``original``): the error against the bound.

    Columns: ``tol``, ``pw_rel_tol`` (only when a variable has one), ``max_abs_err``, ``max_err_over_bound``
    (must be <= 1; the bound at each point is ``min(tol, r |x|)`` with a pointwise-relative bound r), ``nrmse``
    (RMSE over the range of the valid values), ``nrmse_over_bound`` (only when there are ``mode="l2"``
    variables, whose bound is on the NRMSE: must be <= 1; NaN for pointwise ones, and ``tol`` and
    ``max_err_over_bound`` NaN for l2 ones), ``specials_moved`` (points whose NaN/fill status changed: must be 0)
    and ``ratio`` (in-memory bytes over the bytes stored in ``other.encoding["source"]``,
    chunks plus array metadata; NaN when ``other`` did not come from a Zarr store).
    """
    names = [n for n in other.data_vars if is_lossy(other[n].attrs)]
    lazy = []
    for n in names:
        x, y = original[n], other[n]
        ok = valid(x)
        moved = (ok != valid(y)).sum()
        err = abs(y.astype(np.float64) - x.astype(np.float64)).where(ok)
        bound = stored_bound(other[n].attrs)
        limit = None if bound is None else bound.bound_at(x.astype(np.float64))
        if limit is None:  # an l2 bound: no pointwise one
            over = math.nan
        elif np.ndim(limit) == 0:  # one bound for every point
            over = err.max() / limit if limit else xr.where(err.max() == 0, 0.0, math.inf)
        else:  # the bound differs from point to point
            over = (err / limit.where(limit > 0)).fillna(xr.where(err == 0, 0.0, math.inf)).where(ok).max()
        lazy.append((err.max(), (err**2).mean(), x.where(ok).max() - x.where(ok).min(), moved, over))
    stats = dask.compute(*lazy)
    stored = stored_bytes(other.encoding.get("source"), names)
    rows = {}
    for n, (max_err, mse, span, moved, over) in zip(names, stats):
        bound = stored_bound(other[n].attrs)
        bound_nrmse = float(other[n].attrs.get(ATTR_NRMSE, math.nan))
        max_err, span = np.nan_to_num(float(max_err)), float(span)
        nrmse = math.sqrt(float(mse)) / span if span > 0 else 0.0
        rows[n] = {**_bound_columns(bound), "max_abs_err": max_err,
                   "max_err_over_bound": math.nan if bound is None else np.nan_to_num(float(over), nan=0.0,
                                                                                      posinf=math.inf),
                   "nrmse": nrmse, "nrmse_over_bound": nrmse / bound_nrmse,
                   "specials_moved": int(moved), "ratio": original[n].nbytes / stored[n]}
    report = pd.DataFrame.from_dict(rows, orient="index")
    drop = [c for c in ("nrmse_over_bound", "pw_rel_tol") if not report[c].notna().any()]
    return report.drop(columns=drop)


def _bound_columns(bound: Options | None) -> dict[str, float]:
    """The columns that show a variable's pointwise bound (:func:`~xdiffc.xarray.variables.stored_bound`): NaN
    without one, and ``tol`` inf under a pointwise-relative bound alone."""
    tol = math.nan if bound is None else math.inf if bound.tol is None else bound.tol
    relative = None if bound is None else bound.pw_rel_tol
    return {"tol": tol, "pw_rel_tol": math.nan if relative is None else relative}


def assess(original: xr.Dataset, other: xr.Dataset, criteria: str | Criteria | Mapping | None = None,
           variables: list[Hashable] | None = None) -> pd.DataFrame:
    """Per variable of ``other`` (a decompressed copy of ``original``): every metric, and pass or fail.

    ``variables`` default to those xdiffc wrote lossily (``xdiffc_tol`` or ``xdiffc_nrmse`` in their attrs). Columns: ``tol``, the keys of
    :func:`compare_blocks`, ``ratio`` (bytes in memory over bytes in ``other.encoding["source"]``,
    NaN without a store), one ``ok_<metric>`` column per criterion (True, False, or None where
    not applicable), ``passed`` and ``failed`` (the criteria failed, with values and thresholds, as
    :meth:`Criteria.failures`; "" where none). The criteria used are in ``df.attrs["criteria"]``;
    :func:`verdict` sums the table up in one line.
    A ValueError says what does not match when there is no variable to compare, or a variable is
    missing from either Dataset or has other dimensions in each.
    """
    crit = resolve_criteria(criteria)
    names = lossy_names(other) if variables is None else list(variables)
    _check_comparable(original, other, names, variables is None)
    stored = stored_bytes(other.encoding.get("source"), names)
    rows = {}
    for name in names:
        x = original[name]
        ok = valid(x).values
        bound = stored_bound(other[name].attrs)
        m = compare(x.values, other[name].values, ok, bound, native_layout(original, name), crit.spre_rel_tol)
        checks = crit.checks(m)
        rows[name] = {**_bound_columns(bound), **m, "ratio": x.nbytes / stored[name],
                      **{f"ok_{k}": v for k, v in checks.items()},
                      "passed": all(v is not False for v in checks.values()), "failed": ", ".join(crit.failures(m))}
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.attrs["criteria"] = asdict(crit)
    return df


def verdict(df: pd.DataFrame) -> str:
    """One line for an :func:`assess` table: ``PASS: all N variables pass the criteria``, or ``FAIL:`` and each
    failing variable with the criteria it fails, e.g. ``FAIL: pint (dssim 0.412 < 0.995), tke (ks_p 0.01 < 0.05)``."""
    failed = [f"{name} ({df.loc[name, 'failed']})" for name in df.index if not df.loc[name, "passed"]]
    return f"FAIL: {', '.join(failed)}" if failed else f"PASS: all {len(df)} variables pass the criteria"


def _check_comparable(original: xr.Dataset, other: xr.Dataset, names: list[Hashable], default: bool) -> None:
    """A ValueError naming the problem unless every variable in ``names`` is in both Datasets, with the same dims."""
    if not names:
        raise ValueError("the second dataset has no variable that xdiffc compressed lossily (none has a bound "
                         "attribute): is it an xdiffc store? Name variables to compare with --variable" if default
                         else "no variable to compare")
    for where, ds in (("original", original), ("compressed", other)):
        unknown = [str(n) for n in names if n not in ds.data_vars]
        if unknown:
            raise ValueError(f"the {where} dataset has no data variable {unknown}; its data variables are "
                             f"{sorted(map(str, ds.data_vars))}")
    for name in names:
        a, b = original[name], other[name]
        if (a.dims, a.shape) != (b.dims, b.shape):
            raise ValueError(f"{str(name)!r} has dims {dict(a.sizes)} in the original and {dict(b.sizes)} in the "
                             f"compressed dataset: one is not a copy of the other")
