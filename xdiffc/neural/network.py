"""The whole network: encoder, entropy prior, embedder, U-Net denoiser and tensor correction.

Blocks enter normalised (range 1) and are multiplied by ``data_scale`` inside, so the diffusion
sees data of roughly unit spread. Everything here is plain float32 torch; the quantisation,
coding and de-normalisation live in :mod:`xdiffc.neural.predictor`.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import torch
from torch import nn

from . import diffusion
from .config import FileConfig
from .correction import TensorCorrection
from .encoder import Encoder3d
from .entropy import LogisticPrior
from .unet import Embedder, UNet2d


#: The rate knob: values per latent -> (down_t, down_s, latent_channels) of the latent grid.  Fewer values
#: per latent give a finer reconstruction at more bits; the L2 mode needs one well below its NRMSE target.
#: With the default 16 x 64 x 64 block: 2048, 8192 and 32768 latents per block.
RATES = {32: (4, 8, 8), 8: (4, 4, 8), 2: (2, 4, 16)}


@dataclass(frozen=True)
class ModelConfig(FileConfig):
    """Architecture and coding constants; stored in the model file as plain values."""

    FORMAT = "xdiffc-model"

    block: tuple[int, int, int] = (16, 64, 64)
    down_t: int = 4
    down_s: int = 8
    enc_channels: tuple[int, ...] = (8, 16, 24)
    latent_channels: int = 8
    cond: tuple[int, int, int] = (16, 8, 4)
    unet_widths: tuple[int, int, int] = (12, 20, 32)
    t_dim: int = 32
    corr_width: int = 8
    radius: int = 24
    data_scale: float = 2.0
    train_steps: int = diffusion.TRAIN_STEPS
    default_steps: int = 4

    def __post_init__(self):
        bt, bh, bw = self.block
        if bt % self.down_t or bh % self.down_s or bw % self.down_s or self.down_s < 4:
            raise ValueError(f"block {self.block} must be divisible by down_t={self.down_t}, down_s={self.down_s} (>= 4)")

    @classmethod
    def at_rate(cls, values_per_latent: int, **fields) -> "ModelConfig":
        """The configuration whose latent grid has one latent per ``values_per_latent`` values (a key of :data:`RATES`)."""
        if values_per_latent not in RATES:
            raise ValueError(f"values per latent must be one of {sorted(RATES)}, got {values_per_latent!r}")
        down_t, down_s, channels = RATES[values_per_latent]
        return cls(down_t=down_t, down_s=down_s, latent_channels=channels, **fields)

    @property
    def values_per_latent(self) -> float:
        return float(prod(self.block)) / float(prod(self.latent_shape))

    @property
    def latent_shape(self) -> tuple[int, int, int, int]:
        bt, bh, bw = self.block
        return self.latent_channels, bt // self.down_t, bh // self.down_s, bw // self.down_s


class GCDTCNet(nn.Module):
    """Encoder -> latents; latents -> S-step diffusion decode -> tensor correction."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        c = config
        self.config = c
        self.encoder = Encoder3d(list(c.enc_channels), c.latent_channels, c.down_t, c.down_s)
        self.prior = LogisticPrior(c.latent_channels)
        self.embedder = Embedder(c.latent_channels, c.cond, c.down_t, c.down_s)
        self.unet = UNet2d(c.unet_widths, c.cond, c.t_dim, c.train_steps)
        self.correction = TensorCorrection(c.corr_width)
        self.abar = diffusion.cosine_alpha_bar(c.train_steps)

    def encode(self, blocks: torch.Tensor) -> torch.Tensor:
        """Normalised blocks (N, T, H, W) -> continuous latents (N, C, t, h, w)."""
        return self.encoder(blocks[:, None] * self.config.data_scale)

    def predict_x0(self, x_t: torch.Tensor, maps: list[torch.Tensor], t: torch.Tensor) -> torch.Tensor:
        """x0 prediction (scaled units) for slices x_t (M, 1, H, W) with their conditioning maps."""
        return self.unet(x_t, maps, t)

    def decode(self, z: torch.Tensor, steps: int, correction: bool = True) -> torch.Tensor:
        """Quantised latents (N, C, t, h, w) -> normalised blocks (N, T, H, W), deterministically."""
        n = z.shape[0]
        bt, bh, bw = self.config.block
        maps = self.embedder(z)
        x0 = diffusion.ddim_decode(lambda x, t: self.predict_x0(x, maps, t), (n * bt, 1, bh, bw),
                                   steps, self.abar, z)
        blocks = x0.reshape(n, bt, bh, bw) / self.config.data_scale
        return self.correction(blocks, enabled=correction)


def seam_network(config: ModelConfig, state_dict: dict) -> tuple[nn.Module, tuple[int, int, int]]:
    """The network a model file describes, and its block shape: what :class:`~xdiffc.neural.ModelPredictor` runs."""
    net = GCDTCNet(config)
    net.load_state_dict(state_dict)
    return net, tuple(config.block)
