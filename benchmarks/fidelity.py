"""What physically faithful output costs: ``preserve_zero`` on fields with zeros, ``pw_rel_tol`` against SZ3.

    python benchmarks/fidelity.py [--shared ../shared/data] [--write-results]

For each field (whole variable as one array, as ``xdiffc.compress`` sees a chunk): the compression
ratio at ``rel_tol`` 1e-3 and 1e-4 without and with ``preserve_zero`` (and how many zeros and signs
the default output loses), then the ratio at ``pw_rel_tol`` 1e-2, 1e-3, 1e-4 against SZ3 given the
same pointwise-relative bound. pysz exposes SZ3's ABS, REL (range-relative), ABS_AND_REL,
ABS_OR_REL, PSNR and L2NORM modes but no pointwise-relative one, so SZ3 gets the standard
reduction (SZ2's PW_REL): ABS on ``log2|x|`` with bound ``log2(1 + r)``, plus the zero mask and
the sign bitmap (zstd), and its worst pointwise-relative error is reported (libm's exp2 decodes).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
from pathlib import Path

import numpy as np
import xarray as xr
import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import xdiffc  # noqa: E402
from xdiffc.datasets import open_sample  # noqa: E402
from xdiffc.masking import special_mask  # noqa: E402

from results_md import write_section  # noqa: E402

PW_TOLS = (1e-2, 1e-3, 1e-4)


def fields(shared: Path | None) -> dict[str, np.ndarray]:
    """Float fields with zeros (and precipitation): the embedded samples, plus ../shared/data where present."""
    out = {"PRECT": open_sample("prect")["PRECT"].values}
    rad = open_sample("e3sm_rad")
    for name in ("iwp", "lwp", "mu0", "sfc_alb_dir"):
        out[f"{name} (e3sm_rad)"] = np.ascontiguousarray(rad[name].values.squeeze().T)
    if shared is not None and (shared / "HICCUP_TEST.NOAA.ice.nc").exists():
        ice = xr.open_dataset(shared / "HICCUP_TEST.NOAA.ice.nc")["icec"].values[:60]
        out["icec (NOAA, 60 days)"] = ice
    return out


def sz3_pw_rel(x: np.ndarray, r: float) -> tuple[int, np.ndarray]:
    """(bytes, reconstruction) of SZ3 ABS on log2|x| with the zero mask and sign bitmap (missing points: 0)."""
    from pysz import sz, szConfig, szErrorBoundMode

    ok = ~special_mask(x)
    nz = ok & (x != 0)
    t = np.zeros(x.shape)
    t[nz] = np.log2(np.abs(x[nz].astype(np.float64)))
    cfg = szConfig()
    cfg.errorBoundMode = szErrorBoundMode.ABS
    cfg.absErrorBound = float(np.log2(1 + r))
    blob, _ = sz.compress(np.ascontiguousarray(t), cfg)
    t_hat = sz.decompress(blob, np.float64, t.shape)
    t_hat = t_hat[0] if isinstance(t_hat, tuple) else t_hat
    zc = zstandard.ZstdCompressor(level=9)
    extra = len(zc.compress(np.packbits(nz).tobytes())) + len(zc.compress(np.packbits(np.signbit(x) & nz).tobytes()))
    y = np.where(nz, np.sign(x) * np.exp2(np.asarray(t_hat).reshape(x.shape)), 0).astype(x.dtype)
    return blob.nbytes + extra, y


def worst_pw_rel(x: np.ndarray, y: np.ndarray) -> float:
    """max |y - x| / |x| over the valid non-zero points."""
    nz = ~special_mask(x) & (x != 0)
    return float((np.abs(y[nz].astype(np.float64) - x[nz]) / np.abs(x[nz].astype(np.float64))).max(initial=0.0))


def measure(shared: Path | None) -> str:
    rows_zero, rows_pw = [], []
    for name, x in fields(shared).items():
        ok = ~special_mask(x)
        zeros = ok & (x == 0)
        span = float(x[ok].max() - x[ok].min())
        cells = [name, f"{zeros.sum() / ok.sum():.1%}", f"{(x[ok] < 0).mean():.2%}"]
        for eps in (1e-3, 1e-4):
            plain = xdiffc.compress(x, eps * span)
            y = xdiffc.decompress(plain)
            lost = int((y[zeros] != 0).sum() + (np.sign(y[ok & ~zeros]) != np.sign(x[ok & ~zeros])).sum())
            kept = xdiffc.compress(x, eps * span, preserve_zero=True)
            cells += [f"{x.nbytes / len(plain):.2f}", f"{x.nbytes / len(kept):.2f}", str(lost)]
        rows_zero.append("| " + " | ".join(cells) + " |")
        cells = [name]
        for r in PW_TOLS:
            ours = xdiffc.compress(x, pw_rel_tol=r)
            size, y = sz3_pw_rel(x, r)
            worst = worst_pw_rel(x, y)
            cells += [f"{x.nbytes / len(ours):.2f}", f"{x.nbytes / size:.2f} ({worst / r:.3f})"]
        rows_pw.append("| " + " | ".join(cells) + " |")
    when = datetime.date.today().isoformat()
    machine = f"{platform.machine()}, {platform.processor() or platform.system()}, Python {platform.python_version()}"
    return "\n".join([
        f"Measured {when} on {machine} (`python benchmarks/fidelity.py --shared ../shared/data`). Each field is "
        "one array (one chunk). Ratios are bytes in memory over bytes stored.",
        "",
        "**preserve_zero**: ratio at `rel_tol` 1e-3 and 1e-4 (of the field's range) without and with it; "
        "*lost*: zeros made non-zero plus signs changed by the default output.",
        "",
        "| field | zeros | negative | 1e-3 | 1e-3 kept | lost | 1e-4 | 1e-4 kept | lost |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows_zero,
        "",
        "**pw_rel_tol**: xdiffc against SZ3 on log2|x| (pysz has no pointwise-relative mode; in brackets SZ3's "
        "worst |y - x| / (r |x|), which xdiffc keeps <= 1 by its exact check).",
        "",
        "| field | " + " | ".join(f"xdiffc {r:g} | SZ3 {r:g}" for r in PW_TOLS) + " |",
        "|---|" + "---|" * (2 * len(PW_TOLS)),
        *rows_pw,
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=None, help="folder of the shared real files (optional)")
    parser.add_argument("--write-results", action="store_true", help="write the section of benchmarks/RESULTS.md")
    args = parser.parse_args()
    text = measure(args.shared)
    print(text)
    if args.write_results:
        write_section("fidelity", text, "## Physically faithful output: preserve_zero and pointwise-relative bounds")


if __name__ == "__main__":
    main()
