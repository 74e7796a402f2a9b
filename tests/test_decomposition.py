"""The temporal decomposition (climatology + anomalies): the guarantee on its branch, bit-identical
round trips, its choice on fields built for and against it, and its detected cycles."""

import contextlib
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import xdiffc
from xdiffc import core
from xdiffc.bitstream import Stream
from xdiffc.coders import REGISTRY, Trial, decomposition
from tests.helpers import assert_bounded, spy_on_coders
from tests.test_guarantee import FILL, base_field, sprinkle

#: Shapes of 1 to 4 dimensions, sides 1 to 13 (mostly not powers of two, some of length 1 to 3).
shapes = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=13)
tolerances = st.one_of(st.floats(1e-12, 1e-6), st.floats(1e-6, 10.0), st.floats(10.0, 1e12))


def climate(shape, seed: int, dtype=np.float32, period: int = 1, noise: float = 0.01) -> np.ndarray:
    """A fixed spatial pattern (one per phase of ``period``) repeated along the first axis, plus small anomalies."""
    rng = np.random.default_rng(seed)
    pattern = rng.normal(size=(period,) + tuple(shape[1:])).cumsum(axis=-1) * 10
    x = pattern[np.arange(shape[0]) % period] + rng.normal(size=shape) * noise
    return x.astype(dtype)


@contextlib.contextmanager
def only_anomaly():
    """The core with the decomposition as its only lossy coder, tried wherever its shape allows."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(core, "RESIDUAL_CODERS", {"anomaly": REGISTRY["anomaly"]})
        mp.setattr(decomposition, "worth_trying", lambda values, *a: decomposition.applies(values.shape))
        yield


@settings(deadline=None, max_examples=60)
@given(shape=shapes, seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from([np.float32, np.float64]),
       kind=st.sampled_from(["climate", "smooth", "noise", "huge", "subnormal"]), tol=tolerances,
       specials=st.booleans(), fortran=st.booleans())
def test_the_bound_holds_on_the_anomaly_branch(shape, seed, dtype, kind, tol, specials, fortran):
    rng = np.random.default_rng(seed)
    x = climate(shape, seed, dtype) if kind == "climate" else base_field(kind, shape, dtype, rng)
    x = sprinkle(x, rng, specials, tiny=False)
    x = np.asfortranarray(x) if fortran else x
    with only_anomaly():
        blob = xdiffc.compress(x, tol=tol, fill_values=[FILL])
        assert_bounded(x, xdiffc.decompress(blob), tol, fill_values=[FILL])
    stream = Stream.from_bytes(blob)
    if stream.header.mode == "pointwise":
        assert "anomaly" in stream.sections


@settings(deadline=None, max_examples=30)
@given(shape=hnp.array_shapes(min_dims=2, max_dims=4, min_side=1, max_side=13).filter(decomposition.applies),
       seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from([np.float32, np.float64]),
       period=st.sampled_from([1, 4, 12]), masked=st.booleans())
def test_the_coder_round_trips_bit_identically(shape, seed, dtype, period, masked):
    x = climate(shape, seed, dtype, period)
    rng = np.random.default_rng(seed)
    skip = rng.random(shape) < 0.3 if masked else None
    if masked:
        skip[:, 0] = True  # a column missing at every step: its climatology is skipped too
        x[skip] = np.nan
    tol = 1e-3
    payload, y = decomposition.encode_reconstruct(x, tol, skip)
    z = decomposition.decode(payload, shape, skip)
    assert np.array_equal(y.view(np.uint64), z.view(np.uint64))
    keep = np.ones(shape, bool) if skip is None else ~skip
    # within tol up to the float64 rounding of x - climatology and of the sum (the core checks exactly)
    slack = 8 * np.spacing(float(np.abs(x[keep]).max())) if keep.any() else 0.0
    assert np.all(np.abs(y[keep] - x[keep].astype(np.float64)) <= tol + slack)
    assert np.array_equal(decomposition.decode(payload, shape, skip, dtype=np.float32), z.astype(np.float32))


@pytest.mark.parametrize("shape", [(110, 64, 128), (12, 40, 50), (24, 2, 30, 30)])
def test_a_climatology_field_picks_the_anomaly_branch(shape):
    x = climate(shape, 1)
    blob = xdiffc.compress(x, rel_tol=1e-3)
    assert "anomaly" in Stream.from_bytes(blob).sections
    assert_bounded(x, xdiffc.decompress(blob), 1e-3 * float(x.max() - x.min()))


def test_a_decisive_sample_skips_interp_without_changing_the_stream(monkeypatch):
    """Where the sample says interp alone cannot win, interp and SZ3 are not encoded, and the stream is the one
    the full contest (level 9) gives."""
    x = climate((40, 48, 64), 4)
    tol = 1e-3 * float(x.max() - x.min())
    assert decomposition.supersedes_interp(x, tol, None)
    tried = spy_on_coders(monkeypatch)
    blob = xdiffc.compress(x, tol=tol, level=9)
    assert "interp" not in tried and "sz3" not in tried and "anomaly" in tried
    monkeypatch.setattr(decomposition, "supersedes_interp", lambda *a: False)
    tried.clear()
    assert xdiffc.compress(x, tol=tol, level=9) == blob and "interp" in tried
    assert_bounded(x, xdiffc.decompress(blob), tol)
    monkeypatch.undo()
    monkeypatch.setattr(core, "RESIDUAL_CODERS", {"interp": REGISTRY["interp"]})  # no decomposition
    assert "interp" in Stream.from_bytes(xdiffc.compress(x, tol=tol)).sections


def test_interp_is_encoded_when_the_decomposition_fails_after_all(monkeypatch):
    x = climate((40, 48, 64), 5)
    tol = 1e-3 * float(x.max() - x.min())
    assert decomposition.supersedes_interp(x, tol, None)

    def fail(*args, **kwargs):
        raise ValueError("no decomposition today")

    monkeypatch.setattr(decomposition, "encode_reconstruct", fail)
    tried = spy_on_coders(monkeypatch)
    blob = xdiffc.compress(x, tol=tol)
    assert tried[:2] == ["anomaly", "interp"]  # before the wavelet, whose gates weigh it against interp
    assert "interp" in Stream.from_bytes(blob).sections
    assert_bounded(x, xdiffc.decompress(blob), tol)


def test_fields_without_a_climatology_keep_the_other_coders():
    rng = np.random.default_rng(2)
    pattern = rng.normal(size=(48, 48)).cumsum(axis=-1)
    swings = (rng.normal(size=(64, 1, 1)) * pattern).astype(np.float32)  # a pattern whose sign and size change
    assert "anomaly" not in Stream.from_bytes(xdiffc.compress(swings, rel_tol=1e-3)).sections
    row = rng.normal(size=4096).cumsum().astype(np.float32)  # 1-D: no time axis to split
    assert "anomaly" not in Stream.from_bytes(xdiffc.compress(row, rel_tol=1e-3)).sections
    assert not decomposition.worth_trying(swings, 1.0, None)


@pytest.mark.parametrize("period", [4, 12, 24])
def test_a_cycle_is_detected(period):
    x = climate((4 * period, 10, 12), 3, np.float64, period)
    assert decomposition.detect_period(x, None) == period
    assert decomposition.detect_period(climate((4 * period, 10, 12), 3, np.float64, 1), None) == 1


def test_damaged_headers_raise_corrupt_stream_error():
    x = climate((8, 6, 7), 4)
    payload = decomposition.encode(x, 1e-3)
    for bad in (b"\x02" + payload[1:], payload[:1] + b"\x09" + payload[2:], payload[:3]):
        with pytest.raises(xdiffc.CorruptStreamError):
            decomposition.decode(bad, x.shape)
    with pytest.raises(xdiffc.CorruptStreamError):
        decomposition.decode(payload, (8,))


@pytest.mark.parametrize("ratio, supersedes, worth", [
    (0.0, False, True),  # the block cannot tell (it is the whole field, or mostly missing): both are encoded
    (0.5, True, True), (0.84, True, True),
    (0.86, False, True), (1.0, False, True), (1.24, False, True),  # it may win: interp is encoded too
    (1.26, False, False), (math.inf, False, False),
])
def test_the_sample_ratio_gates(monkeypatch, ratio, supersedes, worth):
    """Interp alone is skipped only where the sample ratio is decisive (0 < ratio < DECISIVE); the decomposition is
    encoded where the ratio is below MARGIN (0 included); the ratio is computed once per trial."""
    calls = []
    monkeypatch.setattr(decomposition, "_sample_ratio", lambda *a: calls.append(a) or (ratio, None))
    x = climate((8, 6, 7), 1)
    trial = Trial(x, 0.1)
    assert decomposition.supersedes_interp(x, 0.1, None, trial) is supersedes
    assert decomposition.worth_trying(x, 0.1, None, trial) is worth
    assert trial.anomaly_ratio == ratio and len(calls) == 1


def test_the_sample_ratio_of_a_block_that_cannot_tell_or_a_field_without_climatology():
    """0 (encode in full) where the block is the whole field or mostly missing with valid points elsewhere; inf where
    every point is missing, the shape has no time axis, or the climatology leaves most of the variance."""
    x = climate((40, 48, 64), 4)
    tol = 1e-3 * float(x.max() - x.min())
    assert 0 < decomposition.sample_ratio(x, tol, None) < decomposition.DECISIVE  # the field the core skips interp on
    small = x[:8, :10, :12]
    assert decomposition.sample_ratio(small, tol, None) == 0.0
    hole = np.zeros(x.shape, bool)
    hole[:, 8:40, 8:56] = True  # the central block is land
    assert decomposition.sample_ratio(x, tol, hole) == 0.0
    assert decomposition.sample_ratio(x, tol, np.ones(x.shape, bool)) == math.inf
    assert decomposition.sample_ratio(x[:3], tol, None) == math.inf and decomposition.sample_ratio(x[0, 0], tol, None) == math.inf
    swings = np.random.default_rng(2).normal(size=(40, 1, 1)) * x[:1]  # a pattern whose sign and size change
    assert decomposition.sample_ratio(swings, tol, None) == math.inf


def test_a_small_climatology_field_still_weighs_interp(monkeypatch):
    """Where the sample block is the whole field (ratio 0: it cannot tell), interp is encoded beside the
    decomposition, and the smaller kept."""
    x = climate((8, 10, 12), 3)
    tol = 1e-3 * float(x.max() - x.min())
    assert decomposition.sample_ratio(x, tol, None) == 0.0 and not decomposition.supersedes_interp(x, tol, None)
    tried = spy_on_coders(monkeypatch)
    blob = xdiffc.compress(x, tol=tol)
    assert "interp" in tried and "anomaly" in tried
    assert_bounded(x, xdiffc.decompress(blob), tol)


@pytest.mark.parametrize("level, ratio, scale, encoded", [
    (9, 0.95, 1.0, ["anomaly", "interp"]),  # the full search encodes both wherever the block cannot decide
    (9, 1.10, 1.0, ["anomaly", "interp"]),
    (8, 0.95, 1.0, ["anomaly"]),  # the block favours the decomposition and its full size meets the estimate
    (8, 0.95, 1e-3, ["anomaly", "interp"]),  # ... but misses it by far: the block misjudged the chunk
    (8, 1.10, 1.0, ["interp"]),  # the block favours interp, whose full size meets its estimate
    (8, 1.10, 1e-3, ["interp", "anomaly"]),  # ... and misses it: the decomposition is asked again, and encoded
    (8, 0.50, 1e-3, ["anomaly"]),  # decisive: interp is never encoded, whatever the miss
    (8, 0.0, None, ["anomaly", "interp"]),  # the block cannot tell: both
])
def test_below_the_full_search_one_of_decomposition_and_interp_is_encoded(monkeypatch, level, ratio, scale, encoded):
    """Below options.FULL_SEARCH_LEVEL the sample ratio picks one coder in its band, and the other is encoded only where
    the first one's full size exceeds MISS times its block estimate; the stream keeps the bound either way."""
    x = climate((16, 64, 72), 5)  # larger than the sample block
    tol = 1e-3 * float(x.max() - x.min())
    exact = decomposition._sample_ratio(x, tol, None, 9)[1]  # real block estimates, scaled by ``scale`` below
    estimates = None if scale is None else (exact[0] * scale, exact[1] * scale)
    monkeypatch.setattr(decomposition, "_sample_ratio", lambda *a: (ratio, estimates))
    tried = spy_on_coders(monkeypatch)
    blob = xdiffc.compress(x, tol=tol, level=level)
    assert [n for n in tried if n in ("anomaly", "interp")] == encoded
    assert_bounded(x, xdiffc.decompress(blob), tol)


@settings(deadline=None, max_examples=40)
@given(steps=st.integers(1, 40), period=st.integers(1, 13), rest=hnp.array_shapes(min_dims=0, max_dims=2, max_side=5),
       seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from([np.float32, np.float64]), transposed=st.booleans())
def test_cycle_by_cycle_operations_match_a_loop_over_the_cycles(steps, period, rest, seed, dtype, transposed):
    """The climatology is added (decoder), subtracted (encoder) and its counts taken cycle by cycle as one array
    operation over the cycles; each gives, to the bit, what a loop over the cycles gives, in place in the output
    even where that is a transposed view (interp's output in a permuted axis order)."""
    rng = np.random.default_rng(seed)
    shape = (steps,) + tuple(rest)
    clim = rng.normal(size=(period,) + shape[1:]) * 100
    anomaly = rng.normal(size=shape).astype(dtype)
    if transposed:  # the same values, laid out in reverse axis order
        anomaly = np.ascontiguousarray(anomaly.T).T
    expected = anomaly.copy()
    for start in range(0, steps, period):
        expected[start : start + period] += clim[: min(period, steps - start)]
    out = decomposition._combine(clim, anomaly, period)
    assert out is anomaly and out.dtype == dtype
    assert out.tobytes() == expected.tobytes()  # the same bits, in C order whatever the layout
    values = rng.normal(size=shape).astype(dtype)
    subtracted = decomposition._anomaly(values, clim, None, period, dtype)
    assert np.array_equal(subtracted, (values - clim[np.arange(steps) % period]).astype(dtype))
    keep = rng.random(shape) < 0.7
    assert np.array_equal(decomposition._counts(keep, period),
                          np.stack([keep[p::period].sum(axis=0) for p in range(period)]).astype(np.float64))


def _means_by_numpy(values, keep, period):
    """The per-phase means as the numpy loop over the cycles that :func:`decomposition._means` replaced."""
    total = np.zeros((period,) + values.shape[1:])
    count = np.zeros((period,) + values.shape[1:])
    for start in range(0, values.shape[0], period):
        stop = min(start + period, values.shape[0])
        v = values[start:stop].astype(np.float64)
        k = np.ones(v.shape, bool) if keep is None else keep[start:stop]
        total[: stop - start] += np.where(k, v, 0.0)
        count[: stop - start] += k
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


@settings(deadline=None, max_examples=60)
@given(steps=st.integers(1, 40), period=st.integers(1, 13), rest=hnp.array_shapes(min_dims=0, max_dims=2, max_side=5),
       seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from([np.float32, np.float64]), masked=st.booleans(),
       scale=st.sampled_from([1.0, 1e-30, 1e30]))
def test_the_phase_statistics_match_numpy(steps, period, rest, seed, dtype, masked, scale):
    """The per-phase means (climatology) are, to the bit, those of the numpy loop over the cycles the kernel
    replaced, NaN at skipped points left out; the anomaly variance (which picks the period) matches numpy's. The
    period is at most the number of steps, as the coder uses it."""
    period = 1 + (period - 1) % steps
    rng = np.random.default_rng(seed)
    shape = (steps,) + tuple(rest)
    values = (rng.normal(size=shape) * scale).astype(dtype)
    keep = rng.random(shape) < 0.7 if masked else None
    if keep is not None:
        values[~keep] = np.nan
    means = decomposition._means(values, keep, period)
    assert means.shape == (period,) + shape[1:]
    assert means.tobytes() == _means_by_numpy(values, keep, period).tobytes()
    dev = values.astype(np.float64) - means[np.arange(steps) % period]
    dev = dev if keep is None else dev[keep]
    expected = float(np.mean(np.square(dev))) if dev.size else 0.0
    assert math.isclose(decomposition._anomaly_variance(values, keep, period), expected, rel_tol=1e-12, abs_tol=0.0)
