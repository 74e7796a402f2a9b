"""preserve_zero: every input zero, +0.0 or -0.0, comes back as +0.0 (the docs' promise), from the zero mask, at no
cost over +0.0 zeros."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import xdiffc
from xdiffc.bitstream import Stream


def field(seed: int, dtype, shape=(6, 24, 32), negative_zeros: bool = True, nan: bool = False) -> np.ndarray:
    """A smooth field of both signs with patches and scattered points of exact zeros (-0.0 on half of them)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, int(np.prod(shape))).reshape(shape)
    x = np.sin(t * 23) * 5 + rng.normal(size=shape).cumsum(-1) * 0.05
    zero = rng.random(shape) < 0.1
    zero[:, 3:9, 4:12] = True
    x[zero] = 0.0
    if negative_zeros:
        x[zero & (rng.random(shape) < 0.5)] = -0.0
    if nan:
        x[rng.random(shape) < 0.03] = np.nan
    return x.astype(dtype)


def check_zeros(x: np.ndarray, y: np.ndarray) -> None:
    zero = x == 0
    assert np.all(y[zero] == 0) and not np.signbit(y[zero]).any(), "an input zero came back as -0.0 or non-zero"
    other = np.isfinite(x) & ~zero
    assert np.all(y[other] != 0) and np.array_equal(np.signbit(y[other]), np.signbit(x[other]))


@given(seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from([np.float32, np.float64]), nan=st.booleans(),
       bound=st.sampled_from([dict(tol=1e-3), dict(tol=0.05), dict(rel_tol=1e-2), dict(pw_rel_tol=1e-2),
                              dict(tol=0.05, pw_rel_tol=1e-3)]))
def test_every_zero_comes_back_as_positive_zero(seed, dtype, nan, bound):
    x = field(seed, dtype, nan=nan)
    assert np.signbit(x[x == 0]).any()  # -0.0 inputs present
    kwargs = dict(bound) if "pw_rel_tol" in bound else dict(bound, preserve_zero=True)
    blob = xdiffc.compress(x, **kwargs)
    stream = Stream.from_bytes(blob)
    y = xdiffc.decompress(blob)
    check_zeros(x, y)
    assert np.array_equal(np.isnan(y), np.isnan(x))
    if stream.header.mode == "pointwise":  # stored lossily: the zeros ride on the zero mask, not on exceptions
        assert "zeros" in stream.sections


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bound", [dict(tol=1e-3, preserve_zero=True), dict(pw_rel_tol=1e-2)])
def test_negative_zeros_cost_what_positive_zeros_cost(dtype, bound):
    """The same field with -0.0 zeros and with +0.0 zeros: the same stream size and the same output (+0.0)."""
    neg = field(4, dtype, negative_zeros=False)
    neg[neg == 0] = -0.0
    pos = np.where(neg == 0, 0.0, neg).astype(dtype)
    assert np.signbit(neg[neg == 0]).all() and not np.signbit(pos[pos == 0]).any()
    a, b = xdiffc.compress(neg, **bound), xdiffc.compress(pos, **bound)
    assert "exc" not in Stream.from_bytes(a).sections
    assert len(a) == len(b)
    ya, yb = xdiffc.decompress(a), xdiffc.decompress(b)
    assert ya.tobytes() == yb.tobytes()
    check_zeros(neg, ya)
