"""What each ``level`` costs and buys: CR and single-thread speed against SZ3, run side by side.

For every field of the brief (rate_distortion.DEFAULT_FIELDS) and every eps, each level of
``xdiffc.compress`` and SZ3 (pysz, ABS) are timed in the same process, interleaved field by field,
and every xdiffc output is checked against its bound. Speeds are ratios to SZ3's on the same field
in the same run; the summary gives geometric means over the fields.

    python benchmarks/levels.py                           # JSON on stdout, benchmarks/out/levels.{json,png}
    python benchmarks/levels.py --levels 1 5 9 --eps 1e-3
    python benchmarks/levels.py --write-results           # also the "levels" section of RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import xdiffc
from xdiffc import baselines
from xdiffc.options import DEFAULT_LEVEL, LEVELS
from rate_distortion import DEFAULT_DATA, DEFAULT_FIELDS, DEFAULT_OUT, geomean, load_field
from results_md import write_section
from speed import best_time


def run(fields: list[tuple[str, str]], eps_list: list[float], levels: list[int], repeat: int) -> list[dict]:
    """One record per (field, eps, compressor): CR, encode and decode MB/s and their ratios to SZ3's."""
    rows = []
    for fname, var in fields:
        f = load_field(DEFAULT_DATA / fname, var)
        if f is None:
            continue
        mb = f.x.nbytes / 1e6
        sz3 = baselines.BASELINES["sz3"]
        filled = baselines.prepare(f.x, f.mask)
        for eps in eps_list:
            tol = eps * (f.vmax - f.vmin)
            res = {}
            runs = {"sz3": ((lambda: sz3.encode(filled, tol)), (lambda b: sz3.decode(b, filled.dtype, filled.shape)))}
            for level in levels:
                runs[f"L{level}"] = ((lambda lv=level: xdiffc.compress(f.x, tol=tol, fill_values=f.fills, level=lv)),
                                     xdiffc.decompress)
            for name, (enc, dec) in runs.items():
                enc()  # warm-up: JIT, caches
                t_enc, blob = best_time(enc, repeat)
                t_dec, y = best_time(lambda: dec(blob), repeat)
                rec = dict(field=f.label, eps=eps, compressor=name, mb=mb, cr=f.x.nbytes / len(blob),
                           encode_mb_s=mb / t_enc, decode_mb_s=mb / t_dec)
                if name != "sz3":
                    valid = ~f.mask
                    err = np.abs(y[valid].astype(np.float64) - f.x[valid].astype(np.float64))
                    rec["max_err_over_bound"] = float(err.max() / tol) if err.size and tol > 0 else 0.0
                res[name] = rec
            for rec in res.values():
                rec["encode_over_sz3"] = rec["encode_mb_s"] / res["sz3"]["encode_mb_s"]
                rec["decode_over_sz3"] = rec["decode_mb_s"] / res["sz3"]["decode_mb_s"]
                rec["cr_over_sz3"] = rec["cr"] / res["sz3"]["cr"]
                rows.append(rec)
            print(f"{f.label} eps={eps:g}: " + ", ".join(
                f"{n} CR {r['cr']:.1f} enc {r['encode_over_sz3']:.2f}x dec {r['decode_over_sz3']:.2f}x"
                for n, r in res.items()), file=sys.stderr)
    return rows


def summarise(rows: list[dict], eps_list: list[float], names: list[str]) -> dict:
    """Per eps and compressor: geometric means over the fields of CR, of the speed ratios and of CR over SZ3's."""
    out = {}
    for eps in eps_list:
        out[str(eps)] = {}
        for name in names:
            sel = [r for r in rows if r["eps"] == eps and r["compressor"] == name]
            out[str(eps)][name] = {k: geomean([r[k] for r in sel])
                                   for k in ("cr", "encode_over_sz3", "decode_over_sz3", "cr_over_sz3")}
            if name != "sz3":
                out[str(eps)][name]["max_err_over_bound"] = max(r["max_err_over_bound"] for r in sel)
    return out


def plot(summary: dict, path: Path) -> None:
    """CR over SZ3's against encode speed over SZ3's, one line per eps through the levels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for eps, per in summary.items():
        names = [n for n in per if n != "sz3"]
        for ax, key, label in ((axes[0], "encode_over_sz3", "encode"), (axes[1], "decode_over_sz3", "decode")):
            xs, ys = [per[n][key] for n in names], [per[n]["cr_over_sz3"] for n in names]
            ax.plot(xs, ys, "o-", label=f"eps {float(eps):g}")
            for n, x, y in zip(names, xs, ys):
                ax.annotate(n, (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
            ax.set_xscale("log")
            ax.axvline(1.0, color="grey", lw=0.8)
            ax.set_xlabel(f"{label} speed / SZ3's (one thread)")
    axes[0].axhline(1.0, color="grey", lw=0.8)
    axes[1].axhline(1.0, color="grey", lw=0.8)
    axes[0].set_ylabel("CR / SZ3's (geometric mean over the fields)")
    axes[0].legend()
    fig.suptitle("xdiffc levels against SZ3, same run")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def results_text(summary: dict, meta: dict) -> str:
    lines = [f"Run {meta['date']} on {meta['machine']} (git {meta['git']}), one thread, SZ3 interleaved field by field; "
             f"geometric means over {meta['n_fields']} fields; default level {DEFAULT_LEVEL}. "
             "`python benchmarks/levels.py --write-results`.", "",
             "| eps | level | CR | CR / SZ3 | encode / SZ3 | decode / SZ3 | max err / bound |", "|---|---|---|---|---|---|---|"]
    for eps, per in summary.items():
        for name, s in per.items():
            bound = f"{s['max_err_over_bound']:.3f}" if "max_err_over_bound" in s else ""
            lines.append(f"| {float(eps):g} | {name} | {s['cr']:.2f} | {s['cr_over_sz3']:.2f} | "
                         f"{s['encode_over_sz3']:.3f} | {s['decode_over_sz3']:.3f} | {bound} |")
    lines += ["", "![levels](out/levels.png)"]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 2, 3, 5, 6, 9], choices=list(LEVELS))
    ap.add_argument("--eps", type=float, nargs="+", default=[1e-2, 1e-3, 1e-4])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--write-results", action="store_true")
    args = ap.parse_args()
    rows = run(DEFAULT_FIELDS, args.eps, args.levels, args.repeat)
    names = ["sz3"] + [f"L{lv}" for lv in args.levels]
    summary = summarise(rows, args.eps, names)
    import subprocess

    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    meta = dict(date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), git=git,
                machine=f"{platform.node()} ({platform.processor() or platform.machine()})",
                n_fields=len({r["field"] for r in rows}))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "levels.json").write_text(json.dumps(dict(meta=meta, summary=summary, rows=rows), indent=1))
    plot(summary, args.out / "levels.png")
    print(json.dumps(dict(meta=meta, summary=summary), indent=1))
    if args.write_results:
        write_section("levels", results_text(summary, meta), heading="## Levels: speed against ratio")


if __name__ == "__main__":
    main()
