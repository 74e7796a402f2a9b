"""DiffCoder: the sigmoid schedule, tiny training runs, reproducible sampling, and the codec seam."""

import math

import numpy as np
import pytest
import torch
import xarray as xr

import xdiffc
import xdiffc.core
from tests.helpers import assert_bounded
from xdiffc.datasets import open_sample
from xdiffc.diffcoder import BlockNet, DiffCoder, DiffCoderConfig, save, sigmoid_alpha_bar, train
from xdiffc.diffcoder.schedule import eps_from_v, v_target, x0_from_v
from xdiffc.diffcoder.train import Plateau, extend_checkpoint, validation_loss
from xdiffc.neural import ModelPredictor, layout, load_model
from xdiffc.training import estimate_deviation

pytestmark = pytest.mark.usefixtures("one_torch_thread")


TINY = dict(resolution=16, depth=2, latent_channels=2, enc_widths=(4, 8), unet_widths=(4, 8), t_dim=8)


@pytest.mark.parametrize("start, end, tau", [(-3.0, 3.0, 1.0), (0.0, 3.0, 0.7), (-3.0, 3.0, 1.1)])
def test_sigmoid_schedule_is_monotone_with_configured_endpoints(start, end, tau):
    abar = sigmoid_alpha_bar(1000, start, end, tau, clip_min=1e-9)
    assert abar.dtype == np.float64 and abar.shape == (1001,)
    assert abar[0] == 1.0 and abar[-1] == 1e-9
    assert np.all(np.diff(abar[:-1]) < 0)
    sig = lambda u: 1 / (1 + math.exp(-u))  # noqa: E731
    t = 0.3
    expected = (sig(end / tau) - sig((t * (end - start) + start) / tau)) / (sig(end / tau) - sig(start / tau))
    assert abar[300] == pytest.approx(expected, rel=1e-14)


def test_symmetric_schedule_is_half_way_at_mid_time():
    assert sigmoid_alpha_bar(1000)[500] == pytest.approx(0.5, abs=1e-15)


def test_v_x0_eps_conversions_are_exact():
    rng = np.random.default_rng(0)
    x0, eps = rng.standard_normal((2, 1000))
    for a in sigmoid_alpha_bar(1000)[::37]:
        a = float(a)
        x_t = math.sqrt(a) * x0 + math.sqrt(1 - a) * eps
        v = v_target(x0, eps, a)
        np.testing.assert_allclose(x0_from_v(x_t, v, a), x0, rtol=0, atol=1e-13)
        np.testing.assert_allclose(eps_from_v(x_t, v, a), eps, rtol=0, atol=1e-13)


@pytest.mark.parametrize("kind", ["diffcoder", "vae"])
def test_tiny_model_trains_a_few_steps(kind):
    torch.manual_seed(0)
    net = DiffCoder(DiffCoderConfig(kind=kind, **TINY))
    before = [p.detach().clone() for p in net.parameters()]
    data = np.random.default_rng(0).standard_normal((6, 16, 16)).astype(np.float32)
    history = train(net, data, steps=3, batch=2, log_every=1)
    assert len(history) == 3 and all(math.isfinite(h["loss"]) for h in history)
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))
    z = net.encode(torch.from_numpy(data[:2, None]))
    assert z.shape == (2, 2, 4, 4)
    assert net.decode(z, 3).shape == (2, 1, 16, 16)


def _smooth_fields(n: int, side: int = 16, seed: int = 0) -> np.ndarray:
    """Random sums of a few low Fourier modes on a periodic square, unit variance: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    y, x = np.asarray(np.meshgrid(np.arange(side), np.arange(side), indexing="ij")) * (2 * np.pi / side)
    out = np.zeros((n, side, side))
    for kx, ky in [(1, 0), (0, 1), (1, 1), (2, 1)]:
        a, b = rng.standard_normal((2, n, 1, 1))
        out += a * np.cos(kx * x + ky * y) + b * np.sin(kx * x + ky * y)
    return (out / out.std()).astype(np.float32)


@pytest.mark.parametrize("kind", ["diffcoder", "vae"])
def test_training_lowers_the_loss_and_beats_predicting_zero(kind):
    torch.manual_seed(0)
    net = DiffCoder(DiffCoderConfig(kind=kind, **{**TINY, "enc_widths": (8, 16), "unet_widths": (8, 16)}))
    data = _smooth_fields(16)
    before = validation_loss(net, data, repeats=2)
    train(net, data, steps=150, batch=8, lr=3e-3, log_every=50)
    after = validation_loss(net, data, repeats=2)
    assert after < 0.7 * before
    with torch.no_grad():
        y = net.decode(net.encode(torch.from_numpy(data[:, None])), 4)[:, 0].numpy()
    rel_l2 = np.linalg.norm(y - data) / np.linalg.norm(data)
    assert rel_l2 < 0.9  # predicting zero scores 1


def test_plateau_training_resumes_from_its_checkpoint_bit_for_bit(tmp_path):
    data = _smooth_fields(12)
    val = _smooth_fields(4, seed=1)
    plateau = Plateau(eval_every=2, patience=50)

    def run(steps: int, ckpt) -> DiffCoder:
        torch.manual_seed(0)
        net = DiffCoder(DiffCoderConfig(**TINY))
        train(net, data, steps=steps, batch=2, val=val, plateau=plateau, checkpoint=ckpt)
        return net

    whole = run(6, None)
    run(4, tmp_path / "run.ckpt")  # stopped after 4 steps ...
    resumed = run(6, tmp_path / "run.ckpt")  # ... and resumed to 6
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_a_capped_run_extends_with_its_plateau_state_replayed(tmp_path):
    data, val = _smooth_fields(12), _smooth_fields(4, seed=1)
    plateau = Plateau(eval_every=2, patience=2, min_delta=0.5, reductions=3, repeats=1, warmup=1)
    torch.manual_seed(0)
    net = DiffCoder(DiffCoderConfig(**TINY))
    history = train(net, data, steps=8, batch=2, lr=1e-2, val=val, plateau=plateau)
    curve = [h for h in history if "val_loss" in h]
    assert history[-1]["step"] == 8 and curve[-1]["lr"] < 1e-2  # capped, after at least one halving
    best = min(h["val_loss"] for h in curve)
    extend_checkpoint(tmp_path / "run.ckpt", net, curve, history[-1]["seconds"], plateau, 1e-2, seed=0)
    more = train(net, data, steps=12, batch=2, lr=1e-2, val=val, plateau=plateau, checkpoint=tmp_path / "run.ckpt")
    evals = [h for h in more if "val_loss" in h]
    assert [h["step"] for h in evals] == [2, 4, 6, 8, 10, 12]
    assert evals[4]["lr"] <= curve[-1]["lr"]  # the rate it had reached, not the initial one
    assert min(h["val_loss"] for h in evals) <= best


def test_plateau_stops_training_and_keeps_the_best_weights():
    torch.manual_seed(0)
    net = DiffCoder(DiffCoderConfig(kind="vae", **TINY))
    data = _smooth_fields(8)
    history = train(net, data, steps=10_000, batch=4, lr=1e-2, val=data[:4],
                    plateau=Plateau(eval_every=5, patience=2, min_delta=0.5, reductions=1, repeats=1, warmup=1))
    evals = [h for h in history if "val_loss" in h]
    assert history[-1]["step"] < 10_000  # a 50% gain is never sustained: it stopped on the plateau
    assert evals[0]["lr"] == 1e-2 and evals[-1]["lr"] == 5e-3
    assert validation_loss(net, data[:4], repeats=1) == pytest.approx(min(h["val_loss"] for h in evals), rel=1e-6)
    with pytest.raises(ValueError, match="validation"):
        train(net, data, steps=2, plateau=Plateau())


def test_deterministic_decoding_is_reproducible_and_sampling_is_seeded():
    torch.manual_seed(1)
    net = DiffCoder(DiffCoderConfig(**TINY)).eval()
    z = torch.randn(2, 2, 4, 4)
    with torch.no_grad():
        a, b = net.decode(z, 4), net.decode(z, 4)
        s1 = net.decode(z, 4, sample=True, generator=torch.Generator().manual_seed(5))
        s2 = net.decode(z, 4, sample=True, generator=torch.Generator().manual_seed(5))
        s3 = net.decode(z, 4, sample=True, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and torch.equal(s1, s2)
    assert not torch.equal(s1, s3) and not torch.equal(a, s1)


@pytest.fixture(scope="module")
def codec_model(tmp_path_factory):
    """A tiny codec DiffCoder (64 x 64 blocks) trained a few steps on TREFHT blocks, saved to a file."""
    torch.manual_seed(0)
    x = open_sample("trefht")["TREFHT"].values[:8].astype(np.float64)
    blocks = layout.fold(x, np.zeros(x.shape, bool), (1, 64, 64))
    config = DiffCoderConfig(resolution=64, depth=3, latent_channels=2, enc_widths=(4, 8), unet_widths=(4, 8),
                             t_dim=8, circular=False, rate_weight=0.01, data_scale=4.0)
    net = DiffCoder(config)
    train(net, blocks.data[:, 0] * config.data_scale, steps=3, batch=2)
    deviation = estimate_deviation(BlockNet(net), layout.Blocks(blocks.data[:2], *[a[:2] for a in
                                   (blocks.valid, blocks.means, blocks.ranges)]), steps=2)
    path = tmp_path_factory.mktemp("diffcoder") / "tiny-diffcoder.pt"
    digest = save(path, net, deviation, {"data": "TREFHT first 8 years"})
    return path, digest


def test_codec_round_trip_holds_the_bound(codec_model):
    path, digest = codec_model
    pred = load_model(str(path), sha256=digest)
    assert load_model(str(path)) is pred and pred.sha256 == digest
    x = open_sample("trefht")["TREFHT"].values[20:23]
    tol = 1e-2 * float(x.max() - x.min())
    blob = xdiffc.compress(x, rel_tol=1e-2, model=pred, steps=2)
    assert_bounded(x, xdiffc.decompress(blob, model=pred), tol)


def test_seam_reconstructs_exactly_what_was_analysed(codec_model):
    pred = load_model(str(codec_model[0]))
    x = open_sample("trefht")["TREFHT"].values[30:32].astype(np.float64)
    a = pred.analyse(x, np.zeros(x.shape, bool), steps=2)
    assert len(pred.block_slices(x.shape)) == len(a.block_bytes) == 4
    use = np.array([True, False, True, True])
    y = pred.reconstruct(pred.pack(a, use), x.shape)
    for u, region in zip(use, pred.block_slices(x.shape)):
        np.testing.assert_array_equal(y[region], a.x_hat[region] if u else 0.0)


class _Eager(ModelPredictor):
    """Claims its latents are free, so the core's block chooser takes the model on every block."""

    def analyse(self, x, missing, steps, **kw):
        a = super().analyse(x, missing, steps, **kw)
        a.block_bytes = [-10**9] * len(a.block_bytes)
        return a


def _through_the_model(x, base: ModelPredictor, monkeypatch, **kw) -> bytes:
    """``xdiffc.compress(x, model=...)`` with the model taken on every block and the model-free candidates
    dropped, so that the stream must carry the model's prediction."""
    pred = _Eager.__new__(_Eager)
    pred.__dict__.update(base.__dict__)
    real = xdiffc.core._residual_candidates
    with monkeypatch.context() as mp:
        mp.setattr(xdiffc.core, "_residual_candidates",
                   lambda w, v, t, m, prediction=None, **k: [] if prediction is None else real(w, v, t, m, prediction, **k))
        return xdiffc.compress(x, model=pred, **kw)


def test_bound_holds_when_the_model_path_is_taken(codec_model, monkeypatch):
    path, digest = codec_model
    base = load_model(str(path))
    x = open_sample("trefht")["TREFHT"].values[40:43]
    blob = _through_the_model(x, base, monkeypatch, rel_tol=1e-2, steps=2)
    with pytest.raises(xdiffc.ModelMismatchError):
        xdiffc.decompress(blob)
    y = xdiffc.decompress(blob, model=base)
    assert_bounded(x, y, 1e-2 * float(x.max() - x.min()))
    with pytest.raises(xdiffc.ModelMismatchError):
        load_model(str(path), sha256="0" * 64)


def test_a_diffcoder_file_works_through_the_standard_interfaces(codec_model, tmp_path, carry_any_model):
    """By path: load_model dispatches on the file's format, and a Zarr store written with it holds the bound."""
    path, digest = codec_model
    assert isinstance(load_model(str(path)).net, BlockNet)
    ds = open_sample("trefht").isel(time=slice(20, 23))
    store = ds.gcdtc.to_zarr(tmp_path / "dc.zarr", rel_tol=1e-2, model=str(path), steps=2)
    out = xr.open_zarr(store)
    assert out.TREFHT.encoding["serializer"].model_sha256 == digest
    report = ds.gcdtc.error_report(out)
    assert report.loc["TREFHT", "max_err_over_bound"] <= 1.0


def test_the_shipped_kolmogorov_diffcoder_works_under_the_guarantee(monkeypatch):
    """``model="diffcoder-kolmogorov"`` by name: its file checks out, and with the model forced on every block
    (it rarely pays on its own) the stream names it, decodes by name alone, and holds the bound."""
    base = load_model("diffcoder-kolmogorov")
    assert isinstance(base.net, BlockNet) and base.config.depth == 4 and base.config.rate_weight > 0
    assert base.sha256 == load_model("diffcoder-kolmogorov", sha256=base.sha256).sha256
    x = (_smooth_fields(2, side=64, seed=3) * 5.0).astype(np.float32)
    blob = _through_the_model(x, base, monkeypatch, rel_tol=1e-2, steps=2)
    assert "model" in xdiffc.bitstream.Stream.from_bytes(blob).sections
    y = xdiffc.decompress(blob, model="diffcoder-kolmogorov")
    assert_bounded(x, y, 1e-2 * float(x.max() - x.min()))
