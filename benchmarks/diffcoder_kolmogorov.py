"""DiffCoder vs its VAE baseline on Kolmogorov flow (Re = 1000), at encoder depths 2, 3 and 4, trained to a plateau.

Data: one seeded trajectory of :func:`xdiffc.datasets.kolmogorov.kolmogorov` at 64^2 (solver at
128^2), 20 time units of spin-up, then snapshots every 0.5. Snapshots 0-103 train, 112-127
validate (early stopping only), and the last 32 (after a gap of 4 time units) are held out for
the scores. Vorticity is divided by the training std.

Models: the same encoder and U-Net for both kinds, 4 latent channels, so the latent holds 4x,
16x and 64x fewer values than the field at depths 2, 3 and 4. Both kinds train alike (batch 8,
Adam, random periodic shifts: any in x, multiples of 16 points in y, the forcing's period) until
their validation loss is flat (:class:`xdiffc.diffcoder.train.Plateau`: no 1% gain in
``--patience`` evaluations, twice halving the rate, then stop and keep the best weights), with
``--max-steps`` as a cap. Checkpoints make every run resumable: re-running the command continues
where it stopped and skips finished models; a model that stopped at its cap goes on under a higher
``--max-steps`` (:func:`xdiffc.diffcoder.train.extend_checkpoint`: fresh Adam moments, the plateau
book-keeping replayed under the current ``--patience``). Evaluation on the held-out snapshots:

- relative L2 = ||y - x|| / ||x|| over the whole held-out set;
- spectral error = RMS of ln E_y(k) - ln E_x(k) over k_latent < k <= 32, where k_latent = L / 2 is
  the Nyquist wavenumber of the L x L latent (:func:`xdiffc.spectra.spectral_error`), and over the
  whole range 0 < k <= 32 for reference.

DiffCoder is decoded twice: sampled (DDIM eta = 0 from seeded N(0, 1) noise, ``--sample-steps``)
and deterministic (DDIM from zeros, ``--det-steps``, as the codec decodes). The VAE decodes its
posterior mean.

    python benchmarks/diffcoder_kolmogorov.py --depths 4 2 3 --seeds 0 1   # CPU, one thread: hours
    python benchmarks/diffcoder_kolmogorov.py --no-train                   # table and plots of what is done
    python benchmarks/diffcoder_kolmogorov.py --device cuda --threads 16
Writes benchmarks/out/diffcoder/results.json, validation.png, spectra_depth4.png and fields.png.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from xdiffc.datasets.kolmogorov import kolmogorov
from xdiffc.diffcoder import DiffCoder, DiffCoderConfig, parameter_count, periodic_shifts, train
from xdiffc.diffcoder.train import extend_checkpoint, Plateau
from xdiffc.spectra import radial_spectrum, relative_l2, spectral_error

HERE = Path(__file__).resolve().parent
RES, N_TRAIN, GAP, N_TEST = 64, 128, 8, 32
N_FIT, VAL_START = 104, 112  # within the first N_TRAIN snapshots: fit on [0, 104), validate on [112, 128)
DECODERS = ("vae", "diffcoder_sample", "diffcoder_det")


def load_data(out: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """(train, test) vorticity arrays and the dataset attributes; generated once, cached as netCDF."""
    path = out / "kolmogorov.nc"
    if not path.exists():
        t0 = time.perf_counter()
        ds = kolmogorov(N_TRAIN + GAP + N_TEST, RES, 1000.0, seed=0, spinup=20.0, interval=0.5)
        ds.attrs["generation_seconds"] = round(time.perf_counter() - t0, 1)
        ds.to_netcdf(path)
    ds = xr.load_dataset(path)
    w = ds["vorticity"].values.astype(np.float32)
    return w[:N_TRAIN], w[N_TRAIN + GAP:], dict(ds.attrs)


def config_for(kind: str, depth: int, args) -> DiffCoderConfig:
    return DiffCoderConfig(kind=kind, resolution=RES, depth=depth, latent_channels=4,
                           enc_widths=tuple(args.enc_widths), unet_widths=tuple(args.unet_widths))


def fit(kind: str, depth: int, seed: int, fit_x: np.ndarray, val_x: np.ndarray, args) -> tuple[DiffCoder, dict] | None:
    """Train one model to its validation plateau (resuming a checkpoint), or load it when finished.

    Returns None when ``--no-train`` is given and the model is not finished.
    """
    name = f"{kind}_d{depth}_s{seed}"
    final, ckpt = args.out / f"{name}.pt", args.out / f"{name}.ckpt"
    plateau = Plateau(eval_every=args.eval_every, patience=args.patience)
    torch.manual_seed(seed)
    net = DiffCoder(config_for(kind, depth, args)).to(args.device)
    if final.exists():
        saved = torch.load(final, map_location=args.device, weights_only=False)
        net.load_state_dict(saved["state_dict"])
        info = saved["info"]
        if args.no_train or info["plateau"] or info["steps"] >= args.max_steps:
            return net.eval(), info
        if not ckpt.exists():  # capped before its plateau: go on under the higher cap
            logging.info("%s stopped at its cap (%d steps); continuing to %d", name, info["steps"], args.max_steps)
            extend_checkpoint(ckpt, net, info["curve"], info["train_seconds"], plateau, args.lr, seed)
    elif args.no_train:
        return None
    history = train(net, fit_x, steps=args.max_steps, batch=args.batch, lr=args.lr, seed=seed,
                    augment=periodic_shifts(RES // 4), log_every=args.eval_every, val=val_x,
                    plateau=plateau, checkpoint=ckpt)
    curve = [h for h in history if "val_loss" in h]
    best = min(curve, key=lambda h: h["val_loss"])
    info = {"steps": history[-1]["step"], "train_seconds": history[-1]["seconds"], "parameters": parameter_count(net),
            "best_step": best["step"], "best_val_loss": best["val_loss"],
            "plateau": history[-1]["step"] < args.max_steps, "curve": curve}
    torch.save({"config": net.config.to_dict(), "state_dict": net.state_dict(), "info": info}, final)
    ckpt.unlink(missing_ok=True)
    return net, info


@torch.no_grad()
def reconstruct(net: DiffCoder, x: np.ndarray, steps: int, sample: bool, seed: int, device: str) -> np.ndarray:
    """Encode and decode held-out fields (N, H, W), in batches of 8."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, len(x), 8):
        z = net.encode(torch.from_numpy(x[i:i + 8, None]).to(device))
        out.append(net.decode(z, steps, sample=sample, generator=gen)[:, 0].cpu().numpy())
    return np.concatenate(out)


def scores(truth: np.ndarray, y: np.ndarray, depth: int) -> dict:
    k_lat = (RES >> depth) / 2
    return {"rel_l2": relative_l2(truth, y), "spectral_error": spectral_error(truth, y, k_min=k_lat),
            "spectral_error_all_k": spectral_error(truth, y), "k_min": k_lat}


def summary(runs: dict, depths: list[int]) -> dict:
    """Per depth and decoder: mean, min and max over seeds of relative L2 and spectral error."""
    out = {}
    for d in depths:
        row = {}
        for key in DECODERS:
            got = [r[key] for name, r in runs.items() if name.startswith(f"d{d}_") and key in r]
            if got:
                row[key] = {"seeds": len(got), **{m: {"mean": float(np.mean([g[m] for g in got])),
                                                       "min": min(g[m] for g in got), "max": max(g[m] for g in got)}
                                                   for m in ("rel_l2", "spectral_error")}}
        out[d] = row
    return out


def plots(out: Path, truth: np.ndarray, recon: dict, runs: dict, depths: list[int]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(depths), figsize=(4.2 * len(depths), 3.6), squeeze=False)
    for ax, d in zip(axes[0], sorted(depths)):
        for name, r in sorted(runs.items()):
            if not name.startswith(f"d{d}_"):
                continue
            for kind, style in (("vae", "C0"), ("diffcoder", "C3")):
                curve = r.get(f"{kind}_curve")
                if curve:
                    ax.semilogy([c["step"] for c in curve], [c["val_loss"] for c in curve], style,
                                alpha=0.8, label=f"{kind} {name.split('_')[1]}")
        ax.set(xlabel="step", ylabel="validation loss (training objective)", title=f"depth {d}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "validation.png", dpi=110)
    plt.close(fig)

    shown = [d for d in depths if d in recon]
    if not shown:
        return
    d = max(shown)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for label, y, style in [("truth", truth, "k-"), ("VAE", recon[d]["vae"], "C0-"),
                            ("DiffCoder (sampled)", recon[d]["diffcoder_sample"], "C3-"),
                            ("DiffCoder (deterministic)", recon[d]["diffcoder_det"], "C3--")]:
        k, e = radial_spectrum(y)
        ax.loglog(k[1:], e[1:], style, label=label)
    ax.axvline((RES >> d) / 2, color="gray", lw=0.8, ls=":")
    ax.set(xlabel="wavenumber k", ylabel="E(k) of vorticity (enstrophy spectrum)",
           title=f"Kolmogorov flow, held-out, depth {d} ({RES >> d}x{RES >> d} latent)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / f"spectra_depth{d}.png", dpi=120)
    plt.close(fig)

    cols = [("truth", None), ("VAE", "vae"), ("DiffCoder sampled", "diffcoder_sample"),
            ("DiffCoder deterministic", "diffcoder_det")]
    shown = sorted(shown)
    fig, axes = plt.subplots(len(shown), len(cols), figsize=(2.6 * len(cols), 2.6 * len(shown)), squeeze=False)
    lim = float(np.abs(truth[0]).max())
    for r, dd in enumerate(shown):
        for c, (title, key) in enumerate(cols):
            a = axes[r, c]
            a.imshow(truth[0] if key is None else recon[dd][key][0], cmap="RdBu_r", vmin=-lim, vmax=lim, origin="lower")
            a.set_xticks([]), a.set_yticks([])
            a.set_title(f"{title}" + ("" if key is None else f", d={dd}"), fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "fields.png", dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--depths", type=int, nargs="+", default=[4, 2, 3])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--max-steps", type=int, default=6000, help="cap on training steps per model")
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--patience", type=int, default=5, help="evaluations without a 1%% gain that make a plateau")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--enc-widths", type=int, nargs="+", default=[16, 32, 64])
    p.add_argument("--unet-widths", type=int, nargs="+", default=[24, 48, 96])
    p.add_argument("--sample-steps", type=int, default=32)
    p.add_argument("--det-steps", type=int, default=8)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-train", action="store_true", help="report finished models only; train nothing")
    p.add_argument("--out", type=Path, default=HERE / "out" / "diffcoder")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    train_w, test_w, attrs = load_data(args.out)
    scale = float(train_w[:N_FIT].std())
    fit_x, val_x, x_test = train_w[:N_FIT] / scale, train_w[VAL_START:] / scale, test_w / scale
    results = {"data": {**{k: v for k, v in attrs.items() if isinstance(v, (int, float, str))}, "fit": len(fit_x),
                        "validation": len(val_x), "test": len(x_test), "std": scale},
               "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, "runs": {}}
    recon: dict[int, dict] = {}
    for seed in args.seeds:
        for depth in args.depths:
            row, got = {}, {}
            for kind in ("vae", "diffcoder"):
                fitted = fit(kind, depth, seed, fit_x, val_x, args)
                if fitted is None:
                    break
                net, info = fitted
                row[f"{kind}_curve"] = info.pop("curve")
                keys = [("vae", 1, False)] if kind == "vae" else [("diffcoder_sample", args.sample_steps, True),
                                                                   ("diffcoder_det", args.det_steps, False)]
                for key, steps, sample in keys:
                    got[key] = reconstruct(net, x_test, steps, sample, seed, args.device) * scale
                    row[key] = {**info, "decode_steps": steps, **scores(test_w, got[key], depth)}
            else:
                results["runs"][f"d{depth}_s{seed}"] = row
                recon.setdefault(depth, got)
                logging.info("depth %d seed %d: %s", depth, seed,
                             json.dumps({k: v for k, v in row.items() if not k.endswith("_curve")}))
                results["summary"] = summary(results["runs"], args.depths)
                (args.out / "results.json").write_text(json.dumps(results, indent=1))
    plots(args.out, test_w, recon, results["runs"], args.depths)
    print(json.dumps({"summary": results.get("summary", {})}, indent=1))


if __name__ == "__main__":
    main()
