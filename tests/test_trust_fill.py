"""The fill threshold (|x| >= 1e30 is missing, kept bit-exactly, and left out of the value range)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import xdiffc
from xdiffc import masking
from xdiffc.bitstream import Stream


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_threshold_edges(dtype):
    """1e30 and -1e30 (and beyond) are fill; 9.9e29 and -9.9e29 are data: the default threshold is 1e30 itself."""
    x = np.array([1e30, -1e30, 5e30, -9.97e36, 9.9e29, -9.9e29, 0.0, 1.0], dtype)
    assert masking.special_mask(x).tolist() == [True, True, True, True, False, False, False, False]
    assert masking.FILL_THRESHOLD == 1e30
    # compress's default is the same threshold
    assert np.array_equal(masking.special_mask(x), masking.special_mask(x, threshold=1e30))


def _field(seed: int, dtype) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, 6 * 20 * 24).reshape(6, 20, 24)
    return (np.sin(t * 17) * 40 + 250 + rng.normal(size=t.shape).cumsum(-1) * 0.1).astype(dtype)


@given(seed=st.integers(0, 2**32 - 1), where=st.integers(0, 6 * 20 * 24 - 1),
       big=st.sampled_from([1e30, -1e30, 5e30, -5e30, 3.4e38]), dtype=st.sampled_from([np.float32, np.float64]))
def test_one_huge_value_stays_exact_and_out_of_the_range(seed, where, big, dtype):
    """One value at or beyond the threshold comes back bit-exactly, and rel_tol applies to the range of the others:
    were it counted, the bound would be ~1e27 and every other value would be wiped out."""
    x = _field(seed, dtype)
    x.flat[where] = big
    others = np.delete(x.ravel(), where).astype(np.float64)
    rel_tol = 1e-3
    tol = rel_tol * (others.max() - others.min())
    blob = xdiffc.compress(x, rel_tol=rel_tol)
    stream = Stream.from_bytes(blob)
    assert stream.header.tol == pytest.approx(tol, rel=1e-12)
    assert "mask" in stream.sections and "special" in stream.sections
    y = xdiffc.decompress(blob)
    assert y.flat[where].tobytes() == x.flat[where].tobytes()
    err = np.abs(np.delete(y.ravel(), where).astype(np.float64) - others)
    assert err.max() <= tol
    assert np.ptp(np.delete(y.ravel(), where).astype(np.float64)) > 0.9 * np.ptp(others)  # not flattened


def test_a_value_just_below_the_threshold_is_data():
    """9.9e29 is data: it enters the range (the bound is rel_tol of a range that includes it) and is not masked."""
    x = _field(3, np.float64)
    x.flat[7] = 9.9e29
    blob = xdiffc.compress(x, rel_tol=1e-3)
    stream = Stream.from_bytes(blob)
    assert "mask" not in stream.sections
    assert stream.header.tol == pytest.approx(1e-3 * (9.9e29 - x.min()), rel=1e-12)
