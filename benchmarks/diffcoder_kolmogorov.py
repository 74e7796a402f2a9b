"""DiffCoder vs its VAE baseline on Kolmogorov flow (Re = 1000), at encoder depths 2, 3 and 4.

Data: one seeded trajectory of :func:`xdiffc.datasets.kolmogorov.kolmogorov` at 64^2 (solver at
128^2), 20 time units of spin-up, then snapshots every 0.5: the first 128 train, the last 32
(after a gap of 4 time units) are held out. Vorticity is divided by the training std.

Models: the same encoder and U-Net for both kinds, 4 latent channels, so the latent holds 4x,
16x and 64x fewer values than the field at depths 2, 3 and 4. Both kinds train for the same
number of steps (``--steps``, batch 8) with random periodic shifts (any in x, multiples of 16 points in y, the forcing's
period). Evaluation on the held-out snapshots:

- relative L2 = ||y - x|| / ||x|| over the whole held-out set;
- spectral error = RMS of ln E_y(k) - ln E_x(k) over k_latent < k <= 32, where k_latent = L / 2 is
  the Nyquist wavenumber of the L x L latent (:func:`xdiffc.spectra.spectral_error`), and over the
  whole range 0 < k <= 32 for reference.

DiffCoder is decoded twice: sampled (DDIM eta = 0 from seeded N(0, 1) noise, ``--sample-steps``)
and deterministic (DDIM from zeros, ``--det-steps``, as the codec decodes). The VAE decodes its
posterior mean.

    python benchmarks/diffcoder_kolmogorov.py                      # CPU: ~8 min per depth
    python benchmarks/diffcoder_kolmogorov.py --steps 20000 --device cuda --unet-widths 32 64 128
Writes benchmarks/out/diffcoder/results.json, spectra_depth4.png and fields.png.
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
from xdiffc.spectra import radial_spectrum, relative_l2, spectral_error

HERE = Path(__file__).resolve().parent
RES, N_TRAIN, GAP, N_TEST = 64, 128, 8, 32


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


def fit(kind: str, depth: int, data: np.ndarray, args) -> tuple[DiffCoder, dict]:
    """Train one model for ``args.steps`` steps; returns it and what was done."""
    torch.manual_seed(args.seed)
    config = DiffCoderConfig(kind=kind, resolution=RES, depth=depth, latent_channels=4,
                             enc_widths=tuple(args.enc_widths), unet_widths=tuple(args.unet_widths))
    net = DiffCoder(config).to(args.device)
    steps = args.steps
    t0 = time.perf_counter()
    history = train(net, data, steps=steps, batch=args.batch, lr=args.lr, seed=args.seed,
                    augment=periodic_shifts(RES // 4), log_every=max(1, steps // 10))
    info = {"steps": steps, "train_seconds": round(time.perf_counter() - t0, 1), "parameters": parameter_count(net),
            "final": history[-1]}
    torch.save({"config": config.to_dict(), "state_dict": net.state_dict()}, args.out / f"{kind}_d{depth}.pt")
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


def plots(out: Path, truth: np.ndarray, recon: dict, depths: list[int]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = max(depths)
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
    fig, axes = plt.subplots(len(depths), len(cols), figsize=(2.6 * len(cols), 2.6 * len(depths)), squeeze=False)
    lim = float(np.abs(truth[0]).max())
    for r, dd in enumerate(depths):
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
    p.add_argument("--depths", type=int, nargs="+", default=[2, 3, 4])
    p.add_argument("--steps", type=int, default=250, help="training steps per model (both kinds alike)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--enc-widths", type=int, nargs="+", default=[8, 16, 32])
    p.add_argument("--unet-widths", type=int, nargs="+", default=[8, 16, 32])
    p.add_argument("--sample-steps", type=int, default=32)
    p.add_argument("--det-steps", type=int, default=8)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=HERE / "out" / "diffcoder")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    train_w, test_w, attrs = load_data(args.out)
    scale = float(train_w.std())
    x_train, x_test = train_w / scale, test_w / scale
    results = {"data": {**{k: v for k, v in attrs.items() if isinstance(v, (int, float, str))}, "train": len(x_train),
                        "test": len(x_test), "std": scale},
               "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, "depths": {}}
    recon = {}
    for depth in args.depths:
        t0 = time.perf_counter()
        row, recon[depth] = {}, {}
        for kind in ("vae", "diffcoder"):
            net, info = fit(kind, depth, x_train, args)
            net.eval()
            if kind == "vae":
                recon[depth]["vae"] = reconstruct(net, x_test, 1, False, 0, args.device) * scale
                row["vae"] = {**info, **scores(test_w, recon[depth]["vae"], depth)}
            else:
                for key, steps, sample in [("diffcoder_sample", args.sample_steps, True),
                                           ("diffcoder_det", args.det_steps, False)]:
                    recon[depth][key] = reconstruct(net, x_test, steps, sample, args.seed, args.device) * scale
                    row[key] = {**info, "decode_steps": steps, **scores(test_w, recon[depth][key], depth)}
        row["pair_seconds"] = round(time.perf_counter() - t0, 1)
        results["depths"][depth] = row
        logging.info("depth %d: %s", depth, json.dumps(row))
        (args.out / "results.json").write_text(json.dumps(results, indent=1))
    plots(args.out, test_w, recon, args.depths)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
