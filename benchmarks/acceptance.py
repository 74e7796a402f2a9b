"""Acceptance benchmark: the ratio each compressor reaches at the loosest bound that passes the criteria.

For each field of the brief (section 6), and for xdiffc, SZ3 and ZFP each, search in log space
(``xdiffc.tuning.search``: steps from a first guess, then bisection, between ``tuning.LO_EPS`` and
``HI_EPS`` times the value range, to the resolution of ``--iterations`` bisection steps) for the loosest
absolute bound whose reconstruction passes Baker et al.'s criteria (``xdiffc.metrics``: Pearson
>= 0.99999, KS p >= 0.05, spatial relative error <= 5 %, DSSIM >= 0.995 where defined), and
report the compression ratio there. xdiffc must also keep its bound; SZ3 and ZFP are judged on
the criteria alone (ZFP's error exceeds bounds below float32 resolution). Fields are read raw (``mask_and_scale=False``); metrics use
the valid points only. xdiffc codes the field as one chunk through the codec a store uses (a
native-grid layout for ``ncol`` fields, fill values kept exactly); SZ3 and ZFP get it with
missing points gap-filled (``xdiffc.baselines.prepare``), as in ``rate_distortion.py``. DSSIM of
``ncol`` fields on a cubed sphere is taken on each horizontal field, face by face with its neighbours'
columns (``xdiffc.metrics.horizontal``), for every compressor.

With ``--pw-rel``, xdiffc and SZ3 may also use a pointwise-relative bound ``r`` (``|y - x| <= r|x|``;
``xdiffc.tuning.search_pw``, r from the dtype's epsilon to 0.1): xdiffc through its ``pw_rel_tol``,
SZ3 through the usual reduction (ABS on log2|x| plus zero and sign masks,
``fidelity.sz3_pw_rel``, since pysz has no such mode). Each then reports the better of its two
passing ratios, and which kind it was.

To keep the run short on a shared machine, each field is cut to its first time steps so that it
holds at most ``--max-values`` values (default 2**18); the table says how many steps were used.

    python benchmarks/acceptance.py                  # the 11 fields
    python benchmarks/acceptance.py --write-results  # also rewrite the table in RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import xarray as xr

from fidelity import sz3_pw_rel
from rate_distortion import DEFAULT_DATA, DEFAULT_FIELDS, DEFAULT_OUT, load_field, machine_info
from xdiffc import metrics, tuning
from results_md import RESULTS, write_section

COMPRESSORS = ("xdiffc", "sz3", "zfp")
TITLES = {"xdiffc": "xdiffc", "sz3": "SZ3", "zfp": "ZFP"}
MAX_VALUES = 2**18


#: Compressors that may also take a pointwise-relative bound (with --pw-rel), and how.
PW_COMPRESSORS = {"xdiffc": lambda vs: tuning.xdiffc_compressor(vs.fill_values, vs.coded_layout, kind="pw_rel_tol"),
                  "sz3": lambda vs: sz3_pw_rel}


def bench_field(path: Path, var: str, max_values: int, iterations: int, pw_rel: bool = False) -> dict | None:
    """The loosest passing bound and its ratio for each compressor on one field (its first time steps)."""
    f = load_field(path, var)
    if f is None:
        return None
    steps = max(1, min(f.x.shape[0], max_values // max(1, math.prod(f.x.shape[1:]))))
    x, valid = f.x[:steps], ~f.mask[:steps]
    with xr.open_dataset(path, mask_and_scale=False, decode_times=False) as ds:
        native = metrics.native_layout(ds, var)
    crit = metrics.resolve_criteria("baker")
    vs = tuning.VariableSample(var, [(x, valid)], f.fills, native)
    out = {"field": f.label, "shape": list(f.x.shape), "steps": steps, "range": f.vmax - f.vmin,
           "layout": None if native is None else native[1].kind}
    for name, run in vs.compressors(COMPRESSORS).items():
        t = time.perf_counter()
        good, bad, count = tuning.search(vs.blocks, run, crit, native, iterations, check_bound=name == "xdiffc")
        kind = "abs"
        if pw_rel and name in PW_COMPRESSORS:
            pw_good, pw_bad, pw_count = tuning.search_pw(vs.blocks, PW_COMPRESSORS[name](vs), crit, native, iterations)
            count += pw_count
            if pw_good is not None and (good is None or pw_good.ratio > good.ratio):
                good, bad, kind = pw_good, pw_bad, "pw_rel"
        out[name] = {"kind": kind, "tol": None if good is None else good.tol,
                     "eps": None if good is None else good.tol / (f.vmax - f.vmin) if kind == "abs" else good.tol,
                     "cr": None if good is None else good.ratio,
                     "metrics": None if good is None else good.metrics,
                     "binding": [] if bad is None else [k for k, ok in crit.checks(bad.metrics).items() if ok is False],
                     "evaluations": count, "seconds": time.perf_counter() - t}
    return out


def geomean(values: list[float]) -> float:
    return math.exp(sum(map(math.log, values)) / len(values)) if values else math.nan


def results_markdown(records: list[dict], meta: dict) -> str:
    """The per-field table and the geometric means, with how they were made."""
    def cell(r: dict) -> str:
        if r["cr"] is None:
            return "none passes"
        return f"{r['cr']:.2f} @ " + (f"r {r['eps']:.2g}" if r.get("kind") == "pw_rel" else f"{r['eps']:.2g}")

    lines = [f"Run {meta['date']} on {meta['machine']}; Python {meta['python']}, "
             + ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
             + f"; git {meta['git']}; {meta['run_seconds']:.0f} s.", "", f"Command: `{meta['command']}`", "",
             "Each cell: CR at the loosest passing bound @ that bound as a fraction of the value range (eps), "
             "or @ r for a pointwise-relative bound.", "",
             "| field | steps used | " + " | ".join(TITLES[c] for c in COMPRESSORS)
             + " | xdiffc/SZ3 | xdiffc binding criterion |", "|---|---|" + "---:|" * (len(COMPRESSORS) + 1) + "---|"]
    for r in records:
        ratio = "–"
        if r["xdiffc"]["cr"] and r["sz3"]["cr"]:
            ratio = f"{r['xdiffc']['cr'] / r['sz3']['cr']:.2f}"
        lines.append(f"| {r['field']} | {r['steps']} of {r['shape'][0]} | "
                     + " | ".join(cell(r[c]) for c in COMPRESSORS)
                     + f" | {ratio} | {', '.join(r['xdiffc']['binding']) or '–'} |")
    pair = ("xdiffc", "sz3")
    both = [r for r in records if all(r[c]["cr"] for c in pair)]
    means = {c: geomean([r[c]["cr"] for r in both]) for c in pair}
    lines += ["", f"Geometric mean of CR over the {len(both)} fields where xdiffc and SZ3 both have a passing bound: "
              + ", ".join(f"{TITLES[c]} {means[c]:.2f}" for c in pair)
              + f"; xdiffc/SZ3 {means['xdiffc'] / means['sz3']:.2f}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="default: ../shared/data from the repo root")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the JSON (benchmarks/out)")
    ap.add_argument("--max-values", type=int, default=MAX_VALUES, help="values per field, first time steps (2**18)")
    ap.add_argument("--iterations", type=int, default=tuning.ITERATIONS, help=f"resolution: that of this many bisection steps over the bracket ({tuning.ITERATIONS})")
    ap.add_argument("--fields", nargs="+", metavar="FILE:VAR", help="only these fields of the default list")
    ap.add_argument("--pw-rel", action="store_true", help="xdiffc and SZ3 may also use pointwise-relative bounds")
    ap.add_argument("--write-results", action="store_true", help=f"rewrite the marked table in {RESULTS.name}")
    args = ap.parse_args(argv)
    if not args.data_dir.is_dir():
        raise SystemExit(f"data directory {args.data_dir} not found; pass --data-dir DIR")
    fields = DEFAULT_FIELDS if not args.fields else [tuple(s.split(":", 1)) for s in args.fields]
    meta = {**machine_info(), "data_dir": str(args.data_dir.resolve())}
    start, records = time.perf_counter(), []
    for i, (fname, var) in enumerate(fields, 1):
        rec = bench_field(args.data_dir / fname, var, args.max_values, args.iterations, args.pw_rel)
        if rec is None:
            print(f"[{i}/{len(fields)}] {fname}:{var} skipped: not float, or no valid point", file=sys.stderr)
            continue
        records.append(rec)
        print(f"[{i}/{len(fields)}] {rec['field']} steps {rec['steps']}: "
              + "; ".join(f"{c} CR {rec[c]['cr'] or 0:.2f} eps {rec[c]['eps'] or 0:.2g} ({rec[c]['seconds']:.0f} s)"
                          for c in COMPRESSORS), flush=True)
    meta["run_seconds"] = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    name = "acceptance_pw_rel" if args.pw_rel else "acceptance"
    (args.out / f"{name}.json").write_text(json.dumps({"meta": meta, "records": records}, indent=1, default=float))
    markdown = results_markdown(records, meta)
    print(markdown)
    if args.write_results:
        title = ("## Acceptance with pointwise-relative bounds allowed (xdiffc and SZ3)" if args.pw_rel
                 else "## Acceptance: ratio at the loosest bound that passes the criteria")
        write_section(name, markdown, f"{title}\n\n`benchmarks/acceptance.py{' --pw-rel' if args.pw_rel else ''}` "
                      "(see its docstring for the method).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
