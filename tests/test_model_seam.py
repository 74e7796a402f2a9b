"""The model path of the core, with a small deterministic stand-in predictor.

The stand-in "knows" a fixed pseudo-random texture P (as a trained model knows its data) and
predicts each 4x16x16 block as ``c + a * P`` with two float32 numbers per block. Fields built
from that texture are hard for the interpolation coder and easy for the stand-in, so the
per-block choice must pick the model there, and must not where it does not help.
A "foreign device" variant perturbs its reconstruction by the documented maximum deviation,
as a GPU-encoded stream decoded on a CPU would see, and the bound must still hold.
"""

from dataclasses import dataclass

import numpy as np
import pytest

import xdiffc
from tests.helpers import assert_bounded

BLOCK = (4, 16, 16)
TEXTURE = np.random.default_rng(123).choice([-1.0, 1.0], size=BLOCK)


@dataclass
class Analysis:
    x_hat: np.ndarray
    block_bytes: list
    block_ranges: np.ndarray
    params: np.ndarray


class StandInPredictor:
    model_id = "stand-in"
    sha256 = "0" * 64
    max_abs_deviation = 1e-3

    def block_slices(self, shape):
        return [(slice(t, t + BLOCK[0]), slice(i, i + BLOCK[1]), slice(j, j + BLOCK[2]))
                for t in range(0, shape[0], BLOCK[0]) for i in range(0, shape[1], BLOCK[1])
                for j in range(0, shape[2], BLOCK[2])]

    def analyse(self, x, missing, steps):
        params, ranges = [], []
        for region in self.block_slices(x.shape):
            ok = ~missing[region]
            b, p = x[region][ok], TEXTURE[ok]
            a = float(np.dot(b - b.mean(), p - p.mean()) / max(np.dot(p - p.mean(), p - p.mean()), 1e-12))
            params.append((b.mean() - a * p.mean(), a))
            ranges.append(float(b.max() - b.min()))
        params = np.array(params, np.float32)
        x_hat = self.reconstruct(self.pack_params(params, np.ones(len(params), bool)), x.shape)
        return Analysis(x_hat, [8] * len(params), np.array(ranges), params)

    @staticmethod
    def pack_params(params, use):
        return np.asarray(use, np.uint8).tobytes() + params[np.asarray(use)].tobytes()

    def pack(self, an, use):
        return self.pack_params(an.params, use)

    def reconstruct(self, payload, shape):
        regions = self.block_slices(shape)
        use = np.frombuffer(payload[: len(regions)], np.uint8).astype(bool)
        params = np.frombuffer(payload[len(regions):], np.float32).reshape(-1, 2).astype(np.float64)
        out = np.zeros(shape)
        for (c, a), region in zip(params, [r for r, u in zip(regions, use) if u]):
            out[region] = c + a * TEXTURE
        return out


class OtherDevice(StandInPredictor):
    """The same model on another device: every prediction off by the documented maximum deviation."""

    def reconstruct(self, payload, shape):
        out = super().reconstruct(payload, shape)
        sign = np.where(np.indices(shape).sum(axis=0) % 2, 1.0, -1.0)
        # |a| * 2 is each block's range of c + a * P: the deviation scales with it, as documented.
        ranges = np.zeros(shape)
        regions = [r for r, u in zip(self.block_slices(shape), payload) if u]
        params = np.frombuffer(payload[len(self.block_slices(shape)):], np.float32).reshape(-1, 2)
        for (c, a), region in zip(params, regions):
            ranges[region] = 2 * abs(float(a))
        return out + sign * self.max_abs_deviation * ranges


def _textured_field(seed=0):
    """A smooth field times the stand-in's texture, plus a little noise."""
    t, y, x = np.meshgrid(np.arange(8), np.linspace(0, 2, 32), np.linspace(0, 4, 64), indexing="ij")
    amplitude = 5 + 3 * np.sin(y + 0.1 * t) * np.cos(x)
    rng = np.random.default_rng(seed)
    texture = np.tile(TEXTURE, (2, 2, 4))
    return (250 + amplitude * texture + rng.normal(0, 0.01, x.shape)).astype(np.float32)


def test_model_is_used_where_it_pays_and_the_stream_names_it():
    from xdiffc.bitstream import Stream

    x = _textured_field()
    predictor = StandInPredictor()
    blob = xdiffc.compress(x, rel_tol=1e-2, model=predictor)
    stream = Stream.from_bytes(blob)
    assert "model" in stream.sections
    assert stream.header.model_id == "stand-in" and stream.header.model_sha256 == "0" * 64
    y = xdiffc.decompress(blob, model=predictor)
    assert_bounded(x, y, 1e-2 * float(x.max() - x.min()))


@pytest.mark.parametrize("rel_tol", [1e-2, 1e-3])
def test_bound_holds_when_decoded_on_another_device(rel_tol):
    x = _textured_field(1)
    x[0, :3, :5] = np.nan
    encoder = StandInPredictor()
    blob = xdiffc.compress(x, rel_tol=rel_tol, model=encoder)
    decoder = OtherDevice()
    y = xdiffc.decompress(blob, model=decoder)
    assert_bounded(x, y, rel_tol * float(np.nanmax(x) - np.nanmin(x)))


def test_wrong_model_raises_model_mismatch():
    x = _textured_field()
    blob = xdiffc.compress(x, rel_tol=1e-2, model=StandInPredictor())

    class Other(StandInPredictor):
        model_id, sha256 = "other", "1" * 64

    with pytest.raises(xdiffc.ModelMismatchError, match="stand-in"):
        xdiffc.decompress(blob, model=Other())


def test_model_path_never_costs_more_than_model_free():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(8, 32, 64)).astype(np.float32)  # noise: the model cannot help
    with_model = xdiffc.compress(x, tol=0.05, model=StandInPredictor())
    without = xdiffc.compress(x, tol=0.05)
    assert len(with_model) <= len(without)


@pytest.mark.parametrize("family", ["gcdtc", "diffcoder"])
def test_a_model_named_by_path_reaches_the_stream(tmp_path, monkeypatch, family):
    """``compress(model=PATH)`` loads that file and codes with it: the stream carries its section and sha256.

    Neither tiny network pays, so its latents are declared free and the model-free candidates are
    dropped: the only stream left is the model's, or none at all (then it is stored exactly).
    """
    import torch

    from xdiffc import core
    from xdiffc.bitstream import Stream
    from xdiffc.neural import load_model

    torch.manual_seed(0)
    path = tmp_path / f"tiny-{family}.pt"
    if family == "gcdtc":
        from xdiffc.neural import modelfile
        from xdiffc.neural.network import GCDTCNet
        from tests.test_model import TINY

        modelfile.save(path, GCDTCNet(TINY), max_abs_deviation=1e-6)
    else:
        from xdiffc.diffcoder import DiffCoder, DiffCoderConfig, save

        save(path, DiffCoder(DiffCoderConfig(resolution=32, depth=2, latent_channels=2, enc_widths=(4,),
                                             unet_widths=(4,), t_dim=8, circular=False, rate_weight=0.01)), 1e-6, {})
    predictor = load_model(str(path), device="cpu")  # the instance compress will find in the cache
    analyse = predictor.analyse

    def free_latents(*args, **kwargs):
        a = analyse(*args, **kwargs)
        a.block_bytes = [-(10**9)] * len(a.block_bytes)
        return a

    monkeypatch.setattr(predictor, "analyse", free_latents)
    real = core._residual_candidates
    monkeypatch.setattr(core, "_residual_candidates",
                        lambda *a, **k: real(*a, **k) if k.get("prediction", a[4] if len(a) > 4 else None) is not None
                        else [])
    x = _textured_field()[:, :, :32]
    blob = xdiffc.compress(x, rel_tol=1e-2, model=str(path), device="cpu", steps=1)
    stream = Stream.from_bytes(blob)
    assert "model" in stream.sections and stream.header.model_sha256 == predictor.sha256
    assert_bounded(x, xdiffc.decompress(blob, model=str(path), device="cpu"), 1e-2 * float(x.max() - x.min()))
