"""The ``xdiffc`` command line."""

from __future__ import annotations

import argparse
import sys

from . import __version__


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(samples=args.sample, eps_list=args.eps)


def _criteria(args: argparse.Namespace) -> dict[str, float]:
    """Overrides of Baker et al.'s criteria from the --pcc-min, --ks-p-min, --spre-max, --dssim-min options."""
    keys = {"pcc_min": args.pcc_min, "ks_p_min": args.ks_p_min, "spre_max_pct": args.spre_max,
            "dssim_min": args.dssim_min}
    return {k: v for k, v in keys.items() if v is not None}


def _assess(args: argparse.Namespace) -> int:
    import pandas as pd

    from .metrics import assess
    from .report import open_dataset

    table = assess(open_dataset(args.original), open_dataset(args.store), _criteria(args), args.variable)
    with pd.option_context("display.width", 200, "display.max_columns", None):
        print(table.drop(columns=[c for c in table.columns if c.startswith("ok_")]).T)
    failed = [str(n) for n in table.index if not table.loc[n, "passed"]]
    print(f"FAIL: {', '.join(failed)}" if failed else f"PASS: all {len(table)} variables pass the criteria")
    return 1 if failed else 0


def _report(args: argparse.Namespace) -> int:
    from .report import build, open_dataset

    index = build(open_dataset(args.original), open_dataset(args.store), args.output, _criteria(args),
                  args.variable, sample=args.sample)
    print(f"report written to {index}")
    return 0


def _tune(args: argparse.Namespace) -> int:
    import pandas as pd

    from .report import open_dataset
    from .tuning import suggest_tol

    tol = suggest_tol(open_dataset(args.inputs), _criteria(args), args.sample, args.variable,
                      model=args.model, iterations=args.iterations)
    with pd.option_context("display.width", 200, "display.max_columns", None):
        print(tol.table)
    print("xdiffc convert ... " + " ".join(f"--tol {n}={v:.6g}" for n, v in tol.items()))
    return 0


def _train(args: argparse.Namespace) -> int:
    from .training import train

    path = train(args.data, args.output, device=args.device, steps=args.steps, resume=args.resume,
                 variables=args.variable)
    print(f"model written to {path}")
    return 0


def _tol(text: str) -> tuple[str | None, float | str]:
    """``VAR=ABS`` (a bound for one variable), ``ABS`` (for every lossy variable) or ``auto``."""
    if text == "auto":
        return None, "auto"
    name, _, value = text.rpartition("=")
    try:
        return name or None, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected VAR=ABS or ABS, got {text!r}") from None


def _tol_option(pairs: list[tuple[str | None, float | str]] | None) -> float | str | dict[str, float] | None:
    """The ``tol`` argument from the --tol options: one bare bound, or one bound per named variable."""
    if not pairs:
        return None
    named = dict(pairs)
    if None not in named:
        return named
    if len(pairs) > 1:
        raise ValueError("give either one --tol ABS for every variable, or --tol VAR=ABS per variable, not both")
    return named[None]


def _rel_tol(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


def _chunks(text: str) -> dict[str, int]:
    """``time=16,lat=64,lon=64`` as a mapping."""
    try:
        return {k.strip(): int(v) for k, v in (item.split("=") for item in text.split(",") if item)}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected DIM=SIZE[,DIM=SIZE...], got {text!r}") from None


def _run_reporting_errors(job) -> int:
    """Run ``job``; bad inputs and options print one line naming the problem and exit 2."""
    from .errors import XdiffcError

    try:
        return job()
    except (ValueError, TypeError, OSError, XdiffcError) as err:
        print(f"xdiffc: error: {err}", file=sys.stderr)
        return 2


def _convert(args: argparse.Namespace) -> int:
    from .conversion import convert

    variables = [v for item in args.variables or [] for v in item.split(",") if v] or None

    def job() -> int:
        try:
            summary = convert(args.inputs, args.output, tol=_tol_option(args.tol), rel_tol=args.rel_tol,
                              model=args.model, mode=args.mode, chunks=args.chunks, variables=variables,
                              scheduler=args.scheduler, workers=args.workers,
                              threads_per_worker=args.threads_per_worker, gpus=args.gpus, resume=args.resume,
                              verify=args.verify, overwrite=args.overwrite, progress=not args.quiet,
                              layout=args.layout, grid=args.grid)
        except KeyboardInterrupt:
            print(f"xdiffc: interrupted; {args.output} is marked incomplete: rerun the same command with --resume "
                  f"to finish it", file=sys.stderr)
            return 130
        print(summary)
        return 0

    return _run_reporting_errors(job)


def _verify(args: argparse.Namespace) -> int:
    from .conversion import verify

    def job() -> int:
        report = verify(args.inputs, args.store)
        print(report)
        return 0 if report.ok else 1

    return _run_reporting_errors(job)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xdiffc", description=__doc__)
    parser.add_argument("--version", action="version", version=f"xdiffc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="compress the embedded sample data, check the bound, compare with SZ3")
    demo.add_argument("--sample", action="append", help="sample name (repeatable; default: trefht and tos)")
    demo.add_argument("--eps", action="append", type=float,
                      help="relative bound, a fraction of each field's range (repeatable; default 1e-2, 1e-3, 1e-4)")
    demo.set_defaults(func=_demo)

    def criteria_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--pcc-min", type=float, help="Pearson correlation at least (default 0.99999)")
        p.add_argument("--ks-p-min", type=float, help="KS-test p-value at least (default 0.05)")
        p.add_argument("--spre-max", type=float, metavar="PCT",
                       help="spatial relative error at most, in %% of points (default 5)")
        p.add_argument("--dssim-min", type=float, help="DSSIM at least (default 0.995)")
        p.add_argument("--variable", action="append", help="variable to check (repeatable; default: all lossy)")

    assess = sub.add_parser("assess", help="climate acceptance metrics (Baker et al.) of a store against its "
                                           "original, per variable; exit 1 if one fails")
    assess.add_argument("original", help="the original netCDF file or Zarr store")
    assess.add_argument("store", help="the compressed Zarr store")
    criteria_options(assess)
    assess.set_defaults(func=_assess)

    report = sub.add_parser("report", help="an HTML page with maps, error histograms, ratio curves, the metrics "
                                           "and a verdict")
    report.add_argument("original", help="the original netCDF file or Zarr store")
    report.add_argument("store", help="the compressed Zarr store")
    report.add_argument("-o", "--output", default="report", help="folder for index.html and its PNGs (report/)")
    report.add_argument("--sample", type=int, default=2**18, help="values sampled for the ratio curves (2**18)")
    criteria_options(report)
    report.set_defaults(func=_report)

    tune = sub.add_parser("tune", help="per variable, the loosest absolute bound that passes the criteria")
    tune.add_argument("inputs", nargs="+", metavar="IN", help="netCDF files or one Zarr store")
    tune.add_argument("--sample", type=int, help="values sampled per variable (default 2**20)")
    tune.add_argument("--iterations", type=int, default=10, help="bisection steps (default 10)")
    tune.add_argument("--model", default=None, metavar="ID", help="model to try block by block ('default' is the shipped one; default: none, model-free)")
    criteria_options(tune)
    tune.set_defaults(func=_tune)

    train = sub.add_parser("train", help="train a model on your own netCDF or Zarr data")
    train.add_argument("data", nargs="+", help="netCDF files or Zarr stores")
    train.add_argument("-o", "--output", required=True, help="model file to write (checkpoints go beside it)")
    train.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    train.add_argument("--steps", type=int, default=4000, help="optimisation steps (default 4000)")
    train.add_argument("--resume", action="store_true", help="continue from the checkpoint beside --output")
    train.add_argument("--variable", action="append", help="variable to train on (repeatable; default: all usable)")
    train.set_defaults(func=_train)

    conv = sub.add_parser("convert", help="compress netCDF files (combined along time) or a Zarr store into one "
                                          "Zarr store, on a Dask cluster, resumable")
    conv.add_argument("inputs", nargs="+", metavar="IN", help="netCDF files or globs, or one Zarr store")
    conv.add_argument("-o", "--output", required=True, metavar="OUT.zarr", help="Zarr store to write")
    conv.add_argument("--tol", action="append", type=_tol, metavar="VAR=ABS",
                      help="absolute bound for VAR (repeatable); a bare ABS applies to every lossy variable; "
                           "'auto': per variable, the loosest bound that passes the Baker et al. criteria "
                           "on a sample (as xdiffc tune)")
    conv.add_argument("--rel-tol", type=_rel_tol, default=1e-3, metavar="R",
                      help="bound for the variables --tol does not name, as a fraction of each one's range "
                           "(default 1e-3; 'none' keeps them exact)")
    conv.add_argument("--model", default=None, metavar="ID", help="model to try block by block ('default' is the shipped one; default: none, model-free)")
    conv.add_argument("--mode", default="pointwise", choices=["pointwise", "l2"],
                      help="pointwise: every value within its bound (default); l2: each variable's NRMSE within --rel-tol")
    conv.add_argument("--chunks", type=_chunks, metavar="DIM=N,...", help="Zarr chunks, e.g. time=16,lat=64,lon=64")
    conv.add_argument("--layout", default="auto", choices=["auto", "cubed-sphere", "hilbert", "none"],
                      help="how unstructured columns (ncol, nCells) are laid out for coding (default: detect)")
    conv.add_argument("--grid", metavar="FILE", help="file with the columns' lat/lon, for inputs that lack them")
    conv.add_argument("--variables", action="append", metavar="A,B",
                      help="data variables to convert (comma-separated, repeatable; default all); bounds, "
                           "grid, time and integer variables always come along")
    conv.add_argument("--scheduler", metavar="ADDRESS", help="use this running Dask scheduler")
    conv.add_argument("--workers", type=int, metavar="N", help="local cluster workers (default: Dask's choice)")
    conv.add_argument("--threads-per-worker", type=int, metavar="M", help="threads per local worker")
    conv.add_argument("--gpus", type=int, default=0, metavar="N",
                      help="run the codec on workers with resource GPU=1 (locally: N workers, one per GPU)")
    conv.add_argument("--resume", action="store_true", help="finish an interrupted conversion into OUT")
    conv.add_argument("--verify", action="store_true", help="check every bound before marking OUT complete")
    conv.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    conv.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    conv.set_defaults(func=_convert)

    ver = sub.add_parser("verify", help="check a converted store against its inputs; exit 1 on any violation")
    ver.add_argument("inputs", nargs="+", metavar="IN", help="the netCDF files or Zarr store that were converted")
    ver.add_argument("store", metavar="STORE.zarr", help="the converted store")
    ver.set_defaults(func=_verify)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
