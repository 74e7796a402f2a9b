"""DiffCoder (encoder + conditional diffusion decoder predicting v) and its VAE baseline.

Both kinds share the encoder and the decoder network, so they differ only in objective and
decoding:

- ``kind="diffcoder"``: z = encoder(x). Loss: the v-prediction MSE at a uniform random step of
  the sigmoid schedule, trained end to end through z. Decoding: DDIM (eta = 0) in S steps, from
  x_T = 0 (deterministic) or x_T ~ N(0, 1) (``sample=True``).
- ``kind="vae"``: the encoder gives (mu, log var) and z = mu + sigma * noise. Loss: the negative
  ELBO per pixel, ``MSE / (2 likelihood_std^2) + KL(q(z|x) || N(0, I)) / pixels``. The decoder is the
  same U-Net with its noisy-input channel held at 0 and its timestep at T: one deterministic pass,
  a decoder of identical size and structure. Decoding uses z = mu.

Codec models (``rate_weight > 0``, DiffCoder only) train with additive uniform noise on z and a
per-channel logistic prior (:class:`xdiffc.neural.entropy.LogisticPrior`); the loss adds
``rate_weight`` x bits per pixel, and coding rounds z to integers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..neural.config import FileConfig
from ..neural.entropy import LogisticPrior
from . import schedule
from .nets import Encoder, UNet

KINDS = ("diffcoder", "vae")


@dataclass(frozen=True)
class DiffCoderConfig(FileConfig):
    """Architecture and training constants, stored in the model file as plain values."""

    FORMAT = "xdiffc-diffcoder"

    kind: str = "diffcoder"
    resolution: int = 64  # H = W of a field (or block)
    depth: int = 4  # latent side = resolution / 2**depth
    latent_channels: int = 4
    enc_widths: tuple[int, ...] = (8, 16, 32)
    unet_widths: tuple[int, ...] = (16, 32, 48)
    t_dim: int = 64
    circular: bool = True
    train_steps: int = schedule.TRAIN_STEPS
    sigmoid: tuple[float, float, float] = (-3.0, 3.0, 1.0)  # start, end, tau
    likelihood_std: float = 0.1  # VAE: std of the Gaussian likelihood in the ELBO
    rate_weight: float = 0.0  # > 0: codec model, quantised latents with a learned prior
    radius: int = 24  # codec: latent symbols -radius..radius, the rest escaped
    data_scale: float = 1.0  # codec: model units per normalised block unit (range 1)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if not 2 <= self.depth or self.resolution % 2 ** self.depth:
            raise ValueError(f"resolution {self.resolution} must be divisible by 2**depth (depth {self.depth} >= 2)")
        if self.rate_weight > 0 and self.kind != "diffcoder":
            raise ValueError("only a DiffCoder can be a codec model (rate_weight > 0)")

    @property
    def latent_side(self) -> int:
        return self.resolution >> self.depth

    @property
    def latent_shape(self) -> tuple[int, int, int, int]:
        """Latents of one codec block (1, H, W), as the codec seam counts them: (C, 1, h, w)."""
        return self.latent_channels, 1, self.latent_side, self.latent_side


class DiffCoder(nn.Module):
    """Fields (N, 1, H, W) in model units <-> latents (N, C, H / 2**d, W / 2**d)."""

    def __init__(self, config: DiffCoderConfig):
        super().__init__()
        c = config
        self.config = c
        out = c.latent_channels * (2 if c.kind == "vae" else 1)
        self.encoder = Encoder(c.depth, c.enc_widths, out, c.circular)
        self.decoder = UNet(c.unet_widths, c.latent_channels, c.t_dim, c.train_steps, c.circular)
        self.prior = LogisticPrior(c.latent_channels) if c.rate_weight > 0 else None
        self.abar = schedule.sigmoid_alpha_bar(c.train_steps, *c.sigmoid)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Continuous latents: the encoder's output (DiffCoder) or the posterior mean (VAE)."""
        return self.encoder(x)[:, : self.config.latent_channels]

    def decode(self, z: torch.Tensor, steps: int = 8, *, sample: bool = False,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Latents -> fields. VAE: one pass. DiffCoder: DDIM in ``steps`` steps from zeros, or from
        N(0, 1) noise drawn on the CPU with ``generator`` when ``sample`` is true."""
        n, side = z.shape[0], self.config.resolution
        T = self.config.train_steps
        if self.config.kind == "vae":
            return self.decoder(z.new_zeros(n, 1, side, side), z, torch.full((n,), T, device=z.device))
        if sample:
            start = torch.randn((n, 1, side, side), generator=generator).to(z)
        else:
            start = z.new_zeros(n, 1, side, side)
        predict = lambda x, t: self.decoder(x, z, torch.full((n,), t, device=z.device))  # noqa: E731
        return schedule.ddim_sample(predict, start, steps, self.abar)

    def loss(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        """Training loss of a batch (N, 1, H, W) and its parts as floats."""
        c = self.config
        n = x.shape[0]
        h = self.encoder(x)
        if c.kind == "vae":
            mu, logvar = h.chunk(2, 1)
            logvar = logvar.clamp(-20, 10)
            z = mu + torch.randn(mu.shape, generator=generator).to(mu) * (0.5 * logvar).exp()
            x_hat = self.decode(z)
            mse = F.mse_loss(x_hat, x)
            kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum() / x.numel()
            loss = mse / (2 * c.likelihood_std**2) + kl
            return loss, {"loss": loss.item(), "mse": mse.item(), "kl": kl.item()}
        z, parts = h, {}
        if self.prior is not None:
            z = h + torch.rand(h.shape, generator=generator).to(h) - 0.5
            bpp = self.prior.bits(z).sum() / x.numel()
            parts["bpp"] = bpp.item()
        t = torch.randint(1, c.train_steps + 1, (n,), generator=generator)
        a = torch.as_tensor(self.abar[t.numpy()], dtype=x.dtype).view(n, 1, 1, 1).to(x.device)
        eps = torch.randn(x.shape, generator=generator).to(x)
        x_t = a.sqrt() * x + (1 - a).sqrt() * eps
        mse = F.mse_loss(self.decoder(x_t, z, t.to(x.device)), a.sqrt() * eps - (1 - a).sqrt() * x)
        loss = mse + (c.rate_weight * bpp if self.prior is not None else 0.0)
        return loss, {"loss": loss.item(), "v_mse": mse.item(), **parts}


class BlockNet(nn.Module):
    """The codec seam's view of a DiffCoder: normalised blocks (N, 1, R, R) <-> latents (N, C, 1, h, w).

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


def seam_network(config: DiffCoderConfig, state_dict: dict) -> tuple[nn.Module, tuple[int, int, int]]:
    """A codec DiffCoder's seam network and its (1, R, R) blocks: what :class:`~xdiffc.neural.ModelPredictor` runs."""
    if config.kind != "diffcoder" or config.rate_weight <= 0:
        raise ValueError("this model file is not a DiffCoder codec model (kind 'diffcoder', rate_weight > 0)")
    net = DiffCoder(config)
    net.load_state_dict(state_dict)
    return BlockNet(net), (1, config.resolution, config.resolution)
