"""xdiffc.tuning's search: where it starts, how it narrows, what it tries, and the CLI's defaults."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st

import xdiffc
from xdiffc import bitstream, metrics, tuning
from xdiffc.cli import build_parser
from xdiffc.datasets import open_sample
from xdiffc.options import Options

LO, HI = 1e-6, 0.1


def threshold_trials(threshold: float):
    """A trial that passes at bounds <= ``threshold``, and the list of the bounds it was asked for."""
    seen: list[float] = []

    def trial(tol: float) -> tuning.Trial:
        seen.append(tol)
        return tuning.Trial(tol, 1, 1, {}, tol <= threshold)

    return trial, seen


def test_resolution_is_that_of_bisecting_the_whole_bracket():
    assert tuning.resolution(8) == pytest.approx(1e5 ** (1 / 256))  # about 4.6 %
    assert tuning.resolution(0) == pytest.approx(1e5)


def test_gallop_up_by_hand():
    """Guess 1e-4 passes, threshold 1.1e-4: up by f^2 (pass), by f^4 (fail), two bisections of f^4 (f = 1.046)."""
    f = tuning.resolution(8)
    trial, seen = threshold_trials(1.1e-4)
    good, bad = tuning.gallop(trial, 1e-4, LO, HI, iterations=8)
    assert seen == pytest.approx([1e-4 * f**k for k in (0, 2, 6, 4, 3)], rel=1e-12)
    assert (good.tol, bad.tol) == pytest.approx((1e-4 * f**2, 1e-4 * f**3), rel=1e-12)


def test_gallop_down_by_hand():
    """Guess 1e-4 fails, threshold 3e-5: lo (pass), down by 2 (fail), by 4 (pass), 5 bisections of that factor of 4."""
    f = tuning.resolution(8)
    trial, seen = threshold_trials(3e-5)
    good, bad = tuning.gallop(trial, 1e-4, LO, HI, iterations=8)
    assert seen[:4] == [1e-4, LO, 5e-5, 1.25e-5] and len(seen) == 4 + 5 and len(set(seen)) == len(seen)
    assert good.tol <= 3e-5 < bad.tol and bad.tol / good.tol <= f


def test_gallop_steps_coarsely_up_from_an_exact_guess():
    """A guess the codec stored exactly says nothing about how near the answer is: up by 2, then 4."""
    seen = []

    def trial(tol):
        seen.append(tol)
        return tuning.Trial(tol, 1, 1, {"max_abs_err": 0.0 if tol <= 1e-4 else 1e-9}, tol <= 3e-4)

    good, bad = tuning.gallop(trial, 5e-5, LO, HI, iterations=8)
    assert seen[:3] == [5e-5, 1e-4, 4e-4] and good.tol <= 3e-4 < bad.tol <= good.tol * tuning.resolution(8)


def test_gallop_ends_at_the_bracket():
    trial, seen = threshold_trials(1.0)
    good, bad = tuning.gallop(trial, 1e-4, LO, HI)
    assert bad is None and good.tol == HI and max(seen) == HI
    trial, seen = threshold_trials(0.0)
    good, bad = tuning.gallop(trial, 1e-4, LO, HI)
    assert good is None and bad.tol == LO and seen == [1e-4, LO]  # nothing passes: two trials
    trial, seen = threshold_trials(0.0)
    assert tuning.gallop(trial, LO / 10, LO, HI) == (None, tuning.Trial(LO, 1, 1, {}, False)) and seen == [LO]


@given(threshold=st.floats(-8, 0).map(lambda e: 10.0**e), start=st.floats(-7, -1).map(lambda e: 10.0**e),
       iterations=st.integers(0, 14))
def test_gallop_finds_the_threshold_to_the_resolution(threshold, start, iterations):
    """For a monotone pass/fail: the loosest bound seen to pass and the tightest seen to fail bracket the
    threshold within the resolution; every bound tried lies in [lo, hi]."""
    trial, seen = threshold_trials(threshold)
    good, bad = tuning.gallop(trial, start, LO, HI, iterations)
    assert all(LO <= t <= HI for t in seen)
    assert (good is None) == (threshold < LO) and (bad is None) == (threshold >= HI)
    if good is not None and bad is not None:
        assert good.tol <= threshold < bad.tol
        assert bad.tol / good.tol <= tuning.resolution(iterations) * (1 + 1e-12)
        assert good.tol == max(t for t in seen if t <= threshold)


@given(threshold=st.floats(-6, -1.5).map(lambda e: 10.0**e), off=st.floats(1, 1.04))
def test_a_guess_just_below_the_answer_costs_three_trials(threshold, off):
    """A passing guess within the resolution below the answer (where the spatial relative error decides, the
    answer lies just above its safe bound): 3 trials, against the 2 + 8 of bisecting the whole bracket."""
    trial, seen = threshold_trials(threshold)
    good, bad = tuning.gallop(trial, threshold / off, LO, HI, iterations=8)
    assert len(seen) == 3 and good.tol <= threshold < bad.tol


def test_spre_safe_by_hand():
    """|x| = 1..100: 5 % of the points lie below 6, so at 1e-4 * 6 no other point can move by over 1e-4 of itself."""
    x = np.arange(1.0, 101.0) * np.where(np.arange(100) % 2, 1, -1)
    assert tuning.spre_safe([(x, np.ones(100, bool))], metrics.Criteria()) == pytest.approx(6e-4, rel=1e-8)
    assert tuning.spre_safe([(x, np.zeros(100, bool))], metrics.Criteria()) == 0.0


@given(seed=st.integers(0, 2**32 - 1), zeros=st.floats(0, 0.2), pct=st.sampled_from([0.0, 1.0, 5.0, 50.0, 100.0]))
def test_spre_safe_passes_the_spatial_relative_error_whatever_the_codec_does(seed, zeros, pct):
    """Any reconstruction within the bound, even the worst (every point moved by the whole bound), passes."""
    rng = np.random.default_rng(seed)
    x = rng.lognormal(0, 3, 500) * rng.choice([-1, 1], 500)
    x[rng.random(500) < zeros] = 0.0
    valid = rng.random(500) < 0.9
    crit = metrics.Criteria(spre_max_pct=pct)
    tol = tuning.spre_safe([(x, valid)], crit)
    y = x + tol * rng.choice([-1, 1], 500)
    assert metrics.spatial_rel_error(x[valid], y[valid], crit.spre_rel_tol) <= pct


def test_the_first_trial_is_the_guess_and_no_bound_is_below_float_spacing():
    """The absolute search tries spre_safe first; a guess below the float spacing starts at the spacing."""
    x = (1e4 + np.arange(64.0).reshape(8, 8)).astype(np.float32)
    tried = []

    def compressor(a, tol):
        tried.append(tol)
        return a.nbytes, a.astype(np.float64)

    blocks = [(x, np.ones(x.shape, bool))]
    crit = metrics.Criteria()
    tuning.search(blocks, compressor, crit)
    assert tried[0] == pytest.approx(tuning.spre_safe(blocks, crit)) and tried[0] > float(np.spacing(np.float32(1e4)))
    tried.clear()
    tuning.search(blocks, compressor, metrics.Criteria(spre_rel_tol=1e-12))
    assert tried[0] == tuning.float_spacing(blocks) and min(tried) >= tuning.float_spacing(blocks)


def test_tune_a_multivariable_file():
    """Every lossy variable of a multi-variable file gets a bound that passes its re-check, and says what decided."""
    ds = open_sample("e3sm_rad")[["tmid", "rel", "pmid", "sfc_alb_dir", "co2vmr", "lat", "lon"]]  # lat, lon: the grid
    found = tuning.suggest_tol(ds)
    table = found.table
    assert set(table.index) == {"tmid", "rel", "pmid", "sfc_alb_dir"}  # co2vmr(time): one number a step, kept exact
    assert table["passed"].all()
    for name, row in table.iterrows():
        assert row["kind"] in ("tol", "pw_rel_tol", "lossless")
        if row["kind"] == "lossless":
            assert found[name] == 0
        elif row["sample_values"] > 1:
            assert row["binding"]  # a looser bound was tried and failed
    # pressure above the hybrid levels is one value per level: DSSIM leaves those levels out (it scored them
    # near 0 at any bound, and pmid was kept lossless), the KS test keeps passing at a pointwise-relative bound
    assert table.loc["pmid", "kind"] != "lossless" and table.loc["pmid", "dssim"] >= 0.995
    out = ds.gcdtc.roundtrip(**found.kwargs)
    report = ds.gcdtc.assess(out)
    assert report["passed"].all(), report.T
    assert report["dssim"].between(0.995, 1).all()  # defined on every variable: the ne4pg2 horizontal fields


def test_cli_defaults_are_the_modules():
    args = build_parser().parse_args(["tune", "x.nc"])
    assert args.iterations == tuning.ITERATIONS and args.sample is None


def test_a_failing_trial_skips_the_costly_metrics_until_completed():
    """Where a cheap criterion fails, KS and DSSIM are left out; completing the trial gives the full metrics."""
    ds = open_sample("trefht").isel(time=slice(0, 2))
    vs = tuning.sample_variable(ds, "TREFHT")
    run = tuning.xdiffc_compressor(vs.fill_values, vs.native)
    crit = metrics.Criteria()
    trial = tuning.evaluate(vs.blocks, run, 1.0, crit, vs.native)  # 1 K: the spatial relative error fails
    assert not trial.passed and math.isnan(trial.metrics["ks_p"]) and math.isnan(trial.metrics["dssim"])
    full = metrics.compare_blocks([(x, run(x, 1.0)[1], v) for x, v in vs.blocks], Options(tol=1.0), vs.native,
                                  spectral=False)
    assert trial.completed().metrics == pytest.approx(full, nan_ok=True) and trial.rest is None
    assert crit.checks(trial.metrics) == crit.checks(full)


def test_a_sample_stored_exactly_is_judged_by_its_lossy_reconstruction():
    """A block that ``compress`` stores exactly (cheaper than any lossy stream) would pass every criterion, while a
    store's larger chunks of the field are coded lossily: the search's compressor returns the lossy reconstruction."""
    x = np.random.default_rng(5).integers(0, 16, size=64).astype(np.float32)
    assert bitstream.Stream.from_bytes(xdiffc.compress(x, tol=0.45)).header.mode == "lossless"
    nbytes, y = tuning.xdiffc_compressor()(x, 0.45)
    assert not np.array_equal(y, x) and np.abs(y - x).max() <= 0.45
    assert nbytes == len(xdiffc.compress(x, tol=0.45, exact_floor=False))


def test_the_bound_found_is_confirmed_on_a_wider_sample(monkeypatch):
    """A bound that passes on the search sample but fails on the wider one steps down by the resolution until it
    passes there, and the table reports the wider sample."""
    rng = np.random.default_rng(2)
    t = np.arange(40)[:, None, None]
    y, x = np.meshgrid(np.linspace(0, 3, 24), np.linspace(0, 6, 32), indexing="ij")
    data = 280 + 10 * np.sin(x + 0.3 * t) * np.cos(y) + rng.normal(0, 0.5, (40, 24, 32))
    ds = xr.Dataset({"T": (("time", "lat", "lon"), data.astype(np.float32))},
                    coords={"time": xr.date_range("2000-01-01", periods=40, freq="D", use_cftime=False)})
    budget = 4 * 24 * 32
    narrow = tuning.suggest_tol(ds, sample=budget, variables=["T"])
    kind = narrow.table.loc["T", "kind"]
    assert kind in ("tol", "pw_rel_tol")
    bound = narrow["T"] if kind == "tol" else narrow.pw_rel_tol["T"]
    real = tuning.evaluate
    sizes = []

    def strict(blocks, compressor, tol, criteria, native=None, check_bound=True):
        trial = real(blocks, compressor, tol, criteria, native, check_bound)
        sizes.append(sum(x.size for x, _ in blocks))
        if sizes[-1] > budget and tol > bound / tuning.resolution() ** 1.5:  # the wider sample is stricter
            trial.passed = False
        return trial

    monkeypatch.setattr(tuning, "evaluate", strict)
    found = tuning.suggest_tol(ds, sample=budget, variables=["T"])
    got = found["T"] if kind == "tol" else found.pw_rel_tol["T"]
    assert got == pytest.approx(bound / tuning.resolution() ** 2)
    assert found.table.loc["T", "sample_values"] == ds["T"].size == max(sizes)


@pytest.mark.parametrize("fails", [0, 3, tuning.CHECK_STEPS, tuning.CHECK_STEPS + 1])
def test_confirm_steps_down_by_the_factor_at_most_check_steps_times(monkeypatch, fails):
    """The bound, then the bound over factor, factor**2, ... up to factor**CHECK_STEPS: the first that passes, else
    None after CHECK_STEPS + 1 evaluations."""
    tried = []

    def first_fail(blocks, compressor, tol, criteria, native=None, check_bound=True):
        tried.append(tol)
        return tuning.Trial(tol, 1, 1, {}, len(tried) > fails)

    monkeypatch.setattr(tuning, "evaluate", first_fail)
    factor = tuning.resolution()
    trial, count = tuning.confirm([], None, 0.5, metrics.Criteria(), None, factor)
    assert tried == pytest.approx([0.5 / factor**k for k in range(min(fails, tuning.CHECK_STEPS) + 1)])
    assert count == len(tried)
    if fails <= tuning.CHECK_STEPS:
        assert trial.passed and trial.tol == pytest.approx(0.5 / factor**fails)
    else:
        assert trial is None and count == tuning.CHECK_STEPS + 1


def _field_of_40_days() -> xr.Dataset:
    rng = np.random.default_rng(2)
    t = np.arange(40)[:, None, None]
    y, x = np.meshgrid(np.linspace(0, 3, 24), np.linspace(0, 6, 32), indexing="ij")
    data = 280 + 10 * np.sin(x + 0.3 * t) * np.cos(y) + rng.normal(0, 0.5, (40, 24, 32))
    return xr.Dataset({"T": (("time", "lat", "lon"), data.astype(np.float32))},
                      coords={"time": xr.date_range("2000-01-01", periods=40, freq="D", use_cftime=False)})


def test_a_bound_that_fails_on_the_wider_sample_however_far_it_steps_down_is_lossless(monkeypatch):
    """No bound down to CHECK_STEPS steps below the one found passes on the wider sample: the variable is stored
    exactly (a ``lossless`` row judged on the wider sample), never with a bound that failed there."""
    ds = _field_of_40_days()
    budget = 4 * 24 * 32
    real = tuning.evaluate

    def wider_fails(blocks, compressor, tol, criteria, native=None, check_bound=True):
        trial = real(blocks, compressor, tol, criteria, native, check_bound)
        if sum(x.size for x, _ in blocks) > budget and tol > 0:
            trial.passed = False
        return trial

    monkeypatch.setattr(tuning, "evaluate", wider_fails)
    found = tuning.suggest_tol(ds, sample=budget, variables=["T"], iterations=5)
    row = found.table.loc["T"]
    assert row["kind"] == "lossless" and row["lossless"] and row["passed"] and found["T"] == 0.0
    assert row["sample_values"] == ds["T"].size


def test_a_sample_that_holds_the_whole_variable_is_not_confirmed_again(monkeypatch):
    """Where the search's sample is already the whole variable, the wider check is skipped: no bound is evaluated
    twice on the same values."""
    ds = _field_of_40_days().isel(time=slice(0, 4))
    calls, real = [], tuning.confirm
    monkeypatch.setattr(tuning, "confirm", lambda *args, **kwargs: calls.append(args) or real(*args, **kwargs))
    found = tuning.suggest_tol(ds, variables=["T"], iterations=5)
    assert calls == [] and found.table.loc["T", "sample_values"] == ds["T"].size
    assert found.table.loc["T", "kind"] in ("tol", "pw_rel_tol")


def test_a_pointwise_relative_bound_is_confirmed_with_its_own_compressor():
    """Precipitation in mm/day (|x| up to about 100): the pointwise-relative bound found on one step is confirmed on
    both with the pointwise-relative compressor, judged on the criteria alone (``r`` is no absolute bound); the row
    reports that trial on the wider sample."""
    ds = open_sample("prect").isel(time=slice(0, 2), lat=slice(64, 128), lon=slice(0, 128))
    ds["PRECT"] = ds["PRECT"] * np.float32(8.64e7)
    crit = metrics.Criteria()
    found = tuning.suggest_tol(ds, crit, sample=64 * 128, variables=["PRECT"], iterations=5)
    row = found.table.loc["PRECT"]
    assert row["kind"] == "pw_rel_tol" and not row["lossless"] and row["sample_values"] == ds["PRECT"].size
    wider = tuning.sample_variable(ds, "PRECT", tuning.CHECK_VALUES)
    run = tuning.xdiffc_compressor(wider.fill_values, wider.coded_layout, kind="pw_rel_tol")
    trial = tuning.evaluate(wider.blocks, run, found.pw_rel_tol["PRECT"], crit, wider.native, check_bound=False)
    assert trial.passed and row["ratio"] == pytest.approx(trial.ratio)


def test_a_sample_given_as_indexers_is_the_sample_judged():
    """``sample`` as ``isel`` indexers: the user chose the values, so the bound is neither confirmed on nor reported
    for a wider sample."""
    ds = _field_of_40_days()
    found = tuning.suggest_tol(ds, sample={"time": slice(0, 2)}, variables=["T"], iterations=5)
    row = found.table.loc["T"]
    assert row["sample_values"] == 2 * 24 * 32 and row["kind"] in ("tol", "pw_rel_tol") and row["passed"]
