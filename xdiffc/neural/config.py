"""What every model family's configuration shares: a plain-dict form for the model file, and a size."""

from __future__ import annotations

from dataclasses import asdict, fields

from torch import nn


class FileConfig:
    """Mixin for a family's frozen dataclass config: ``to_dict``/``from_dict`` with tuples as lists.

    Each family sets the class attribute ``FORMAT``, the tag its model files carry
    (:mod:`xdiffc.neural.modelfile` looks the family up by it).
    """

    FORMAT = ""

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict):
        names = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names})


def parameter_count(net: nn.Module) -> int:
    """Number of trainable values."""
    return int(sum(p.numel() for p in net.parameters()))
