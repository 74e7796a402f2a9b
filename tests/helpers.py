"""Assertions shared by the test modules."""

import numpy as np

from xdiffc.masking import special_mask


def assert_bounded(x: np.ndarray, y: np.ndarray, tol: float, fill_values=()) -> None:
    """The contract: same shape and dtype, valid values within tol in the output dtype, missing values bit-exact."""
    x = np.asarray(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    if x.dtype.kind != "f":
        np.testing.assert_array_equal(y, x)
        return
    missing = special_mask(x.astype(x.dtype.newbyteorder("=")), fill_values)
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(y.astype(np.float64) - x.astype(np.float64))
    assert np.all(err[~missing] <= tol), f"max error {err[~missing].max()} > tol {tol}"
    assert np.array_equal(y[missing].view(np.uint8), x[missing].view(np.uint8)), "missing values moved"


class WrappedCoder:
    """A registered coder passed through: subclasses override the calls they watch, ``log`` receives what they see."""

    def __init__(self, coder, log: list):
        self.coder, self.log = coder, log
        self.name, self.priority, self.min_level = coder.name, coder.priority, coder.min_level

    def __getattr__(self, attr):
        return getattr(self.coder, attr)


class _Spy(WrappedCoder):
    """A registered coder that records its name in ``log`` each time it encodes."""

    def encode(self, trial):
        self.log.append(self.name)
        return self.coder.encode(trial)


def spy_on_coders(monkeypatch) -> list[str]:
    """The names of the residual coders the core encodes in full, in order, from now until the monkeypatch ends."""
    from xdiffc import core

    tried: list[str] = []
    monkeypatch.setattr(core, "RESIDUAL_CODERS", {n: _Spy(c, tried) for n, c in core.RESIDUAL_CODERS.items()})
    return tried
