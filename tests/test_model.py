"""The neural predictor: layout, entropy coding, model files and the seam with the core."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xdiffc import CorruptStreamError, ModelMismatchError
from xdiffc.neural import layout, load_model, modelfile
from xdiffc.neural.entropy import FrozenCoder, LogisticPrior
from xdiffc.neural.network import GCDTCNet, ModelConfig

TINY = ModelConfig(block=(4, 8, 8), down_t=2, down_s=4, enc_channels=(4,), latent_channels=2,
                   cond=(2, 2, 2), unet_widths=(4, 4, 4), t_dim=8, corr_width=2, radius=1, default_steps=2)

SHAPES = [(7,), (5, 9), (1, 1), (3, 17, 21), (9, 2, 13, 10), (2, 3, 2, 5, 7), (1, 3, 4)]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    torch.manual_seed(0)
    net = GCDTCNet(TINY)
    with torch.no_grad():  # spread the latents so that some escape the table
        net.encoder.net[-1].weight.mul_(100.0)
    path = tmp_path_factory.mktemp("models") / "tiny.pt"
    modelfile.save(path, net, max_abs_deviation=1e-6)
    return str(path)


def _field(shape, seed=0):
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.normal(size=shape), axis=-1) + 280.0
    missing = rng.random(shape) < 0.05
    return x, missing


@pytest.mark.parametrize("shape", SHAPES)
def test_cut_paste_exact_and_slices_tile(shape):
    x = np.random.default_rng(1).normal(size=shape)
    block = (4, 8, 8)
    assert np.array_equal(layout.paste(layout.cut(x, block), shape, block), x)
    count = np.zeros(shape, int)
    for region in layout.BlockGrid(shape, block).slices():
        count[region] += 1
    assert (count == 1).all()


@pytest.mark.parametrize("shape", SHAPES)
def test_fold_normalises_and_unfolds(shape):
    x, missing = _field(shape)
    b = layout.fold(x, missing, (4, 8, 8))
    assert b.data.dtype == np.float32 and np.isfinite(b.data).all()
    assert np.abs(b.data[b.valid]).max() <= 1.0 + 1e-6
    y = layout.unfold(b.data, b.means, b.ranges, shape, (4, 8, 8))
    # exact up to float32 rounding of the normalised values and of the stored mean
    assert np.allclose(y[~missing], x[~missing], rtol=1e-7, atol=1e-5 * np.ptp(x))


def test_entropy_roundtrip_with_escapes():
    prior = LogisticPrior(3)
    coder = FrozenCoder(prior.freeze(radius=4))
    q = np.random.default_rng(2).integers(-9, 10, size=(2, 3, 2, 2, 2))
    q[0, 0, 0, 0, 0] = 2**20  # far outside the table
    words, raw = coder.encode(q)
    assert raw.size > 0
    assert np.array_equal(coder.decode(words, raw, q.shape), q)
    with pytest.raises(ValueError):
        coder.decode(words, raw[:-1], q.shape)


def test_seam_roundtrip_bit_identical(tiny_model):
    pred = load_model(tiny_model)
    x, missing = _field((3, 2, 9, 8))
    a = pred.analyse(x, missing, steps=2)
    n = len(pred.block_slices(x.shape))
    assert a.x_hat.shape == x.shape and len(a.block_bytes) == n == len(a.block_ranges)
    assert pred.coder.symbols(a.latents)[1].size > 0  # escapes are exercised
    use = np.arange(n) % 3 != 1
    payload = pred.pack(a, use)
    assert payload[0] == 1 and payload == pred.pack(pred.analyse(x, missing, steps=2), use)
    y = pred.reconstruct(payload, x.shape)
    for region, used in zip(pred.block_slices(x.shape), use):
        if used:
            assert np.array_equal(y[region], a.x_hat[region])
        else:
            assert (y[region] == 0).all()
    none = pred.pack(a, np.zeros(n, bool))
    assert (pred.reconstruct(none, x.shape) == 0).all()
    x[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        pred.analyse(x, np.zeros(x.shape, bool), steps=1)


def test_small_chunks_and_correction_flag(tiny_model):
    pred = load_model(tiny_model)
    for shape in [(3,), (2, 3), (1, 1, 1)]:
        x, missing = _field(shape, seed=3)
        a = pred.analyse(x, missing, steps=1, correction=False)
        y = pred.reconstruct(pred.pack(a, np.ones(len(a.block_bytes), bool)), shape)
        assert np.array_equal(y, a.x_hat)


def test_corrupt_payload(tiny_model):
    pred = load_model(tiny_model)
    x, missing = _field((5, 9, 9))
    payload = pred.pack(pred.analyse(x, missing, steps=1), np.ones(len(pred.block_slices(x.shape)), bool))
    bad = [payload[:5], payload[:-1], payload + b"\0", b"\x07" + payload[1:],
           payload[:12] + b"\xff\xff" + payload[14:]]
    for blob in bad:
        with pytest.raises(CorruptStreamError):
            pred.reconstruct(blob, x.shape)
    with pytest.raises(CorruptStreamError):
        pred.reconstruct(payload, (5, 9, 30))
    foreign = payload[:2] + bytes(8) + payload[10:]
    with pytest.raises(ModelMismatchError):
        pred.reconstruct(foreign, x.shape)


def test_cache_and_sha256(tiny_model):
    a = load_model(tiny_model)
    assert load_model(tiny_model, sha256=a.sha256) is a
    assert a.model_id == "tiny" and len(a.sha256) == 64 and a.max_abs_deviation == 1e-6
    with pytest.raises(ModelMismatchError, match=a.sha256):
        load_model(tiny_model, sha256="0" * 64)


def test_a_model_file_replaced_on_disk_is_hashed_again(tmp_path):
    path = tmp_path / "swap.pt"
    torch.manual_seed(3)
    modelfile.save(path, GCDTCNet(TINY), max_abs_deviation=1e-6)
    first = load_model(str(path))
    torch.manual_seed(4)
    modelfile.save(path, GCDTCNet(TINY), max_abs_deviation=2e-6)  # new bytes, new size or mtime
    second = load_model(str(path))
    assert second.sha256 != first.sha256 and second.max_abs_deviation == 2e-6
    with pytest.raises(ModelMismatchError):
        load_model(str(path), sha256=first.sha256)
