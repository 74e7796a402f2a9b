"""The rate knob (issue 17): GCDTC models at several latent rates, trained briefly on CPU, on held-out data.

For each rate (values per latent, :data:`xdiffc.neural.network.RATES`):

1. ``xdiffc.train`` on TREFHT members B06.57, .59 and .60 for ``--steps`` steps on one thread
   (skipped where the model file exists, unless ``--retrain``);
2. the model alone on the held-out member TREFHT.B06.61: bits per value of its payload with
   every block (latents and side information) and the NRMSE of its reconstruction (tensor
   correction on, S = the config's default steps);
3. the L2 mode at each eps, CR = x.nbytes / stored bytes: the interpolation base
   (``compress(x, nrmse=eps, mode="l2")``), the per-block choice (``model=`` that file; blocks
   that took the model), the model base forced in every block (its payload plus the L2
   sections, the PCA guarantee correcting it), and SZ3 in L2NORM mode (no mask stored; see
   l2_mode.py).

Prints one JSON record per line (``--json`` also writes them) and draws bits per value against
NRMSE (``--png``): each model alone, and each coder's stream at its measured NRMSE.

    python benchmarks/l2_model_rate.py --steps 150 --png benchmarks/out/l2_model_rate.png
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

import xdiffc
from xdiffc import l2, l2model, predicted
from xdiffc.bitstream import Header, Stream
from xdiffc.neural import load_model
from xdiffc.neural.network import RATES, ModelConfig
from xdiffc.training import train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from l2_mode import DEFAULT_DATA, Field, run_sz3  # noqa: E402

HERE = Path(__file__).resolve().parent
TRAIN = ["TREFHT.B06.57.atm.1890-1999ANN.nc", "TREFHT.B06.59.atm.1890-1999ANN.nc",
         "TREFHT.B06.60.atm.1890-1999ANN.nc"]
HELD_OUT = "TREFHT.B06.61.atm.1890-1999ANN.nc"
EPS = (1e-2, 1e-3)


def trained(rate: int, args) -> Path:
    """The model file of ``rate``, trained here unless it exists."""
    args.models.mkdir(parents=True, exist_ok=True)
    path = args.models / f"l2rate-{rate}.pt"
    if args.retrain or not path.exists():
        for stale in (path, path.with_name(path.name + ".ckpt")):
            stale.unlink(missing_ok=True)
        train([args.data / name for name in TRAIN], path, steps=args.steps, variables=["TREFHT"],
              config=ModelConfig.at_rate(rate), eval_every=args.steps, seed=0, progress=False)
    return path


def model_alone(predictor, f: Field) -> dict:
    """Bits per value of the payload with every block, and the NRMSE of the reconstruction."""
    t = time.perf_counter()
    a = predictor.analyse(f.filled.astype(np.float64), f.mask, predictor.config.default_steps)
    payload = predictor.pack(a, np.ones(len(a.block_bytes), bool))
    return dict(bits_per_value=8 * len(payload) / f.x.size, nrmse=f.nrmse(a.x_hat), seconds=time.perf_counter() - t)


def forced(predictor, f: Field, eps: float) -> dict:
    """The L2 stream with the model base in every block (no choice): CR and NRMSE."""
    values = f.x.astype(np.float64)
    filled = f.filled.astype(np.float64)
    a = predictor.analyse(filled, f.mask, predictor.config.default_steps)
    payload = predictor.pack(a, np.ones(len(a.block_bytes), bool))
    margins = model_path.margin(predictor, a.block_ranges, filled, f.x.dtype)
    base = l2model.model_base(predictor, payload, f.x.shape, margins)
    sections = {"model": payload, **l2.encode(values, f.mask, eps, dtype=f.x.dtype, model=base)}
    header = Header(dtype=f.x.dtype.str, shape=f.x.shape, mode="l2", tol=eps * f.range, rel_tol=eps,
                    model_id=predictor.model_id, model_sha256=predictor.sha256)
    blob = Stream(header, sections).to_bytes()
    y = xdiffc.decompress(blob, model=predictor)
    info = l2.summary(sections["pca"])
    return dict(cr=f.x.nbytes / len(blob), nrmse=f.nrmse(y), pca_bytes=len(sections["pca"]),
                model_bytes=len(payload), corrected=info["corrected"], exact=info["exact"], patches=info["patches"])


def compressed(f: Field, eps: float, model=None) -> dict:
    blob = xdiffc.compress(f.x, nrmse=eps, mode="l2", model=model)
    stream = Stream.from_bytes(blob)
    y = xdiffc.decompress(blob, model=model)
    out = dict(cr=f.x.nbytes / len(blob), nrmse=f.nrmse(y))
    if model is not None:
        used = model.used_blocks(stream.sections["model"], f.x.shape) if "model" in stream.sections else []
        out.update(blocks_with_model=int(np.sum(used)), blocks=len(model.block_slices(f.x.shape)))
    return out


def draw(records: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    alone = [r for r in records if r["kind"] == "model_alone"]
    ax.plot([r["nrmse"] for r in alone], [r["bits_per_value"] for r in alone], "k-o", label="model alone (rates)")
    for r in alone:
        ax.annotate(f"{r['values_per_latent']} v/latent", (r["nrmse"], r["bits_per_value"]), fontsize=8)
    marks = {"interp_base": ("s", "L2 mode, interpolation base"), "per_block_choice": ("^", "L2 mode, model=chosen"),
             "model_base_forced": ("x", "L2 mode, model base forced"), "sz3_l2norm": ("D", "SZ3 L2NORM")}
    for kind, (marker, label) in marks.items():
        rs = [r for r in records if r["kind"] == kind]
        ax.scatter([r["nrmse"] for r in rs], [32 / r["cr"] for r in rs], marker=marker, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("NRMSE (held-out TREFHT.B06.61)")
    ax.set_ylabel("bits per value")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--models", type=Path, default=HERE / "out" / "models")
    ap.add_argument("--rates", nargs="+", type=int, default=sorted(RATES, reverse=True))
    ap.add_argument("--steps", type=int, default=150, help="training steps per model")
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--eps", nargs="+", type=float, default=list(EPS))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--png", type=Path)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    f = Field(args.data / HELD_OUT, "TREFHT")
    records = []

    def emit(record: dict) -> None:
        records.append(record)
        print(json.dumps(record), flush=True)

    for eps in args.eps:
        emit(dict(kind="interp_base", eps=eps, **compressed(f, eps)))
        emit(dict(kind="sz3_l2norm", eps=eps, **run_sz3(f, eps, "L2NORM")))
    for rate in args.rates:
        t = time.perf_counter()
        path = trained(rate, args)
        predictor = load_model(str(path), device="cpu")
        common = dict(values_per_latent=rate, model=path.name, train_steps=predictor.meta.get("steps"),
                      train_wall_s=predictor.meta.get("wall_s"), val_nrmse=predictor.meta.get("val_nrmse"))
        emit(dict(kind="model_alone", **common, **model_alone(predictor, f), wall_s=time.perf_counter() - t))
        for eps in args.eps:
            emit(dict(kind="per_block_choice", eps=eps, **common, **compressed(f, eps, predictor)))
            emit(dict(kind="model_base_forced", eps=eps, **common, **forced(predictor, f, eps)))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text("".join(json.dumps(r) + "\n" for r in records))
    if args.png:
        draw(records, args.png)


if __name__ == "__main__":
    main()
