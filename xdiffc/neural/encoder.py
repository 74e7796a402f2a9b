"""3D block encoder: a (T, H, W) block to latents z, downsampling time and space aggressively.

Each stage is a strided Conv3d followed by a residual Conv3d; strides multiply to the
configured downsampling factors (e.g. 4 in time and 8 in space: a 16x64x64 block becomes
C x 4 x 8 x 8 latents, one latent per 32 values at C = 8). The CPU budget is small, so the
channels are few and the cost sits at the lowest resolutions.
"""

from __future__ import annotations

import torch
from torch import nn


def stage_strides(down_t: int, down_s: int) -> list[tuple[int, int, int]]:
    """Strides of successive stages: halve space every stage, time only while it still needs halving."""
    strides, t, s = [], down_t, down_s
    while t > 1 or s > 1:
        strides.append((2 if t > 1 else 1, 2 if s > 1 else 1, 2 if s > 1 else 1))
        t, s = max(t // 2, 1), max(s // 2, 1)
    return strides


class Encoder3d(nn.Module):
    """Conv3d stages with downsampling; output (N, latent_channels, T/dt, H/ds, W/ds)."""

    def __init__(self, channels: list[int], latent_channels: int, down_t: int, down_s: int):
        super().__init__()
        strides = stage_strides(down_t, down_s)
        widths = [channels[min(i, len(channels) - 1)] for i in range(len(strides))]
        layers: list[nn.Module] = []
        c_in = 1
        for c, stride in zip(widths, strides):
            layers += [nn.Conv3d(c_in, c, 3, stride=stride, padding=1), nn.GELU(), _Res3d(c)]
            c_in = c
        layers.append(nn.Conv3d(c_in, latent_channels, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _Res3d(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv3d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.nn.functional.gelu(self.conv(x))
