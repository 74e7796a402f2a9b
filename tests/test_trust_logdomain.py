"""The log-domain bound: ``|t_hat - log2|x|| <= log_bound(r)`` must give ``|y - x| <= r |x|`` after the cast, and
be no tighter than that (a looser bound is caught by the exact check, which hides it as exceptions)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import xdiffc
from xdiffc import logdomain
from xdiffc.bitstream import Stream

DTYPES = [np.float32, np.float64]
#: Pointwise-relative bounds from 1e-6 to 0.99, spread in log space.
rel_bounds = st.floats(math.log(1e-6), math.log(0.99)).map(math.exp)
#: Unit roundoff of the output dtype (the final cast moves a value by at most this fraction).
ROUNDOFF = {np.float32: 2.0**-24, np.float64: 2.0**-53}


@given(r=rel_bounds, dtype=st.sampled_from(DTYPES))
def test_the_log_bound_inequality(r, dtype):
    """Upward: ``2**b (1 + u) <= 1 + r`` (the decoded magnitude, then the cast's rounding); downward:
    ``2**-b (1 - u) >= 1 - r``; and the bound is the loosest such: ``2**b (1 + u) = 1 + r`` to rounding."""
    b = logdomain.log_bound(r, dtype)
    u = ROUNDOFF[dtype]
    assert b > 0
    up = 2.0**b * (1 + u)
    assert up <= (1 + r) * (1 + 4e-16)
    assert 2.0**-b * (1 - u) >= (1 - r) * (1 - 4e-16)
    assert up >= (1 + r) * (1 - 1e-12)  # not tighter than needed: every bit of it is bytes


@given(r=rel_bounds, dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**32 - 1))
def test_decoding_within_the_log_bound_keeps_the_pointwise_bound(r, dtype, seed):
    """Every ``t_hat`` within ``log_bound`` of ``log2|x|`` (both ends and between) decodes, through the decoder's own
    exp2 and the cast, to ``y`` with ``|y - x| <= r |x|`` and the sign of ``x`` (up to float64's error in log2 and
    exp2: 1e-13 of |x|, five orders below what a 1 % looser bound adds at r = 1e-6)."""
    rng = np.random.default_rng(seed)
    mags = np.exp(rng.uniform(-60, 60, 2000))
    x = (mags * rng.choice([-1.0, 1.0], mags.size)).astype(dtype)
    x = x[(x != 0) & np.isfinite(x)]
    t, negative = logdomain.encode(x, None)
    assert np.array_equal(negative, x < 0)
    b = logdomain.log_bound(r, dtype)
    xs = np.abs(x.astype(np.float64))
    for s in (1.0, -1.0, rng.uniform(-1, 1, x.size)):
        y = logdomain.to_linear(t + s * b, negative, np.dtype(dtype))
        assert y.dtype == dtype
        err = np.abs(y.astype(np.float64) - x.astype(np.float64))
        assert np.all(err <= r * xs + 1e-13 * xs), float(np.max((err - r * xs) / xs))
        assert np.array_equal(np.signbit(y), np.signbit(x))


def precipitation(seed: int, shape=(8, 48, 64), dtype=np.float32) -> np.ndarray:
    """Storms moving over a dry domain: ~63 % exact zeros, lognormal intensities spanning 6 orders of magnitude."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 6, shape[1]), np.linspace(0, 8, shape[2]), indexing="ij")
    storm = np.sin(yy[None] + 0.4 * np.arange(shape[0])[:, None, None]) * np.cos(xx[None] * 0.7)
    wet = storm + rng.normal(size=shape) * 0.3 > 0.2
    return np.where(wet, rng.lognormal(mean=0.5, sigma=2.0, size=shape), 0.0).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("r", [0.1, 1e-2, 1e-3])
@pytest.mark.parametrize("seed", [0, 1])
def test_a_precipitation_field_needs_no_exceptions(seed, r, dtype):
    """Coded through log2 (the 'log2' section), the bound holds without one point stored exactly: no 'exc' section.
    A log bound looser than log2((1 + r) / (1 + u)) shows up here as exceptions (and a larger stream)."""
    x = precipitation(seed, dtype=dtype)
    blob = xdiffc.compress(x, pw_rel_tol=r)
    stream = Stream.from_bytes(blob)
    assert stream.header.mode == "pointwise"
    assert logdomain.SECTION in stream.sections and "zeros" in stream.sections
    assert "exc" not in stream.sections
    y = xdiffc.decompress(blob)
    xs = x.astype(np.float64)
    assert np.all(np.abs(y.astype(np.float64) - xs) <= r * np.abs(xs))
    assert np.array_equal(y == 0, x == 0) and not np.signbit(y).any()
