"""The sigmoid noise schedule of Chen (2023), v-parameterisation, and DDIM (eta = 0), in float64.

Schedule (Chen 2023, "On the importance of noise scheduling for diffusion models", Alg. 1), on
continuous time t in [0, 1] with sigma(u) = 1 / (1 + exp(-u))::

    alpha_bar(t) = (sigma(end / tau) - sigma((t (end - start) + start) / tau))
                   / (sigma(end / tau) - sigma(start / tau)),   clipped to [clip_min, 1]

evaluated at t = i / T for i = 0..T (T = 1000 training steps), so alpha_bar(0) = 1 exactly and
alpha_bar(T) = clip_min. Defaults start = -3, end = 3, tau = 1 are Chen's.

v-parameterisation (Salimans & Ho 2022), with a = alpha_bar(t)::

    x_t = sqrt(a) x0 + sqrt(1 - a) eps,      v = sqrt(a) eps - sqrt(1 - a) x0
    x0  = sqrt(a) x_t - sqrt(1 - a) v,       eps = sqrt(1 - a) x_t + sqrt(a) v

The inversions are exact because sqrt(a)^2 + sqrt(1 - a)^2 = 1; v stays well defined at a = 0
(where x0 = -v), so the chain may start at alpha_bar(T) ~ 0 from zeros or from noise.
Coefficients enter the float32 network as Python floats computed in float64, identical on every
machine.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from ..neural.diffusion import ddim_timesteps

TRAIN_STEPS = 1000


def sigmoid_alpha_bar(steps: int = TRAIN_STEPS, start: float = -3.0, end: float = 3.0, tau: float = 1.0,
                      clip_min: float = 1e-9) -> np.ndarray:
    """alpha_bar at t = i / steps, i = 0..steps (float64, decreasing from 1 to ``clip_min``)."""
    if not start < end or tau <= 0 or steps < 1:
        raise ValueError(f"need start < end, tau > 0 and steps >= 1; got {start}, {end}, {tau}, {steps}")
    sig = lambda u: 1.0 / (1.0 + np.exp(-u))  # noqa: E731
    t = np.arange(steps + 1, dtype=np.float64) / steps
    v_start, v_end = sig(start / tau), sig(end / tau)
    out = (v_end - sig((t * (end - start) + start) / tau)) / (v_end - v_start)
    return np.clip(out, clip_min, 1.0)


def v_target(x0, eps, a: float):
    """v = sqrt(a) eps - sqrt(1 - a) x0."""
    return math.sqrt(a) * eps - math.sqrt(1.0 - a) * x0


def x0_from_v(x_t, v, a: float):
    """x0 = sqrt(a) x_t - sqrt(1 - a) v."""
    return math.sqrt(a) * x_t - math.sqrt(1.0 - a) * v


def eps_from_v(x_t, v, a: float):
    """eps = sqrt(1 - a) x_t + sqrt(a) v."""
    return math.sqrt(1.0 - a) * x_t + math.sqrt(a) * v


@torch.no_grad()
def ddim_sample(predict_v: Callable[[torch.Tensor, int], torch.Tensor], start: torch.Tensor, steps: int,
                abar: np.ndarray) -> torch.Tensor:
    """DDIM with eta = 0 over ``steps`` evenly spaced timesteps from T; returns x0.

    ``start`` is x_T: zeros for the deterministic decoder, N(0, 1) noise for a sample.
    Each step: v = net(x_t, t); x0, eps from v; x_next = sqrt(a_next) x0 + sqrt(1 - a_next) eps.
    The last step lands on t = 0, where alpha_bar = 1, so x is then exactly x0.
    """
    T = len(abar) - 1
    ts = ddim_timesteps(steps, T) + [0]
    x = start
    for t, t_next in zip(ts[:-1], ts[1:]):
        a, a_next = float(abar[t]), float(abar[t_next])
        v = predict_v(x, t)
        x0, eps = x0_from_v(x, v, a), eps_from_v(x, v, a)
        x = math.sqrt(a_next) * x0 + math.sqrt(1.0 - a_next) * eps
    return x
