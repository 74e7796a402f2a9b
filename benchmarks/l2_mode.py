"""The per-block L2 mode (issue 5) against pointwise xdiffc, SZ3 (L2NORM, PSNR) and ZFP at the same NRMSE.

For each field and NRMSE target eps (NRMSE = RMSE / (max - min) over the valid points, measured
on the output-dtype values):

- xdiffc-l2: ``xdiffc.l2.encode`` wrapped in the real container (header, mask and exact missing
  values, the ``l2base`` and ``pca`` sections, CRC32), so CR counts every stored byte; the share
  of bytes spent on the guarantee is the ``pca`` section over that total.
- xdiffc pointwise: ``xdiffc.compress(x, tol=...)`` at the largest tol (bisected) whose NRMSE <= eps.
- SZ3 (pysz) in L2NORM mode (bound eps * R * sqrt(N)) and PSNR mode (-20 log10 eps).
- ZFP fixed accuracy at the largest power-of-two tolerance (zfp rounds to one) with NRMSE <= eps.

SZ3 and ZFP get the field with missing points filled by the previous valid value and no mask
stored (a floor on their cost, as in xdiffc.baselines).  CR = x.nbytes / stored bytes.

    python benchmarks/l2_mode.py                      # the 5 fields of issue 5, eps 1e-2, 1e-3, 1e-4
    python benchmarks/l2_mode.py --fields orig.PRECT.10days.nc:PRECT --eps 1e-3
    python benchmarks/l2_mode.py --write-results      # also rewrite the l2_mode table in RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import xarray as xr

import xdiffc
from xdiffc import l2, masking
from xdiffc.bitstream import Header, Stream
from results_md import write_section

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data"
FIELDS = [
    ("TREFHT.B06.57.atm.1890-1999ANN.nc", "TREFHT"),
    ("b003_TS_200-299.nc", "TS"),
    ("t_in_Celsius_1.nc", "tC"),
    ("orig.PRECT.10days.nc", "PRECT"),
    ("tos_Omon_CESM2-FV2_historical_r1i1p1f1_gn_200001.nc", "tos"),
]
EPS = (1e-2, 1e-3, 1e-4)
BISECT_STEPS = 7


class Field:
    """A variable as stored on disk, its missing points, value range and a gap-filled copy for SZ3/ZFP."""

    def __init__(self, path: Path, var: str):
        with xr.open_dataset(path, mask_and_scale=False, decode_times=False) as ds:
            da = ds[var]
            self.x = np.ascontiguousarray(da.values, dtype=da.dtype.newbyteorder("="))
            self.fills = [float(v) for k in ("_FillValue", "missing_value") if k in da.attrs
                          for v in np.atleast_1d(da.attrs[k])]
        self.label = f"{path.name}:{var}"
        self.mask = masking.special_mask(self.x, self.fills)
        self.valid = self.x[~self.mask].astype(np.float64)
        self.range = float(self.valid.max() - self.valid.min())
        self.filled = np.ascontiguousarray(masking.fill_gaps(self.x, self.mask))

    def nrmse(self, y: np.ndarray) -> float:
        """RMSE over the valid points, on ``y`` cast to the field's dtype, over the value range."""
        err = np.asarray(y, self.x.dtype)[~self.mask].astype(np.float64) - self.valid
        return float(np.sqrt(np.mean(err**2)) / self.range)


def worst_block(f: Field, y: np.ndarray, eps: float, patch: tuple[int, int] = (8, 8)) -> float:
    """max over 8x8 patches of ||x - y||_2 / (eps * sqrt(n_valid) * R): <= 1 is the L2 mode's guarantee."""
    ph, pw = patch
    ok = ~f.mask.reshape(-1, *f.x.shape[-2:])
    err = np.where(ok, np.asarray(y, f.x.dtype).astype(np.float64) - f.x.astype(np.float64), 0.0).reshape(ok.shape)
    lead, rows, cols = ok.shape
    nr, nc = -(-rows // ph), -(-cols // pw)
    pad = ((0, 0), (0, nr * ph - rows), (0, nc * pw - cols))
    e2 = np.pad(err**2, pad).reshape(lead, nr, ph, nc, pw).sum(axis=(2, 4))
    n = np.pad(ok, pad).reshape(lead, nr, ph, nc, pw).sum(axis=(2, 4))
    bound = eps * np.sqrt(n) * f.range
    return float(np.max(np.where(n > 0, np.sqrt(e2) / np.where(n > 0, bound, 1.0), 0.0)))


def run_l2(f: Field, eps: float) -> dict:
    """xdiffc-l2 in the real container; CR, guarantee share, patch counts, NRMSE, worst block, times."""
    t = time.perf_counter()
    sections = l2.encode(f.x.astype(np.float64), f.mask, eps, dtype=f.x.dtype)
    t_enc = time.perf_counter() - t
    stored = dict(zip(("mask", "special"), masking.encode(f.x, f.mask))) if f.mask.any() else {}
    header = Header(dtype=f.x.dtype.str, shape=f.x.shape, mode="l2", tol=eps * f.range, rel_tol=eps)
    blob = Stream(header, {**stored, **sections}).to_bytes()
    t = time.perf_counter()
    y = l2.decode(sections, f.x.shape, f.mask, f.x.dtype)
    t_dec = time.perf_counter() - t
    info = l2.summary(sections["pca"])
    return dict(cr=f.x.nbytes / len(blob), bytes=len(blob), pca_bytes=len(sections["pca"]),
                guarantee_share=len(sections["pca"]) / len(blob), patches=info["patches"],
                corrected=info["corrected"], exact=info["exact"], nrmse=f.nrmse(y),
                worst_block=worst_block(f, y, eps), t_enc=t_enc, t_dec=t_dec)


def run_pointwise(f: Field, eps: float) -> dict:
    """xdiffc.compress at the largest tol (geometric bisection in [eps R, 4 eps R]) with NRMSE <= eps."""
    def trial(tol: float) -> tuple[int, float]:
        blob = xdiffc.compress(f.x, tol=tol, fill_values=f.fills)
        return len(blob), f.nrmse(xdiffc.decompress(blob))

    lo, hi = eps * f.range, 4 * eps * f.range  # a pointwise bound eps * R always meets NRMSE <= eps
    best = (lo, *trial(lo))
    for _ in range(BISECT_STEPS):
        mid = math.sqrt(lo * hi)
        nbytes, err = trial(mid)
        if err <= eps:
            lo, best = mid, (mid, nbytes, err)
        else:
            hi = mid
    return dict(cr=f.x.nbytes / best[1], bytes=best[1], tol_over_range=best[0] / f.range, nrmse=best[2])


def run_sz3(f: Field, eps: float, mode: str) -> dict:
    """pysz in L2NORM (global error norm eps * R * sqrt(N)) or PSNR (-20 log10 eps) mode."""
    from pysz import sz, szConfig, szErrorBoundMode

    cfg = szConfig()
    cfg.errorBoundMode = getattr(szErrorBoundMode, mode)
    if mode == "L2NORM":
        cfg.l2normErrorBound = float(eps * f.range * math.sqrt(f.valid.size))
    else:
        cfg.psnrErrorBound = float(-20 * math.log10(eps))
    blob, _ = sz.compress(f.filled, cfg)
    y, _ = sz.decompress(blob, f.filled.dtype, f.filled.shape)
    return dict(cr=f.x.nbytes / blob.nbytes, bytes=int(blob.nbytes), nrmse=f.nrmse(y))


def run_zfp(f: Field, eps: float) -> dict:
    """zfpy fixed accuracy at the largest tolerance 2**k with NRMSE <= eps (k upwards from log2(eps R))."""
    import zfpy

    best = None
    k = math.floor(math.log2(eps * f.range))
    while True:
        blob = zfpy.compress_numpy(f.filled, tolerance=2.0**k)
        err = f.nrmse(zfpy.decompress_numpy(blob))
        if err > eps:
            return best
        best = dict(cr=f.x.nbytes / len(blob), bytes=len(blob), tol_over_range=2.0**k / f.range, nrmse=err)
        k += 1


def bench(f: Field, eps: float) -> dict:
    return dict(field=f.label, eps=eps, shape=list(f.x.shape), dtype=str(f.x.dtype),
                missing=int(f.mask.sum()), xdiffc_l2=run_l2(f, eps), xdiffc_pointwise=run_pointwise(f, eps),
                sz3_l2norm=run_sz3(f, eps, "L2NORM"), sz3_psnr=run_sz3(f, eps, "PSNR"), zfp=run_zfp(f, eps))


def markdown(records: list[dict], command: str) -> str:
    """The RESULTS.md section: provenance, then one row per field and eps."""
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.node()}, {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    lines = [
        "## Per-block L2 mode (issue 5)",
        "",
        f"{when}; {machine}; `{command}`.",
        "",
        "CR at the same NRMSE target (NRMSE = RMSE / (max - min) over valid points, output dtype); measured",
        "NRMSE in parentheses. xdiffc-l2 also guarantees every 8x8 block (worst block: its error norm over",
        "eps * sqrt(n) * range, <= 1). Guarantee = share of the xdiffc-l2 stream spent on the `pca` section",
        "(basis, patch mask, counts, coefficient indices and values, exact patches); corrected = patches that",
        "needed it. Pointwise xdiffc runs at the largest tol with NRMSE <= eps (tol / range shown). SZ3 and",
        "ZFP store no mask (a floor on their cost).",
        "",
        "| field | eps | xdiffc-l2 | guarantee | corrected | worst block | xdiffc pointwise (tol/R) "
        "| SZ3 L2NORM | SZ3 PSNR | ZFP |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        a, p, s1, s2, z = (r[k] for k in ("xdiffc_l2", "xdiffc_pointwise", "sz3_l2norm", "sz3_psnr", "zfp"))
        cell = lambda d: f"{d['cr']:.1f} ({d['nrmse']:.2g})" if d else "n/a"  # noqa: E731
        lines.append(
            f"| {r['field'].split(':')[1]} | {r['eps']:g} | **{cell(a)}** | {100 * a['guarantee_share']:.1f}% "
            f"| {a['corrected']}/{a['patches']} ({a['exact']} exact) | {a['worst_block']:.5f} "
            f"| {cell(p)} {p['tol_over_range']:.2g} | {cell(s1)} | {cell(s2)} | {cell(z)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="directory of the .nc files")
    ap.add_argument("--fields", nargs="+", help="FILE:VAR pairs (default: the 5 fields of issue 5)")
    ap.add_argument("--eps", nargs="+", type=float, default=list(EPS), help="NRMSE targets")
    ap.add_argument("--write-results", action="store_true", help="rewrite the l2_mode table in RESULTS.md")
    args = ap.parse_args(argv)
    fields = [tuple(s.split(":", 1)) for s in args.fields] if args.fields else FIELDS
    records = []
    for name, var in fields:
        f = Field(args.data / name, var)
        for eps in args.eps:
            records.append(bench(f, eps))
            print(json.dumps(records[-1]), flush=True)
    if args.write_results:
        write_section("l2_mode", markdown(records, shlex.join(["python", "benchmarks/l2_mode.py", *sys.argv[1:]])))


if __name__ == "__main__":
    main()
