"""Training loop shared by the experiment, the tests and codec models: Adam, warm-up, cosine decay."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import numpy as np
import torch

from .model import DiffCoder

log = logging.getLogger(__name__)

Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def periodic_shifts(period_y: int = 1) -> Augment:
    """Random circular shifts: any in x, multiples of ``period_y`` in y (the symmetries of the flow)."""
    def shift(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = np.empty_like(batch)
        h, w = batch.shape[-2:]
        for i, f in enumerate(batch):
            out[i] = np.roll(f, (period_y * rng.integers(h // period_y), rng.integers(w)), axis=(-2, -1))
        return out
    return shift


def train(net: DiffCoder, data: np.ndarray, steps: int, *, batch: int = 8, lr: float = 2e-3, seed: int = 0,
          augment: Augment | None = None, log_every: int = 50) -> list[dict]:
    """Train ``net`` in place on fields ``data`` (N, H, W) in model units; returns the logged losses.

    Batches are drawn with replacement from a seeded generator; the learning rate warms up
    linearly over the first 5% of the steps and then decays along a cosine to 10%.
    """
    data = np.asarray(data, dtype=np.float32)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * (0.1 + 0.45 * (1 + math.cos(math.pi * min(s / steps, 1.0)))))
    net.train()
    history, t0 = [], time.perf_counter()
    for step in range(1, steps + 1):
        x = data[rng.integers(len(data), size=batch)]
        if augment is not None:
            x = augment(x, rng)
        loss, parts = net.loss(torch.from_numpy(np.ascontiguousarray(x))[:, None], gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % log_every == 0 or step == steps:
            history.append({"step": step, "seconds": round(time.perf_counter() - t0, 1), **parts})
            log.info("step %d %s", step, history[-1])
    net.eval()
    return history
