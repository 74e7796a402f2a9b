"""The model in L2 mode: ``compress(x, nrmse=eps, mode="l2", model=...)`` and its decoder.

A stand-in predictor that "knows" a texture (tests/test_model_seam.py) makes the model pay on
fields built from it; a tiny random GCDTC network exercises the real seam, with its latents
declared free and the model-free candidate set aside so that its stream is the one written.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import xdiffc
from xdiffc import core
from xdiffc.bitstream import Stream
from xdiffc.neural import load_model, modelfile
from xdiffc.neural.network import GCDTCNet
from tests.test_l2_api import _patch_ratios
from tests.test_model import TINY
from tests.test_model_guarantee import LatentsForFree
from tests.test_model_seam import BLOCK, TEXTURE, StandInPredictor


class StandIn(StandInPredictor):
    """The stand-in with the one call the L2 decoder adds: which blocks the payload carries."""

    def used_blocks(self, payload, shape):
        return np.frombuffer(payload[: len(self.block_slices(shape))], np.uint8).astype(bool)


class OtherDevice(StandIn):
    """The same model on another device: every used point off by the documented deviation times its block's range."""

    def reconstruct(self, payload, shape):
        out = super().reconstruct(payload, shape)
        regions = [r for r, u in zip(self.block_slices(shape), self.used_blocks(payload, shape)) if u]
        params = np.frombuffer(payload[len(self.block_slices(shape)):], np.float32).reshape(-1, 2)
        sign = np.where(np.indices(shape).sum(axis=0) % 2, 1.0, -1.0)
        for (_, a), region in zip(params, regions):
            out[region] += sign[region] * self.max_abs_deviation * 2 * abs(float(a))
        return out


class FreeTiny(LatentsForFree):
    """A real tiny network whose latents are declared free, with the L2 decoder's call passed through."""

    def used_blocks(self, payload, shape):
        return self.p.used_blocks(payload, shape)


def textured(seed: int, shape=(8, 32, 64), noise: float = 0.01) -> np.ndarray:
    """Per stand-in block ``c + a * texture``, with a, c drawn per block, plus a little noise: the stand-in's home ground."""
    rng = np.random.default_rng(seed)
    reps = tuple(n // b for n, b in zip(shape, BLOCK))
    a = np.kron(rng.uniform(2, 8, size=reps), np.ones(BLOCK))
    c = np.kron(rng.normal(0, 5, size=reps), np.ones(BLOCK))
    return (250 + c + a * np.tile(TEXTURE, reps) + rng.normal(0, noise, shape)).astype(np.float32)


@settings(max_examples=12)
@given(eps=st.sampled_from([1e-2, 1e-3, 1e-4]), seed=st.integers(0, 2**31), holes=st.booleans(),
       noise=st.sampled_from([0.01, 0.3]), dtype=st.sampled_from([np.float32, np.float64]))
def test_every_block_holds_with_the_model_on_this_and_another_device(eps, seed, holes, noise, dtype):
    x = textured(seed, noise=noise).astype(dtype)
    if holes:
        x[0, :5, :7] = np.nan
        x[3, 20:, 40:50] = 1e20
    blob = xdiffc.compress(x, nrmse=eps, mode="l2", model=StandIn(), fill_values=[1e20])
    stream = Stream.from_bytes(blob)
    for predictor in (StandIn(), OtherDevice()):
        y = xdiffc.decompress(blob, model=predictor)
        assert y.dtype == x.dtype and y.shape == x.shape
        assert np.array_equal(y[~np.isfinite(x) | (x == 1e20)].view(np.uint8),
                              x[~np.isfinite(x) | (x == 1e20)].view(np.uint8))
        assert _patch_ratios(np.where(x == 1e20, np.nan, x), np.where(x == 1e20, np.nan, y), eps).max() <= 1.0
    if noise == 0.01 and eps >= 1e-3:  # the texture costs the interpolation coder dearly, the model 8 bytes a block
        assert "model" in stream.sections and stream.header.model_id == "stand-in"
        assert len(blob) < len(xdiffc.compress(x, nrmse=eps, mode="l2", fill_values=[1e20]))


def test_the_model_is_left_out_where_it_does_not_pay():
    x = np.random.default_rng(3).normal(size=(8, 32, 64)).cumsum(-1).astype(np.float32)  # no texture
    blob = xdiffc.compress(x, nrmse=1e-3, mode="l2", model=StandIn())
    assert "model" not in Stream.from_bytes(blob).sections
    assert blob == xdiffc.compress(x, nrmse=1e-3, mode="l2")


def test_wrong_or_missing_model_raises_model_mismatch():
    blob = xdiffc.compress(textured(1), nrmse=1e-2, mode="l2", model=StandIn())
    assert "model" in Stream.from_bytes(blob).sections

    class Other(StandIn):
        model_id, sha256 = "other", "1" * 64

    with pytest.raises(xdiffc.ModelMismatchError, match="stand-in"):
        xdiffc.decompress(blob, model=Other())
    with pytest.raises(xdiffc.ModelMismatchError, match="stand-in"):
        xdiffc.decompress(blob)  # not a shipped model: the reader must name the file


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    torch.manual_seed(4)
    path = tmp_path_factory.mktemp("models") / "tiny-l2.pt"
    modelfile.save(path, GCDTCNet(TINY), max_abs_deviation=1e-4)
    return path


@pytest.mark.parametrize("eps", [1e-2, 1e-3])
def test_a_real_tiny_model_round_trips_and_a_wrong_one_is_refused(tiny_path, monkeypatch, eps):
    predictor = load_model(str(tiny_path), device="cpu")
    nbytes = core._Candidate.nbytes.fget
    monkeypatch.setattr(core._Candidate, "nbytes", property(lambda c: -1 if c.predictor is not None else nbytes(c)))
    x = textured(5, shape=(8, 32, 48), noise=0.3)[:, :30, :45]  # edge blocks and patches cut short
    x[1, :3, :4] = np.nan
    blob = xdiffc.compress(x, nrmse=eps, mode="l2", model=FreeTiny(predictor), steps=2)
    stream = Stream.from_bytes(blob)
    assert "model" in stream.sections and stream.header.model_sha256 == predictor.sha256
    assert predictor.used_blocks(stream.sections["model"], x.shape).any()
    y = xdiffc.decompress(blob, model=str(tiny_path), device="cpu")
    assert np.isnan(y[np.isnan(x)]).all()
    assert _patch_ratios(x, y, eps).max() <= 1.0
    with pytest.raises(xdiffc.ModelMismatchError, match="tiny-l2"):
        xdiffc.decompress(blob, model="default")


@pytest.fixture
def forced_tiny(tiny_path, monkeypatch):
    """The tiny model file, its cached predictor made to take every block (latents free, model candidate wins)."""
    predictor = load_model(str(tiny_path), device="cpu")  # the instance the codecs find in the cache
    analyse = predictor.analyse

    def free_latents(*args, **kwargs):
        a = analyse(*args, **kwargs)
        a.block_bytes = [-(10**9)] * len(a.block_bytes)
        return a

    monkeypatch.setattr(predictor, "analyse", free_latents)
    monkeypatch.setattr(core, "default_device", lambda: "cpu")
    nbytes = core._Candidate.nbytes.fget
    monkeypatch.setattr(core._Candidate, "nbytes", property(lambda c: -1 if c.predictor is not None else nbytes(c)))
    return str(tiny_path), predictor


def _chunk_ratios(x, y, eps, chunks):
    """Worst patch ratio of each chunk, normalised by the chunk's own range (the codecs' bound)."""
    worst = 0.0
    for t in range(0, x.shape[0], chunks[0]):
        for i in range(0, x.shape[1], chunks[1]):
            region = (slice(t, t + chunks[0]), slice(i, i + chunks[1]))
            worst = max(worst, _patch_ratios(x[region], y[region], eps).max())
    return worst


def test_numcodecs_and_zarr_v3_codecs_round_trip_with_the_model(forced_tiny, tmp_path):
    import zarr

    from xdiffc.codec import GCDTCCodec
    from xdiffc.model_files import codec_model
    from xdiffc.zarr_codec import GCDTCZarrCodec

    path, predictor = forced_tiny
    model_id, sha = codec_model(path)
    x = textured(6, shape=(8, 32, 48), noise=0.3)
    codec = GCDTCCodec(mode="l2", nrmse=1e-3, model_id=model_id, model_sha256=sha, steps=2)
    blob = codec.encode(x)
    assert "model" in Stream.from_bytes(blob).sections
    assert _patch_ratios(x, GCDTCCodec.from_config(codec.get_config()).decode(blob), 1e-3).max() <= 1.0
    serializer = GCDTCZarrCodec(mode="l2", nrmse=1e-3, model_id=model_id, model_sha256=sha, steps=2)
    a = zarr.create_array(tmp_path / "a.zarr", shape=x.shape, chunks=(8, 16, 48), dtype="float32",
                          serializer=serializer, compressors=None)
    a[:] = x
    chunk = Stream.from_bytes((tmp_path / "a.zarr" / "c" / "0" / "1" / "0").read_bytes())
    assert "model" in chunk.sections and chunk.header.model_sha256 == predictor.sha256
    assert _chunk_ratios(x, zarr.open_array(tmp_path / "a.zarr")[:], 1e-3, (8, 16)) <= 1.0


def test_the_accessor_writes_l2_with_the_model(forced_tiny, tmp_path, carry_any_model):
    import xarray as xr

    path, predictor = forced_tiny
    x = textured(7, shape=(8, 32, 48), noise=0.3)
    ds = xr.Dataset({"T": (("time", "lat", "lon"), x)}, coords={"time": np.arange(8.0)})
    ds.gcdtc.to_zarr(tmp_path / "s.zarr", nrmse=1e-3, model=path, chunks={"time": 8, "lat": 16, "lon": 48})
    out = xr.open_zarr(tmp_path / "s.zarr")
    assert out.T.encoding["serializer"].model_sha256 == predictor.sha256
    assert "model" in Stream.from_bytes((tmp_path / "s.zarr" / "T" / "c" / "0" / "1" / "0").read_bytes()).sections
    assert _chunk_ratios(x, out.T.values, 1e-3, (8, 16)) <= 1.0
