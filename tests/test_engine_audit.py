"""The engine's choices, pinned where a mutation audit found them unobserved (``tools/mutation_audit.py``).

What each level enables and what the interpolation coder does at it (read from its payload's header), what the
core's loop leaves in the trial for the gates of the coders after it, which chunks a codec stores exactly, SZ3's
length-prefixed payload, and the level and bound flags that the Dataset entry points pass on.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import xarray as xr

import xdiffc
from xdiffc import archive_climatology as references, coders, core
from xdiffc.bitstream import Stream
from xdiffc.byteio import Reader
from xdiffc.codec import GCDTCCodec, is_partial
from xdiffc.coders import REGISTRY, Trial, interp, register, sz3
from xdiffc.conversion.run import _options, _recorded
from xdiffc.errors import CorruptStreamError
from xdiffc.options import DEFAULT_LEVEL, LEVELS
from xdiffc.predict.interp import N_FINE
from tests.helpers import WrappedCoder, assert_bounded
from tests.test_archive_climatology import climatology_of, seasonal
from tests.test_levels import cycle_field
from tests.test_wavelet import smooth_series


def header(payload: bytes, ndim: int):
    """The interpolation payload's fixed part: version, order, groups, cuts, and (version 3) axis and K."""
    return interp._Header(Reader(payload, "test"), ndim)


def cycle(shape, seed=0) -> np.ndarray:
    """A pattern repeating every 4 steps plus small anomalies."""
    rng = np.random.default_rng(seed)
    pattern = rng.normal(size=(4,) + shape[1:]).cumsum(-1) * 5
    return (pattern[np.arange(shape[0]) % 4] + rng.normal(size=shape) * 0.05).astype(np.float32)


def random_walk_in_time(shape=(32, 48, 64), seed=0) -> np.ndarray:
    """Smooth along the first axis only: the axis order and the previous-slice axis both matter."""
    return np.cumsum(np.random.default_rng(seed).normal(size=shape), 0).astype(np.float32)


class _Recorder(WrappedCoder):
    """A registered coder whose gate calls and full encodes are recorded with the trial's sizes at that moment."""

    def worth_encoding(self, trial):
        answer = self.coder.worth_encoding(trial)
        self.log.append(("gate", self.name, dict(trial.sizes), answer))
        return answer

    def encode(self, trial):
        payload, y = self.coder.encode(trial)
        self.log.append(("encode", self.name, len(payload), y is not None))
        return payload, y


@pytest.fixture
def record(monkeypatch) -> list:
    log: list = []
    monkeypatch.setattr(core, "RESIDUAL_CODERS", {n: _Recorder(c, log) for n, c in core.RESIDUAL_CODERS.items()})
    return log


def encoded(log: list) -> list[str]:
    return [entry[1] for entry in log if entry[0] == "encode"]


# ----------------------------------------------------------------------------- the registry and the levels


class _Dummy:
    name, priority, min_level = "dummy", 20, 1

    def applies(self, shape):
        return True

    def worth_encoding(self, trial):
        return True

    def encode(self, trial):
        return b"", np.zeros(trial.target.shape)

    def decode(self, payload, shape, skip=None, dtype=None):
        return np.zeros(shape, dtype or np.float64)


def test_a_taken_priority_is_refused_and_the_registry_stays_as_it_was():
    before = dict(REGISTRY)
    taken = _Dummy()
    taken.priority = REGISTRY["interp"].priority
    try:
        with pytest.raises(ValueError, match="priority 20"):
            register(taken)
        assert REGISTRY == before and list(REGISTRY) == list(before)
    finally:
        REGISTRY.clear()
        REGISTRY.update(before)


def test_the_documented_table_is_the_registry():
    """``coders/__init__.py``'s table (name, priority, min level) is what is registered, in that order."""
    rows = re.findall(r"^(\w+)\s+(\d+)\s+(\d+)\s+\S", coders.__doc__, re.M)
    assert [(n, int(p), int(m)) for n, p, m in rows] == [(c.name, c.priority, c.min_level) for c in REGISTRY.values()]
    assert [(c.name, c.priority, c.min_level) for c in REGISTRY.values()] == [
        ("anomaly", 10, 4), ("interp", 20, 1), ("sz3", 30, 9), ("wavelet", 40, 6)]


@pytest.mark.parametrize("level", list(LEVELS))
def test_each_level_encodes_the_coders_from_their_min_level(record, level):
    """A small cycle field, whose gates let the decomposition, interp and SZ3 through: level L encodes exactly those
    with min_level <= L, in order of priority; a smooth series, which the wavelet's gates let through, from 6."""
    x = cycle((16, 20, 24))
    blob = xdiffc.compress(x, rel_tol=1e-3, level=level)
    want = ["anomaly"] * (level >= 4) + ["interp"] + ["sz3"] * (level >= 9)
    assert [n for n in encoded(record) if n != "wavelet"] == want
    assert_bounded(x, xdiffc.decompress(blob), 1e-3 * float(x.max() - x.min()))
    record.clear()
    xdiffc.compress(smooth_series(), rel_tol=1e-2, level=level)
    assert ("wavelet" in encoded(record)) == (level >= 6)


# ----------------------------------------------------------------------------- what the core leaves in the trial


def test_interp_leaves_its_sample_estimate_for_sz3s_gate():
    x = np.random.default_rng(1).normal(size=(8, 96, 128)).cumsum(-1).cumsum(-2).astype(np.float32)
    tol = 0.1 * float(np.ptp(x))
    trial = Trial(x, tol, None, 9, np.float32)
    payload, _ = REGISTRY["interp"].encode(trial)
    assert trial.sample_bytes is not None and 0 < trial.sample_bytes < len(payload)
    gate = REGISTRY["sz3"].worth_encoding
    assert not gate(trial)  # SZ3's size on the sample block is 1.8x interp's estimate there
    for estimate, answer in ((1e9, True), (1.0, False), (None, True)):
        assert gate(Trial(x, tol, None, 9, np.float32, sample_bytes=estimate)) is answer
    assert not gate(Trial(x, tol, None, 9, np.float32, sample_bytes=1e9, superseded=True))
    assert gate(Trial(x[:2, :64, :64], tol, None, 9, np.float32, sample_bytes=1.0))  # small: always


def test_sz3_is_encoded_where_its_sample_may_win_and_only_there(record):
    rng = np.random.default_rng(1)
    smooth = rng.normal(size=(8, 96, 128)).cumsum(-1).cumsum(-2).astype(np.float32)
    noise = rng.normal(size=(8, 96, 128)).astype(np.float32)
    xdiffc.compress(smooth, rel_tol=0.1, level=9)
    assert "interp" in encoded(record) and "sz3" not in encoded(record)
    record.clear()
    xdiffc.compress(noise, rel_tol=0.01, level=9)
    assert "sz3" in encoded(record)  # on noise its sample is within 4% of interp's


def test_each_gate_sees_the_sizes_of_the_candidates_checked_before_it(record):
    x = smooth_series()
    tol = 1e-2 * float(np.ptp(x))
    xdiffc.compress(x, tol=tol, level=9)
    gates = {name: sizes for kind, name, sizes, *_ in record if kind == "gate"}
    lengths = {name: n for kind, name, n, _ in (e for e in record if e[0] == "encode")}
    assert gates["interp"] == {} if "anomaly" not in lengths else set(gates["interp"]) == {"anomaly"}
    wavelet_saw = gates["wavelet"]
    assert "interp" in wavelet_saw and wavelet_saw["interp"] >= lengths["interp"]
    assert set(wavelet_saw) == {n for n in lengths if n != "wavelet"}


def test_the_wavelet_is_not_encoded_where_interp_is_far_smaller(record):
    x = np.random.default_rng(4).normal(size=(8, 64, 64)).astype(np.float32)
    xdiffc.compress(x, rel_tol=1e-2, level=9)
    assert "interp" in encoded(record) and "wavelet" not in encoded(record)
    assert any(e[:2] == ("gate", "wavelet") and "interp" in e[2] and e[3] is False for e in record)


@pytest.mark.parametrize("r", [1e-2, 1e-4, 1e-6])
def test_the_log_domain_check_sees_the_logarithms_the_decoder_sees(r):
    """The coders return log2|x| in float64 (the decoder's), not cast to the output dtype: a float32 field over 40
    octaves then needs no exception, where float32 logarithms would move each value by up to 1e-6 of itself."""
    x = np.exp2(np.random.default_rng(0).normal(size=(8, 64, 64)).cumsum(-1)).astype(np.float32)
    blob = xdiffc.compress(x, pw_rel_tol=r, level=9)
    assert "exc" not in Stream.from_bytes(blob).sections and "log2" in Stream.from_bytes(blob).sections
    y = xdiffc.decompress(blob).astype(np.float64)
    assert np.all(np.abs(y - x) <= r * np.abs(x.astype(np.float64)))


# ----------------------------------------------------------------------------- the interpolation coder's levels


@pytest.mark.parametrize("shape, axis", [((32, 48, 64), 0), ((1, 48, 64), 1), ((16, 64, 1), 0), ((1, 1, 300), 2)])
def test_level_1_codes_with_the_fixed_plan(shape, axis):
    """No estimate: the array's own axis order, two level groups, no activity classes, K=4 along the first axis
    longer than 1 (time, in CF's order); context rANS alone."""
    x = random_walk_in_time(shape)
    tol = 1e-3 * float(np.ptp(x))
    payload, y = interp.encode_reconstruct(x, tol, level=1)
    h = header(payload, x.ndim)
    levels = interp.kern.n_levels(shape)
    assert h.version == interp.VERSION_COMPACT and h.order == tuple(range(x.ndim))
    assert h.groups == min(interp.FIXED_GROUPS, levels) and list(h.cuts) == []
    assert (h.axis, h.k) == (axis, interp.FIXED_K)
    assert np.array_equal(interp.decode(payload, shape).view(np.uint64), y.view(np.uint64))
    assert np.abs(y - x).max() <= tol


def test_level_1_keeps_its_radius_on_white_noise_at_a_tiny_bound():
    """62k distinct symbols: the widest table level 1 can meet (2 groups, 10 buckets, no classes) fits _MAX_TABLE,
    so K stays FIXED_K and the round trip is exact."""
    x = np.random.default_rng(0).normal(size=(8, 128, 256))
    payload, y = interp.encode_reconstruct(x, 3e-5, level=1)
    h = header(payload, x.ndim)
    assert (h.k, h.axis) == (interp.FIXED_K, 0)
    assert interp.FIXED_GROUPS * (2 * interp.FIXED_K + 2) * (1 << 16) <= interp._MAX_TABLE
    assert np.array_equal(interp.decode(payload, x.shape).view(np.uint64), y.view(np.uint64))
    assert np.abs(y - x).max() <= 3e-5


def _classed_field() -> np.ndarray:
    """Smooth halves and a rough one: the activity classes pay."""
    rng = np.random.default_rng(3)
    x = np.cumsum(np.cumsum(rng.normal(size=(64, 256)), 0), 1) * 1e-3
    x[:, 128:] += rng.normal(size=(64, 128)) * 5
    return x


def test_the_context_classes_stay_only_where_they_save_more_than_the_margin():
    x = _classed_field()
    p = interp._Passes(np.ascontiguousarray(x), None, 1e-3 * float(np.ptp(x)))
    _, groups, cuts = interp._choose_models(p)
    assert cuts
    kept = interp._CtxPlan(p, None, x.shape, groups, cuts, 0.0)
    dropped = interp._CtxPlan(p, None, x.shape, groups, cuts, 0.99)
    assert kept.cuts == cuts and kept.n_cls == len(cuts) + 1
    assert dropped.cuts == [] and dropped.n_cls == 1 and dropped.bits > kept.bits


@pytest.mark.parametrize("level, margin", [(2, interp._CLASS_MARGIN), (DEFAULT_LEVEL, interp._CLASS_MARGIN),
                                           (9, interp._FULL_SEARCH_CLASS_MARGIN)])
def test_below_level_9_the_classes_must_save_more_for_the_decoders_speed(monkeypatch, level, margin):
    """A decode without classes skips a sweep: below the full search the classes must save 5% to stay."""
    seen = []
    init = interp._CtxPlan.__init__

    def spy(self, *args):
        seen.append(args[-1])
        init(self, *args)

    monkeypatch.setattr(interp._CtxPlan, "__init__", spy)
    x = _classed_field()
    interp.encode_reconstruct(x, 1e-3 * float(np.ptp(x)), level=level)
    assert seen and set(seen) == {margin} and interp._FULL_SEARCH_CLASS_MARGIN < interp._CLASS_MARGIN
    if level >= 4:  # the temporal decomposition codes its climatology and anomalies at the chunk's level too
        seen.clear()
        blob = xdiffc.compress(cycle_field(), rel_tol=1e-3, level=level)
        assert "anomaly" in Stream.from_bytes(blob).sections and seen and set(seen) == {margin}


def test_level_2_estimates_the_models_and_level_3_also_the_axis_order():
    x = random_walk_in_time()
    tol = 1e-3 * float(np.ptp(x))
    one, two, three = (interp.encode_reconstruct(x, tol, level=n)[0] for n in (1, 2, 3))
    h1, h2, h3 = (header(p, x.ndim) for p in (one, two, three))
    assert h2.order == tuple(range(x.ndim)) and h2.version == interp.VERSION_COMPACT
    assert (h2.axis, h2.k) == (0, 16) != (h1.axis, h1.k)  # the previous step in time, its radius estimated
    assert len(two) < len(one)
    assert h3.order != tuple(range(x.ndim)) and len(three) < len(two)  # the time axis coded last


def test_an_archive_climatology_is_weighed_from_level_4():
    series = seasonal(60)
    clim = climatology_of(series, 12, 0.5)
    x = series[17:29]
    for level in LEVELS:
        blob = xdiffc.compress(x, 0.5, reference=clim, level=level)
        assert (references.SECTION in Stream.from_bytes(blob).sections) == (level >= 4), level
        assert_bounded(x, xdiffc.decompress(blob, reference=clim), 0.5)


# ----------------------------------------------------------------------------- the codec's exact chunks


def test_only_a_chunk_whose_last_step_is_all_missing_is_partial():
    x = random_walk_in_time((6, 10, 12))
    land = x.copy()
    land[:, :4] = np.nan  # missing in every step: an ocean field, not a partial chunk
    assert not is_partial(x, ()) and not is_partial(land, ())
    last, first, filled = x.copy(), x.copy(), x.copy()
    last[-1] = np.nan
    first[0] = np.nan
    filled[-1] = -999.0
    assert is_partial(last, ()) and not is_partial(first, ())
    assert is_partial(filled, (-999.0,)) and not is_partial(filled, ())
    assert not is_partial(x[:1] * np.nan, ())  # one step: nothing to append to
    codec = GCDTCCodec(tol=0.1)
    modes = {name: Stream.from_bytes(codec.encode_chunk(a)).header.mode
             for name, a in dict(land=land, last=last, first=first, x=x).items()}
    assert modes == dict(land="pointwise", last="lossless", first="pointwise", x="pointwise")
    assert Stream.from_bytes(GCDTCCodec(tol=0.1, fill_values=[-999.0]).encode_chunk(filled)).header.mode == "lossless"
    y = codec.decode(codec.encode_chunk(land)).reshape(land.shape)
    assert_bounded(land, y, 0.1)


# ----------------------------------------------------------------------------- SZ3's payload, version 2


def test_sz3_payload_version_2_checks_its_length_and_version_1_still_reads():
    x = np.random.default_rng(3).normal(size=(12, 16, 20)).cumsum(-1)
    payload = sz3.encode(x, 0.01)
    assert payload[0] & sz3._LENGTH_FLAG
    y = sz3.decode(payload, x.shape)
    for bad in (payload + b"\x00", payload[:-1], payload[:1] + bytes([payload[1] + 1]) + payload[2:]):
        with pytest.raises(CorruptStreamError):
            sz3.decode(bad, x.shape)
    r = Reader(payload, "test")
    r.u8()
    body = r.take(r.uvarint(len(payload)))
    version_1 = bytes([payload[0] & ~sz3._LENGTH_FLAG]) + body
    assert np.array_equal(sz3.decode(version_1, x.shape), y)
    assert sz3.decode(payload, x.shape, dtype=np.float32).dtype == np.float32


# ----------------------------------------------------------------------------- the Dataset entry points


def test_a_pointwise_relative_bound_marks_the_variable_as_keeping_zeros_and_signs():
    rain = np.exp2(np.random.default_rng(2).normal(size=(4, 16, 24))).astype(np.float32)  # > 0: no zero to find
    ds = xr.Dataset({"pr": (("time", "lat", "lon"), rain)}, coords={"time": np.arange(4)})
    out = ds.gcdtc.compress(pw_rel_tol=1e-3)
    assert out.pr.attrs["xdiffc_pw_rel_tol"] == 1e-3 and out.pr.attrs["xdiffc_preserve_zero"] == 1
    assert out.pr.encoding["serializer"].options.keep_sign
    assert "xdiffc_preserve_zero" not in ds.gcdtc.compress(tol=0.1).pr.attrs


def test_the_accessor_in_l2_mode_writes_at_the_level_asked_for():
    ds = xr.Dataset({"T": (("time", "lat", "lon"), cycle((8, 16, 20)))}, coords={"time": np.arange(8)})
    serializer = ds.gcdtc.compress(mode="l2", nrmse=1e-2, level=2)["T"].encoding["serializer"]
    assert serializer.level == 2 and serializer.mode == "l2" and serializer.nrmse == 1e-2
    assert ds.gcdtc.compress(mode="l2", nrmse=1e-2)["T"].encoding["serializer"].level == DEFAULT_LEVEL


@pytest.mark.parametrize("mode, recorded", [
    ("pointwise", {"tol": None, "rel_tol": 1e-3, "pw_rel_tol": None, "preserve_zero": None}),
    ("l2", {"tol": None, "mode": "l2", "nrmse": 1e-3})])
def test_convert_passes_the_level_on_only_where_it_is_not_the_default(mode, recorded):
    """The resume fingerprint records the options as it always has (these keys and values, so that older logs still
    resume): a default level adds nothing; another one is recorded and passed on."""
    bounds = dict(tol=None, rel_tol=1e-3, pw_rel_tol=None)
    assert _recorded(_options(mode, bounds, None, DEFAULT_LEVEL)) == recorded
    options = _options(mode, bounds, None, 3)
    assert options.level == 3 and _recorded(options) == {**recorded, "level": 3}
