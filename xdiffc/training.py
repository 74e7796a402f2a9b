"""Train a model on your own netCDF or Zarr data: ``xdiffc.train(paths, "model.pt")``.

Data: every float variable with a leading time axis and >= 2 spatial dims (or (time, ncol)).
The last ``val_fraction`` of each variable's time steps is held out for validation (variables
with fewer than 5 steps go to training whole). Training samples random block-sized crops.

Two stages, one step counter:
1. end to end: encoder, entropy prior, embedder and U-Net, loss = masked x0 MSE of a few
   random slices per block (normalised units) + ``rate_weight`` x bits per value;
2. the last ``correction_fraction`` of the steps train the tensor correction alone on the
   deterministic ``default_steps``-step decode of whole blocks.
Checkpoints (model, optimizer, step) go to ``output + ".ckpt"`` every ``eval_every`` steps and on
exit; ``resume=True`` continues from there. The exported model file has frozen CDF tables.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

from . import grids
from .neural import diffusion, layout, modelfile
from .neural.network import GCDTCNet, ModelConfig

log = logging.getLogger(__name__)

#: Values at least this large in magnitude are fill, as in the core.
_FILL = 1e30
_COLUMN_DIMS = ("ncol", "ncells", "ncol_d")


@dataclass
class Field:
    """One variable's split, as (batch, T, H, W) float64 with its missing mask and value range."""

    name: str
    values: np.ndarray
    missing: np.ndarray
    value_range: float


def _open(path: str | os.PathLike) -> xr.Dataset:
    path = Path(path)
    if path.is_dir() or path.suffix == ".zarr":
        return xr.open_zarr(path, decode_times=False)
    return xr.open_dataset(path, decode_times=False)


def _usable(var: xr.DataArray) -> bool:
    if var.dtype.kind != "f" or var.ndim < 2 or "time" not in var.dims[0].lower():
        return False
    return var.ndim >= 3 or var.dims[1].lower() in _COLUMN_DIMS


def _on_canvas(ds: xr.Dataset, var: xr.DataArray, x: np.ndarray, miss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Columns of a native grid laid out on their 2-D canvas (:mod:`xdiffc.grids`) as the last two axes.

    This is the canvas the codec codes for (time, [lev,] ncol) fields. Padding slots are marked
    missing, so the loss ignores them. Gridded data, and columns without lat/lon or without a
    2-D layout, come back unchanged.
    """
    dim = next((d for d in var.dims if d.lower() in _COLUMN_DIMS), None)
    found = None if dim is None else grids.layout_for(ds, dim)
    if found is None or len(found.shape2d) != 2:
        return x, miss
    axis = var.dims.index(dim)
    x, miss = np.moveaxis(x, axis, -1), np.moveaxis(miss, axis, -1)
    padding = found.permutation.reshape(found.shape2d) < 0
    return found.to_grid(x), found.to_grid(miss) | padding


def load_fields(paths: Sequence[str | os.PathLike], variables: Sequence[str] | None = None,
                val_fraction: float = 0.15) -> tuple[list[Field], list[Field]]:
    """Training and validation fields of every usable variable in ``paths``."""
    train, val = [], []
    for path in paths:
        with _open(path) as ds:
            for name, var in ds.data_vars.items():
                if (variables is not None and name not in variables) or not _usable(var):
                    continue
                x = np.asarray(var.values, dtype=np.float64)
                miss = ~np.isfinite(x) | (np.abs(np.nan_to_num(x)) >= _FILL)
                x, miss = _on_canvas(ds, var, x, miss)
                n_val = int(round(val_fraction * x.shape[0])) if x.shape[0] >= 5 else 0
                label = f"{Path(path).name}:{name}"
                for part, target in ((slice(0, x.shape[0] - n_val), train), (slice(x.shape[0] - n_val, None), val)):
                    xs, ms = x[part], miss[part]
                    if xs.shape[0] == 0 or ms.all():
                        continue
                    good = xs[~ms]
                    canon = layout.to_canonical(xs)
                    target.append(Field(label, canon, layout.to_canonical(ms), float(good.max() - good.min())))
    if not train:
        raise ValueError(f"no usable variable (float, time first, >= 2 spatial dims) in {list(map(str, paths))}")
    return train, val


class BlockSampler:
    """Random block-sized crops of the training fields, weighted by field size."""

    def __init__(self, fields: list[Field], block: tuple[int, int, int], seed: int):
        self.fields, self.block = fields, block
        sizes = np.array([f.values.size for f in fields], dtype=np.float64)
        self.weights = sizes / sizes.sum()
        self.rng = np.random.default_rng(seed)

    def sample(self, n: int) -> layout.Blocks:
        crops, masks = [], []
        for _ in range(n):
            f = self.fields[self.rng.choice(len(self.fields), p=self.weights)]
            b = self.rng.integers(f.values.shape[0])
            starts = [int(self.rng.integers(max(d - k, 0) + 1)) for d, k in zip(f.values.shape[1:], self.block)]
            region = (b, *(slice(s, s + k) for s, k in zip(starts, self.block)))
            crops.append(f.values[region])
            masks.append(f.missing[region])
        folded = [layout.fold(c, m, self.block) for c, m in zip(crops, masks)]
        return layout.Blocks(*(np.concatenate([getattr(f, k) for f in folded]) for k in ("data", "valid", "means", "ranges")))


def validation_blocks(fields: list[Field], block: tuple[int, int, int], limit: int) -> tuple[layout.Blocks, np.ndarray]:
    """Up to ``limit`` grid blocks spread over the validation fields, and each block's field range."""
    picked, field_ranges = [], []
    per_field = max(1, limit // max(len(fields), 1))
    for f in fields:
        blocks = layout.fold(f.values, f.missing, block)
        keep = np.unique(np.linspace(0, len(blocks.data) - 1, per_field).round().astype(int))
        picked.append(layout.Blocks(*(getattr(blocks, k)[keep] for k in ("data", "valid", "means", "ranges"))))
        field_ranges += [f.value_range] * len(keep)
    picked, field_ranges = picked[:limit], field_ranges[:limit]
    return (layout.Blocks(*(np.concatenate([getattr(p, k) for p in picked]) for k in ("data", "valid", "means", "ranges"))),
            np.array(field_ranges))


@torch.no_grad()
def evaluate(net: GCDTCNet, blocks: layout.Blocks, field_ranges: np.ndarray, steps: int,
             correction: bool = True, device: str = "cpu") -> float:
    """Mean over blocks of RMSE / field range, decoding one block at a time with ``steps`` steps."""
    net.eval()
    scores = []
    for i in range(len(blocks.data)):
        x = torch.from_numpy(blocks.data[i : i + 1]).to(device)
        y = net.decode(torch.round(net.encode(x)), steps, correction)[0].cpu().numpy()
        v = blocks.valid[i]
        err = (y - blocks.data[i])[v].astype(np.float64) * layout.divisor(blocks.ranges[i])
        scores.append(np.sqrt(np.mean(err**2)) / max(field_ranges[i], 1e-30) if v.any() else 0.0)
    net.train()
    return float(np.mean(scores)) if scores else float("nan")


def _slice_weights(valid: torch.Tensor) -> torch.Tensor:
    w = valid.flatten(2).sum(2).float()
    return torch.where(w.sum(1, keepdim=True) > 0, w, torch.ones_like(w))


def train(data: Sequence[str | os.PathLike], output: str | os.PathLike, *, device: str = "cpu", steps: int = 4000,
          resume: bool = False, variables: Sequence[str] | None = None, config: ModelConfig | None = None,
          batch_blocks: int = 4, slices_per_block: int = 4, lr: float = 2e-3, rate_weight: float = 1e-3,
          correction_fraction: float = 0.1, eval_every: int = 250, val_blocks: int = 8,
          val_fraction: float = 0.15, seed: int = 0, progress: bool = True) -> Path:
    """Train a model on the files ``data`` and export it to ``output``; returns the model path.

    ``device`` is "cpu" or "cuda"; ``steps`` counts both stages. With ``resume=True`` training
    continues from ``output + ".ckpt"`` (its config wins over ``config``). The latent rate is the
    config's: ``ModelConfig.at_rate(values_per_latent)`` (:data:`xdiffc.neural.network.RATES`).
    """
    output = Path(output)
    ckpt_path = output.with_name(output.name + ".ckpt")
    torch.manual_seed(seed)
    train_fields, val_fields = load_fields(data, variables, val_fraction)
    state = torch.load(ckpt_path, map_location="cpu", weights_only=True) if resume and ckpt_path.exists() else None
    if resume and state is None:
        log.warning("no checkpoint at %s: starting from scratch", ckpt_path)
    config = ModelConfig.from_dict(state["config"]) if state else (config or ModelConfig())
    net = GCDTCNet(config).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    step = 0
    if state:
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step = int(state["step"])
    sampler = BlockSampler(train_fields, config.block, seed + step)
    val, val_ranges = validation_blocks(val_fields or train_fields[:1], config.block, val_blocks)
    first_corr = int(round(steps * (1 - correction_fraction)))
    t_start, nrmse = time.time(), float("nan")

    def checkpoint() -> None:
        tmp = ckpt_path.with_name(ckpt_path.name + ".tmp")
        torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(), "step": step,
                    "config": config.to_dict()}, tmp)
        os.replace(tmp, ckpt_path)

    bar = tqdm(total=steps, initial=step, disable=not progress, desc="train", dynamic_ncols=True)
    try:
        while step < steps:
            for g in opt.param_groups:  # linear decay to 10 % over the run
                g["lr"] = lr * (1 - 0.9 * step / steps)
            blocks = sampler.sample(batch_blocks if step < first_corr else 1)
            x = torch.from_numpy(blocks.data).to(device)
            valid = torch.from_numpy(blocks.valid).to(device)
            if step < first_corr:
                loss, mse, bpv = _diffusion_loss(net, x, valid, slices_per_block, rate_weight)
            else:
                loss, mse, bpv = _correction_loss(net, x, valid)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            step += 1
            if step % eval_every == 0 or step == steps:
                nrmse = evaluate(net, val, val_ranges, config.default_steps, device=device)
                checkpoint()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3g}", bpv=f"{bpv:.3f}", rmse=f"{mse ** 0.5:.4f}", val_nrmse=f"{nrmse:.4f}")
    finally:
        bar.close()
        checkpoint()
    margin = estimate_deviation(net, val, max(config.default_steps, 8), device)
    meta = {"steps": step, "device": device, "wall_s": round(time.time() - t_start, 1), "val_nrmse": nrmse,
            "data": ", ".join(sorted({f.name for f in train_fields}))}
    modelfile.save(output, net.cpu(), margin, meta)
    return output


def _diffusion_loss(net: GCDTCNet, x: torch.Tensor, valid: torch.Tensor, k: int,
                    rate_weight: float) -> tuple[torch.Tensor, float, float]:
    """Stage 1: masked x0 MSE on k slices per block + rate_weight x bits per valid value."""
    n, bt, bh, bw = x.shape
    y = net.encode(x)
    bits = net.prior.bits(y + torch.rand_like(y) - 0.5).sum()
    bpv = bits / valid.sum().clamp_min(1)
    z = y + (torch.round(y) - y).detach()  # decoder sees the rounded latents (straight-through)
    maps = net.embedder(z)
    idx = (torch.multinomial(_slice_weights(valid), k, replacement=True)
           + torch.arange(n, device=x.device)[:, None] * bt).ravel()
    scale = net.config.data_scale
    x0 = x.reshape(n * bt, 1, bh, bw)[idx] * scale
    x_t, t = diffusion.training_input(x0.cpu(), net.abar)
    pred = net.predict_x0(x_t.to(x.device), [m[idx] for m in maps], t.to(x.device))
    mask = valid.reshape(n * bt, 1, bh, bw)[idx].float()
    mse = (((pred - x0) / scale) ** 2 * mask).sum() / mask.sum().clamp_min(1)
    return mse + rate_weight * bpv, mse.item(), bpv.item()


def _correction_loss(net: GCDTCNet, x: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, float, float]:
    """Stage 2: masked MSE of the corrected deterministic decode; only the correction learns."""
    with torch.no_grad():
        base = net.decode(torch.round(net.encode(x)), net.config.default_steps, correction=False)
    mask = valid.float()
    mse = ((net.correction(base) - x) ** 2 * mask).sum() / mask.sum().clamp_min(1)
    return mse, mse.item(), float("nan")


@torch.no_grad()
def estimate_deviation(net: GCDTCNet, blocks: layout.Blocks, steps: int, device: str = "cpu",
                       safety: float = 10.0, floor: float = 1e-6) -> float:
    """Bound on cross-device differences of the decode, in normalised units (range 1).

    Devices differ by float32 rounding (summation order, conv algorithms). Running the same
    decode in float64 exposes the size of float32 rounding through the whole S-step chain;
    the largest float32-vs-float64 difference over the validation blocks, times ``safety``,
    is the documented bound.
    """
    net = copy.deepcopy(net).to(device).eval()
    net64 = copy.deepcopy(net).double()
    worst = 0.0
    for i in range(len(blocks.data)):
        x = torch.from_numpy(blocks.data[i : i + 1]).to(device)
        z = torch.round(net.encode(x))
        a = net.decode(z, steps).double()
        b = net64.decode(z.double(), steps)
        worst = max(worst, float((a - b).abs().max()))
    return max(worst * safety, floor)
