"""Decoder networks: latent embedding into per-slice conditioning maps, and the 2D U-Net denoiser.

The embedder turns the block's latents z (C, T/dt, H/ds, W/ds) into conditioning maps for every
time slice at three scales (1/4, 1/2 and full resolution), computed once per block. The U-Net
denoises one 2D slice: its input at each scale is concatenated with that scale's map (as in CDC),
and the diffusion timestep enters every level as a per-channel bias.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class Embedder(nn.Module):
    """Latents -> conditioning maps (N*T, c_k, H/2**k, W/2**k) for k = 2, 1, 0."""

    def __init__(self, latent_channels: int, cond: tuple[int, int, int], down_t: int, down_s: int):
        super().__init__()
        self.down_t, self.down_s = down_t, down_s
        c4, c2, c1 = cond
        self.inp = nn.Conv3d(latent_channels, c4, 3, padding=1)
        self.to4 = nn.Conv3d(c4, c4, 3, padding=1)
        self.to2 = nn.Conv3d(c4, c2, 3, padding=1)
        self.to1 = nn.Conv3d(c2, c1, 3, padding=1)

    def forward(self, z: torch.Tensor) -> list[torch.Tensor]:
        h = F.gelu(self.inp(z))
        _, _, t, y, x = z.shape
        size = (t * self.down_t, y * self.down_s // 4, x * self.down_s // 4)
        h = F.interpolate(h, size=size, mode="nearest")
        m4 = F.gelu(self.to4(h))
        m2 = F.gelu(self.to2(F.interpolate(m4, scale_factor=(1, 2, 2), mode="nearest")))
        m1 = F.gelu(self.to1(F.interpolate(m2, scale_factor=(1, 2, 2), mode="nearest")))
        return [_slices(m) for m in (m4, m2, m1)]


def _slices(m: torch.Tensor) -> torch.Tensor:
    """(N, C, T, H, W) -> (N*T, C, H, W): one 2D map per time slice."""
    n, c, t, h, w = m.shape
    return m.permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w)


def timestep_features(t: torch.Tensor, dim: int, steps: int) -> torch.Tensor:
    """Sinusoidal features of integer timesteps t in [0, steps]."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    angle = (t.float()[:, None] / steps * 1000.0) * freqs[None]
    return torch.cat([angle.sin(), angle.cos()], 1)


class _Block(nn.Module):
    """Conv + GELU + timestep bias, with a residual conv when widths agree."""

    def __init__(self, c_in: int, c_out: int, t_dim: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.res = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.bias = nn.Linear(t_dim, c_out)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.conv(x) + self.bias(temb)[:, :, None, None])
        return h + F.gelu(self.res(h))


class UNet2d(nn.Module):
    """Three-level U-Net over one slice: (x_t, maps, t) -> prediction of x0."""

    def __init__(self, widths: tuple[int, int, int], cond: tuple[int, int, int], t_dim: int, train_steps: int):
        super().__init__()
        w1, w2, w4 = widths
        c4, c2, c1 = cond
        self.t_dim, self.train_steps = t_dim, train_steps
        self.temb = nn.Sequential(nn.Linear(t_dim, t_dim), nn.GELU())
        self.enc1 = _Block(1 + c1, w1, t_dim)
        self.down2 = nn.Conv2d(w1, w2, 3, stride=2, padding=1)
        self.enc2 = _Block(w2 + c2, w2, t_dim)
        self.down4 = nn.Conv2d(w2, w4, 3, stride=2, padding=1)
        self.mid = _Block(w4 + c4, w4, t_dim)
        self.dec2 = _Block(w4 + w2, w2, t_dim)
        self.dec1 = _Block(w2 + w1, w1, t_dim)
        self.out = nn.Conv2d(w1, 1, 3, padding=1)

    def forward(self, x: torch.Tensor, maps: list[torch.Tensor], t: torch.Tensor) -> torch.Tensor:
        m4, m2, m1 = maps
        temb = self.temb(timestep_features(t, self.t_dim, self.train_steps).to(x.dtype))
        h1 = self.enc1(torch.cat([x, m1], 1), temb)
        h2 = self.enc2(torch.cat([self.down2(h1), m2], 1), temb)
        h4 = self.mid(torch.cat([self.down4(h2), m4], 1), temb)
        u2 = self.dec2(torch.cat([F.interpolate(h4, size=h2.shape[-2:], mode="nearest"), h2], 1), temb)
        u1 = self.dec1(torch.cat([F.interpolate(u2, size=h1.shape[-2:], mode="nearest"), h1], 1), temb)
        return self.out(u1)
