"""Training loop shared by the experiment, the tests and codec models: Adam with warm-up, and either a
cosine decay over a fixed number of steps or training to a validation plateau, with checkpoints.

Two schedules, one loop:

- ``plateau=None``: ``steps`` steps; the learning rate warms up over the first 5% and decays along a
  cosine to 10% (tests and codec models).
- ``plateau=Plateau(...)`` with validation fields: the learning rate warms up over
  ``warmup`` steps, then stays constant.
  Every ``eval_every`` steps the validation loss (the training objective on fixed noise and
  timesteps, so evaluations are comparable) is measured. After ``patience`` evaluations without a
  relative improvement of ``min_delta`` the rate halves; after ``reductions`` halvings the next
  plateau stops training, and the best weights seen are restored. ``steps`` is then only a cap.

With ``checkpoint=PATH`` the whole state (weights, optimiser, generators, history, best weights)
is saved at every evaluation, and a later call with the same arguments resumes from it.
:func:`extend_checkpoint` turns a run that stopped at its step cap into such a checkpoint, so that
it can go on to its plateau under a higher cap.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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


@dataclass(frozen=True)
class Plateau:
    """When a validation curve counts as flat, and what to do then (see the module docstring)."""

    eval_every: int = 100
    patience: int = 5
    min_delta: float = 0.01
    reductions: int = 2
    repeats: int = 4  # validation passes, each with its own fixed noise and timesteps
    warmup: int = 100  # steps of linear learning-rate warm-up


@torch.no_grad()
def validation_loss(net: DiffCoder, data: np.ndarray, repeats: int, seed: int = 12345, batch: int = 16) -> float:
    """Mean training objective over ``data`` (N, H, W), ``repeats`` times with seeded noise: deterministic."""
    was_training = net.training
    net.eval()
    gen = torch.Generator().manual_seed(seed)
    device = next(net.parameters()).device
    total, count = 0.0, 0
    for _ in range(repeats):
        for i in range(0, len(data), batch):
            x = torch.from_numpy(np.ascontiguousarray(data[i:i + batch], dtype=np.float32))[:, None].to(device)
            loss, _ = net.loss(x, gen)
            total, count = total + loss.item() * len(x), count + len(x)
    net.train(was_training)
    return total / count


def train(net: DiffCoder, data: np.ndarray, steps: int, *, batch: int = 8, lr: float = 2e-3, seed: int = 0,
          augment: Augment | None = None, log_every: int = 50, val: np.ndarray | None = None,
          plateau: Plateau | None = None, checkpoint: str | os.PathLike | None = None,
          progress: Callable[[dict], None] | None = None) -> list[dict]:
    """Train ``net`` in place on fields ``data`` (N, H, W) in model units; returns the logged records.

    Records hold the step, seconds of training, the loss parts of the step and, at evaluations,
    ``val_loss`` and ``lr``. ``progress`` is called with every record.
    """
    if plateau is not None and val is None:
        raise ValueError("training to a plateau needs validation fields (val=...)")
    data = np.asarray(data, dtype=np.float32)
    device = next(net.parameters()).device
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    warm = max(1, steps // 20) if plateau is None else max(1, plateau.warmup)
    state = {"step": 0, "seconds": 0.0, "history": [], "best": math.inf, "best_state": None, "since_best": 0,
             "reductions": 0, "scale": 1.0, "stopped": False}
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and path.exists():
        saved = torch.load(path, map_location=device, weights_only=False)
        net.load_state_dict(saved["net"])
        opt.load_state_dict(saved["opt"])
        rng.bit_generator.state = saved["rng"]
        gen.set_state(saved["gen"])
        state = saved["state"]
        log.info("resumed from %s at step %d", path, state["step"])

    def rate(step: int) -> float:
        ramp = min(1.0, (step + 1) / warm)
        if plateau is None:
            return ramp * (0.1 + 0.45 * (1 + math.cos(math.pi * min(step / steps, 1.0))))
        return ramp * state["scale"]

    def save() -> None:
        tmp = path.with_suffix(".tmp")
        torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "rng": rng.bit_generator.state,
                    "gen": gen.get_state(), "state": state}, tmp)
        os.replace(tmp, path)

    net.train()
    t0 = time.perf_counter() - state["seconds"]
    while state["step"] < steps and not state["stopped"]:
        step = state["step"]
        for g in opt.param_groups:
            g["lr"] = lr * rate(step)
        x = data[rng.integers(len(data), size=batch)]
        if augment is not None:
            x = augment(x, rng)
        loss, parts = net.loss(torch.from_numpy(np.ascontiguousarray(x))[:, None].to(device), gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        state["step"] = step = step + 1
        state["seconds"] = time.perf_counter() - t0
        evaluate = plateau is not None and (step % plateau.eval_every == 0 or step == steps)
        if not (evaluate or step % log_every == 0 or step == steps):
            continue
        record = {"step": step, "seconds": round(state["seconds"], 1), **parts}
        if evaluate:
            record.update(val_loss=validation_loss(net, val, plateau.repeats), lr=lr * rate(step))
            _plateau_step(state, record["val_loss"], net, plateau)
        state["history"].append(record)
        log.info("step %d %s", step, record)
        if progress is not None:
            progress(record)
        if path is not None and evaluate:
            save()
    if plateau is not None and state["best_state"] is not None:
        net.load_state_dict(state["best_state"])
    net.eval()
    return state["history"]


def extend_checkpoint(path: str | os.PathLike, net: DiffCoder, curve: list[dict], seconds: float,
                      plateau: Plateau, lr: float, seed: int) -> None:
    """Write a checkpoint from which :func:`train` continues a run that reached its step cap.

    ``net`` holds the run's best weights and ``curve`` its evaluations (step, val_loss). The
    plateau book-keeping (best loss, evaluations since the last gain, rate halvings) is replayed
    from the curve. The Adam moments were not kept, so the optimiser starts afresh at the rate the
    run had reached, and the batch and noise generators are seeded anew from (seed, step).
    """
    step = int(curve[-1]["step"])
    state = {"step": step, "seconds": float(seconds), "history": list(curve), "best": math.inf, "best_state": None,
             "since_best": 0, "reductions": 0, "scale": 1.0, "stopped": False}
    for record in curve:
        _plateau_step(state, record["val_loss"], net, plateau)
    state["best_state"] = copy.deepcopy(net.state_dict())
    state["scale"] = float(curve[-1].get("lr", lr * state["scale"])) / lr
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    path = Path(path)
    torch.save({"net": net.state_dict(), "opt": opt.state_dict(),
                "rng": np.random.default_rng([seed, step]).bit_generator.state,
                "gen": torch.Generator().manual_seed(seed * 1_000_003 + step).get_state(), "state": state}, path)


def _plateau_step(state: dict, val_loss: float, net: DiffCoder, plateau: Plateau) -> None:
    """Book-keeping of one evaluation: keep the best weights, halve the rate or stop on a plateau."""
    if val_loss < state["best"] * (1 - plateau.min_delta):
        state["since_best"] = 0
    else:
        state["since_best"] += 1
    if val_loss < state["best"]:
        state["best"] = val_loss
        state["best_state"] = copy.deepcopy(net.state_dict())
    if state["since_best"] >= plateau.patience:
        if state["reductions"] >= plateau.reductions:
            state["stopped"] = True
        else:
            state["reductions"] += 1
            state["scale"] /= 2
            state["since_best"] = 0
