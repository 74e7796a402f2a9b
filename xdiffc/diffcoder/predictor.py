"""DiffCoder as a codec model: the same seam as :class:`xdiffc.model.ModelPredictor`.

    pred = load_diffcoder("model.pt")                 # cached per (model id, sha256, device)
    blob = xdiffc.compress(x, rel_tol=1e-2, model=pred)
    y = xdiffc.decompress(blob, model=pred)

Blocks are 2-D: (1, R, R) tiles over the last two axes of the chunk (R = the model's
resolution), laid out and normalised by :mod:`xdiffc.model.layout` exactly as for GCDTC
((x - mean) / (max - min) per block, edge blocks padded). Each block is encoded to latents
(C, R / 2**d, R / 2**d), rounded to integers, and decoded by deterministic DDIM from zeros in
``steps`` steps. The analysis, the payload format and the latent coding (frozen integer CDF tables
through constriction) are those of :class:`~xdiffc.model.ModelPredictor`, reused by subclassing:
only the network and the model file differ. The guarantee layer of the core then codes the
residual under the bound, so the pointwise bound holds whatever the network predicts.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import torch
from torch import nn

from ..errors import ModelMismatchError
from ..model.entropy import FrozenCoder
from ..model.predictor import ModelPredictor
from . import modelfile
from .model import DiffCoder

_CACHE: dict[tuple[str, str, str], "DiffCoderPredictor"] = {}
_LOCK = threading.Lock()


class BlockNet(nn.Module):
    """The seam's view of a DiffCoder: normalised blocks (N, 1, R, R) <-> latents (N, C, 1, h, w).

    Blocks are multiplied by the model's ``data_scale`` on the way in and divided on the way out.
    """

    def __init__(self, net: DiffCoder):
        super().__init__()
        self.net, self.config = net, net.config

    def encode(self, blocks: torch.Tensor) -> torch.Tensor:
        return self.net.encode(blocks * self.config.data_scale)[:, :, None]

    def decode(self, z: torch.Tensor, steps: int, correction: bool = True) -> torch.Tensor:
        """Deterministic decode; ``correction`` is part of the seam and has no meaning here."""
        return self.net.decode(z[:, :, 0], steps) / self.config.data_scale


class DiffCoderPredictor(ModelPredictor):
    """A loaded DiffCoder codec model: float32, eval mode, TF32 off, one inference at a time."""

    def __init__(self, mf: modelfile.ModelFile, model_id: str, device: str = "cpu"):  # noqa: D107
        if mf.config.kind != "diffcoder" or mf.config.rate_weight <= 0:
            raise ValueError("this model file is not a DiffCoder codec model (kind 'diffcoder', rate_weight > 0)")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        self.model_id, self.sha256, self.device = model_id, mf.sha256, torch.device(device)
        self.config = mf.config
        net = DiffCoder(mf.config)
        net.load_state_dict(mf.state_dict)
        self.net = BlockNet(net).to(device=self.device, dtype=torch.float32).eval()
        self.coder = FrozenCoder(mf.cdf)
        self.block_shape = (1, mf.config.resolution, mf.config.resolution)
        #: bound on |x_hat(device A) - x_hat(device B)| in normalised units (block range 1)
        self.max_abs_deviation = mf.max_abs_deviation
        self.meta = mf.meta
        self._lock = threading.Lock()


def load_diffcoder(path: str | Path, sha256: str | None = None, device: str = "cpu") -> DiffCoderPredictor:
    """The predictor of a DiffCoder model file, loaded once per (model id, sha256, device).

    Raises :class:`~xdiffc.ModelMismatchError` when ``sha256`` is given and the file's differs,
    ValueError when the file is not a DiffCoder codec model.
    """
    path = Path(path).expanduser()
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if sha256 is not None and sha256.lower() != digest:
        raise ModelMismatchError(f"DiffCoder model {path.stem!r} at {path} has sha256 {digest}, not the "
                                 f"expected {sha256.lower()}; supply that exact model file")
    key = (path.stem, digest, str(torch.device(device)))
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = DiffCoderPredictor(modelfile.read(data), path.stem, device)
        return _CACHE[key]
