"""The ``xdiffc`` command line.

Every command exits with the same statuses (:data:`EXIT_STATUS`): 0 when it succeeded and every
check passed, 1 when a check failed, 2 on a usage error or a bad input, which is reported in one
line naming the file, variable or option (never a traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from typing import NoReturn
from functools import partial

from . import __version__
from .errors import CorruptStreamError, VerificationError, XdiffcError
from .options import DEFAULT_LEVEL, LEVELS

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_PIPE = 0, 1, 2, 130, 141
EXIT_STATUS = """exit status (the same for every command):
  0    done, and every check passed
  1    a check failed: verify found a value beyond its bound, a damaged chunk, metadata
       that differ or an unfinished store; convert --verify failed; assess or report
       found a variable that fails the criteria; demo saw a bound broken
  2    usage error or bad input: an unknown option or bad value, a missing or
       unreadable file, an unknown variable, datasets that do not match
  130  interrupted (Ctrl-C)
  141  the output's reader stopped early (xdiffc assess ... | head), as for SIGPIPE"""


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

    from .metrics import assess, verdict
    from .report import open_dataset

    table = assess(open_dataset(args.original), open_dataset(args.store), _criteria(args), args.variable)
    with pd.option_context("display.width", 200, "display.max_columns", None):
        print(table.drop(columns=[c for c in table.columns if c.startswith("ok_") or c == "failed"]).T)
    print(verdict(table))
    return EXIT_OK if table["passed"].all() else EXIT_FAILED


def _report(args: argparse.Namespace) -> int:
    from .report import build, open_dataset

    page = build(open_dataset(args.original), open_dataset(args.store), args.output, _criteria(args),
                 args.variable, sample=args.sample)
    print(f"report written to {page.index}")
    print(page.verdict)
    return EXIT_OK if page.passed else EXIT_FAILED


def _tune(args: argparse.Namespace) -> int:
    import pandas as pd

    from .conversion.run import flag
    from .report import open_dataset
    from .tuning import suggest_tol

    found = suggest_tol(open_dataset(args.inputs), _criteria(args), args.sample, args.variable,
                        model=args.model, iterations=args.iterations)
    with pd.option_context("display.width", 200, "display.max_columns", None):
        print(found.table)
    print("xdiffc convert ... " + " ".join(f"{flag(option)} {n}={v:.6g}" for option, bounds in found.kwargs.items()
                                           for n, v in (bounds or {}).items()))
    return EXIT_OK


def _train(args: argparse.Namespace) -> int:
    from .training import train

    from .neural.network import ModelConfig

    path = train(args.data, args.output, device=args.device, steps=args.steps, resume=args.resume,
                 variables=args.variable, config=ModelConfig.at_rate(args.values_per_latent),
                 rate_weight=args.rate_weight)
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


def _tol_option(pairs: list[tuple[str | None, float | str]] | None,
                option: str = "--tol") -> float | str | dict[str, float] | None:
    """A bound argument from its repeated ``option``: one bare bound, or one bound per named variable."""
    if not pairs:
        return None
    named = dict(pairs)
    if None not in named:
        return named
    if len(pairs) > 1:
        raise ValueError(f"give either one {option} BOUND for every variable, or {option} VAR=BOUND per variable, "
                         f"not both")
    return named[None]


def _rel_tol(text: str) -> float | None:
    """A number (checked as a bound later, so that a bad one is reported like any other), or ``none``."""
    if text.lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'none', got {text!r}") from None


def _chunks(text: str) -> dict[str, int]:
    """``time=16,lat=64,lon=64`` as a mapping."""
    try:
        return {k.strip(): int(v) for k, v in (item.split("=") for item in text.split(",") if item)}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected DIM=SIZE[,DIM=SIZE...], got {text!r}") from None


def _convert(args: argparse.Namespace) -> int:
    from .conversion.progress import partial_path
    from .conversion.run import convert

    variables = [v for item in args.variables or [] for v in item.split(",") if v] or None
    try:
        summary = convert(args.inputs, args.output, tol=_tol_option(args.tol), rel_tol=args.rel_tol,
                          pw_rel_tol=_tol_option(args.pw_rel_tol, "--pw-rel-tol"), preserve_zero=args.preserve_zero,
                          model=args.model, mode=args.mode, chunks=args.chunks, variables=variables,
                          scheduler=args.scheduler, workers=args.workers, threads_per_worker=args.threads_per_worker,
                          gpus=args.gpus, resume=args.resume, verify=args.verify, overwrite=args.overwrite,
                          progress=not args.quiet, layout=args.layout, grid=args.grid, use_cftime=args.use_cftime,
                          decode_times=not args.no_decode_times,
                          train_model=args.train_model, level=args.level, member_dim=args.member_dim,
                          append=args.append)
    except KeyboardInterrupt:
        partial = partial_path(args.output)
        if partial.exists() and args.append:
            print(f"xdiffc: interrupted; {args.output} is as it was before the append (the work so far is in "
                  f"{partial}): rerun the same command with --resume to finish it", file=sys.stderr)
        elif partial.exists():
            print(f"xdiffc: interrupted; {args.output} is not written (the work so far is in {partial}): rerun the "
                  f"same command with --resume to finish it", file=sys.stderr)
        else:
            print(f"xdiffc: interrupted before any work was saved; {args.output} is not written: rerun the same "
                  f"command to start again", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(summary)
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    from .conversion.verify import verify

    report = verify(args.inputs, args.store, use_cftime=args.use_cftime, decode_times=not args.no_decode_times)
    print(report)
    return EXIT_OK if report.ok else EXIT_FAILED


def _run(args: argparse.Namespace) -> int:
    """Run the command: a failed check exits 1, a bad input or option prints one line and exits 2."""
    try:
        return args.func(args)
    except KeyboardInterrupt:  # Ctrl-C (convert says more about its work)
        print("xdiffc: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader stopped early (``xdiffc assess ... | head``): no traceback, no message
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python flushes stdout again at exit
        return EXIT_PIPE
    except (CorruptStreamError, VerificationError) as err:
        print(f"xdiffc: FAIL: {err}", file=sys.stderr)
        return EXIT_FAILED
    except (ValueError, TypeError, OSError, ImportError, XdiffcError) as err:
        print(f"xdiffc: error: {err}", file=sys.stderr)
        return EXIT_USAGE


def _attach_values(argv: Sequence[str]) -> list[str]:
    """``--opt -1e-3`` as ``--opt=-1e-3``, for every long option followed by a negative number.

    argparse reads a token that starts with '-' as an option unless it looks like a plain
    negative decimal, so ``--rel-tol -1e-3`` would fail as "expected one argument" instead of
    reaching the check that reports it as an invalid bound.
    """
    out: list[str] = []
    for i, arg in enumerate(argv):
        if arg == "--":
            return out + list(argv[i:])
        last = out[-1] if out else ""
        if last.startswith("--") and "=" not in last and _is_negative_number(arg):
            out[-1] = f"{last}={arg}"
        else:
            out.append(arg)
    return out


def _is_negative_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.startswith("-")


class _Parser(argparse.ArgumentParser):
    """argparse, whose usage errors are two lines: the command's short usage, then the error (argparse would print
    the usage of every option first, a dozen lines for ``convert``)."""

    def error(self, message: str) -> NoReturn:
        formatter = self._get_formatter()
        formatter.add_usage(None, [a for a in self._actions if a.required or not a.option_strings], [])
        usage = formatter.format_help().strip()
        self.exit(EXIT_USAGE, f"{usage} [options]\n{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    formatting = {"epilog": EXIT_STATUS, "formatter_class": argparse.RawDescriptionHelpFormatter}
    parser = _Parser(prog="xdiffc", description="Error-bounded lossy compression of climate data "
                                     "into Zarr stores.", **formatting)
    parser.add_argument("--version", action="version", version=f"xdiffc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    command = partial(sub.add_parser, **formatting)

    demo = command("demo", help="compress the embedded sample data, check the bound, compare with SZ3")
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

    assess = command("assess", help="climate acceptance metrics (Baker et al.) of a store against its "
                                           "original, per variable; exit 1 if one fails")
    assess.add_argument("original", help="the original netCDF file or Zarr store")
    assess.add_argument("store", help="the compressed Zarr store")
    criteria_options(assess)
    assess.set_defaults(func=_assess)

    report = command("report", help="an HTML page with maps, error histograms, ratio curves, the metrics "
                                           "and a verdict; exit 1 if it is FAIL")
    report.add_argument("original", help="the original netCDF file or Zarr store")
    report.add_argument("store", help="the compressed Zarr store")
    report.add_argument("-o", "--output", default="report", help="folder for index.html and its PNGs (report/)")
    report.add_argument("--sample", type=int, default=2**18, help="values sampled for the ratio curves (2**18)")
    criteria_options(report)
    report.set_defaults(func=_report)

    tune = command("tune", help="per variable, the loosest bound (absolute or pointwise-relative) that passes "
                                "the criteria")
    tune.add_argument("inputs", nargs="+", metavar="IN", help="netCDF files or one Zarr store")
    tune.add_argument("--sample", type=int, help="values sampled per variable (default 2**17)")
    tune.add_argument("--iterations", type=int, default=8,
                      help="resolution: that of this many bisection steps over bounds 1e-6 to 0.1 of the range "
                           "(default 8: about 4.6%%)")
    tune.add_argument("--model", default=None, metavar="ID", help="model to try block by block ('default' is the shipped one; default: none, model-free)")
    criteria_options(tune)
    tune.set_defaults(func=_tune)

    train = command("train", help="train a model on your own netCDF or Zarr data")
    train.add_argument("data", nargs="+", help="netCDF files or Zarr stores")
    train.add_argument("-o", "--output", required=True, help="model file to write (checkpoints go beside it)")
    train.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    train.add_argument("--steps", type=int, default=4000, help="optimisation steps (default 4000)")
    train.add_argument("--resume", action="store_true", help="continue from the checkpoint beside --output")
    train.add_argument("--variable", action="append", help="variable to train on (repeatable; default: all usable)")
    train.add_argument("--values-per-latent", type=int, default=32, choices=[32, 8, 2],
                       help="the rate knob: one latent per this many values (default 32); fewer give a finer "
                            "reconstruction at more bits, which the L2 mode needs")
    train.add_argument("--rate-weight", type=float, default=1e-3,
                       help="weight of the bits per value in the training loss (default 1e-3)")
    train.set_defaults(func=_train)

    conv = command("convert", help="compress netCDF files (combined along time) or a Zarr store into one "
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
    conv.add_argument("--pw-rel-tol", action="append", type=_tol, metavar="VAR=R",
                      help="pointwise-relative bound |y - x| <= R |x| for VAR (repeatable; a bare R: every lossy "
                           "variable), zeros and signs kept; with --tol the stricter holds at each point, and "
                           "--rel-tol covers only the variables neither names")
    conv.add_argument("--preserve-zero", action=argparse.BooleanOptionalAction, default=None,
                      help="exact zeros kept and signs kept, for every lossy variable (default: where the valid "
                           "minimum, or the CF valid minimum, is 0)")
    conv.add_argument("--model", default=None, metavar="ID", help="model to try block by block ('default' is the shipped one; default: none, model-free)")
    conv.add_argument("--train-model", type=int, default=0, metavar="STEPS",
                      help="first train a model for STEPS steps on the inputs themselves (checkpointed: --resume "
                           "continues it), then compress with it; the store carries the model")
    conv.add_argument("--level", type=int, default=DEFAULT_LEVEL, choices=list(LEVELS), metavar="1-9",
                      help=f"1 fastest ... 9 smallest, as zstd's levels; the bound is the same at every level "
                           f"(default {DEFAULT_LEVEL})")
    conv.add_argument("--mode", default="pointwise", choices=["pointwise", "l2"],
                      help="pointwise: every value within its bound (default); l2: each variable's NRMSE within --rel-tol")
    conv.add_argument("--chunks", type=_chunks, metavar="DIM=N,...",
                      help="Zarr chunks, e.g. time=16,lat=64,lon=64 (default: time chunks of about 16 MiB, which may "
                           "span input files)")
    conv.add_argument("--layout", default="auto", choices=["auto", "cubed-sphere", "hilbert", "none"],
                      help="how unstructured columns (ncol, nCells) are laid out for coding (default: detect)")
    conv.add_argument("--grid", metavar="FILE", help="file with the columns' lat/lon, for inputs that lack them")
    conv.add_argument("--variables", action="append", metavar="A,B",
                      help="data variables to convert (comma-separated, repeatable; default all); bounds, "
                           "grid, time and integer variables always come along")
    conv.add_argument("--scheduler", metavar="ADDRESS", help="use this running Dask scheduler")
    conv.add_argument("--workers", type=int, metavar="N",
                      help="a local cluster of N worker processes (default: inputs up to 64 MiB run on threads in "
                           "this process, larger ones on Dask's choice of workers)")
    conv.add_argument("--threads-per-worker", type=int, metavar="M", help="threads per local worker")
    conv.add_argument("--gpus", type=int, default=0, metavar="N",
                      help="run the codec on workers with resource GPU=1 (locally: N workers, one per GPU)")
    conv.add_argument("--append", action="store_true",
                      help="add the inputs' times to the finished store OUT, with its own bounds, codec and "
                           "climatology; they must continue its time axis (same variables, grid and calendar)")
    conv.add_argument("--resume", action="store_true",
                      help="finish an interrupted conversion into OUT (with --append: an interrupted append)")
    conv.add_argument("--verify", action="store_true", help="check every bound before marking OUT complete")
    conv.add_argument("--overwrite", action="store_true", help="replace OUT if it exists (at the end: until then "
                                                                "the old store stays as it was)")
    conv.add_argument("--use-cftime", action="store_true",
                      help="decode every input's times as cftime dates (for calendars or dates that numpy cannot "
                           "hold in every file alike)")
    conv.add_argument("--no-decode-times", action="store_true",
                      help="keep every input's times as numbers (for time units no calendar decodes, such as "
                           "'months since'); they are stored exactly, with their units")
    conv.add_argument("--member-dim", metavar="NAME",
                      help="the inputs are an ensemble: each IN is one member (a file, or a quoted glob of one "
                           "member's files, combined along time), stacked along the new dimension NAME")
    conv.add_argument("-q", "--quiet", action="store_true", help="no progress bars, no line about the cluster")
    conv.set_defaults(func=_convert)

    ver = command("verify", help="check a converted store against its inputs: bounds, metadata, every chunk "
                                 "decodes, complete; exit 1 on any failed check")
    ver.add_argument("inputs", nargs="+", metavar="IN", help="the netCDF files or Zarr store that were converted")
    ver.add_argument("store", metavar="STORE.zarr", help="the converted store")
    ver.add_argument("--use-cftime", action="store_true", help="decode times as cftime dates (as convert --use-cftime)")
    ver.add_argument("--no-decode-times", action="store_true", help="keep times as numbers (as convert "
                                                                    "--no-decode-times)")
    ver.set_defaults(func=_verify)
    return parser


@contextlib.contextmanager
def _one_line_warnings() -> Iterator[None]:
    """Each warning as one line on stderr, ``xdiffc: warning: ...``: at the command line, the file and line of the
    source that warned, and that line itself, are noise."""
    before = warnings.formatwarning
    warnings.formatwarning = lambda message, *_, **__: f"xdiffc: warning: {message}\n"
    try:
        yield
    finally:
        warnings.formatwarning = before


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(_attach_values(sys.argv[1:] if argv is None else argv))
    with _one_line_warnings():
        return _run(args)


if __name__ == "__main__":
    sys.exit(main())
