"""Property-based tests of the pointwise guarantee of xdiffc.compress / decompress."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import xdiffc
from tests.helpers import assert_bounded

shapes = hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=9)


@st.composite
def fields(draw):
    """Smooth, noisy, constant or extreme fields, with NaN, inf and fill values sprinkled in."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    shape = draw(shapes)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["smooth", "noise", "constant", "huge", "denormal"]))
    if kind == "smooth":
        x = rng.normal(size=shape).cumsum(axis=-1) if len(shape) else rng.normal(size=shape)
    elif kind == "noise":
        x = rng.normal(size=shape) * 10.0 ** draw(st.integers(-3, 3))
    elif kind == "constant":
        x = np.full(shape, draw(st.floats(-1e6, 1e6)))
    elif kind == "huge":
        x = rng.uniform(-1, 1, size=shape) * 1e29
    else:
        x = rng.uniform(-1, 1, size=shape) * 1e-300 if dtype == np.float64 else rng.uniform(-1, 1, size=shape) * 1e-40
    x = np.asarray(x).astype(dtype)
    if x.size and draw(st.booleans()):
        specials = np.array([np.nan, np.inf, -np.inf, 1e20, -9.96921e36], dtype=dtype)
        hit = rng.random(x.shape) < draw(st.sampled_from([0.05, 0.5, 1.0]))
        x[hit] = rng.choice(specials, size=int(hit.sum()))
    return x


tolerances = st.one_of(st.just(0.0), st.floats(1e-12, 1e-6), st.floats(1e-6, 10.0), st.floats(10.0, 1e12))


@given(fields(), tolerances)
def test_absolute_bound_holds(x, tol):
    y = xdiffc.decompress(xdiffc.compress(x, tol=tol, fill_values=[1e20]))
    assert_bounded(x, y, tol, fill_values=[1e20])


@given(fields(), st.sampled_from([1e-2, 1e-3, 1e-4, 0.0]))
def test_relative_bound_holds(x, rel_tol):
    missing = xdiffc.masking.special_mask(x)
    valid = x[~missing].astype(np.float64)
    tol = rel_tol * (valid.max() - valid.min()) if valid.size else 0.0
    y = xdiffc.decompress(xdiffc.compress(x, rel_tol=rel_tol))
    assert_bounded(x, y, tol)


@given(fields(), st.floats(1e-6, 1.0), st.sampled_from(["big", "fortran", "strided"]))
def test_any_layout(x, tol, layout):
    if layout == "big":
        x = x.astype(x.dtype.newbyteorder(">"))
    elif layout == "fortran":
        x = np.asfortranarray(x)
    elif x.ndim:
        x = x[..., ::2]
    y = xdiffc.decompress(xdiffc.compress(x, tol=tol))
    assert_bounded(x, y, tol)
    if layout == "fortran" and x.ndim > 1:
        assert y.flags.f_contiguous


def test_tol_zero_is_bit_exact():
    x = np.random.default_rng(1).normal(size=(7, 50, 60)).astype(np.float32)
    x[0, 0, :5] = [np.nan, np.inf, -np.inf, -0.0, 1e-45]
    y = xdiffc.decompress(xdiffc.compress(x, tol=0))
    assert np.array_equal(y.view(np.uint32), x.view(np.uint32))


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint16, np.bool_])
def test_integers_are_lossless(dtype):
    x = (np.random.default_rng(2).integers(0, 100, size=(4, 33, 17)) % 2 if dtype == np.bool_
         else np.random.default_rng(2).integers(np.iinfo(dtype).min, np.iinfo(dtype).max, size=(4, 33, 17)))
    x = x.astype(dtype)
    y = xdiffc.decompress(xdiffc.compress(x, tol=5))
    assert y.dtype == x.dtype
    np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "abc"])
def test_bad_tolerance_raises(bad):
    x = np.zeros((10, 10), np.float32)
    with pytest.raises(ValueError):
        xdiffc.compress(x, tol=bad)
    with pytest.raises(ValueError):
        xdiffc.compress(x, rel_tol=bad)


def test_tol_and_rel_tol_are_exclusive():
    x = np.zeros((10, 10), np.float32)
    with pytest.raises(ValueError, match="exactly one"):
        xdiffc.compress(x, tol=0.1, rel_tol=0.1)
    with pytest.raises(ValueError, match="exactly one"):
        xdiffc.compress(x)


@pytest.mark.parametrize("dtype", [np.float16, np.complex64, object, "U3", "datetime64[s]"])
def test_unsupported_dtype_raises_type_error(dtype):
    with pytest.raises(TypeError, match="float32 and float64"):
        xdiffc.compress(np.zeros(20, dtype=dtype), tol=0.1)


def test_encoding_is_deterministic():
    x = np.random.default_rng(3).normal(size=(16, 40, 40)).cumsum(1).astype(np.float32)
    assert xdiffc.compress(x, rel_tol=1e-3) == xdiffc.compress(x, rel_tol=1e-3)


def test_smooth_field_compresses_well():
    t, yy, xx = np.meshgrid(np.linspace(0, 1, 16), np.linspace(0, 3, 64), np.linspace(0, 6, 128), indexing="ij")
    x = (280 + 20 * np.sin(yy) * np.cos(xx + t)).astype(np.float32)
    blob = xdiffc.compress(x, rel_tol=1e-2)
    assert x.nbytes / len(blob) > 50
