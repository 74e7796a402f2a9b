"""The model file: one ``torch.save`` of a plain dict, loadable with ``weights_only=True``.

    {"format": "xdiffc-model", "version": 1,
     "config": ModelConfig as a dict, "state_dict": {name: tensor},
     "cdf": int32 tensor (C, 2R+2), the frozen entropy tables,
     "max_abs_deviation": float, "meta": {str: str | int | float}}

A model is identified by its name and the sha256 of the file's bytes.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .network import GCDTCNet, ModelConfig

FORMAT, VERSION = "xdiffc-model", 1


@dataclass
class ModelFile:
    """A model file's contents, as read back."""

    config: ModelConfig
    state_dict: dict[str, torch.Tensor]
    cdf: np.ndarray
    max_abs_deviation: float
    meta: dict
    sha256: str


def save(path: str | os.PathLike, net: GCDTCNet, max_abs_deviation: float, meta: dict | None = None) -> str:
    """Freeze the entropy tables, write the model file atomically and return its sha256."""
    cdf = net.prior.freeze(net.config.radius)
    obj = {"format": FORMAT, "version": VERSION, "config": net.config.to_dict(),
           "state_dict": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
           "cdf": torch.from_numpy(cdf), "max_abs_deviation": float(max_abs_deviation), "meta": dict(meta or {})}
    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getvalue()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return hashlib.sha256(data).hexdigest()


def read(data: bytes) -> ModelFile:
    """Parse a model file's bytes (no code is unpickled: weights_only=True)."""
    obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or obj.get("version") != VERSION:
        raise ValueError("not an xdiffc model file (format/version missing or unknown)")
    return ModelFile(ModelConfig.from_dict(obj["config"]), obj["state_dict"], obj["cdf"].numpy(),
                     float(obj["max_abs_deviation"]), obj.get("meta", {}), hashlib.sha256(data).hexdigest())


def build(model_file: ModelFile, device: str = "cpu") -> GCDTCNet:
    """The network of a model file, in eval mode, float32, on ``device``."""
    net = GCDTCNet(model_file.config)
    net.load_state_dict(model_file.state_dict)
    return net.to(device=device, dtype=torch.float32).eval()
