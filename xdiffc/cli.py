"""The ``xdiffc`` command line."""

from __future__ import annotations

import argparse
import sys

from . import __version__


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(samples=args.sample, eps_list=args.eps)


def _train(args: argparse.Namespace) -> int:
    from .training import train

    path = train(args.data, args.output, device=args.device, steps=args.steps, resume=args.resume,
                 variables=args.variable)
    print(f"model written to {path}")
    return 0


def _tol(text: str) -> tuple[str | None, float]:
    """``VAR=ABS`` (a bound for one variable) or ``ABS`` (for every lossy variable)."""
    name, _, value = text.rpartition("=")
    try:
        return name or None, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected VAR=ABS or ABS, got {text!r}") from None


def _tol_option(pairs: list[tuple[str | None, float]] | None) -> float | dict[str, float] | None:
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
    from .convert import convert

    variables = [v for item in args.variables or [] for v in item.split(",") if v] or None

    def job() -> int:
        try:
            summary = convert(args.inputs, args.output, tol=_tol_option(args.tol), rel_tol=args.rel_tol,
                              model=args.model, mode=args.mode, chunks=args.chunks, variables=variables,
                              scheduler=args.scheduler, workers=args.workers,
                              threads_per_worker=args.threads_per_worker, gpus=args.gpus, resume=args.resume,
                              verify=args.verify, overwrite=args.overwrite, progress=not args.quiet)
        except KeyboardInterrupt:
            print(f"xdiffc: interrupted; {args.output} is marked incomplete: rerun the same command with --resume "
                  f"to finish it", file=sys.stderr)
            return 130
        print(summary)
        return 0

    return _run_reporting_errors(job)


def _verify(args: argparse.Namespace) -> int:
    from .convert import verify

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
                      help="absolute bound for VAR (repeatable); a bare ABS applies to every lossy variable")
    conv.add_argument("--rel-tol", type=_rel_tol, default=1e-3, metavar="R",
                      help="bound for the variables --tol does not name, as a fraction of each one's range "
                           "(default 1e-3; 'none' keeps them exact)")
    conv.add_argument("--model", default="default", metavar="ID", help="model to encode with (default: 'default')")
    conv.add_argument("--mode", default="pointwise", choices=["pointwise", "l2"],
                      help="pointwise: every value within its bound (default); l2: each variable's NRMSE within --rel-tol")
    conv.add_argument("--chunks", type=_chunks, metavar="DIM=N,...", help="Zarr chunks, e.g. time=16,lat=64,lon=64")
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
