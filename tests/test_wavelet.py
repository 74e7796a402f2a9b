"""The wavelet residual coder: its transform inverts, its payload decodes bit for bit to the encoder's
reconstruction within the bound, holes are filled smoothly, and the core chooses it where it is smaller."""

import contextlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import xdiffc
from xdiffc import core
from xdiffc.bitstream import Stream
from xdiffc.coders import REGISTRY, Trial, wavelet
from xdiffc.predict import inpaint, wavelet as wt
from tests.helpers import assert_bounded
from tests.test_guarantee import FILL, base_field, sprinkle

shapes = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=13)
tolerances = st.one_of(st.floats(1e-12, 1e-6), st.floats(1e-6, 10.0), st.floats(10.0, 1e12))


@settings(deadline=None, max_examples=60)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=40), seed=st.integers(0, 2**32 - 1),
       packet=st.booleans())
def test_the_transform_inverts_and_its_bands_tile_the_array(shape, seed, packet):
    x = np.random.default_rng(seed).normal(size=shape).cumsum(axis=-1)
    c = wt.forward(x, packet)
    assert np.allclose(wt.inverse(c.copy(), packet), x, rtol=0, atol=1e-11 * (1 + np.abs(x).max()))
    cover = np.zeros(shape, int)
    for _, lo, hi in wt.subbands(shape, packet):
        cover[tuple(slice(a, b) for a, b in zip(lo, hi))] += 1
    assert np.all(cover == 1)


@pytest.mark.parametrize("packet", [False, True])
def test_the_transform_keeps_energy_and_leaves_no_detail_in_a_constant(packet):
    """Energy within 15% (biorthogonal, not orthonormal); a constant, mirrored at the ends, has no
    high-pass coefficient anywhere (the low-pass corner holds it all)."""
    x = np.random.default_rng(1).normal(size=(37, 50))
    c = wt.forward(x, packet)
    assert 0.9 < np.sum(c**2) / np.sum(x**2) < 1.15
    c = wt.forward(np.full((37, 50), 3.0), packet)
    low = tuple(slice(0, b) for b in wt.subbands((37, 50), packet)[0][2])
    detail = c.copy()
    detail[low] = 0
    assert np.abs(detail).max() < 1e-12 and np.abs(c[low]).min() > 1.0


@settings(deadline=None, max_examples=60)
@given(shape=shapes, seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(["smooth", "noise", "huge", "subnormal"]),
       tol=tolerances, holes=st.booleans(), packet=st.booleans())
def test_decode_rebuilds_the_encoders_field_bit_for_bit_within_the_bound(shape, seed, kind, tol, holes, packet):
    rng = np.random.default_rng(seed)
    x = base_field(kind, shape, np.float64, rng)
    skip = rng.random(shape) < 0.3 if holes else None
    try:
        payload, y = wavelet.encode_reconstruct(x, tol, skip, packets=(packet,))
    except ValueError:  # coefficients past the quantiser's range (huge values at tiny bounds): not a candidate
        return
    out = wavelet.decode(payload, shape, skip)
    assert out.shape == x.shape and np.array_equal(out.view(np.uint64), y.view(np.uint64))
    keep = np.ones(shape, bool) if skip is None else ~skip
    slack = 4 * np.spacing(np.abs(x).max(initial=0.0)) + 4 * np.spacing(tol)  # float64 rounding of y + k * 2 tol
    assert np.all(np.abs(y - x)[keep] <= tol + slack)


@contextlib.contextmanager
def only_wavelet():
    """The core with the wavelet coder as its only lossy coder, tried wherever the shape allows."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(core, "RESIDUAL_CODERS", {"wavelet": REGISTRY["wavelet"]})
        yield


@settings(deadline=None, max_examples=40)
@given(shape=shapes, seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from([np.float32, np.float64]),
       kind=st.sampled_from(["smooth", "noise", "huge", "subnormal"]), tol=tolerances, specials=st.booleans(),
       fortran=st.booleans())
def test_the_bound_holds_on_the_wavelet_branch(shape, seed, dtype, kind, tol, specials, fortran):
    rng = np.random.default_rng(seed)
    x = sprinkle(base_field(kind, shape, dtype, rng), rng, specials, tiny=False)
    x = np.asfortranarray(x) if fortran else x
    with only_wavelet():
        blob = xdiffc.compress(x, tol=tol, fill_values=[FILL], level=9)
        assert_bounded(x, xdiffc.decompress(blob), tol, fill_values=[FILL])


@settings(deadline=None, max_examples=30)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=30), seed=st.integers(0, 2**32 - 1),
       frac=st.floats(0.05, 0.95))
def test_holes_are_filled_inside_the_range_of_the_valid_values(shape, seed, frac):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape).cumsum(axis=-1)
    skip = rng.random(shape) < frac
    if skip.all():
        skip.flat[0] = False
    y = inpaint.inpaint(x, skip)
    assert np.array_equal(y[~skip], x[~skip])
    lo, hi = x[~skip].min(), x[~skip].max()
    assert np.all((y >= lo - 1e-9 * (1 + abs(lo))) & (y <= hi + 1e-9 * (1 + abs(hi))))


def test_a_hole_in_a_plane_is_filled_close_to_the_plane():
    """Smooth, not constant: a 12 x 12 hole in a tilted plane comes back within 3% of the plane's span there."""
    yy, xx = np.mgrid[0:48, 0:64].astype(float)
    plane = 0.5 * yy - 0.25 * xx
    skip = np.zeros(plane.shape, bool)
    skip[18:30, 26:38] = True
    y = inpaint.inpaint(plane, skip)
    span = np.ptp(plane[skip])
    assert np.abs(y - plane)[skip].max() < 0.03 * span * 4
    assert np.abs(y - plane)[skip].mean() < 0.03 * span


def smooth_series(shape=(48, 64, 96), seed=3) -> np.ndarray:
    """Annual-mean-like data: a smooth spatial pattern, a smooth spatial anomaly per step, little noise."""
    rng = np.random.default_rng(seed)
    t, yy, xx = np.meshgrid(*(np.linspace(0, 1, n) for n in shape), indexing="ij")
    base = 30 * np.sin(3 * yy) * np.cos(2 * xx) + 10 * yy
    anomaly = np.sin(5 * xx + rng.normal(size=(shape[0], 1, 1))) * np.cos(4 * yy) * rng.normal(size=(shape[0], 1, 1))
    return (base + anomaly + rng.normal(size=shape) * 0.01).astype(np.float32)


def test_the_core_chooses_it_where_it_is_smaller_and_the_probe_is_reused():
    """From level 6 (level 5 does not weigh the wavelet)."""
    x = smooth_series()
    tol = 1e-2 * float(np.ptp(x))
    blob = xdiffc.compress(x, tol=tol, level=6)
    assert "wavelet" not in Stream.from_bytes(xdiffc.compress(x, tol=tol, level=5)).sections
    assert "wavelet" in Stream.from_bytes(blob).sections
    assert_bounded(x, xdiffc.decompress(blob), tol)
    others = {k: v for k, v in core.RESIDUAL_CODERS.items() if k != "wavelet"}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(core, "RESIDUAL_CODERS", others)
        without = xdiffc.compress(x, tol=tol, level=9)
    assert len(blob) < 0.8 * len(without)
    stats = Trial(x, tol, sizes={"interp": 10**9})
    assert wavelet.worth_trying(x, tol, None, stats)
    payload, y = wavelet.encode_reconstruct(x, tol, None, trial=stats)
    assert stats.wavelet_probe is None and payload == wavelet.encode(x, tol)


@pytest.mark.parametrize("kind", ["binary", "blocks", "noise"])
def test_worth_trying_declines_where_interp_is_far_smaller(kind):
    """Random 0/100 values, 8 x 8 constant blocks, white noise at 1e-2: the coefficients alone outweigh
    interp's stream (measured: the full wavelet payloads are 5.1x, 2.4x and 1.1x interp's), so no full encode."""
    from xdiffc.coders import interp

    rng = np.random.default_rng(4)
    x = {"binary": (rng.random((16, 40, 40)) < 0.5) * 100.0,
         "blocks": np.repeat(np.repeat(rng.normal(size=(16, 5, 5)) * 100, 8, 1), 8, 2),
         "noise": rng.normal(size=(16, 40, 40))}[kind]
    tol = 1e-2 * float(np.ptp(x))
    stats = Trial(x, tol, sizes={"interp": len(interp.encode(x, tol))})
    assert not wavelet.worth_trying(x, tol, None, stats)
    assert len(wavelet.encode(x, tol)) > stats.sizes["interp"]
    assert stats.wavelet_probe is None


def test_every_step_is_tried_and_the_smallest_payload_is_kept():
    """Each step factor is quantised on its own (the probe's step too), its size estimated within 5% of its
    payload (corrections counted exactly), and the smallest kept."""
    x = smooth_series()
    tol = 1e-2 * float(np.ptp(x))
    stats = Trial(x, tol, wavelet_trace=[])
    payload, _ = wavelet.encode_reconstruct(x, tol, trial=stats)
    trace = stats.wavelet_trace
    assert sorted(f for _, f, *_ in trace) == sorted(wavelet.STEP_FACTORS)
    assert len({coef for _, _, coef, *_ in trace}) == len(trace)  # a distinct quantisation per step
    for _, f, _, _, est in trace:
        size = len(wavelet.encode_reconstruct(x, tol, factors=(f,))[0])
        assert abs(est - size) <= 0.05 * size
        assert len(payload) <= size


def test_the_trial_declines_where_the_corrections_would_lose():
    """The coefficients alone pass the probe's gate, but with the corrections the step cannot win: no full
    encode; where it can, the probe and the trial are left for the encoder, which gives the same payload.
    Spikes at 0.1% of the points: their corrections cost 40% more than the coefficients."""
    x = smooth_series()
    rng = np.random.default_rng(0)
    spikes = rng.random(x.shape) < 0.001
    x[spikes] += (rng.normal(size=int(spikes.sum())) * 0.2 * float(np.ptp(x))).astype(np.float32)
    tol = 1e-2 * float(np.ptp(x))
    trace = Trial(x, tol, wavelet_trace=[])
    wavelet.encode_reconstruct(x, tol, trial=trace)
    coef, total = next((c, t) for _, f, c, _, t in trace.wavelet_trace if f == wavelet.PROBE_FACTOR)
    between = (wavelet.PROBE_MARGIN * coef + wavelet.TRIAL_MARGIN * total) / 2
    assert wavelet.PROBE_MARGIN * coef < between <= wavelet.TRIAL_MARGIN * total
    stats = Trial(x, tol, sizes={"interp": int(between)})
    assert not wavelet.worth_trying(x, tol, None, stats) and stats.wavelet_probe is None
    stats = Trial(x, tol, sizes={"interp": int(total)})
    assert wavelet.worth_trying(x, tol, None, stats) and len(stats.wavelet_probe) == 8
    assert wavelet.encode_reconstruct(x, tol, None, trial=stats)[0] == wavelet.encode(x, tol)


def test_worth_trying_declines_short_axes_and_tries_without_a_candidate():
    assert not wavelet.applies((1, 7, 5)) and wavelet.applies((1, 8, 1))
    assert not wavelet.worth_trying(np.zeros((7, 7)), 0.1, None, Trial(np.zeros((7, 7)), 0.1))
    assert wavelet.worth_trying(np.zeros((9, 7)), 0.1, None, Trial(np.zeros((9, 7)), 0.1))


def test_damaged_payloads_raise_corrupt_stream_error():
    x = smooth_series((12, 20, 24))
    payload, _ = wavelet.encode_reconstruct(x, 0.05)
    for cut in (0, 1, 10, len(payload) // 2, len(payload) - 1):
        with pytest.raises(xdiffc.CorruptStreamError):
            wavelet.decode(payload[:cut], x.shape)
    with pytest.raises(xdiffc.CorruptStreamError):
        wavelet.decode(payload + b"\0", x.shape)
    with pytest.raises(xdiffc.CorruptStreamError):
        wavelet.decode(bytes([3]) + payload[1:], x.shape)


@settings(deadline=None, max_examples=100)
@given(coef=hnp.arrays(np.float64, st.integers(1, 200), elements=st.one_of(
    st.floats(-1e6, 1e6), st.sampled_from([0.0, -0.0, 1.0, -1.0, 1.5, -1.5, 2.0, 0.49999, 0.5, 2.5, -2.5]))),
       step=st.sampled_from([1.0, 0.5, 1.5 * 0.037, 3e-7, 2.0**-30]))
def test_the_dead_zone_quantiser_and_its_dequantiser_meet_within_half_a_step(coef, step):
    """``q = trunc(c / step)``, dequantised to the middle of its bin: within half a step of ``c`` off the dead zone
    (``|c| >= step``) and within a step in it (``q = 0``), with the sign of ``c``; dequantised in ``q``'s own
    memory (as the encoder and decoder do) it gives the same values as into a separate array."""
    q = np.empty(coef.size, np.int64)
    assert wavelet._quantize(coef, step, q)
    assert np.array_equal(q, np.trunc(coef / step).astype(np.int64))
    apart = wavelet._dequantize(q, step, np.empty(q.size))
    inplace = wavelet._dequantize(q, step, q.view(np.float64))
    assert np.array_equal(apart, inplace)
    err = np.abs(apart - coef)
    dead = np.abs(coef / step) < 1
    slack = 4 * np.spacing(np.abs(coef))  # float64 rounding of c / step and of (|q| + 1/2) step
    assert np.all(apart[dead] == 0) and np.all(err[dead] <= step + slack[dead])
    assert np.all(err[~dead] <= 0.5 * step + slack[~dead]) and np.all(np.sign(apart[~dead]) == np.sign(coef[~dead]))
    assert not wavelet._quantize(np.array([1.0, np.inf]), step, q) and not wavelet._quantize(np.array([np.nan]), 1.0, q)


def test_a_probe_left_for_other_values_or_another_bound_is_not_reused():
    """``trial`` may hold the probe of :func:`worth_trying`: the encoder reuses it only for the same values at the
    same bound; for any other it codes what it is given."""
    x = smooth_series((8, 32, 48), seed=2)
    tol = 1e-2 * float(np.ptp(x))
    for other, other_tol in ((x, 2 * tol), (smooth_series((8, 32, 48), seed=4), tol)):
        stats = Trial(x, tol, sizes={"interp": 10**9})
        assert wavelet.worth_trying(x, tol, None, stats) and stats.wavelet_probe is not None
        payload, y = wavelet.encode_reconstruct(other, other_tol, None, trial=stats)
        assert payload == wavelet.encode(other, other_tol) and stats.wavelet_probe is None
        assert np.array_equal(wavelet.decode(payload, other.shape).view(np.uint64), y.view(np.uint64))


def _merge_bits_by_hand(counts: np.ndarray) -> np.ndarray:
    """Estimated bits of every merge of :data:`wavelet._MERGES`: entropy of each used model's counts plus its table."""
    from xdiffc.entropy.estimate import TABLE_MODEL_BYTES, TABLE_SYMBOL_BYTES

    out = []
    for merge in wavelet._MERGES:
        model_of, n_models = wavelet.model_map(*merge)
        merged = np.zeros((n_models, counts.shape[1]))
        np.add.at(merged, model_of, counts)
        bits = 0.0
        for row in merged[merged.sum(axis=1) > 0]:
            c = row[row > 0]
            bits += c.sum() * np.log2(c.sum()) - (c * np.log2(c)).sum() + 8.0 * (TABLE_MODEL_BYTES + TABLE_SYMBOL_BYTES * c.size)
        out.append(bits)
    return np.array(out)


@settings(deadline=None, max_examples=30)
@given(seed=st.integers(0, 2**32 - 1), contexts=st.integers(1, 40), symbols=st.integers(1, 20))
def test_the_merge_chosen_from_the_used_contexts_is_the_smallest_of_all(seed, contexts, symbols):
    """``_choose_merge`` weighs only the fine contexts and symbols that occur (a speed-up): the merge it picks and
    its bits are those of the smallest estimate over the full [context, symbol] counts."""
    rng = np.random.default_rng(seed)
    counts = np.zeros((wavelet.sb.N_FINE, wavelet.sb.N_SYMBOLS), np.int64)
    rows = rng.choice(wavelet.sb.N_FINE, contexts, replace=False)
    cols = rng.choice(wavelet.sb.N_SYMBOLS, symbols, replace=False)
    counts[np.ix_(rows, cols)] = rng.integers(0, 2000, (contexts, symbols)) * (rng.random((contexts, symbols)) < 0.7)
    bits, merge = wavelet._choose_merge(counts)
    by_hand = _merge_bits_by_hand(counts)
    assert bits == pytest.approx(by_hand.min(), rel=1e-9, abs=1e-6)
    assert by_hand[wavelet._MERGES.index(merge)] == pytest.approx(by_hand.min(), rel=1e-9, abs=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_reconstruction_is_returned_in_the_dtype_asked_for(dtype):
    """With ``dtype``, ``encode_reconstruct`` returns the decoder's field cast to it, bit for bit (the cast is made
    as soon as a step is the best so far, so the float64 field is not held at the end)."""
    x = smooth_series((8, 32, 48), seed=6).astype(np.float64)
    tol = 1e-3 * float(np.ptp(x))
    payload, y = wavelet.encode_reconstruct(x, tol, None, dtype=np.dtype(dtype))
    assert y.dtype == dtype and y.shape == x.shape
    decoded = wavelet.decode(payload, x.shape, dtype=np.dtype(dtype))
    assert decoded.dtype == dtype and np.array_equal(decoded, y)


def test_the_transform_refuses_more_than_three_axes():
    """The kernels lift along the middle of three axes; the coder merges leading axes first (``wavelet_shape``)."""
    x = np.zeros((2, 3, 4, 16))
    with pytest.raises(ValueError, match="1 to 3 axes"):
        wt.forward(x)
    with pytest.raises(ValueError, match="1 to 3 axes"):
        wt.inverse(x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_steps_transform_the_probed_field_again(dtype):
    """The steps after the probe rebuild the prepared field from the values and the probe's values at the skipped
    points (no second inpainting): the same coefficients as a fresh preparation, and the values left as they were."""
    rng = np.random.default_rng(5)
    x = smooth_series().astype(dtype)
    skip = rng.random(x.shape) < 0.2
    x[skip] = np.nan
    before = x.copy()
    keep, wshape, fill, bands, coded = wavelet._probe(x, 0.01, skip, None)
    for packet in (False, True):
        again = wavelet._coefficients(x, wshape, keep, fill, packet)
        fresh = wt.forward(wavelet._prepare(x, skip)[0], packet)
        assert np.array_equal(again.view(np.uint64), fresh.view(np.uint64))
    assert np.array_equal(x, before, equal_nan=True)
