"""The DiffCoder model file: one ``torch.save`` of a plain dict, loadable with ``weights_only=True``.

    {"format": "xdiffc-diffcoder", "version": 1,
     "config": DiffCoderConfig as a dict, "state_dict": {name: tensor},
     "cdf": int32 tensor (C, 2R+2), frozen entropy tables (xdiffc.model.entropy),
     "max_abs_deviation": float, "meta": {str: str | int | float}}

The same layout as :mod:`xdiffc.model.modelfile` under its own format tag, since the network
differs. A model is identified by its file name and the sha256 of the file's bytes.
"""

from __future__ import annotations

import os

from ..model.modelfile import ModelFile, load, write
from .model import DiffCoder, DiffCoderConfig

FORMAT = "xdiffc-diffcoder"


def save(path: str | os.PathLike, net: DiffCoder, max_abs_deviation: float, meta: dict | None = None) -> str:
    """Freeze the entropy tables, write the file atomically and return its sha256 (codec models only)."""
    if net.prior is None:
        raise ValueError("only a codec model (rate_weight > 0) has entropy tables to save")
    return write(path, FORMAT, net, net.prior.freeze(net.config.radius), max_abs_deviation, meta)


def read(data: bytes) -> ModelFile:
    """Parse a DiffCoder model file's bytes."""
    return load(data, FORMAT, DiffCoderConfig)
