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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
