"""Make and measure the shipped codec model ``diffcoder-kolmogorov`` (issue 18, part 3).

The depth-4 DiffCoder of :mod:`diffcoder_kolmogorov` (seed 0, trained to its plateau) becomes a
codec model: a per-channel logistic prior is added and the whole network is fine-tuned, to its
own validation plateau, with additive uniform noise on the latents and ``--rate-weight`` x bits
per pixel in the loss (:class:`xdiffc.diffcoder.DiffCoderConfig`, ``rate_weight > 0``). Inputs
are normalised as the codec normalises a block: ``(x - mean) / (max - min)``, times
``data_scale``, the median of ``(max - min) / std`` over the training snapshots, so that the
network sees the units it was trained in. The entropy tables are then frozen, the cross-device
margin is estimated, and the file is written to ``xdiffc/weights/diffcoder-kolmogorov.pt``.

Measured on the 32 held-out snapshots (the same split as the experiment):

- the model's own decode (rounded latents, deterministic DDIM in ``--steps`` steps): relative L2
  and spectral error, as in the experiment;
- ``xdiffc.compress`` with and without the model at pointwise bounds 1e-2, 1e-3 and 1e-4 of the
  range: ratio, encode time and the largest error over the bound;
- the same in L2 mode (``mode="l2"``, the paper's pipeline: model, then PCA guarantee per block)
  at NRMSE 1e-2 and 1e-3: ratio and the NRMSE reached.

    python benchmarks/diffcoder_kolmogorov.py --depths 4 --seeds 0   # the trained model first
    python benchmarks/diffcoder_codec.py                              # about 20 min on one CPU thread
    python benchmarks/diffcoder_codec.py --no-train                   # measure the shipped file only
Writes benchmarks/out/diffcoder/codec.json and codec_fields.png.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

import xdiffc
from diffcoder_kolmogorov import HERE, N_FIT, VAL_START, load_data
from xdiffc.diffcoder import DiffCoder, DiffCoderConfig, parameter_count, periodic_shifts, save, train
from xdiffc.diffcoder.train import Plateau
from xdiffc.neural import layout, load_model
from xdiffc.model_files import MODELS_DIR
from xdiffc.spectra import relative_l2, spectral_error
from xdiffc.training import estimate_deviation

NAME = "diffcoder-kolmogorov"
EPS = (1e-2, 1e-3, 1e-4)


def normalised(w: np.ndarray, data_scale: float) -> np.ndarray:
    """Snapshots (N, 64, 64) as the codec hands them to the network."""
    blocks = layout.fold(w.astype(np.float64), np.zeros(w.shape, bool), (1, *w.shape[1:]))
    return blocks.data[:, 0] * np.float32(data_scale)


def make(args, fit_w: np.ndarray, val_w: np.ndarray) -> Path:
    saved = torch.load(args.out / "diffcoder_d4_s0.pt", map_location="cpu", weights_only=False)
    spread = (fit_w.max(axis=(1, 2)) - fit_w.min(axis=(1, 2))) / fit_w.std()
    data_scale = float(np.round(np.median(spread), 2))
    config = DiffCoderConfig.from_dict({**saved["config"], "rate_weight": args.rate_weight, "data_scale": data_scale})
    torch.manual_seed(0)
    net = DiffCoder(config)
    missing, unexpected = net.load_state_dict(saved["state_dict"], strict=False)
    assert not unexpected and all(k.startswith("prior.") for k in missing), (missing, unexpected)
    fit_x, val_x = normalised(fit_w, data_scale), normalised(val_w, data_scale)
    t0 = time.perf_counter()
    history = train(net, fit_x, steps=args.max_steps, batch=8, lr=args.lr, seed=0, augment=periodic_shifts(16),
                    log_every=args.eval_every, val=val_x, checkpoint=args.out / "codec.ckpt",
                    plateau=Plateau(eval_every=args.eval_every, patience=3, warmup=20))
    blocks = layout.fold(val_w.astype(np.float64), np.zeros(val_w.shape, bool), (1, *val_w.shape[1:]))
    deviation = estimate_deviation(xdiffc.diffcoder.BlockNet(net), blocks, steps=args.steps)
    path = MODELS_DIR / f"{NAME}.pt"
    digest = save(path, net, deviation, {
        "data": "Kolmogorov flow, Re 1000, 64x64 vorticity (xdiffc.datasets.kolmogorov, seed 0), snapshots 0-103",
        "base": "benchmarks/diffcoder_kolmogorov.py depth 4 seed 0", "rate_weight": args.rate_weight,
        "fine_tune_steps": history[-1]["step"], "decode_steps": args.steps})
    info = {"file": str(path.relative_to(HERE.parent)), "bytes": path.stat().st_size, "sha256": digest,
            "parameters": parameter_count(net), "data_scale": data_scale, "max_abs_deviation": deviation,
            "fine_tune_steps": history[-1]["step"], "fine_tune_seconds": round(time.perf_counter() - t0, 1),
            "curve": [h for h in history if "val_loss" in h]}
    (args.out / "codec_model.json").write_text(json.dumps(info, indent=1))
    (args.out / "codec.ckpt").unlink(missing_ok=True)
    return path


def measure(args, test_w: np.ndarray) -> dict:
    pred = load_model(NAME)
    x = test_w.astype(np.float64)
    analysis = pred.analyse(x, np.zeros(x.shape, bool), args.steps)
    out = {"model": {"rel_l2": relative_l2(x, analysis.x_hat), "spectral_error": spectral_error(x, analysis.x_hat, 4),
                     "latent_bytes_per_snapshot": float(np.mean(analysis.block_bytes))}, "bounds": {}}
    for eps in EPS:
        tol = eps * float(x.max() - x.min())
        row = {}
        for label, model in (("model-free", None), (NAME, NAME)):
            t0 = time.perf_counter()
            blob = xdiffc.compress(test_w, rel_tol=eps, model=model, steps=args.steps)
            seconds = time.perf_counter() - t0
            y = xdiffc.decompress(blob)
            row[label] = {"ratio": test_w.nbytes / len(blob), "encode_seconds": round(seconds, 2),
                          "max_err_over_bound": float(np.abs(y.astype(np.float64) - x).max() / tol)}
        out["bounds"][f"{eps:g}"] = row
        logging.info("eps %g: %s", eps, row)
    for nrmse in EPS[:2]:  # the paper's pipeline: the model, then the PCA guarantee per block
        row = {}
        for label, model in (("model-free", None), (NAME, NAME)):
            blob = xdiffc.compress(test_w, mode="l2", nrmse=nrmse, model=model, steps=args.steps)
            y = xdiffc.decompress(blob).astype(np.float64)
            row[label] = {"ratio": test_w.nbytes / len(blob),
                          "nrmse": float(np.sqrt(np.mean((y - x) ** 2)) / (x.max() - x.min()))}
        out["l2"] = {**out.get("l2", {}), f"{nrmse:g}": row}
        logging.info("l2 nrmse %g: %s", nrmse, row)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rate-weight", type=float, default=0.05)
    p.add_argument("--lr", type=float, default=2.5e-4)
    p.add_argument("--max-steps", type=int, default=1000)
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--steps", type=int, default=8, help="deterministic DDIM steps of the codec's decode")
    p.add_argument("--no-train", action="store_true", help="measure the shipped file only")
    p.add_argument("--out", type=Path, default=HERE / "out" / "diffcoder")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)
    train_w, test_w, _ = load_data(args.out)
    if not args.no_train:
        make(args, train_w[:N_FIT], train_w[VAL_START:])
    result = measure(args, test_w)
    (args.out / "codec.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
