"""The model file: one ``torch.save`` of a plain dict, loadable with ``weights_only=True``.

    {"format": "xdiffc-model", "version": 1,
     "config": ModelConfig as a dict, "state_dict": {name: tensor},
     "cdf": int32 tensor (C, 2R+2), the frozen entropy tables,
     "max_abs_deviation": float, "meta": {str: str | int | float}}

A model is identified by its name and the sha256 of the file's bytes. :func:`write` and
:func:`load` serve every model family under its own format tag (DiffCoder uses "xdiffc-diffcoder").
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
    """A model file's contents, as read back (``config`` is the family's config class)."""

    config: object
    state_dict: dict[str, torch.Tensor]
    cdf: np.ndarray
    max_abs_deviation: float
    meta: dict
    sha256: str


def write(path: str | os.PathLike, fmt: str, net: torch.nn.Module, cdf: np.ndarray, max_abs_deviation: float,
          meta: dict | None = None) -> str:
    """Write a model file of format tag ``fmt`` atomically and return its sha256 (any model family)."""
    obj = {"format": fmt, "version": VERSION, "config": net.config.to_dict(),
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


def load(data: bytes, fmt: str, config_class) -> ModelFile:
    """Parse a model file's bytes of format tag ``fmt`` (no code is unpickled: weights_only=True)."""
    obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if not isinstance(obj, dict) or obj.get("format") != fmt or obj.get("version") != VERSION:
        raise ValueError(f"not an {fmt} model file (format/version missing or unknown)")
    return ModelFile(config_class.from_dict(obj["config"]), obj["state_dict"], obj["cdf"].numpy(),
                     float(obj["max_abs_deviation"]), obj.get("meta", {}), hashlib.sha256(data).hexdigest())


def save(path: str | os.PathLike, net: GCDTCNet, max_abs_deviation: float, meta: dict | None = None) -> str:
    """Freeze the entropy tables, write the model file atomically and return its sha256."""
    return write(path, FORMAT, net, net.prior.freeze(net.config.radius), max_abs_deviation, meta)


def read(data: bytes) -> ModelFile:
    """Parse a GCDTC model file's bytes."""
    return load(data, FORMAT, ModelConfig)


def build(model_file: ModelFile, device: str = "cpu") -> GCDTCNet:
    """The network of a model file, in eval mode, float32, on ``device``."""
    net = GCDTCNet(model_file.config)
    net.load_state_dict(model_file.state_dict)
    return net.to(device=device, dtype=torch.float32).eval()
