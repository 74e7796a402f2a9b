"""Tensor correction: refine an assembled 3D block along the planes perpendicular to the slices.

The 2D U-Net sees one time slice at a time, so its errors are independent from slice to slice.
This network looks across time: one small 2D conv net runs on every (t, y) plane, another on
every (t, x) plane, and their outputs are added to the block as residuals. It is switchable
(``enabled=False`` is the identity) so that its contribution can be measured.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _PlaneNet(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.a = nn.Conv2d(1, width, 3, padding=1)
        self.b = nn.Conv2d(width, width, 3, padding=1)
        self.c = nn.Conv2d(width, 1, 3, padding=1)
        nn.init.zeros_(self.c.weight)  # starts as the identity correction
        nn.init.zeros_(self.c.bias)

    def forward(self, planes: torch.Tensor) -> torch.Tensor:
        return self.c(F.gelu(self.b(F.gelu(self.a(planes)))))


class TensorCorrection(nn.Module):
    """x (N, T, H, W) -> x + f_ty(x) + f_tx(x)."""

    def __init__(self, width: int):
        super().__init__()
        self.ty = _PlaneNet(width)
        self.tx = _PlaneNet(width)

    def forward(self, x: torch.Tensor, enabled: bool = True) -> torch.Tensor:
        if not enabled:
            return x
        n, t, h, w = x.shape
        ty = x.permute(0, 3, 1, 2).reshape(n * w, 1, t, h)  # planes (t, y), one per x
        tx = x.permute(0, 2, 1, 3).reshape(n * h, 1, t, w)  # planes (t, x), one per y
        d_ty = self.ty(ty).reshape(n, w, t, h).permute(0, 2, 3, 1)
        d_tx = self.tx(tx).reshape(n, h, t, w).permute(0, 2, 1, 3)
        return x + d_ty + d_tx
