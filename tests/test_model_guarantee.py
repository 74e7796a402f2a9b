"""The pointwise guarantee with a neural prediction in the stream: an untrained model and the shipped one.

Neither model pays on these fields, so ``compress`` would (rightly) keep the model-free path. To
test the decode path with a model's prediction in the stream, a wrapper declares every block's
latents free, so that the per-block choice takes the model wherever its residual is cheaper, and
the stream is assembled from the core's own model-path candidate.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xdiffc
from xdiffc import core
from xdiffc.bitstream import Header, Stream
from xdiffc.datasets import open_sample
from xdiffc.fidelity import OutputRule
from xdiffc.masking import special_mask
from xdiffc.neural import load_model, modelfile
from xdiffc.neural.network import GCDTCNet
from tests.helpers import assert_bounded
from tests.test_model import TINY


class LatentsForFree:
    """A predictor whose latents are declared free: the per-block choice then keeps every block it can."""

    def __init__(self, predictor):
        self.p = predictor
        self.model_id, self.sha256, self.max_abs_deviation = predictor.model_id, predictor.sha256, predictor.max_abs_deviation

    def block_slices(self, shape):
        return self.p.block_slices(shape)

    def analyse(self, x, missing, steps):
        a = self.p.analyse(x, missing, steps)
        a.block_bytes = [-(10**9)] * len(a.block_bytes)
        return a

    def pack(self, analysis, use):
        return self.p.pack(analysis, use)

    def reconstruct(self, payload, shape):
        return self.p.reconstruct(payload, shape)


def model_stream(x: np.ndarray, tol: float, predictor) -> bytes:
    """The stream of x's model-path candidate (the cheapest residual coder behind the model)."""
    mask = special_mask(x)
    check = core._Check(tol, OutputRule(), ~mask if mask.any() else None)
    candidates = core._model_candidates(LatentsForFree(predictor), x, x.astype(np.float64), tol, mask, 2, check, 9)
    assert candidates, "no block took the model"
    best = min(candidates, key=lambda c: c.nbytes)
    sections = dict(zip(("mask", "special"), xdiffc.masking.encode(x, mask))) if mask.any() else {}
    sections.update(best.sections)
    header = Header(x.dtype.str, x.shape, tol=tol, model_id=predictor.model_id, model_sha256=predictor.sha256)
    return Stream(header, sections).to_bytes()


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("models") / "untrained.pt"
    modelfile.save(path, GCDTCNet(TINY), max_abs_deviation=1e-5)
    return load_model(str(path))


@pytest.mark.parametrize("eps", [1e-2, 1e-3, 1e-4])
def test_bound_with_an_untrained_model(untrained, eps):
    x = open_sample("trefht").TREFHT.values[:8, :24, :40]
    x[0, :2, :3] = np.nan
    tol = eps * float(np.nanmax(x) - np.nanmin(x))
    y = xdiffc.decompress(model_stream(x, tol, untrained), model=untrained)
    assert_bounded(x, y, tol)


@pytest.mark.parametrize("eps", [1e-2, 1e-3, 1e-4])
def test_bound_with_the_shipped_model_and_its_sha(eps):
    default = load_model("default")
    x = open_sample("trefht").TREFHT.values[:16, :, :64]
    tol = eps * float(x.max() - x.min())
    blob = model_stream(x, tol, default)
    assert "model" in Stream.from_bytes(blob).sections
    assert_bounded(x, xdiffc.decompress(blob), tol)  # the stream names "default": found without model=


def test_default_model_is_tried_and_never_costs_more():
    x = open_sample("trefht").TREFHT.values[:16, :, :64]
    with_model = xdiffc.compress(x, rel_tol=1e-3, model="default")
    assert len(with_model) <= len(xdiffc.compress(x, rel_tol=1e-3))
    assert with_model == xdiffc.compress(x, rel_tol=1e-3, model="default")  # deterministic


def test_wrong_model_file_is_refused(untrained):
    x = open_sample("trefht").TREFHT.values[:8, :24, :40]
    blob = model_stream(x, 0.5, untrained)
    with pytest.raises(xdiffc.ModelMismatchError, match="untrained"):
        xdiffc.decompress(blob, model="default")
    with pytest.raises(xdiffc.ModelMismatchError, match="untrained"):
        xdiffc.decompress(blob)  # its id is not a shipped model: the reader must name the file
