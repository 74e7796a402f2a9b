"""An archive-trained model (issue 17, measure): train on the first 60% of the years, compress the last 40%.

The long time series are the TREFHT annual-mean ensemble members of ../shared/data
(B06.57, .59, .60, .61: 110 years x 64 x 128 float32 each). For every member the first
``--train-fraction`` of its years (66 of 110) go to training and the rest (44 years) are the
test fields; the model never sees a test year, but it has seen the same runs' earlier years.

1. ``xdiffc.train`` on the four members' training years for ``--steps`` steps on one torch
   thread (skipped where the model file exists, unless ``--retrain``; the training time is then
   the one recorded in the model file). ``train`` holds out the last 15% of each training
   slice (years 57-66) for its own validation; no test year is involved.
2. On each member's test years:
   - the bar: the climatology (mean of the training years) as a prediction, its NRMSE; and the
     model alone (every block: latents and side information) in bits per value and NRMSE;
   - L2 mode at each ``--l2-eps`` (NRMSE targets), CR = x.nbytes / stored bytes with the
     measured NRMSE: the interpolation base, the per-block choice with the model (``model=``;
     blocks that took it), the model base forced in every block (l2_model_rate.forced), SZ3 in
     L2NORM mode as l2_mode.py runs it, SZ3 L2NORM with its bound raised (bisection) to the
     largest whose NRMSE <= eps, and SPERR (psnr mode, the lowest PSNR target, by bisection, whose measured NRMSE
     is <= eps: SPERR has no RMSE mode). SZ3 and SPERR get gaps filled and store no mask (these
     fields have none);
   - pointwise mode at each ``--pw-eps`` (``rel_tol``, bound eps x range): model-free against
     ``model=`` the archive model, with the largest error over the bound;
   - the store: the test years written with ``ds.gcdtc.to_zarr(store, rel_tol=eps[, model=PATH])``;
     ``nbytes_stored`` of the variable (chunks + zarr.json, which carries the model base64) with
     and without the model, against the model file's bytes.

Prints one JSON record per line (``--json`` also writes them) and draws CR against NRMSE for
every compressor, mean over the members (``--png``).

    OMP_NUM_THREADS=1 python benchmarks/archive_model.py --steps 500 \\
        --json benchmarks/out/archive_model.json --png benchmarks/figures/archive_model.png
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr
import zarr

import xdiffc
import xdiffc.xarray  # noqa: F401  (registers ds.gcdtc)
from xdiffc.bitstream import Stream
from xdiffc.neural import load_model
from xdiffc.neural.network import ModelConfig
from xdiffc.training import train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from l2_mode import DEFAULT_DATA, Field, run_sz3  # noqa: E402
from l2_model_rate import forced, model_alone  # noqa: E402

HERE = Path(__file__).resolve().parent
MEMBERS = ("57", "59", "60", "61")
VAR = "TREFHT"
L2_EPS = (1e-2, 3e-3, 1e-3)
PW_EPS = (1e-2, 1e-3)


def member_file(data: Path, member: str) -> Path:
    return data / f"TREFHT.B06.{member}.atm.1890-1999ANN.nc"


def split(data: Path, members, fraction: float, work: Path) -> tuple[list[Path], list[Path], int, int]:
    """Each member's first ``fraction`` of years to work/train, the rest to work/test (netCDF, as on disk)."""
    trains, tests = [], []
    for m in members:
        with xr.open_dataset(member_file(data, m), decode_times=False) as ds:
            n = ds.sizes["time"]
            k = int(round(fraction * n))
            for part, folder, out in ((slice(0, k), "train", trains), (slice(k, None), "test", tests)):
                path = work / folder / f"B06.{m}.nc"
                path.parent.mkdir(parents=True, exist_ok=True)
                ds[[VAR]].isel(time=part).to_netcdf(path)
                out.append(path)
    return trains, tests, n, k


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def trained(paths: list[Path], args) -> tuple[Path, dict]:
    """The model file, trained here unless it exists; and how (steps, wall time, hardware)."""
    path = args.model
    path.parent.mkdir(parents=True, exist_ok=True)
    here = None
    if args.retrain or not path.exists():
        for stale in (path, path.with_name(path.name + ".ckpt")):
            stale.unlink(missing_ok=True)
        t = time.perf_counter()
        train(paths, path, steps=args.steps, variables=[VAR], config=ModelConfig.at_rate(args.rate),
              eval_every=max(1, args.steps // 3), seed=0, progress=False)
        here = time.perf_counter() - t
    meta = load_model(str(path), device="cpu").meta
    return path, dict(steps=meta.get("steps"), train_wall_s=meta.get("wall_s"), train_call_s=here,
                      val_nrmse=meta.get("val_nrmse"), device=meta.get("device"), data=meta.get("data"),
                      values_per_latent=args.rate, torch_threads=torch.get_num_threads(),
                      cpu=cpu_name(), cores=os.cpu_count(), model_bytes=path.stat().st_size)


def climatology_nrmse(train_path: Path, f: Field) -> float:
    with xr.open_dataset(train_path, decode_times=False) as ds:
        clim = ds[VAR].values.astype(np.float64).mean(axis=0)
    return f.nrmse(np.broadcast_to(clim, f.x.shape))


def l2_stream(f: Field, eps: float, predictor=None) -> dict:
    """``compress(x, nrmse=eps, mode="l2"[, model=])``: CR, measured NRMSE, blocks that took the model."""
    t = time.perf_counter()
    blob = xdiffc.compress(f.x, nrmse=eps, mode="l2", model=predictor)
    t_enc = time.perf_counter() - t
    y = xdiffc.decompress(blob, model=predictor)
    out = dict(cr=f.x.nbytes / len(blob), bytes=len(blob), nrmse=f.nrmse(y), t_enc=t_enc)
    if predictor is not None:
        out.update(used_blocks(predictor, blob, f.x.shape))
    return out


def used_blocks(predictor, blob: bytes, shape) -> dict:
    sections = Stream.from_bytes(blob).sections
    used = predictor.used_blocks(sections["model"], shape) if "model" in sections else []
    return dict(blocks_with_model=int(np.sum(used)), blocks=len(predictor.block_slices(shape)))


def sperr(f: Field, eps: float, steps: int = 10) -> dict:
    """SPERR in psnr mode at the lowest PSNR target whose measured NRMSE <= eps (bisection in dB)."""
    from numcodecs_wasm_sperr import Sperr

    def trial(psnr: float) -> dict:
        codec = Sperr(mode="psnr", psnr=psnr)
        blob = np.asarray(codec.encode(f.filled))
        y = np.asarray(codec.decode(blob)).reshape(f.x.shape)
        return dict(cr=f.x.nbytes / blob.nbytes, bytes=int(blob.nbytes), nrmse=f.nrmse(y), psnr=psnr)

    nominal = -20 * math.log10(eps)
    lo, hi = nominal - 12.0, nominal + 12.0
    best = trial(hi)
    if best["nrmse"] > eps:
        return dict(best, met=False)
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        r = trial(mid)
        if r["nrmse"] <= eps:
            hi, best = mid, r
        else:
            lo = mid
    return dict(best, met=True, nominal=trial(nominal))


def sz3_tuned(f: Field, eps: float, steps: int = 8) -> dict:
    """SZ3 L2NORM with its bound scaled up (bisection on the scale in [1, 4]) to the largest whose NRMSE <= eps."""
    lo, hi = 1.0, 4.0
    best = dict(run_sz3(f, eps, "L2NORM"), scale=1.0)
    for _ in range(steps):
        mid = math.sqrt(lo * hi)
        r = run_sz3(f, eps * mid, "L2NORM")
        if r["nrmse"] <= eps:
            lo, best = mid, dict(r, scale=mid)
        else:
            hi = mid
    return best


def pointwise(f: Field, eps: float, predictor=None) -> dict:
    """``compress(x, rel_tol=eps[, model=])``: CR, max error over the bound, NRMSE, blocks with the model."""
    t = time.perf_counter()
    blob = xdiffc.compress(f.x, rel_tol=eps, fill_values=f.fills, model=predictor)
    t_enc = time.perf_counter() - t
    y = np.asarray(xdiffc.decompress(blob, model=predictor), f.x.dtype)
    err = np.abs(y.astype(np.float64) - f.x.astype(np.float64))[~f.mask].max()
    out = dict(cr=f.x.nbytes / len(blob), bytes=len(blob), max_err_over_bound=float(err / (eps * f.range)),
               nrmse=f.nrmse(y), t_enc=t_enc)
    if predictor is not None:
        out.update(used_blocks(predictor, blob, f.x.shape))
    return out


def store_bytes(test_path: Path, eps: float, model: Path | None, work: Path) -> dict:
    """The test years through ``ds.gcdtc.to_zarr``: the variable's nbytes_stored, its zarr.json, the store."""
    store = work / f"store-{test_path.stem}-{eps:g}-{'model' if model else 'free'}.zarr"
    shutil.rmtree(store, ignore_errors=True)
    with xr.open_dataset(test_path) as ds:
        t = time.perf_counter()
        ds.gcdtc.to_zarr(store, rel_tol=eps, model=None if model is None else str(model))
        t_write = time.perf_counter() - t
        raw = ds[VAR].nbytes
    arr = zarr.open_group(store, mode="r")[VAR]
    meta = store / VAR / "zarr.json"
    back = xr.open_zarr(store)[VAR].values  # what a reader sees, through the codec's carried model
    with xr.open_dataset(test_path) as ds:
        x = ds[VAR].values
    rng = float(x.max() - x.min())
    out = dict(nbytes_stored=int(arr.nbytes_stored()), zarr_json_bytes=meta.stat().st_size,
               store_bytes=sum(p.stat().st_size for p in store.rglob("*") if p.is_file()),
               raw_bytes=int(raw), chunks=list(arr.chunks), t_write=t_write,
               max_err_over_bound=float(np.abs(back.astype(np.float64) - x).max() / (eps * rng)))
    out["cr"] = raw / out["nbytes_stored"]
    shutil.rmtree(store, ignore_errors=True)
    return out


def draw(records: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    styles = {"l2_interp_base": ("o-", "L2, interpolation base"), "l2_model_choice": ("^--", "L2, model= (per-block choice)"),
              "l2_model_forced": ("x-", "L2, model base forced"), "sz3_l2norm": ("D-", "SZ3 L2NORM"),
              "sz3_l2norm_tuned": ("d:", "SZ3 L2NORM, bound raised to NRMSE <= eps"),
              "sperr_psnr": ("s-", "SPERR (psnr, NRMSE <= eps)"), "pw_free": ("v-", "pointwise, model-free"),
              "pw_model": ("P--", "pointwise, model=")}
    for kind, (style, label) in styles.items():
        rs = [r for r in records if r["kind"] == kind]
        if not rs:
            continue
        eps = sorted({r["eps"] for r in rs})
        nr = [np.mean([r["nrmse"] for r in rs if r["eps"] == e]) for e in eps]
        cr = [np.exp(np.mean([np.log(r["cr"]) for r in rs if r["eps"] == e])) for e in eps]
        ax.plot(nr, cr, style, label=label, alpha=0.85)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("NRMSE (mean over the 4 members' last 44 years)")
    ax.set_ylabel("CR (geometric mean over members)")
    ax.set_title("TREFHT: model trained on the first 60% of the years")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--members", nargs="+", default=list(MEMBERS))
    ap.add_argument("--train-fraction", type=float, default=0.6)
    ap.add_argument("--model", type=Path, default=HERE / "out" / "models" / "archive-60pct.pt")
    ap.add_argument("--rate", type=int, default=32, help="values per latent (ModelConfig.at_rate)")
    ap.add_argument("--steps", type=int, default=500, help="training steps")
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--l2-eps", nargs="+", type=float, default=list(L2_EPS))
    ap.add_argument("--pw-eps", nargs="+", type=float, default=list(PW_EPS))
    ap.add_argument("--no-forced", action="store_true", help="skip the forced model base")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--png", type=Path)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    records = []

    def emit(record: dict) -> None:
        records.append(record)
        print(json.dumps(record), flush=True)

    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="xdiffc-archive-") as tmp:
        work = Path(tmp)
        trains, tests, n, k = split(args.data, args.members, args.train_fraction, work)
        path, how = trained(trains, args)
        emit(dict(kind="training", members=args.members, years=n, train_years=k, test_years=n - k,
                  model=str(path), machine=f"{platform.node()}, {platform.machine()}", python=platform.python_version(),
                  torch=torch.__version__, **how))
        predictor = load_model(str(path), device="cpu")
        for m, train_path, test_path in zip(args.members, trains, tests):
            f = Field(test_path, VAR)
            common = dict(member=f"B06.{m}", shape=list(f.x.shape))
            emit(dict(kind="bar", **common, climatology_nrmse=climatology_nrmse(train_path, f),
                      **{f"model_alone_{key}": v for key, v in model_alone(predictor, f).items()}))
            for eps in args.l2_eps:
                emit(dict(kind="l2_interp_base", eps=eps, **common, **l2_stream(f, eps)))
                emit(dict(kind="l2_model_choice", eps=eps, **common, **l2_stream(f, eps, predictor)))
                if not args.no_forced:
                    emit(dict(kind="l2_model_forced", eps=eps, **common, **forced(predictor, f, eps)))
                emit(dict(kind="sz3_l2norm", eps=eps, **common, **run_sz3(f, eps, "L2NORM")))
                emit(dict(kind="sz3_l2norm_tuned", eps=eps, **common, **sz3_tuned(f, eps)))
                emit(dict(kind="sperr_psnr", eps=eps, **common, **sperr(f, eps)))
            for eps in args.pw_eps:
                emit(dict(kind="pw_free", eps=eps, **common, **pointwise(f, eps)))
                emit(dict(kind="pw_model", eps=eps, **common, **pointwise(f, eps, predictor)))
            for eps in args.pw_eps:
                free, with_model = store_bytes(test_path, eps, None, work), store_bytes(test_path, eps, path, work)
                emit(dict(kind="store", eps=eps, **common, free=free, model=with_model, model_bytes=how["model_bytes"],
                          model_over_stored=how["model_bytes"] / with_model["nbytes_stored"],
                          carried_overhead=with_model["nbytes_stored"] / free["nbytes_stored"]))
    emit(dict(kind="done", wall_s=time.perf_counter() - t_all))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text("".join(json.dumps(r) + "\n" for r in records))
    if args.png:
        draw(records, args.png)


if __name__ == "__main__":
    main()
