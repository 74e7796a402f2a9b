"""What each ``level`` costs and buys: CR and single-thread speed against SZ3, run side by side.

For every field of the brief (rate_distortion.DEFAULT_FIELDS) and every eps, each level of
``xdiffc.compress`` and SZ3 (pysz, ABS) are timed in the same process, interleaved field by field,
and every xdiffc output is checked against its bound. Speeds are ratios to SZ3's on the same field
in the same run; the summary gives geometric means over the fields.

    python benchmarks/levels.py                           # JSON on stdout, benchmarks/out/levels.{json,png}
    python benchmarks/levels.py --levels 1 5 9 --eps 1e-3
    python benchmarks/levels.py --write-results           # also the "levels" section of RESULTS.md
    python benchmarks/levels.py --levels 8 9 --chunk-steps 12   # each field cut into chunks of 12 steps, as stores are
    python benchmarks/levels.py --from-json benchmarks/out/levels.json --write-results   # section from a saved run
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


def _chunked(x: np.ndarray, steps: int) -> list[np.ndarray]:
    """``x`` cut along its first axis into chunks of ``steps`` (a shorter last one), or whole where ``steps`` is 0
    or the field has fewer than two chunks' worth."""
    if not steps or x.shape[0] < 2 * steps:
        return [x]
    return [x[a:a + steps] for a in range(0, x.shape[0], steps)]


def run(fields: list[tuple[str, str]], eps_list: list[float], levels: list[int], repeat: int,
        chunk_steps: int = 0) -> list[dict]:
    """One record per (field, eps, compressor): CR, encode and decode MB/s and their ratios to SZ3's; every
    compressor codes the same chunks (:func:`_chunked`) one call each."""
    rows = []
    for fname, var in fields:
        f = load_field(DEFAULT_DATA / fname, var)
        if f is None:
            continue
        mb = f.x.nbytes / 1e6
        sz3 = baselines.BASELINES["sz3"]
        parts, filled = _chunked(f.x, chunk_steps), _chunked(baselines.prepare(f.x, f.mask), chunk_steps)
        for eps in eps_list:
            tol = eps * (f.vmax - f.vmin)
            res = {}
            runs = {"sz3": ((lambda: [sz3.encode(p, tol) for p in filled]),
                            (lambda bs: [sz3.decode(b, p.dtype, p.shape) for b, p in zip(bs, filled)]))}
            for level in levels:
                runs[f"L{level}"] = ((lambda lv=level: [xdiffc.compress(p, tol=tol, fill_values=f.fills, level=lv)
                                                        for p in parts]),
                                     lambda bs: [xdiffc.decompress(b) for b in bs])
            for name, (enc, dec) in runs.items():
                dec(enc())  # warm-up of both directions (JIT: a kernel's first call may compile or load it)
                t_enc, blob = best_time(enc, repeat)
                t_dec, y = best_time(lambda: dec(blob), repeat)
                y = np.concatenate(y)
                rec = dict(field=f.label, eps=eps, compressor=name, mb=mb, cr=f.x.nbytes / sum(map(len, blob)),
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
             + (f"each field in chunks of {meta['chunk_steps']} steps; " if meta.get("chunk_steps") else "") +
             f"geometric means over {meta['n_fields']} fields; default level {DEFAULT_LEVEL}. "
             "`python benchmarks/levels.py --write-results`.", "",
             "| eps | level | CR | CR / SZ3 | encode / SZ3 | decode / SZ3 | max err / bound |", "|---|---|---|---|---|---|---|"]
    for eps, per in summary.items():
        for name, s in per.items():
            bound = f"{s['max_err_over_bound']:.3f}" if "max_err_over_bound" in s else ""
            lines.append(f"| {float(eps):g} | {name} | {s['cr']:.2f} | {s['cr_over_sz3']:.2f} | "
                         f"{s['encode_over_sz3']:.3f} | {s['decode_over_sz3']:.3f} | {bound} |")
    lines += ["", "![levels](figures/levels.png)", "", NOTES]
    return "\n".join(lines)


NOTES = """Notes (2026-12-08, the 03:17 run at 31ac448; both directions are warmed up before they are timed, as in speed.py).
Changes since the 00:30 run, each measured in one process against the code before it, every stream byte for byte the
same (the CR of every level is unchanged to the digit): interp's encoder looks up a pass's unpredictable values only
where the pass has some; the context decoder's classification counts its kept targets in a register (decodes with
context classes 1.3x faster: PRECT at 1e-2 18.3 to 14.0 ms); the wavelet decoder keeps a coefficient's west
neighbour in a local; the bitmap encoder keeps its state in locals and packed mask bits go to zstd level 1 (small
frames to level 9 too, the smaller kept); the
temporal decomposition's statistics are kernels. An A/B of the 00:30 code against this run's (6 fields, levels 1
and 8, eps 1e-2 and 1e-3, processes alternated): level 1 encodes 1.25x faster and decodes 1.04x, level 8 encodes
1.11x and decodes 1.13x. In this run level 1 encodes at 0.38 / 0.36 / 0.41x SZ3 (0.34 / 0.36 / 0.36x at 00:30) and
decodes at 0.32 / 0.38 / 0.36x (0.34 / 0.41 / 0.37x: within this VM's noise, SZ3's own decode of one field moved by
up to 1.6x between runs); level 8 encodes at 0.053 / 0.070 / 0.057x (0.050 / 0.062 / 0.056x) and decodes at 0.19 /
0.39 / 0.38x (0.18 / 0.37 / 0.36x). Against issue 26's targets: the default encodes at 0.05-0.07x SZ3 (target 0.3x)
and decodes at 0.19-0.39x (target 0.8x); its CR, 61.03 / 16.30 / 7.29, is within 0.97x of 61.1 / 16.5 / 7.4. Level 1
meets its CR target (1.20 / 1.26 / 1.15x SZ3's, narrowly at 1e-4) and not its speed targets (encode 0.36-0.41x
against 0.8x, decode 0.32-0.38x against 1.0x). Level 9 is unchanged to the digit (61.19 / 16.49 / 7.38). What each
level does: level 1 codes with fixed choices (its previous-slice context along the first axis longer than 1, the
same place a step earlier in climate output, and no activity classes); below level 9 interp keeps its context
classes only where they save 5% of the size (0.5% at level 9), and the encoder encodes one of the temporal
decomposition and interp, chosen from the decomposition's sample estimates (interp too only where the
decomposition's payload misses its estimate by 1.5x). Where decoding goes (TREFHT at 1e-3, level 1, 2026-12-08):
about 8.7 ms of symbols (9.6 ns a symbol) and 6 ms of reconstruction of 14.8; interleaved rANS states, larger or
direct search tables, and a memory-order payload decoded in one sweep (a prototype: 1.1x) left the symbols' time
about where it is."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 2, 3, 5, 6, 9], choices=list(LEVELS))
    ap.add_argument("--eps", type=float, nargs="+", default=[1e-2, 1e-3, 1e-4])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--chunk-steps", type=int, default=0, metavar="N",
                    help="code each field in chunks of N steps along its first axis (as a store chunked by N does)")
    ap.add_argument("--write-results", action="store_true")
    ap.add_argument("--from-json", type=Path, help="write the RESULTS.md section of a saved run (no measuring)")
    args = ap.parse_args()
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        if saved["meta"].get("chunk_steps"):
            ap.error("--from-json records whole-field runs only")
        plot(saved["summary"], Path(__file__).resolve().parent / "figures" / "levels.png")
        write_section("levels", results_text(saved["summary"], saved["meta"]), heading="## Levels: speed against ratio")
        return
    if args.write_results and args.chunk_steps:
        ap.error("--write-results records the whole-field run; run --chunk-steps without it")
    rows = run(DEFAULT_FIELDS, args.eps, args.levels, args.repeat, args.chunk_steps)
    names = ["sz3"] + [f"L{lv}" for lv in args.levels]
    summary = summarise(rows, args.eps, names)
    import subprocess

    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    meta = dict(date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), git=git,
                machine=f"{platform.node()} ({platform.processor() or platform.machine()})",
                n_fields=len({r["field"] for r in rows}), chunk_steps=args.chunk_steps)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "levels.json").write_text(json.dumps(dict(meta=meta, summary=summary, rows=rows), indent=1))
    plot(summary, args.out / "levels.png")
    if args.write_results:
        plot(summary, Path(__file__).resolve().parent / "figures" / "levels.png")
    print(json.dumps(dict(meta=meta, summary=summary), indent=1))
    if args.write_results:
        write_section("levels", results_text(summary, meta), heading="## Levels: speed against ratio")


if __name__ == "__main__":
    main()
