"""The DiffCoder model file: one ``torch.save`` of a plain dict, loadable with ``weights_only=True``.

    {"format": "xdiffc-diffcoder", "version": 1,
     "config": DiffCoderConfig as a dict, "state_dict": {name: tensor},
     "cdf": int32 tensor (C, 2R+2), frozen entropy tables (xdiffc.model.entropy),
     "max_abs_deviation": float, "meta": {str: str | int | float}}

The same layout as :mod:`xdiffc.model.modelfile` under its own format tag, since the network
differs. A model is identified by its file name and the sha256 of the file's bytes.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .model import DiffCoder, DiffCoderConfig

FORMAT, VERSION = "xdiffc-diffcoder", 1


@dataclass
class DiffCoderFile:
    """A model file's contents, as read back."""

    config: DiffCoderConfig
    state_dict: dict[str, torch.Tensor]
    cdf: np.ndarray
    max_abs_deviation: float
    meta: dict
    sha256: str


def save(path: str | os.PathLike, net: DiffCoder, max_abs_deviation: float, meta: dict | None = None) -> str:
    """Freeze the entropy tables, write the file atomically and return its sha256 (codec models only)."""
    if net.prior is None:
        raise ValueError("only a codec model (rate_weight > 0) has entropy tables to save")
    obj = {"format": FORMAT, "version": VERSION, "config": net.config.to_dict(),
           "state_dict": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
           "cdf": torch.from_numpy(net.prior.freeze(net.config.radius)),
           "max_abs_deviation": float(max_abs_deviation), "meta": dict(meta or {})}
    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getvalue()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return hashlib.sha256(data).hexdigest()


def read(data: bytes) -> DiffCoderFile:
    """Parse a model file's bytes (weights_only=True: no code is unpickled)."""
    obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or obj.get("version") != VERSION:
        raise ValueError(f"not an {FORMAT} model file (format/version missing or unknown)")
    return DiffCoderFile(DiffCoderConfig.from_dict(obj["config"]), obj["state_dict"], obj["cdf"].numpy(),
                         float(obj["max_abs_deviation"]), obj.get("meta", {}), hashlib.sha256(data).hexdigest())
