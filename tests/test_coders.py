"""The conformance test of the residual coder protocol: every registered coder passes it.

A new coder is registered in ``xdiffc/coders/__init__.py`` and must pass this file unchanged.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xdiffc.coders import REGISTRY, ResidualCoder, Trial, enabled, register
from xdiffc.errors import CorruptStreamError
from xdiffc.options import LEVELS

CODERS = sorted(REGISTRY)


def field(kind: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """A smooth field, a field with a cycle along its first axis, or white noise."""
    rng = np.random.default_rng(seed)
    if kind == "smooth":
        return rng.normal(size=shape).cumsum(-1)
    if kind == "cycle":
        pattern = rng.normal(size=(4,) + shape[1:]).cumsum(-1) * 5
        return pattern[np.arange(shape[0]) % 4] + rng.normal(size=shape) * 0.05
    return rng.normal(size=shape)


def encoded(name: str, x: np.ndarray, tol: float, skip: np.ndarray | None, dtype=None):
    """The coder's payload and reconstruction of ``x``, or None where it does not apply to the shape."""
    coder = REGISTRY[name]
    if not coder.applies(x.shape):
        return None
    payload, y = coder.encode(Trial(x, tol, skip, 9, dtype))
    assert y is not None  # without a candidate before it, every coder returns its reconstruction
    return payload, y


@pytest.mark.parametrize("name", CODERS)
def test_the_coder_implements_the_protocol(name):
    coder = REGISTRY[name]
    assert isinstance(coder, ResidualCoder) and coder.name == name
    assert coder.min_level in LEVELS and coder in enabled(9)


@pytest.mark.parametrize("name", CODERS)
@settings(max_examples=12, deadline=None)
@given(kind=st.sampled_from(["smooth", "cycle", "noise"]), seed=st.integers(0, 2**16),
       shape=st.sampled_from([(12, 9, 20), (8, 16, 16), (16, 33)]), masked=st.booleans(),
       rel=st.sampled_from([1e-1, 1e-2, 1e-4]), dtype=st.sampled_from([None, np.float32]))
def test_round_trip_under_the_bound_and_bit_identical(name, kind, seed, shape, masked, rel, dtype):
    """decode(encode) meets the bound off ``skip`` (up to float64 rounding; the core repairs the rest in the output
    dtype), and encode's reconstruction is bit for bit what decode rebuilds."""
    x = field(kind, shape, seed)
    skip = np.random.default_rng(seed).random(shape) < 0.2 if masked else None
    tol = rel * float(np.ptp(x))
    out = encoded(name, x, tol, skip, dtype)
    if out is None:
        return
    payload, y = out
    z = REGISTRY[name].decode(payload, shape, skip, dtype)
    assert z.shape == shape and z.dtype == np.dtype(dtype or np.float64)
    assert np.array_equal(y.view(np.uint8), np.ascontiguousarray(z).view(np.uint8))
    keep = np.ones(shape, bool) if skip is None else ~skip
    err = np.abs(z.astype(np.float64) - x)[keep]
    slack = 8 * np.spacing(np.abs(x).max()) + (0 if dtype is None else np.spacing(np.float32(np.abs(x).max())))
    if name == "sz3":  # SZ3 runs in float32 where that is far below the bound: its output can overstep by rounding
        slack += 2.0**-22 * np.abs(x).max()
    assert err.max() <= tol + slack


@pytest.mark.parametrize("name", CODERS)
def test_a_truncated_payload_raises_corrupt_stream_error(name):
    x = field("cycle", (12, 16, 20), 3)
    out = encoded(name, x, 1e-2 * float(np.ptp(x)), None)
    payload = out[0]
    for cut in sorted({0, 1, len(payload) // 3, len(payload) // 2, len(payload) - 1}):
        with pytest.raises(CorruptStreamError):
            REGISTRY[name].decode(payload[:cut], x.shape)


def test_the_registry_refuses_a_name_or_priority_taken_and_orders_by_priority():
    priorities = [c.priority for c in REGISTRY.values()]
    assert priorities == sorted(priorities)
    taken = REGISTRY["interp"]
    with pytest.raises(ValueError):
        register(taken)
    with pytest.raises(TypeError):
        register(object())


@pytest.mark.parametrize("level", list(LEVELS))
def test_each_level_enables_the_coders_from_their_min_level(level):
    names = [c.name for c in enabled(level)]
    assert names == [n for n, c in REGISTRY.items() if c.min_level <= level]
    assert "interp" in names and (level < 9 or names == list(REGISTRY))


def test_trial_best_is_the_smallest_candidate():
    t = Trial(np.zeros(4), 1.0)
    assert t.best == math.inf
    t.sizes.update(interp=10, sz3=7)
    assert t.best == 7
