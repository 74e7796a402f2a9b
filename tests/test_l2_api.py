"""mode="l2" through the public API: every 8x8 patch meets its L2 bound, so the NRMSE is at most eps."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import xdiffc
from xdiffc.masking import special_mask


def _patch_ratios(x: np.ndarray, y: np.ndarray, eps: float) -> np.ndarray:
    """Per 8x8 patch of each slice: ||y - x||_2 / (eps * sqrt(n_valid) * range) over valid points."""
    valid = ~special_mask(x)
    span = float(x[valid].max() - x[valid].min())
    err2 = np.where(valid, (y.astype(np.float64) - x.astype(np.float64)) ** 2, 0.0)
    x2 = err2.reshape(-1, *x.shape[-2:])
    v2 = valid.reshape(-1, *x.shape[-2:])
    ratios = []
    for s in range(x2.shape[0]):
        for i in range(0, x.shape[-2], 8):
            for j in range(0, x.shape[-1], 8):
                n = v2[s, i:i + 8, j:j + 8].sum()
                if n:
                    ratios.append(np.sqrt(x2[s, i:i + 8, j:j + 8].sum()) / (eps * np.sqrt(n) * span))
    return np.array(ratios)


@given(st.sampled_from([1e-2, 1e-3, 1e-4]), st.sampled_from([np.float32, np.float64]),
       st.integers(0, 2**31), st.sampled_from([(3, 20, 33), (17, 9), (2, 2, 16, 16)]))
def test_every_patch_meets_its_bound(eps, dtype, seed, shape):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=shape).cumsum(axis=-1) + 5 * rng.random(shape) ** 8).astype(dtype)
    x.flat[:: max(1, x.size // 7)] = np.nan
    y = xdiffc.decompress(xdiffc.compress(x, nrmse=eps, mode="l2"))
    assert y.dtype == x.dtype and y.shape == x.shape
    assert np.isnan(y[np.isnan(x)]).all()
    assert _patch_ratios(x, y, eps).max() <= 1.0
    valid = ~np.isnan(x)
    nrmse = np.sqrt(np.mean((y[valid].astype(np.float64) - x[valid]) ** 2)) / np.ptp(x[valid])
    assert nrmse <= eps


def test_l2_mode_on_a_sample_beats_lossless_and_holds():
    from xdiffc.datasets import open_sample

    x = open_sample("trefht").TREFHT.values[:20]
    blob = xdiffc.compress(x, nrmse=1e-3, mode="l2")
    assert x.nbytes / len(blob) > 5
    assert _patch_ratios(x, xdiffc.decompress(blob), 1e-3).max() <= 1.0


@pytest.mark.parametrize("kwargs", [dict(mode="l2"), dict(mode="l2", tol=0.1), dict(nrmse=1e-3),
                                    dict(mode="l2", nrmse=-1.0), dict(mode="max", tol=0.1)])
def test_bad_l2_arguments(kwargs):
    with pytest.raises(ValueError):
        xdiffc.compress(np.zeros((16, 16), np.float32), **kwargs)


def test_corrupt_guarantee_section_raises():
    from xdiffc.bitstream import Stream

    x = np.random.default_rng(0).normal(size=(4, 32, 32)).cumsum(-1).astype(np.float32)
    stream = Stream.from_bytes(xdiffc.compress(x, nrmse=1e-2, mode="l2"))
    pca = bytearray(stream.sections["pca"])
    pca[len(pca) // 2] ^= 0xFF
    stream.sections["pca"] = bytes(pca)
    with pytest.raises(xdiffc.CorruptStreamError):
        xdiffc.decompress(stream.to_bytes())  # the container CRC is recomputed: the section's own checks must catch it
