"""Networks of DiffCoder: a 2D ResNet encoder and a conditional U-Net that predicts v.

Building block (both networks): a ResNet block of two (conv 3x3, RMSNorm over channels, SiLU)
layers with a 1x1 skip where the width changes. In the U-Net the diffusion timestep enters every
block by scale-and-shift (FiLM) after the second norm. ``circular=True`` pads every 3x3 conv
periodically, for periodic domains such as Kolmogorov flow.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def conv3(c_in: int, c_out: int, circular: bool, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, zero or circular padding."""
    return nn.Conv2d(c_in, c_out, 3, stride, padding=1, padding_mode="circular" if circular else "zeros")


class RMSNorm2d(nn.Module):
    """x / sqrt(mean over channels of x^2 + 1e-6) * gain, at every pixel."""

    def __init__(self, channels: int):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + 1e-6) * self.gain.view(1, -1, 1, 1)


class ResBlock(nn.Module):
    """skip(x) + SiLU(FiLM(norm(conv(SiLU(norm(conv(x))))))); FiLM only when ``t_dim`` > 0."""

    def __init__(self, c_in: int, c_out: int, circular: bool, t_dim: int = 0):
        super().__init__()
        self.conv1, self.norm1 = conv3(c_in, c_out, circular), RMSNorm2d(c_out)
        self.conv2, self.norm2 = conv3(c_out, c_out, circular), RMSNorm2d(c_out)
        self.film = nn.Linear(t_dim, 2 * c_out) if t_dim else None
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm2(self.conv2(F.silu(self.norm1(self.conv1(x)))))
        if self.film is not None:
            scale, shift = self.film(temb)[:, :, None, None].chunk(2, 1)
            h = h * (1 + scale) + shift
        return self.skip(x) + F.silu(h)


class Encoder(nn.Module):
    """(N, 1, H, W) -> (N, out_channels, H / 2**depth, W / 2**depth).

    A stem conv, then ``depth`` stages of two ResBlocks and a stride-2 conv, then a head conv.
    Stage i has width ``widths[min(i, len(widths) - 1)]``.
    """

    def __init__(self, depth: int, widths: tuple[int, ...], out_channels: int, circular: bool):
        super().__init__()
        w = [widths[min(i, len(widths) - 1)] for i in range(depth + 1)]
        self.stem = conv3(1, w[0], circular)
        self.stages = nn.Sequential(*(nn.Sequential(ResBlock(w[i], w[i], circular), ResBlock(w[i], w[i], circular),
                                                    conv3(w[i], w[i + 1], circular, stride=2))
                                      for i in range(depth)))
        self.head = nn.Sequential(RMSNorm2d(w[depth]), nn.SiLU(), conv3(w[depth], out_channels, circular))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


def timestep_features(t: torch.Tensor, dim: int, steps: int) -> torch.Tensor:
    """Sinusoidal features of integer timesteps in [0, steps] (rescaled to [0, 1000])."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    angle = t.float()[:, None] * (1000.0 / steps) * freqs[None]
    return torch.cat([angle.sin(), angle.cos()], 1)


class UNet(nn.Module):
    """(x_t, z, t) -> v. The latent z is upsampled (nearest) to every level and concatenated there.

    Levels at full, 1/2, 1/4 ... resolution with ``widths``; one ResBlock per level going down,
    one in the middle, one per level coming up (with the skip concatenated).
    """

    def __init__(self, widths: tuple[int, ...], latent_channels: int, t_dim: int, train_steps: int, circular: bool):
        super().__init__()
        self.t_dim, self.train_steps = t_dim, train_steps
        c = latent_channels
        self.temb = nn.Sequential(nn.Linear(t_dim, t_dim), nn.SiLU(), nn.Linear(t_dim, t_dim))
        self.stem = conv3(1 + c, widths[0], circular)
        self.down = nn.ModuleList(ResBlock(w + c, w, circular, t_dim) for w in widths)
        self.pool = nn.ModuleList(conv3(a, b, circular, stride=2) for a, b in zip(widths[:-1], widths[1:]))
        self.mid = ResBlock(widths[-1] + c, widths[-1], circular, t_dim)
        self.up = nn.ModuleList(ResBlock(a + b, b, circular, t_dim) for a, b in zip(widths[1:], widths[:-1]))
        self.out = nn.Sequential(RMSNorm2d(widths[0]), nn.SiLU(), conv3(widths[0], 1, circular))

    def forward(self, x: torch.Tensor, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        temb = self.temb(timestep_features(t, self.t_dim, self.train_steps).to(x.dtype))
        cond = lambda h: torch.cat([h, F.interpolate(z, size=h.shape[-2:], mode="nearest")], 1)  # noqa: E731
        h = self.stem(cond(x))
        skips = []
        for i, block in enumerate(self.down):
            h = block(cond(h), temb)
            if i < len(self.pool):
                skips.append(h)
                h = self.pool[i](h)
        h = self.mid(cond(h), temb)
        for block, skip in zip(reversed(self.up), reversed(skips)):
            h = block(torch.cat([F.interpolate(h, size=skip.shape[-2:], mode="nearest"), skip], 1), temb)
        return self.out(h)
