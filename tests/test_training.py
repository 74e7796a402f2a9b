"""Training: a tiny model trains a few steps on netCDF and Zarr, checkpoints and resumes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st

from xdiffc.neural import load_model
from xdiffc.neural.network import RATES, GCDTCNet, ModelConfig
from xdiffc.training import load_fields, train

pytestmark = [pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning"),  # the fixture's plain to_zarr
              # PS(time, ncol) of the fixture has no lat/lon, which load_fields rightly warns about (tested below)
              pytest.mark.filterwarnings("ignore:no lat/lon for dimension 'ncol':UserWarning")]
NO_LATLON = "no lat/lon for dimension 'ncol'"

TINY = ModelConfig(block=(4, 8, 8), down_t=2, down_s=4, enc_channels=(4,), latent_channels=2,
                   cond=(2, 2, 2), unet_widths=(4, 4, 4), t_dim=8, corr_width=2, default_steps=1)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    rng = np.random.default_rng(0)
    d = tmp_path_factory.mktemp("data")
    t = np.cumsum(rng.normal(size=(12, 10, 14)), axis=2).astype(np.float32)
    t[0, 0, 0] = np.nan
    ds = xr.Dataset({"T": (("time", "lat", "lon"), t),
                     "PS": (("time", "ncol"), rng.normal(size=(12, 30)).astype(np.float32)),
                     "time_bnds": (("time", "nbnd"), np.zeros((12, 2))),
                     "lat_w": (("lat",), np.ones(10))})
    nc, zarr = d / "a.nc", d / "b.zarr"
    ds.to_netcdf(nc)
    ds[["T"]].to_zarr(zarr)
    return [str(nc), str(zarr)]


def test_load_fields_picks_and_splits(data):
    with pytest.warns(UserWarning, match=NO_LATLON):
        train_f, val_f = load_fields(data)
    assert sorted({f.name for f in train_f}) == ["a.nc:PS", "a.nc:T", "b.zarr:T"]
    t = next(f for f in train_f if f.name == "a.nc:T")
    v = next(f for f in val_f if f.name == "a.nc:T")
    assert t.values.shape == (1, 10, 10, 14) and v.values.shape == (1, 2, 10, 14)
    assert t.missing[0, 0, 0, 0] and not v.missing.any()


def test_train_checkpoint_resume(data, tmp_path):
    torch.set_num_threads(1)
    out = tmp_path / "m.pt"
    kw = dict(config=TINY, batch_blocks=2, slices_per_block=2, eval_every=2, val_blocks=2,
              correction_fraction=0.25, progress=False)
    train(data, out, steps=4, **kw)
    ckpt = torch.load(str(out) + ".ckpt", weights_only=True)
    assert ckpt["step"] == 4
    # resuming at the saved step trains nothing: the model is exactly the checkpoint's, here marked
    # by halving its weights, which a run from scratch (deterministic, so otherwise the same) lacks
    ckpt["model"] = {k: v / 2 if v.is_floating_point() else v for k, v in ckpt["model"].items()}
    torch.save(ckpt, str(out) + ".ckpt")
    train(data, out, steps=4, resume=True, **kw)
    pred = load_model(str(out))
    assert all(torch.equal(pred.net.state_dict()[k], v) for k, v in ckpt["model"].items())
    train(data, out, steps=6, resume=True, **kw)
    ckpt = torch.load(str(out) + ".ckpt", weights_only=True)
    assert ckpt["step"] == 6
    pred = load_model(str(out))
    assert pred.meta["steps"] == 6 and pred.block_shape == (4, 8, 8)
    x = np.random.default_rng(1).normal(size=(5, 9, 9))
    a = pred.analyse(x, np.zeros(x.shape, bool), steps=1)
    assert np.isfinite(a.x_hat).all()


def test_native_grid_fields_train_on_their_cube_canvas():
    from xdiffc.datasets import sample_path

    train_fields, val_fields = load_fields([sample_path("camse_ts")], ["TS"])
    assert train_fields[0].values.shape[-2:] == (180, 271)  # ne30np4: faces of n = 90 on a (2n, 3n + 1) canvas
    padding = 180 * 271 - 48602
    assert train_fields[0].missing[0, 0].sum() == padding and not np.isnan(train_fields[0].values).any()


@given(rate=st.sampled_from(sorted(RATES)), scale=st.sampled_from([1, 2]))
def test_the_rate_knob_sets_the_latent_density(rate, scale):
    """``ModelConfig.at_rate(v)``: one latent per v values, for the default block and others."""
    for block in [(16, 64, 64), (4 * scale, 16 * scale, 8 * scale * 2)]:
        config = ModelConfig.at_rate(rate, block=block, enc_channels=(4,))
        assert config.values_per_latent == rate
        z = GCDTCNet(config).encode(torch.zeros(1, *block))
        assert tuple(z.shape[1:]) == config.latent_shape
        assert np.prod(block) / z[0].numel() == rate
    with pytest.raises(ValueError, match="values per latent"):
        ModelConfig.at_rate(rate + 1)


def test_xdiffc_train_passes_the_rate_knob(monkeypatch, tmp_path):
    from xdiffc import cli, training

    seen = {}
    monkeypatch.setattr(training, "train", lambda data, output, **kw: seen.update(kw) or output)
    assert cli.main(["train", "x.nc", "-o", str(tmp_path / "m.pt"), "--values-per-latent", "8",
                     "--rate-weight", "0.01"]) == 0
    assert seen["config"] == ModelConfig.at_rate(8) and seen["config"].latent_shape == (8, 4, 16, 16)
    assert seen["rate_weight"] == 0.01
    assert cli.main(["train", "x.nc", "-o", str(tmp_path / "m.pt")]) == 0
    assert seen["config"] == ModelConfig()  # the default rate is the shipped model's
    with pytest.raises(SystemExit) as usage:  # not a preset: argparse's usage error
        cli.main(["train", "x.nc", "-o", "m.pt", "--values-per-latent", "5"])
    assert usage.value.code == 2
