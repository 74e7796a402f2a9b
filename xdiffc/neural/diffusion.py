"""Diffusion schedule, training targets and the deterministic few-step decoder, in float64.

Choices, and why:
- Objective: the network predicts x0 (not the noise). Decoding starts from a ZERO tensor at
  t = T, where the input carries no information; an x0 prediction there is already a
  deterministic conditional decoder, so a single step gives a usable reconstruction and each
  further DDIM step only refines it. An eps-predictor would be undefined at x_T = 0.
- Schedule: cosine alpha-bar (Nichol & Dhariwal 2021) over T = 1000 steps, betas clipped at
  0.999, so alpha-bar(T) is ~0 and "zero input at t = T" is the schedule's own end point.
- Training mixes three inputs: the usual noisy x_t (uniform t), the zero tensor at t = T
  (the first decoding step), and x_t with the noise shrunk by a random factor. The deterministic
  sampler feeds the network x_t = sqrt(abar) x0_hat + small deterministic "noise", i.e. inputs
  far less noisy than the schedule says; the shrunk-noise case teaches it to use them.
- Sampler: DDIM with eta = 0 on S timesteps evenly spaced from T down to 0; S is free at decode.
All schedule coefficients are computed in float64 and enter the float32 network as Python
floats, so every machine uses the same coefficients.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

TRAIN_STEPS = 1000


def cosine_alpha_bar(steps: int = TRAIN_STEPS, s: float = 0.008) -> np.ndarray:
    """alpha-bar(t) for t = 0..steps (float64), alpha-bar(0) = 1."""
    f = lambda t: math.cos((t / steps + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    betas = np.array([min(1 - f(t + 1) / f(t), 0.999) for t in range(steps)], dtype=np.float64)
    return np.concatenate([[1.0], np.cumprod(1.0 - betas)])


def ddim_timesteps(steps: int, train_steps: int = TRAIN_STEPS) -> list[int]:
    """S decreasing timesteps from T, evenly spaced (first is always T)."""
    if not 1 <= steps <= train_steps:
        raise ValueError(f"steps must be in 1..{train_steps}, got {steps}")
    return [int(round(train_steps * (steps - i) / steps)) for i in range(steps)]


def training_input(x0: torch.Tensor, abar: np.ndarray, generator: torch.Generator | None = None,
                   p_zero: float = 0.25, p_shrunk: float = 0.25) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_t, t) for a batch of slices x0 (N, 1, H, W), mixing the three cases described above."""
    n, T = x0.shape[0], len(abar) - 1
    t = torch.randint(1, T + 1, (n,), generator=generator)
    u = torch.rand(n, generator=generator)
    zero = u < p_zero
    shrink = torch.where(u > 1 - p_shrunk, torch.rand(n, generator=generator), torch.ones(n))
    t[zero] = T
    a = torch.as_tensor(abar[t.numpy()], dtype=torch.float32).view(n, 1, 1, 1)
    noise = torch.randn(x0.shape, generator=generator) * shrink.view(n, 1, 1, 1)
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
    x_t[zero] = 0.0
    return x_t, t


@torch.no_grad()
def ddim_decode(predict_x0: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], shape: tuple[int, ...],
                steps: int, abar: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """Deterministic DDIM (eta = 0) from x_T = 0; returns the last x0 prediction.

    ``like`` gives the device and dtype of the state (float32 for inference).
    """
    T = len(abar) - 1
    ts = ddim_timesteps(steps, T) + [0]
    x = torch.zeros(shape, device=like.device, dtype=like.dtype)
    x0 = x
    for t, t_next in zip(ts[:-1], ts[1:]):
        x0 = predict_x0(x, torch.full((shape[0],), t, dtype=torch.long, device=like.device))
        if t_next == 0:
            break
        a, a_next = float(abar[t]), float(abar[t_next])
        eps = (x - math.sqrt(a) * x0) / math.sqrt(1.0 - a)
        x = math.sqrt(a_next) * x0 + math.sqrt(1.0 - a_next) * eps
    return x0
