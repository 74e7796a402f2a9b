"""``xdiffc demo``: compress the embedded samples, check the bound on every value, compare with SZ3."""

from __future__ import annotations

import time

import numpy as np

from . import baselines, datasets
from .core import compress, decompress
from .masking import special_mask

DEFAULT_SAMPLES = ("trefht", "tos")
DEFAULT_EPS = (1e-2, 1e-3, 1e-4)


def _fields(sample: str):
    ds = datasets.open_sample(sample, mask_and_scale=False)
    bounds = {v.attrs.get("bounds") for v in ds.variables.values()}
    for name, var in ds.data_vars.items():
        if var.dtype.kind == "f" and var.ndim >= 2 and var.size >= 1000 and name not in bounds:
            fills = [v for v in (var.attrs.get("_FillValue"), var.attrs.get("missing_value")) if v is not None]
            yield f"{sample}:{name}", np.asarray(var.values), fills


def run_demo(samples=None, eps_list=None) -> int:
    """Print, per field and bound, xdiffc's ratio against SZ3's, and fail (exit 1) on any bound violation."""
    samples = samples or DEFAULT_SAMPLES
    eps_list = eps_list or DEFAULT_EPS
    header = f"{'field':<22}{'eps':>8}{'xdiffc CR':>11}{'SZ3 CR':>9}{'vs SZ3':>8}{'max err/bound':>15}{'MB/s enc':>10}{'MB/s dec':>10}"
    print(header)
    print("-" * len(header))
    failures = 0
    for sample in samples:
        for label, x, fills in _fields(sample):
            valid = ~special_mask(x, fills)
            value_range = float(x[valid].max() - x[valid].min())
            for eps in eps_list:
                t0 = time.perf_counter()
                blob = compress(x, rel_tol=eps, fill_values=fills)
                t1 = time.perf_counter()
                y = decompress(blob)
                t2 = time.perf_counter()
                tol = eps * value_range
                err = float(np.max(np.abs(y[valid].astype(np.float64) - x[valid]))) if valid.any() else 0.0
                exact = np.array_equal(y[~valid].view(np.uint8), x[~valid].view(np.uint8))
                ok = err <= tol and exact and y.shape == x.shape and y.dtype == x.dtype
                failures += not ok
                cr, cr_sz = x.nbytes / len(blob), x.nbytes / baselines.run("sz3", x, tol, ~valid)[0]
                mb = x.nbytes / 1e6
                print(f"{label:<22}{eps:>8.0e}{cr:>11.1f}{cr_sz:>9.1f}{cr / cr_sz:>7.2f}x{err / tol:>15.3f}"
                      f"{mb / (t1 - t0):>10.1f}{mb / (t2 - t1):>10.1f}{'' if ok else '  BOUND VIOLATED'}")
    print()
    print("every value within its bound, missing values bit-exact" if not failures
          else f"{failures} field(s) violated the bound")
    return 1 if failures else 0
