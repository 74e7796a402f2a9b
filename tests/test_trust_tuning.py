"""suggest_tol where DSSIM decides: a textured field whose slices sit far apart (so the pooled Pearson correlation,
the KS test and the spatial relative error all pass long after DSSIM fails). The bound found must pass Baker's
DSSIM >= 0.995, and the next looser bound tried must fail on DSSIM alone."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from xdiffc import metrics, tuning

DSSIM_MIN = 0.995  # Baker et al.'s threshold, written out: the default criteria must hold it


def textured(seed: int = 0) -> np.ndarray:
    """Four 64 x 64 slices at 1e5 + 1000 t (large magnitudes: the spatial relative error passes; far-apart slices:
    the pooled correlation passes), each a gentle gradient plus a unit texture plus noise (DSSIM sees the texture)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.arange(64), np.arange(64), indexing="ij")
    tex = np.sin(xx * 1.3) * np.cos(yy * 0.9)
    return (1e5 + 1000 * np.arange(4)[:, None, None] + 10 * (yy / 63.0)[None] + tex[None]
            + rng.normal(size=(4, 64, 64)) * 0.1)


def noisy_compressor(x: np.ndarray, tol: float) -> tuple[int, np.ndarray]:
    """A stand-in codec: uniform noise of amplitude 0.999 tol (within the bound), a fixed size."""
    return x.nbytes // 10, x + 0.999 * tol * np.random.default_rng(1).uniform(-1, 1, x.shape)


def check_dssim_decided(good: tuning.Trial, bad: tuning.Trial) -> None:
    crit = metrics.resolve_criteria("baker")
    assert good.passed and good.metrics["dssim"] >= DSSIM_MIN
    assert bad is not None and bad.tol > good.tol and bad.tol / good.tol <= tuning.resolution() * (1 + 1e-9)
    assert bad.metrics["dssim"] < DSSIM_MIN
    checks = crit.checks(bad.metrics)
    assert [k for k, ok in checks.items() if ok is False] == ["dssim"]  # DSSIM alone decided
    assert checks["spre_pct"] and checks["pcc"] and checks["ks_p"]


@pytest.mark.parametrize("compressor", ["xdiffc", "noise"])
def test_dssim_binds_the_search(compressor):
    x = textured()
    blocks = [(x, np.ones(x.shape, bool))]
    run = tuning.xdiffc_compressor() if compressor == "xdiffc" else noisy_compressor
    good, bad, _ = tuning.search(blocks, run, metrics.resolve_criteria("baker"))
    check_dssim_decided(good, bad)
    assert good.tol < tuning.spre_safe(blocks, metrics.resolve_criteria("baker")) / 10  # the guess failed on DSSIM


def test_suggest_tol_reports_dssim_as_binding():
    ds = xr.Dataset({"T": (("time", "lat", "lon"), textured())})
    found = tuning.suggest_tol(ds, variables=["T"])
    row = found.table.loc["T"]
    assert row["kind"] == "tol" and row["passed"] and not row["lossless"]
    assert row["binding"] == "dssim"
    assert row["dssim"] >= DSSIM_MIN
    assert found["T"] == row["tol"] > 0
    # the reported bound passes DSSIM on a fresh coding of the whole variable, and a bound one resolution step
    # looser fails it
    crit = metrics.resolve_criteria("baker")
    run = tuning.xdiffc_compressor()
    blocks = [(ds["T"].values, np.ones(ds["T"].shape, bool))]
    at = tuning.evaluate(blocks, run, found["T"], crit).completed()
    above = tuning.evaluate(blocks, run, found["T"] * tuning.resolution(), crit).completed()
    assert at.passed and at.metrics["dssim"] >= DSSIM_MIN
    assert not above.passed and above.metrics["dssim"] < DSSIM_MIN
