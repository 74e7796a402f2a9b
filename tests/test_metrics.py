"""xdiffc.metrics on hand-made cases with known answers, and xdiffc.tuning's bounds applied for real."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import xarray as xr
import pytest

from xdiffc import grids, metrics, tuning
from xdiffc.datasets import open_sample
from xdiffc.grids import Layout
from xdiffc.options import Options

@pytest.fixture(scope="module")
def trefht():
    return open_sample("trefht").isel(time=slice(0, 2))


def smooth_field(shape=(2, 40, 48), seed=0) -> np.ndarray:
    yy, xx = np.meshgrid(np.linspace(0, 3, shape[-2]), np.linspace(0, 4, shape[-1]), indexing="ij")
    rng = np.random.default_rng(seed)
    return np.stack([280 + 10 * np.sin(yy + k) * np.cos(xx) + rng.normal(0, 0.01, yy.shape) for k in range(shape[0])])


# --- hand-made cases -------------------------------------------------------------------------

def test_identical_fields_are_perfect():
    x = smooth_field()
    m = metrics.compare(x, x.copy(), bound=Options(tol=0.1))
    assert m["pcc"] == 1.0 and m["dssim"] == 1.0 and m["ks_p"] == 1.0 and m["ks_d"] == 0.0
    assert m["spre_pct"] == 0.0 and m["nrmse"] == 0.0 and m["psnr"] == math.inf and m["max_err_over_bound"] == 0
    assert metrics.resolve_criteria("baker").passes(m)


def test_pearson_by_hand():
    # mx = 2, my = 7/3: sum dx dy = 3, sum dx^2 = 2, sum dy^2 = 42/9
    assert metrics.pearson([1, 2, 3], [1, 2, 4]) == pytest.approx(3 / math.sqrt(2 * 42 / 9), rel=1e-12)
    assert metrics.pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert metrics.pearson([5, 5, 5], [5, 5, 5]) == 1.0  # a constant field kept exactly
    assert metrics.pearson([5, 5, 5], [5, 5, 6]) == -1.0  # ldcpy's -1 for a zero standard deviation


def test_ks_constant_offset():
    x = np.arange(100.0)
    d, p = metrics.ks_test(x, x + 50)  # the empirical CDFs differ by 50/100 on [50, 100)
    assert d == pytest.approx(0.5) and p < 2 * math.exp(-2 * 0.5**2 * 50) * 10
    d, p = metrics.ks_test(x, x + 1)  # a shift of one step: D = 1/100, indistinguishable
    assert d == pytest.approx(0.01) and p > 0.99
    assert metrics.ks_test(x, x) == (0.0, 1.0)


def test_spatial_relative_error_by_hand():
    x = np.array([1.0, 2.0, 0.0, -4.0, 0.0])
    y = np.array([1.0002, 2.0, 5e-5, -4.0008, 2e-4])
    # relative errors 2e-4, 0, |5e-5| (x == 0: absolute), 2e-4, |2e-4| (absolute): 3 of 5 exceed 1e-4
    assert metrics.spatial_rel_error(x, y) == pytest.approx(60.0)
    assert metrics.spatial_rel_error(x, y, rel_tol=1e-3) == 0.0


def test_error_norms_by_hand():
    x = np.array([0.0, 1.0, 2.0, 3.0])
    y = x + np.array([1.0, -1.0, 1.0, -1.0])
    assert metrics.nrmse(x, y) == pytest.approx(1 / 3)
    assert metrics.psnr(x, y) == pytest.approx(20 * math.log10(3))
    assert metrics.max_err_over_bound(x, y, Options(tol=2.0)) == 0.5
    assert metrics.max_err_over_bound(x, x, Options(tol=0)) == 0.0
    assert metrics.max_err_over_bound(x, y, Options(tol=0)) == math.inf


def test_error_over_a_pointwise_relative_bound_by_hand():
    """The bound at each point is min(tol, r |x|): 0 at x == 0, where only an exact value passes."""
    x = np.array([0.0, 1.0, -2.0, 100.0])
    y = x + np.array([0.0, 0.05, -0.05, 0.5])
    assert metrics.max_err_over_bound(x, y, Options(pw_rel_tol=0.1)) == pytest.approx(0.5)  # 0.05 / 0.1
    assert metrics.max_err_over_bound(x, y, Options(tol=1.0, pw_rel_tol=0.1)) == pytest.approx(0.5)
    assert metrics.max_err_over_bound(x, y, Options(tol=0.25, pw_rel_tol=0.1)) == pytest.approx(2.0)  # 0.5 / 0.25
    assert metrics.max_err_over_bound(x, y + np.array([1e-9, 0, 0, 0]), Options(pw_rel_tol=0.1)) == math.inf


def test_gaussian_window():
    g = metrics.gaussian_window()
    assert g.shape == (11,) and g.sum() == pytest.approx(1.0) and np.allclose(g, g[::-1])
    assert g[5] / g[4] == pytest.approx(math.exp(1 / (2 * 1.5**2)))


def test_dssim_spike_by_hand():
    # An 11 x 11 slice keeps only its centre after cropping 5 points. Original: a unit spike there,
    # reconstruction: zeros. With w0 = g[5]^2 the centre weight: mu_a = E[a^2] = w0, mu_b = var_b = cov = 0.
    a = np.zeros((11, 11))
    a[5, 5] = 1.0
    w0 = metrics.gaussian_window()[5] ** 2
    c = 1e-8
    want = c / (w0**2 + c) * c / (w0 - w0**2 + c)
    assert metrics.dssim(a, np.zeros_like(a)) == pytest.approx(want, rel=1e-9)


def test_dssim_nan_preserving_filter_matches_direct_sums():
    rng = np.random.default_rng(1)
    a = rng.random((11, 11))
    b = a + rng.normal(0, 0.05, a.shape)
    a[rng.random(a.shape) < 0.3] = np.nan
    a[5, 5] = 0.5
    b[np.isnan(a)] = np.nan
    # direct, non-separable: rescale over the joint range, quantise, window weights on valid points only
    lo, hi = np.nanmin([a, b]), np.nanmax([a, b])
    qa, qb = (np.round((v - lo) / (hi - lo) * 255) / 255 for v in (a, b))
    w = np.outer(metrics.gaussian_window(), metrics.gaussian_window()) * ~np.isnan(a)
    w /= w.sum()
    mean = lambda v: np.nansum(w * v)  # noqa: E731
    ma, mb = mean(qa), mean(qb)
    va, vb, cov = mean(qa * qa) - ma**2, mean(qb * qb) - mb**2, mean(qa * qb) - ma * mb
    c = 1e-8
    want = (2 * ma * mb + c) * (2 * cov + c) / ((ma**2 + mb**2 + c) * (va + vb + c))
    assert metrics.dssim(a, b) == pytest.approx(want, rel=1e-9)


def test_dssim_falls_as_noise_grows():
    x = open_sample("trefht").TREFHT.values[:2].astype(np.float64)
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(x.shape)
    values = [metrics.dssim(x, x + s * noise) for s in (0.0, 0.01, 0.1, 0.5, 2.0, 8.0)]
    assert values[0] == 1.0
    assert all(a > b for a, b in zip(values, values[1:])), values


def test_dssim_is_the_minimum_over_slices_and_ignores_missing_points():
    x = smooth_field()
    y = x.copy()
    y[1] += np.random.default_rng(3).normal(0, 0.5, y[1].shape)
    assert metrics.dssim(x, y) == pytest.approx(metrics.dssim(x[1], y[1]))
    holed = x.copy()
    holed[:, 10:20, 10:30] = np.nan
    assert metrics.dssim(holed, holed) == 1.0
    assert math.isnan(metrics.dssim(x[0, 0], y[0, 0]))  # 1-D: not defined
    assert math.isnan(metrics.dssim(x[:, :8, :8], y[:, :8, :8]))  # nothing left after cropping


def test_dssim_of_a_stack_is_each_slice_on_its_own(monkeypatch):
    """Slices filtered together (in batches smaller than the stack too) give each slice's own map bit for bit:
    its own range, its own missing points, constant and empty slices included."""
    rng = np.random.default_rng(4)
    x = smooth_field((6, 24, 30))
    y = x + rng.normal(0, 0.05, x.shape)
    x[1, 3:9, 4:12] = np.nan  # a hole
    x[2] = 7.0  # constant, kept exactly
    y[2] = 7.0
    x[3] = np.nan  # no data
    y[5] *= 3.0  # another range than x's
    y = np.where(np.isnan(x), np.nan, y)
    stacked = metrics.dssim_map(x, y)
    for k in (0, 1, 2, 4, 5):
        assert np.array_equal(stacked[k], metrics.dssim_map(x[k], y[k]), equal_nan=True)
    assert np.isnan(stacked[3]).all()
    per_slice = min(float(np.nanmean(metrics.dssim_map(x[k], y[k])[5:-5, 5:-5])) for k in (0, 1, 2, 4, 5))
    assert metrics.dssim(x, y) == per_slice
    monkeypatch.setattr(metrics, "DSSIM_BATCH", 2 * 24 * 30)
    assert metrics.dssim(x, y) == per_slice


def test_canvas_masks_layout_padding_and_skips_1d_layouts():
    layout = Layout("cubed-sphere", 3, (2, 2), np.array([2, 0, 1, -1]))
    x = np.array([[1.0, 2.0, 3.0]])
    grid = metrics.canvas(x, np.ones_like(x, bool), (1, layout))
    assert grid.shape == (1, 2, 2) and np.array_equal(grid[0, :, :].ravel()[:3], [3.0, 1.0, 2.0])
    assert np.isnan(grid[0, 1, 1])
    line = Layout("hilbert", 3, (3,), np.array([2, 0, 1]))
    assert metrics.canvas(x, np.ones_like(x, bool), (1, line)) is None


def native_field(ne: int, kind: str, seed: int = 0, levels: int = 6):
    """(time=2, ncol, lev) on a shuffled synthetic cubed sphere: level k is 1000 k plus a smooth horizontal
    field, level 0 a constant (pressure above the hybrid levels). Returns the field, lat, lon, the columns'
    unit vectors and the smooth horizontal function."""
    lat, lon = grids.cube_points(ne, kind)
    order = np.random.default_rng(seed).permutation(lat.size)
    lat, lon = lat[order], lon[order]
    p = grids.unit_vectors(lat, lon)

    def horiz(k: int, phase: float = 0.0) -> np.ndarray:
        return np.sin(3 * p[:, 0] + k + phase) * np.cos(2 * p[:, 1]) + p[:, 2]

    x = np.stack([np.stack([1000.0 * k + (0 if k == 0 else 20) * horiz(k, t) for k in range(levels)], -1)
                  for t in range(2)])
    return x, lat, lon, horiz


@pytest.mark.parametrize("ne, kind", [(6, "pg2"), (4, "np4")])
def test_dssim_on_a_cubed_sphere_scores_each_horizontal_field(ne, kind):
    """(time, ncol, lev): DSSIM is the minimum over the horizontal fields (one per time and level) scored on
    their own, whatever the order of the columns or of the dimensions; 1 for a copy, close to 1 for a smooth
    perturbation, lower as noise grows. Taken over (ncol, lev) slices, it was not defined (lev < 11) or
    meant nothing."""
    x, lat, lon, horiz = native_field(ne, kind)
    layout = grids.detect(lat, lon)
    native = (1, layout)
    assert layout.kind == "cubed-sphere"
    assert metrics.compare(x, x.copy(), native=native)["dssim"] == 1.0
    smooth = x + 0.05 * np.stack([np.stack([horiz(k, 1.0) for k in range(x.shape[-1])], -1)] * 2)
    rng = np.random.default_rng(1)
    noise = rng.standard_normal(x.shape)
    scores = [metrics.compare(x, y, native=native)["dssim"] for y in (smooth, x + 0.5 * noise, x + 2 * noise)]
    assert 0.999 < scores[0] < 1 and scores[0] > scores[1] > scores[2] and scores[1] < 0.995

    y = x + 0.5 * noise
    whole = metrics.compare(x, y, native=native)["dssim"]
    alone = [metrics.compare(x[t, :, k], y[t, :, k], native=(0, layout))["dssim"] for t in range(2) for k in range(6)]
    assert all(math.isnan(alone[t * 6]) for t in range(2))  # level 0 is constant: left out
    assert whole == np.nanmin(alone)
    assert metrics.compare(np.swapaxes(x, 1, 2), np.swapaxes(y, 1, 2), native=(2, layout))["dssim"] == whole
    again = np.random.default_rng(2).permutation(lat.size)  # another column order, another permutation
    relaid = grids.detect(lat[again], lon[again])
    assert metrics.compare(x[:, again], y[:, again], native=(1, relaid))["dssim"] == pytest.approx(whole, abs=1e-12)


def test_constant_slices_are_left_out_of_dssim():
    """An original slice with one value has no structure: DSSIM rescaled to its own range scored any change
    near 0 (-0.07 to 1e-13 on E3SM pressure above the hybrid levels); it is left out, and the bound judges it."""
    x = smooth_field((3, 24, 30))
    x[0] = 5000.0
    y = x.copy()
    y[0] += np.random.default_rng(5).uniform(-1e-3, 1e-3, y[0].shape)
    assert metrics.dssim_map(x[0], y[0])[5:-5, 5:-5].mean() < 0.1  # what ldcpy's rescaling makes of it
    m = metrics.compare(x, y, bound=Options(tol=1e-3))
    assert m["dssim"] == 1.0 and m["max_err_over_bound"] <= 1
    assert metrics.compare(x, y, bound=Options(tol=1e-4))["max_err_over_bound"] > 1  # beyond the bound: the bound says so
    flat = np.full((2, 20, 20), 3.0)
    m = metrics.compare(flat, flat + 1e-6)
    assert math.isnan(m["dssim"]) and metrics.Criteria().checks(m)["dssim"] is None


def test_dssim_is_not_defined_on_hilbert_and_1d_layouts():
    x, lat, lon, _ = native_field(2, "pg2")
    for kind in ("hilbert", "none"):
        layout = grids.detect(lat, lon, kind)
        assert metrics.horizontal(x, np.ones_like(x, bool), (1, layout)) is None
        assert math.isnan(metrics.compare(x, x + 0.1, native=(1, layout))["dssim"])


def test_tune_keeps_hybrid_pressure_lossy_on_a_cubed_sphere():
    """Pressure on hybrid levels, (time, ncol, lev) on ne4pg2: above the hybrid levels every column has the same
    pressure. DSSIM scored those levels near 0 at any bound, and tune picked lossless; now it finds a lossy
    bound whose store passes every criterion, DSSIM included and defined."""
    lat, lon = grids.cube_points(4, "pg2")
    p = grids.unit_vectors(lat, lon)
    ps = 1e5 + 2000 * np.sin(3 * p[:, 0]) * np.cos(2 * p[:, 1]) - 1500 * p[:, 2] ** 2  # surface pressure
    hyam, hybm = np.geomspace(0.001, 0.2, 72), np.r_[np.zeros(30), np.linspace(0.01, 0.8, 42)]  # as EAM's 72
    pmid = (hyam * 1e5 + hybm * ps[:, None])[None].astype(np.float32)
    ds = xr.Dataset({"p_mid": (("time", "ncol", "lev"), pmid)},
                    coords={"lat": ("ncol", lat, {"units": "degrees_north"}),
                            "lon": ("ncol", lon, {"units": "degrees_east"})})
    found = tuning.suggest_tol(ds, variables=["p_mid"], iterations=4)
    row = found.table.loc["p_mid"]
    assert row["kind"] != "lossless" and row["ratio"] > 2 and 0.995 <= row["dssim"] < 1
    checked = ds.gcdtc.assess(ds.gcdtc.roundtrip(**found.kwargs))
    assert checked.loc["p_mid", "passed"] and checked.loc["p_mid", "dssim"] >= 0.995


def test_missing_points_are_ignored():
    x = smooth_field()
    y = x + 0.001
    x[:, :5] = np.nan
    y[:, :5] = 1e20  # whatever comes back at a missing point does not count
    m = metrics.compare(x, y, np.isfinite(x), Options(tol=0.001))
    assert m["valid_points"] == np.isfinite(x).sum() and m["max_err_over_bound"] == pytest.approx(1, rel=1e-6)


def test_criteria():
    crit = metrics.resolve_criteria("baker")
    assert (crit.pcc_min, crit.ks_p_min, crit.spre_max_pct, crit.dssim_min) == (0.99999, 0.05, 5.0, 0.995)
    loose = metrics.resolve_criteria({"spre_max_pct": 50})
    assert loose.spre_max_pct == 50 and loose.pcc_min == 0.99999
    m = dict(pcc=0.999999, ks_p=0.5, spre_pct=10.0, dssim=math.nan, max_err_over_bound=0.9)
    assert crit.checks(m) == {"pcc": True, "ks_p": True, "spre_pct": False, "dssim": None,
                              "max_err_over_bound": True}
    assert not crit.passes(m) and loose.passes(m)
    with pytest.raises(ValueError, match="unknown criteria"):
        metrics.resolve_criteria("strict")
    with pytest.raises(ValueError, match="pcc"):
        metrics.resolve_criteria({"pcc": 0.9})


def test_failures_and_verdict_name_each_failing_criterion():
    crit = metrics.Criteria()
    m = dict(pcc=0.9999, ks_p=0.5, spre_pct=12.5, dssim=0.41234, max_err_over_bound=1.5)
    assert crit.failures(m) == ["pcc 0.9999 < 0.99999", "spre_pct 12.5 > 5", "dssim 0.4123 < 0.995",
                                "max_err_over_bound 1.5 > 1"]
    assert crit.failures(dict(m, pcc=1.0, spre_pct=math.nan, dssim=math.nan, max_err_over_bound=0.5)) == []
    df = pd.DataFrame({"passed": [True, False, False], "failed": ["", "dssim 0.4123 < 0.995", "ks_p 0.01 < 0.05"]},
                      index=["T", "pint", "tke"])
    assert metrics.verdict(df) == "FAIL: pint (dssim 0.4123 < 0.995), tke (ks_p 0.01 < 0.05)"
    assert metrics.verdict(df.iloc[:1]) == "PASS: all 1 variables pass the criteria"


def test_assess_a_roundtrip(trefht):
    tight = metrics.assess(trefht, trefht.gcdtc.roundtrip(rel_tol=1e-6))
    loose = metrics.assess(trefht, trefht.gcdtc.roundtrip(rel_tol=1e-2), criteria={"dssim_min": 0.5})
    assert tight.loc["TREFHT", "passed"] and tight.loc["TREFHT", "ratio"] > 1
    assert not loose.loc["TREFHT", "passed"] and loose.loc["TREFHT", "ok_spre_pct"] == False  # noqa: E712
    assert loose.attrs["criteria"]["dssim_min"] == 0.5
    assert {"pcc", "ks_p", "spre_pct", "dssim", "nrmse", "psnr", "max_err_over_bound"} <= set(tight.columns)


def test_assess_says_what_does_not_match(trefht):
    out = trefht.gcdtc.roundtrip(rel_tol=1e-3)
    with pytest.raises(ValueError, match=r"'TREFHT' has dims \{'time': 1, .* in the original and \{'time': 2,"):
        metrics.assess(trefht.isel(time=slice(0, 1)), out)
    with pytest.raises(ValueError, match=r"the original dataset has no data variable \['T'\]"):
        metrics.assess(trefht, out, variables=["T"])
    with pytest.raises(ValueError, match="no variable that xdiffc compressed lossily"):
        metrics.assess(trefht, trefht)


# --- choosing the bound ----------------------------------------------------------------------

def test_sample_slices_are_chunks_cut_to_the_budget():
    whole = tuning.sample_slices((10, 4, 4), (10, 4, 4), budget=1000)
    assert whole == [(slice(0, 10), slice(0, 4), slice(0, 4))]
    cut = tuning.sample_slices((100, 4, 4), (10, 4, 4), budget=64)
    assert len(cut) == 4 and all(s[0].stop - s[0].start == 1 for s in cut)
    assert [s[0].start for s in cut] == [0, 30, 60, 90]


@pytest.mark.parametrize("name, part", [("trefht", dict(time=slice(0, 2))),
                                        ("tos", dict(nlat=slice(100, 228), nlon=slice(0, 160)))])  # with land
def test_suggested_bounds_pass_when_applied(name, part):
    ds = open_sample(name).isel(part)
    found = tuning.suggest_tol(ds, iterations=5)
    var = found.table.index[0]
    bound = found[var] if found.table.loc[var, "kind"] == "tol" else found.pw_rel_tol[var]
    assert bound > 0 and found.table.loc[var, "passed"] and found.table.loc[var, "ratio"] > 1
    assert found.table.loc[var, "binding"]  # a looser bound was tried and failed
    report = ds.gcdtc.assess(ds.gcdtc.roundtrip(**found.kwargs))
    assert report["passed"].all(), report.T


def test_accessor_suggest_tol_is_a_dict_for_compress():
    """Without the spatial relative error (a pointwise-relative test) no pointwise-relative search runs: absolute bounds."""
    ds = open_sample("trefht").isel(time=slice(0, 1), lat=slice(16, 48))
    tol = ds.gcdtc.suggest_tol(criteria={"spre_max_pct": 100}, sample=4096)
    assert isinstance(tol, dict) and set(tol) == {"TREFHT"} and tol.criteria.spre_max_pct == 100
    assert tol.table.loc["TREFHT", "sample_values"] == 4096 and tol.table.loc["TREFHT", "kind"] == "tol"
    out = ds.gcdtc.roundtrip(tol=tol, rel_tol=None)
    assert out.TREFHT.attrs["xdiffc_tol"] == tol["TREFHT"]
    assert ds.gcdtc.assess(out, criteria={"spre_max_pct": 100})["passed"].all()


def test_suggest_tol_rejects_unknown_variables(trefht):
    with pytest.raises(ValueError, match="no data variable"):
        tuning.suggest_tol(trefht, variables=["T"])
    with pytest.raises(ValueError, match="nothing to tune"):
        tuning.suggest_tol(trefht[["lat"]].assign(n=("lat", np.arange(trefht.sizes["lat"]))))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tune_never_proposes_a_bound_below_float_spacing(dtype):
    """Criteria that only the tiniest error passes: lossless, or a bound that can move a value at all."""
    rng = np.random.default_rng(0)
    ds = xr.Dataset({"T": (("time", "y", "x"), (1e4 + rng.normal(0, 1, (4, 16, 32))).astype(dtype))})
    found = tuning.suggest_tol(ds, criteria={"pcc_min": 1 - 1e-15, "spre_max_pct": 1e-12}, iterations=4)
    spacing = float(np.spacing(dtype(np.abs(ds["T"].values).max())))
    if "T" in found:
        assert found["T"] == 0 or found["T"] >= spacing
    else:  # pointwise-relative: r |x| below the spacing moves nothing either
        assert found.pw_rel_tol["T"] >= np.finfo(dtype).eps
    if dtype is np.float32:  # no absolute bound above float32's spacing at 1e4 (about 1e-3) keeps pcc this close to 1
        assert found.table.loc["T", "kind"] != "tol"


def test_compare_leaves_out_remapped_fill_by_default():
    x = np.linspace(0, 1, 200).reshape(10, 20)
    x[0, 0] = -9.97e36  # remapped "junk" fill, as in regridded ocean fields
    y = x.copy()
    y[0, 0] = 0.0
    m = metrics.compare(x, y)
    assert m["pcc"] == 1.0 and m["nrmse"] == 0.0


def test_tune_finds_a_pointwise_relative_bound_where_the_spatial_relative_error_decides():
    """Precipitation spans orders of magnitude: no absolute bound passes, a pointwise-relative one does."""
    ds = open_sample("prect").isel(time=slice(0, 2), lat=slice(64, 128), lon=slice(0, 128))
    found = tuning.suggest_tol(ds, variables=["PRECT"], iterations=5)
    row = found.table.loc["PRECT"]
    assert row["kind"] == "pw_rel_tol" and row["passed"] and not row["lossless"] and row["ratio"] > 1
    assert set(found.pw_rel_tol) == {"PRECT"} and "PRECT" not in found
    out = ds.gcdtc.roundtrip(**found.kwargs)
    assert out.PRECT.attrs["xdiffc_pw_rel_tol"] == found.pw_rel_tol["PRECT"]
    assert ds.gcdtc.assess(out)["passed"].all()
