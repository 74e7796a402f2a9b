"""Rate-distortion benchmark: xdiffc against SPERR, SZ3, ZFP and BitRound+zstd at the same absolute bound.

For each field and each eps the bound is tol = eps * (max - min) over the valid points (not NaN,
inf, fill or |x| >= 1e30). xdiffc gets the raw field as stored on disk and restores its missing
points exactly; the baselines get it with missing points gap-filled (``xdiffc.baselines.prepare``).
CR is x.nbytes / stored bytes; errors are measured over the valid points on the output-dtype values.
Per field and eps the summary names the best peer and xdiffc's ratio to it. With ``--chunk-steps N``
every compressor codes the field in slabs of N steps along its first axis (a common Zarr layout).

    python benchmarks/rate_distortion.py                  # the 11 fields of the brief, eps 1e-2..1e-4
    python benchmarks/rate_distortion.py --all            # every float field in the data directory
    python benchmarks/rate_distortion.py --fields orig.TS.10days.nc:TS --eps 1e-3
    python benchmarks/rate_distortion.py --write-results  # also rewrite the table in RESULTS.md
    python benchmarks/rate_distortion.py --fields TREFHT.B06.57.atm.1890-1999ANN.nc:TREFHT --chunk-steps 12
    python benchmarks/rate_distortion.py --mode l2 [...]  # the per-block L2 mode (benchmarks/l2_mode.py)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import numpy as np
import xarray as xr

import xdiffc
from xdiffc import baselines, masking
from xdiffc.spectra import spectral_error
from results_md import RESULTS, write_section

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_DATA = REPO.parent / "shared" / "data"
DEFAULT_OUT = HERE / "out"

#: The 11 fields of the brief's section 6: (file, variable).
DEFAULT_FIELDS = [
    ("TREFHT.B06.57.atm.1890-1999ANN.nc", "TREFHT"),
    ("TREFHT.B06.61.atm.1890-1999ANN.nc", "TREFHT"),
    ("b003_TS_200-299.nc", "TS"),
    ("orig.TS.10days.nc", "TS"),
    ("t_in_Celsius_1.nc", "tC"),
    ("orig.PRECT.10days.nc", "PRECT"),
    ("HICCUP_TEST.NOAA.ice.nc", "icec"),
    ("tos_Omon_CESM2-FV2_historical_r1i1p1f1_gn_200001.nc", "tos"),
    ("ne4_mam4_optics_hourly.nc", "aodsw"),
    ("ihesp14.TS.12mon.nc", "TS"),
    ("homme26x3458.t.3.nc", "T"),
]
DEFAULT_EPS = (1e-2, 1e-3, 1e-4)
COMPRESSORS = ("xdiffc", "sperr", "sz3", "zfp", "bitround_zstd")
PEERS = COMPRESSORS[1:]
TITLES = {"xdiffc": "xdiffc", "sperr": "SPERR", "sz3": "SZ3", "zfp": "ZFP", "bitround_zstd": "BitRound+zstd"}


@dataclass
class Field:
    """One variable as stored on disk, with its missing points and value range over the rest."""

    label: str
    dims: tuple[str, ...]
    x: np.ndarray
    fills: list[float]
    mask: np.ndarray
    vmin: float
    vmax: float


@dataclass
class Run:
    """One compressor's result: stored bytes, reconstruction and best wall times in seconds."""

    nbytes: int
    y: np.ndarray
    t_enc: float
    t_dec: float


def load_field(path: Path, var: str) -> Field | None:
    """Read ``var`` raw (no masking or scaling); None if it is not float or has no valid point."""
    with xr.open_dataset(path, mask_and_scale=False, decode_times=False) as ds:
        da = ds[var]
        if da.dtype.kind != "f":
            return None
        x = np.ascontiguousarray(da.values, dtype=da.dtype.newbyteorder("="))
        fills = [float(v) for k in ("_FillValue", "missing_value") if k in da.attrs
                 for v in np.atleast_1d(da.attrs[k])]
    mask = masking.special_mask(x, fills)
    valid = x[~mask]
    if valid.size == 0:
        return None
    return Field(f"{path.name}:{var}", tuple(map(str, da.dims)), x, fills, mask, float(valid.min()), float(valid.max()))


def discover_fields(data_dir: Path) -> list[tuple[str, str]]:
    """Every float variable of >= 2 dims and >= 1000 values in the .nc files, bounds and coordinates excepted."""
    found = []
    for path in sorted(data_dir.glob("*.nc")):
        try:
            ds = xr.open_dataset(path, mask_and_scale=False, decode_times=False)
        except Exception as err:  # an unreadable file is reported, not fatal, in a sweep of everything
            print(f"skip {path.name}: {err}", file=sys.stderr)
            continue
        with ds:
            bounds = {v.attrs.get("bounds") for v in ds.variables.values()}
            for name, da in ds.data_vars.items():
                if (da.dtype.kind == "f" and da.ndim >= 2 and da.size >= 1000 and name not in bounds
                        and not re.search(r"_(bnds|bounds)$", str(name))):
                    found.append((path.name, str(name)))
    return found


def _best(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    """Best wall time of up to ``repeat`` calls of ``fn`` (no new call once 1 s is spent), and its last result."""
    times: list[float] = []
    while len(times) < repeat and sum(times) < 1.0:
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def _slabs(x: np.ndarray, steps: int | None) -> list[np.ndarray]:
    """``x`` whole, or cut into slabs of ``steps`` along its first axis (the last may be shorter)."""
    if not steps or x.ndim < 2:
        return [x]
    return [np.ascontiguousarray(x[i:i + steps]) for i in range(0, x.shape[0], steps)]


def run_xdiffc(f: Field, tol: float, repeat: int, steps: int | None = None) -> Run:
    """xdiffc.compress / decompress (slab by slab with ``steps``); the blobs include the mask and missing values."""
    t_enc, blobs = _best(lambda: [xdiffc.compress(s, tol=tol, fill_values=f.fills) for s in _slabs(f.x, steps)],
                         repeat)
    t_dec, ys = _best(lambda: [xdiffc.decompress(b) for b in blobs], repeat)
    return Run(sum(map(len, blobs)), np.concatenate(ys) if len(ys) > 1 else ys[0], t_enc, t_dec)


def run_baseline(name: str, f: Field, tol: float, repeat: int, steps: int | None = None) -> Run:
    """A baseline of xdiffc.baselines on its prepared (gap-filled) array (slab by slab with ``steps``),
    compress and decompress timed apart."""
    base = baselines.BASELINES[name]
    slabs = _slabs(baselines.prepare(f.x, f.mask), steps)
    t_enc, blobs = _best(lambda: [base.encode(s, tol) for s in slabs], repeat)
    t_dec, ys = _best(lambda: [base.decode(b, s.dtype, s.shape) for b, s in zip(blobs, slabs)], repeat)
    return Run(sum(map(len, blobs)), np.concatenate(ys) if len(ys) > 1 else ys[0], t_enc, t_dec)


def spectral_err(f: Field, y: np.ndarray) -> float:
    """:func:`xdiffc.spectra.spectral_error` over the field's 2-D (y, x) slices, every k >= 1; missing points NaN.

    NaN for fields whose last two axes are not a 2-D grid (unstructured columns, or fewer than 8 x 8).
    """
    if f.x.ndim < 2 or f.dims[-1] in ("ncol", "nCells") or min(f.x.shape[-2:]) < 8:
        return math.nan
    x = np.where(f.mask, np.nan, f.x.astype(np.float64))
    return spectral_error(x, np.where(f.mask, np.nan, np.asarray(y, np.float64)))


def bench_field(f: Field, eps_list: list[float], repeat: int, steps: int | None = None) -> list[dict]:
    """One record per eps and compressor: CR, max error / bound, NRMSE, MB/s (and for xdiffc, exact missing)."""
    valid = ~f.mask
    x_valid = f.x[valid].astype(np.float64)
    vrange = f.vmax - f.vmin
    records = []
    for eps in eps_list:
        tol = eps * vrange
        for name in COMPRESSORS:
            run = (run_xdiffc(f, tol, repeat, steps) if name == "xdiffc"
                   else run_baseline(name, f, tol, repeat, steps))
            err = np.abs(np.asarray(run.y, dtype=f.x.dtype)[valid].astype(np.float64) - x_valid)
            err[np.isnan(err)] = np.inf
            max_err = float(err.max())
            rec = dict(field=f.label, eps=eps, tol=tol, compressor=name, nbytes=run.nbytes,
                       cr=f.x.nbytes / run.nbytes,
                       max_err_over_bound=max_err / tol if tol > 0 else (0.0 if max_err == 0 else math.inf),
                       nrmse=float(np.sqrt(np.mean(err**2))) / vrange if vrange > 0 else math.nan,
                       spectral_err=spectral_err(f, run.y),
                       encode_mb_s=f.x.nbytes / run.t_enc / 1e6, decode_mb_s=f.x.nbytes / run.t_dec / 1e6)
            if name == "xdiffc":
                uint = np.dtype(f"u{f.x.itemsize}")
                rec["missing_exact"] = bool(np.array_equal(run.y[f.mask].view(uint), f.x[f.mask].view(uint)))
            records.append(rec)
    return records


def geomean(values: list[float]) -> float:
    """Geometric mean of positive values."""
    return float(np.exp(np.mean(np.log(values))))


def summarise(records: list[dict], eps_list: list[float]) -> dict:
    """Geometric-mean CR per compressor per eps, xdiffc/SZ3 per eps and per field, and all bound violations."""
    gm = {str(e): {c: geomean([r["cr"] for r in records if r["eps"] == e and r["compressor"] == c])
                   for c in COMPRESSORS} for e in eps_list}
    cr = {(r["field"], r["eps"], r["compressor"]): r["cr"] for r in records}
    fields = list(dict.fromkeys(r["field"] for r in records))
    best = {fl: {str(e): max(PEERS, key=lambda c: cr[fl, e, c]) for e in eps_list} for fl in fields}
    return dict(
        geomean_cr=gm,
        xdiffc_over_sz3={e: g["xdiffc"] / g["sz3"] for e, g in gm.items()},
        xdiffc_over_best_peer_geomean={e: g["xdiffc"] / max(g[c] for c in PEERS) for e, g in gm.items()},
        best_peer={fl: {e: {"peer": p, "cr": cr[fl, float(e), p], "xdiffc_over_best": cr[fl, float(e), "xdiffc"]
                             / cr[fl, float(e), p]} for e, p in by_eps.items()} for fl, by_eps in best.items()},
        per_field_xdiffc_over_sz3={fl: {str(e): cr[fl, e, "xdiffc"] / cr[fl, e, "sz3"] for e in eps_list}
                                   for fl in fields},
        mean_spectral_err={str(e): {c: float(np.nanmean([r["spectral_err"] for r in records
                                                         if r["eps"] == e and r["compressor"] == c] or [math.nan]))
                                    for c in COMPRESSORS} for e in eps_list},
        geomean_mb_s={c: {k: geomean([r[k] for r in records if r["compressor"] == c])
                          for k in ("encode_mb_s", "decode_mb_s")} for c in COMPRESSORS},
        violations=[{k: r[k] for k in ("field", "eps", "compressor", "max_err_over_bound")}
                    for r in records if not r["max_err_over_bound"] <= 1],
        xdiffc_missing_not_exact=[{k: r[k] for k in ("field", "eps")}
                                  for r in records if r.get("missing_exact") is False],
    )


def machine_info() -> dict:
    """Date, machine, library versions, git commit and the exact command."""
    try:
        git = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        git = "unknown"
    return dict(
        date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        machine=f"{platform.processor() or 'unknown cpu'} / {platform.machine()}, {os.cpu_count()} cores",
        python=platform.python_version(),
        versions={"xdiffc": xdiffc.__version__, "numcodecs-wasm-sperr": version("numcodecs-wasm-sperr"),
                  "pysz": version("pysz"), "zfpy": version("zfpy"),
                  "numpy": np.__version__},
        git=git,
        command=shlex.join(sys.orig_argv),
    )


def plot(records: list[dict], path: Path) -> None:
    """A grid of log-log panels, CR against eps, one line per compressor, one panel per field; x marks a violation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogFormatter

    fields = list(dict.fromkeys(r["field"] for r in records))
    ncol = min(4, len(fields))
    nrow = math.ceil(len(fields) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.6 * nrow), squeeze=False)
    for ax, fl in zip(axes.flat, fields):
        for c in COMPRESSORS:
            pts = sorted((r["eps"], r["cr"]) for r in records if r["field"] == fl and r["compressor"] == c)
            ax.loglog(*zip(*pts), marker="o", ms=3, label=TITLES[c])
        bad = [(r["eps"], r["cr"]) for r in records if r["field"] == fl and not r["max_err_over_bound"] <= 1]
        if bad:
            ax.scatter(*zip(*bad), marker="x", s=40, color="k", zorder=3, label="bound violated")
        name = fl.removesuffix(".nc").replace(".nc:", ":")
        ax.set_title(name if len(name) <= 34 else name[:16] + "…" + name[-16:], fontsize=8)
        ax.tick_params(which="both", labelsize=7)
        ax.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))
        ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
        ax.grid(True, which="both", alpha=0.3)
    for ax in axes.flat[len(fields):]:
        ax.axis("off")
    fig.supxlabel("eps (bound / value range)", fontsize=9)
    fig.supylabel("compression ratio (float bytes / stored bytes)", fontsize=9)
    legend = {lab: h for ax in axes.flat for h, lab in zip(*ax.get_legend_handles_labels())}
    fig.legend(legend.values(), legend.keys(), loc="upper center", ncol=len(legend), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / fig.get_figheight()))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def results_markdown(records: list[dict], summary: dict, meta: dict, eps_list: list[float]) -> str:
    """The per-field table, the geometric-mean tables, violations and how the numbers were made."""
    heads = [TITLES[c] for c in COMPRESSORS]
    by = {(r["field"], r["eps"], r["compressor"]): r for r in records}
    lines = [f"Run {meta['date']} on {meta['machine']}; Python {meta['python']}, "
             + ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
             + f"; git {meta['git']}; {meta['run_seconds']:.0f} s."
             + (f" Every compressor coded each field in slabs of {meta['chunk_steps']} steps along its first axis."
                if meta.get("chunk_steps") else ""),
             "", f"Command: `{meta['command']}`", "",
             "| field | eps | " + " | ".join(heads) + " | best peer | xdiffc/best peer | xdiffc/SZ3 "
             "| xdiffc max err/bound |",
             "|---|---|" + "---:|" * len(heads) + "---|" + "---:|" * 3]
    for fl in summary["per_field_xdiffc_over_sz3"]:
        for e in eps_list:
            crs = " | ".join(f"{by[fl, e, c]['cr']:.2f}" for c in COMPRESSORS)
            x, bp = by[fl, e, "xdiffc"], summary["best_peer"][fl][str(e)]
            lines.append(f"| {fl} | {e:g} | {crs} | {TITLES[bp['peer']]} | {bp['xdiffc_over_best']:.2f} "
                         f"| {summary['per_field_xdiffc_over_sz3'][fl][str(e)]:.2f} "
                         f"| {x['max_err_over_bound']:.4f} |")
    lines += ["", "Geometric mean of CR over the fields above:", "",
              "| eps | " + " | ".join(heads) + " | xdiffc/best peer | xdiffc/SZ3 |",
              "|---|" + "---:|" * (len(heads) + 2)]
    for e, g in summary["geomean_cr"].items():
        lines.append(f"| {float(e):g} | " + " | ".join(f"{g[c]:.2f}" for c in COMPRESSORS)
                     + f" | {summary['xdiffc_over_best_peer_geomean'][e]:.2f} | {summary['xdiffc_over_sz3'][e]:.2f} |")
    lines += ["", "Spectral error (RMS of ln E_y(k) - ln E_x(k) over the 2-D slices, every k >= 1; "
              "`xdiffc.spectra.spectral_error`), mean over the gridded fields:", "",
              "| eps | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
    for e, g in summary["mean_spectral_err"].items():
        lines.append(f"| {float(e):g} | " + " | ".join(f"{g[c]:.2e}" for c in COMPRESSORS) + " |")
    lines += ["", "Throughput, geometric mean over fields and bounds, MB/s of input, one process:", "",
              "| | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
    for k in ("encode_mb_s", "decode_mb_s"):
        lines.append(f"| {k.split('_')[0]} | " + " | ".join(f"{summary['geomean_mb_s'][c][k]:.1f}"
                                                          for c in COMPRESSORS) + " |")
    lines += ["", "Bound violations (max err/bound > 1 on valid points):", ""]
    lines += [f"- {TITLES[v['compressor']]} on {v['field']} at eps {v['eps']:g}: {v['max_err_over_bound']:.3g}"
              for v in summary["violations"]] or ["- none"]
    lines += ["", "xdiffc restored every missing point bit-exactly: "
              + ("yes" if not summary["xdiffc_missing_not_exact"] else
                 f"NO, {summary['xdiffc_missing_not_exact']}")]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 1 if xdiffc broke its bound or did not restore a missing point.

    ``--mode l2`` runs the per-block L2 comparison of ``benchmarks/l2_mode.py`` (its own options follow).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:2] == ["--mode", "l2"]:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from l2_mode import main as l2_main

        return l2_main(argv[2:]) or 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="default: ../shared/data from the repo root")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the JSON and PNG (benchmarks/out)")
    ap.add_argument("--eps", type=float, nargs="+", default=list(DEFAULT_EPS), help="bounds as fractions of the range")
    ap.add_argument("--all", action="store_true", help="every float field of >= 2 dims in the data directory")
    ap.add_argument("--fields", nargs="+", metavar="FILE:VAR",
                    help="only these fields (any of --all), e.g. orig.TS.10days.nc:TS")
    ap.add_argument("--repeat", type=int, default=3,
                    help="timings: best of up to this many calls, fewer once 1 s is spent (default 3)")
    ap.add_argument("--chunk-steps", type=int, metavar="N",
                    help="every compressor codes each field in slabs of N steps along its first axis")
    ap.add_argument("--section", default="rate_distortion",
                    help=f"the marked section of {RESULTS.name} that --write-results rewrites, and the name of "
                         "the JSON and PNG (default rate_distortion)")
    ap.add_argument("--write-results", action="store_true", help=f"rewrite the marked table in {RESULTS.name}")
    args = ap.parse_args(argv)

    if not args.data_dir.is_dir():
        raise SystemExit(f"data directory {args.data_dir} not found; pass --data-dir DIR")
    fields = discover_fields(args.data_dir) if args.all or args.fields else DEFAULT_FIELDS
    if args.fields:
        labels = {f"{f}:{v}": (f, v) for f, v in fields}
        unknown = [s for s in args.fields if s not in labels]
        if unknown:
            raise SystemExit(f"unknown field(s) {unknown}; choose from {sorted(labels)}")
        fields = [labels[s] for s in args.fields]

    meta = {**machine_info(), "data_dir": str(args.data_dir.resolve()), "chunk_steps": args.chunk_steps}
    records: list[dict] = []
    start = time.perf_counter()
    for i, (fname, var) in enumerate(fields, 1):
        t = time.perf_counter()
        f = load_field(args.data_dir / fname, var)
        if f is None:
            print(f"[{i}/{len(fields)}] {fname}:{var} skipped: not float, or no valid point", file=sys.stderr)
            continue
        recs = bench_field(f, args.eps, args.repeat, args.chunk_steps)
        records += recs
        crs = "; ".join(f"{e:g}: " + " ".join(f"{r['cr']:.1f}" for r in recs if r["eps"] == e) for e in args.eps)
        print(f"[{i}/{len(fields)}] {f.label} {f.x.shape} {f.x.dtype} missing {f.mask.mean():.1%} "
              f"({time.perf_counter() - t:.1f} s)  CR {'/'.join(COMPRESSORS)} at eps {crs}", file=sys.stderr)
    if not records:
        raise SystemExit("no field was benchmarked")

    meta["run_seconds"] = round(time.perf_counter() - start, 1)
    summary = {"meta": meta, **summarise(records, args.eps)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.section}.json").write_text(json.dumps({**summary, "records": records}, indent=1))
    plot(records, args.out / f"{args.section}.png")
    print(json.dumps(summary, indent=1))
    if args.write_results:
        write_section(args.section, results_markdown(records, summary, meta, args.eps),
                      "## Rate-distortion: xdiffc against SPERR, SZ3, ZFP and BitRound+zstd")
    for v in summary["violations"]:
        print(f"BOUND VIOLATION: {v}", file=sys.stderr)
    bad = [v for v in summary["violations"] if v["compressor"] == "xdiffc"] + summary["xdiffc_missing_not_exact"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
