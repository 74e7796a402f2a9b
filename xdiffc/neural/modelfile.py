"""The model file of every family: one ``torch.save`` of a plain dict, loadable with ``weights_only=True``.

    {"format": "xdiffc-model" | "xdiffc-diffcoder", "version": 1,
     "config": the family's config as a dict, "state_dict": {name: tensor},
     "cdf": int32 tensor (C, 2R+2), the frozen entropy tables (:mod:`xdiffc.neural.entropy`),
     "max_abs_deviation": float, "meta": {str: str | int | float}}

The format tag names the family; :data:`FAMILIES` maps it to the module that defines the
family's config class and its ``seam_network``. A model is identified by its name and the sha256
of the file's bytes.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

VERSION = 1
#: format tag -> (module, config class name); the module also defines ``seam_network(config, state_dict)``.
FAMILIES = {"xdiffc-model": ("xdiffc.neural.network", "ModelConfig"),
            "xdiffc-diffcoder": ("xdiffc.diffcoder.model", "DiffCoderConfig")}


@dataclass
class ModelFile:
    """A model file's contents, as read back: its family module and that family's config."""

    family: ModuleType
    config: object
    state_dict: dict[str, torch.Tensor]
    cdf: np.ndarray
    max_abs_deviation: float
    meta: dict
    sha256: str


def save(path: str | os.PathLike, net: torch.nn.Module, max_abs_deviation: float, meta: dict | None = None) -> str:
    """Freeze the entropy tables of a codec network, write its file atomically and return the sha256."""
    if getattr(net, "prior", None) is None:
        raise ValueError("only a codec model (one with a latent prior) has entropy tables to save")
    obj = {"format": type(net.config).FORMAT, "version": VERSION, "config": net.config.to_dict(),
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


def read(data: bytes) -> ModelFile:
    """Parse a model file's bytes (no code is unpickled: weights_only=True); ValueError if it is none."""
    obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    tag = obj.get("format") if isinstance(obj, dict) else None
    if tag not in FAMILIES or obj.get("version") != VERSION:
        raise ValueError(f"not an xdiffc model file (format {tag!r}, version {obj.get('version') if tag else None!r}; "
                         f"known formats: {sorted(FAMILIES)}, version {VERSION})")
    module_name, config_name = FAMILIES[tag]
    family = importlib.import_module(module_name)
    return ModelFile(family, getattr(family, config_name).from_dict(obj["config"]), obj["state_dict"],
                     obj["cdf"].numpy(), float(obj["max_abs_deviation"]), obj.get("meta", {}),
                     hashlib.sha256(data).hexdigest())
