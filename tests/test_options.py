"""``Options``: every field parsed once, the array rules, the absolute bound, one variable's options, the bound at each
point and as the attrs record it, and the codec configuration's bound keys (what is written, what is left out, and
that reading it back gives the same options)."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from xdiffc.codec import GCDTCCodec
from xdiffc.options import DEFAULT_LEVEL, LEVELS, PW_REL_LIMIT, Options, parse_bounds
from xdiffc.xarray.encoding import _bound_attrs
from xdiffc.xarray.variables import stored_bound
from xdiffc.zarr_codec import GCDTCZarrCodec

bounds = st.none() | st.floats(0, 1e6, allow_nan=False, allow_infinity=False)
fractions = st.floats(0, PW_REL_LIMIT, exclude_max=True, allow_nan=False)
ranges = st.none() | st.tuples(st.floats(-1e6, 1e6), st.floats(0, 1e6)).map(lambda t: (t[0], t[0] + t[1]))


@st.composite
def array_options(draw) -> Options:
    """Any options one array accepts, pointwise or l2, at any level."""
    level = draw(st.sampled_from(list(LEVELS)))
    if draw(st.booleans()):
        return Options(mode="l2", nrmse=draw(st.floats(0, 1)), level=level)
    pw = draw(st.none() | fractions)
    which = draw(st.sampled_from(["tol", "rel_tol"] + (["none"] if pw is not None else [])))
    absolute = draw(st.floats(0, 1e6))
    return Options(tol=absolute if which == "tol" else None, rel_tol=absolute if which == "rel_tol" else None,
                   pw_rel_tol=pw, preserve_zero=draw(st.booleans()), valid_range=draw(ranges), level=level)


@given(array_options())
def test_the_configuration_reads_back_as_the_same_options(options):
    """Every field survives to_config -> JSON -> from_config, and through both codecs' configurations."""
    config = json.loads(json.dumps(options.to_config()))
    assert Options.from_config(config) == options
    codec = GCDTCCodec(**asdict(options))
    assert codec.options == options
    assert GCDTCCodec.from_config(json.loads(json.dumps(codec.get_config()))).options == options
    assert GCDTCZarrCodec.from_dict(GCDTCZarrCodec(**asdict(options)).to_dict()).numcodec.options == options


def test_the_configuration_holds_only_the_keys_set():
    assert Options(tol=0.5).to_config() == {"tol": 0.5, "rel_tol": None, "mode": "pointwise", "nrmse": None}
    full = Options(rel_tol=1e-3, pw_rel_tol=0.01, preserve_zero=True, valid_range=(0, 1), level=2)
    assert full.to_config() == {"tol": None, "rel_tol": 1e-3, "mode": "pointwise", "nrmse": None,
                                "pw_rel_tol": 0.01, "preserve_zero": True, "valid_range": [0.0, 1.0], "level": 2}
    assert "level" not in Options(tol=1, level=DEFAULT_LEVEL).to_config()
    assert [Options(tol=1, level=n).to_config().get("level") for n in LEVELS] == [
        None if n == DEFAULT_LEVEL else n for n in LEVELS]
    codec = GCDTCCodec(tol=0.01, valid_range=(0.0, 1.0))
    assert codec.get_config()["valid_range"] == [0.0, 1.0] and codec.valid_range == (0.0, 1.0)
    assert GCDTCZarrCodec(tol=0.01, valid_range=(0, 1)).to_dict()["configuration"]["valid_range"] == [0.0, 1.0]


def test_a_codec_configuration_clamps_into_its_valid_range():
    """The range a codec is configured with is the one its chunks are clamped into, read back from its config."""
    x = np.linspace(-0.001, 1.001, 4096).reshape(64, 64).astype(np.float32)
    codec = GCDTCCodec.from_config(json.loads(json.dumps(GCDTCCodec(tol=0.01, valid_range=(0, 1)).get_config())))
    y = codec.decode(codec.encode(x)).reshape(x.shape)
    assert np.abs(y.astype(np.float64) - x).max() <= 0.01
    assert y.min() == 0 and y.max() == 1


@pytest.mark.parametrize("kwargs", [dict(tol=0.1, rel_tol=0.1), dict(), dict(preserve_zero=True),
                                    dict(tol={"T": 0.1}), dict(tol=0.1, pw_rel_tol={"T": 0.01}),
                                    dict(tol=0.1, preserve_zero={"T": True})])
def test_one_array_takes_exactly_one_absolute_bound_and_scalars(kwargs):
    with pytest.raises(ValueError, match="exactly one|per variable"):
        Options(**kwargs).check_array()
    with pytest.raises(ValueError, match="exactly one|per variable"):
        GCDTCCodec(**kwargs)


@pytest.mark.parametrize("kwargs", [dict(tol=0.1), dict(rel_tol=0.1), dict(pw_rel_tol=0.01),
                                    dict(tol=0.1, pw_rel_tol=0.01), dict(rel_tol=0.1, pw_rel_tol=0.01),
                                    dict(mode="l2", nrmse=1e-3)])
def test_one_array_accepts_each_combination_the_docs_name(kwargs):
    options = Options(**kwargs)
    assert options.check_array() is options


@pytest.mark.parametrize("kwargs", [dict(mode="l2", nrmse=1e-3, rel_tol=1e-3), dict(mode="l2", nrmse=1e-3, tol=1.0),
                                    dict(mode="l2", rel_tol=1e-3), dict(mode="l2", nrmse=1e-3, preserve_zero=True)])
def test_l2_takes_nrmse_alone(kwargs):
    with pytest.raises(ValueError, match="mode='l2'"):
        Options(**kwargs)


@pytest.mark.parametrize("value", [PW_REL_LIMIT, 1, 2.0])
def test_a_pointwise_relative_bound_must_stay_below_1(value):
    with pytest.raises(ValueError, match="pw_rel_tol must be below 1"):
        Options(pw_rel_tol=value)
    assert Options(pw_rel_tol=math.nextafter(PW_REL_LIMIT, 0)).pw_rel_tol < 1


def test_the_absolute_bound():
    x = np.array([np.nan, -1e30, 2.0, 5.0, 12.0])
    valid = np.isfinite(x) & (np.abs(x) < 1e29)
    assert Options(tol=0.25).absolute(x, valid) == 0.25
    assert Options(rel_tol=0.1).absolute(x, valid) == pytest.approx(1.0)  # 0.1 * (12 - 2): missing values ignored
    assert Options(mode="l2", nrmse=0.5).absolute(x, valid) == pytest.approx(5.0)
    assert Options(pw_rel_tol=0.01).absolute(x, valid) == math.inf
    assert Options(rel_tol=0.1).absolute(x, np.zeros(x.shape, bool)) == 0.0
    assert Options(tol=0.25, pw_rel_tol=0.01).absolute(x, valid) == 0.25


def test_keep_sign():
    assert not Options(tol=1).keep_sign
    assert Options(tol=1, preserve_zero=True).keep_sign
    assert Options(pw_rel_tol=0.01).keep_sign and Options(tol=1, pw_rel_tol=0.01).keep_sign
    assert not Options(mode="l2", nrmse=1e-3).keep_sign


def test_bounds_are_named_in_errors_as_the_caller_names_them():
    with pytest.raises(ValueError, match=r"pw_rel_tol\['P'\] must be below 1"):
        Options(pw_rel_tol={"P": 1.5})
    label = lambda option, variable: f"<{option}/{variable}>"  # noqa: E731
    with pytest.raises(ValueError, match="<tol/T> must be finite"):
        parse_bounds({"tol": {"T": -1.0}}, label)
    with pytest.raises(ValueError, match="<rel_tol/None> must be a number"):  # one number, never one per variable
        parse_bounds({"rel_tol": {"T": 0.1}}, label)
    assert parse_bounds({"tol": {"T": 1}, "pw_rel_tol": 0.5, "nrmse": None}) == {
        "tol": {"T": 1.0}, "pw_rel_tol": 0.5, "nrmse": None}


def test_one_variables_entries():
    given = Options(tol={"T": 0.5, "P": 0.1}, pw_rel_tol={"P": 0.01, "Q": 0.02}, preserve_zero={"P": True},
                    rel_tol=1e-3, level=3)
    assert given.named() == {"T": "tol", "P": "tol", "Q": "pw_rel_tol"}
    t, p, q, other = (given.for_variable(n) for n in "TPQR")
    assert (t.tol, t.pw_rel_tol, t.preserve_zero, t.rel_tol, t.level) == (0.5, None, None, 1e-3, 3)
    assert (p.tol, p.pw_rel_tol, p.preserve_zero) == (0.1, 0.01, True)
    assert (q.tol, q.pw_rel_tol, other.tol, other.pw_rel_tol) == (None, 0.02, None, None)
    assert [o.uses_rel_tol for o in (t, p, q, other)] == [False, False, False, True]
    scalar = Options(tol=0.2, preserve_zero=True)
    assert scalar.for_variable("T") == scalar and scalar.named() == {}


def test_the_bound_at_each_point():
    x = np.array([-4.0, 0.0, 0.5, 30.0])
    assert Options(tol=0.25).bound_at(x) == 0.25 and Options().bound_at(x) == math.inf
    assert Options(pw_rel_tol=0.1).bound_at(x) == pytest.approx([0.4, 0.0, 0.05, 3.0])
    assert Options(tol=1.0, pw_rel_tol=0.1).bound_at(x) == pytest.approx([0.4, 0.0, 0.05, 1.0])


def test_the_bound_recorded_in_attrs():
    assert stored_bound({"xdiffc_nrmse": 1e-3}) is None and stored_bound({"units": "K"}) is None
    both = stored_bound({"xdiffc_tol": 0.5, "xdiffc_rel_tol": 1e-3, "xdiffc_pw_rel_tol": 0.01})
    assert (both.tol, both.rel_tol, both.pw_rel_tol) == (0.5, 1e-3, 0.01)
    alone = stored_bound({"xdiffc_pw_rel_tol": 0.01})
    assert alone.tol is None and alone.bound_at(np.array([-2.0])) == pytest.approx([0.02])


@given(array_options(), st.none() | st.floats(0, 1))
def test_a_variables_bound_reads_back_from_the_attrs_it_is_recorded_in(options, rel_tol):
    """What the accessor records (``xdiffc_*`` attrs) is what error_report, assess and verify check against."""
    assume(options.mode == "pointwise" and not options.uses_rel_tol)  # an absolute or pointwise-relative bound
    stored = stored_bound(_bound_attrs(replace(options, rel_tol=None), rel_tol))
    assert (stored.tol, stored.rel_tol, stored.pw_rel_tol) == (options.tol, rel_tol, options.pw_rel_tol)
