"""Write tests/golden/sizes.json, the byte ceilings of tests/test_trust_sizes.py (run by hand, only when a size
changes on purpose, and say why in the commit).

    python tests/golden/make_sizes.py

The bound tests cannot see a coder that grows: the exact check in the output dtype stores every point it misses,
so a coder coded looser than it should still passes, only larger. These guards pin the payload of each residual
coder (interp, wavelet, the temporal decomposition, SZ3, exact storage), of the log-domain path and of the
bitmaps (missing-value masks, kept zeros, signs) on a few fixed synthetic fields (seeded, made here: smooth plus
noise, with and without NaN), each at the size measured when the file was written plus :data:`MARGIN`.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "sizes.json"
#: Ceiling over the measured size: room for a harmless change, not for a lost context model or a looser bound.
MARGIN = 0.02


def smooth(seed: int, shape=(8, 48, 64), noise: float = 0.02) -> np.ndarray:
    """A smooth float32 field (waves drifting over time, a random-walk texture) plus white noise."""
    rng = np.random.default_rng(seed)
    t, yy, xx = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in shape), indexing="ij")
    wave = 12 * np.sin(xx / 7.0 + 0.3 * t) * np.cos(yy / 9.0) + 0.05 * yy
    walk = rng.normal(size=shape).cumsum(-1) * 0.03
    return (280 + wave + walk + rng.normal(size=shape) * noise).astype(np.float32)


def climate(seed: int, shape=(48, 40, 48), period: int = 12) -> np.ndarray:
    """A seasonal cycle (one field per phase) repeated over the first axis plus small anomalies."""
    rng = np.random.default_rng(seed)
    pattern = rng.normal(size=(period,) + shape[1:]).cumsum(-1) * 2 + smooth(seed, (period,) + shape[1:], 0)
    return (pattern[np.arange(shape[0]) % period] + rng.normal(size=shape) * 0.05).astype(np.float32)


def repeating(seed: int, shape=(12, 40, 56)) -> np.ndarray:
    """A pattern repeated from step to step with small changes: residuals that repeat along time (the previous-slice
    contexts of interp's version 3)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 7, shape[1]), np.linspace(0, 9, shape[2]), indexing="ij")
    rep = (np.sin(yy * xx) * 5 + np.cos(3 * xx))[None] + rng.normal(size=(shape[0], 1, 1)) * 0.3
    return (rep + rng.normal(size=shape) * 0.01).astype(np.float32)


def with_nan(x: np.ndarray, seed: int) -> np.ndarray:
    """``x`` with a land mask (a coastline, the same at every step) and scattered NaN."""
    rng = np.random.default_rng(seed)
    y = x.copy()
    yy, xx = np.meshgrid(np.arange(x.shape[-2]), np.arange(x.shape[-1]), indexing="ij")
    land = (yy - x.shape[-2] / 2) ** 2 + (xx - x.shape[-1] / 3) ** 2 < 90 + 30 * np.sin(xx / 3.0)
    y[..., land] = np.nan
    y[rng.random(x.shape) < 0.01] = np.nan
    return y


def precipitation(seed: int, shape=(8, 48, 64)) -> np.ndarray:
    """Storms over a dry domain: about 63 % exact zeros, lognormal intensities over six orders of magnitude."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 6, shape[1]), np.linspace(0, 8, shape[2]), indexing="ij")
    storm = np.sin(yy[None] + 0.4 * np.arange(shape[0])[:, None, None]) * np.cos(xx[None] * 0.7)
    wet = storm + rng.normal(size=shape) * 0.3 > 0.2
    return np.where(wet, rng.lognormal(mean=0.5, sigma=2.0, size=shape), 0.0).astype(np.float32)


def signed(seed: int) -> np.ndarray:
    """A field of both signs (a wind component) with calm patches of exact zeros."""
    x = smooth(seed) - 280
    x[:, 10:20, 5:30] = 0.0
    return x


def rel(x: np.ndarray, eps: float) -> float:
    return eps * float(np.nanmax(x) - np.nanmin(x))


def measure() -> dict[str, int]:
    """``{"field/coder": bytes}``: each residual coder's payload (``encode``; NaN points skipped), the streams of the
    log-domain path and of exact storage, and the bitmap sections."""
    import xdiffc
    from xdiffc import masking
    from xdiffc.bitstream import Stream
    from xdiffc.coders import decomposition, interp, lossless, sz3, wavelet
    from xdiffc.entropy import bitmap

    out: dict[str, int] = {}

    def payload(name: str, coder, x: np.ndarray, eps: float) -> None:
        skip = np.isnan(x) if np.isnan(x).any() else None
        out[name] = len(coder.encode(x, rel(x, eps), skip))

    for field, x in (("smooth", smooth(1)), ("smooth_nan", with_nan(smooth(1), 2))):
        for name, coder in (("interp", interp), ("wavelet", wavelet), ("sz3", sz3)):
            payload(f"{field}/{name}", coder, x, 1e-3)
        payload(f"{field}/interp_fine", interp, x, 1e-5)
    for field, x in (("repeating", repeating(3)), ("repeating_nan", with_nan(repeating(3), 4))):
        payload(f"{field}/interp", interp, x, 1e-3)
    for field, x in (("climate", climate(5)), ("climate_nan", with_nan(climate(5), 6))):
        payload(f"{field}/anomaly", decomposition, x, 1e-3)
        payload(f"{field}/interp", interp, x, 1e-3)
    # exact storage: the stream of tol=0 (byte-shuffled zstd)
    out["smooth/lossless"] = len(lossless.encode(smooth(1)))
    out["smooth_nan/lossless"] = len(xdiffc.compress(with_nan(smooth(1), 2), tol=0))
    # the log-domain path: whole streams under a pointwise-relative bound, and its bitmaps
    for field, x in (("precipitation", precipitation(7)), ("signed", signed(8))):
        for r in (1e-2, 1e-3):
            sections = Stream.from_bytes(blob := xdiffc.compress(x, pw_rel_tol=r)).sections  # exceptions included
            out[f"{field}/log_domain_{r:g}"] = len(blob)
        out[f"{field}/zeros_bitmap"] = len(sections["zeros"])
        out[f"{field}/signs_bitmap"] = len(sections["log2"])
    # missing-value masks: a coastline over time with scattered NaN (the stream's section), and a coastline alone
    # that moves by one column every other step (the bitmap coder)
    x = with_nan(smooth(1), 2)
    out["smooth_nan/mask_bitmap"] = len(Stream.from_bytes(xdiffc.compress(x, rel_tol=1e-3)).sections["mask"])
    yy, xx = np.meshgrid(np.arange(96), np.arange(128), indexing="ij")
    coast = np.stack([(yy - 40) ** 2 + (xx - 50 - t // 2) ** 2 < 900 + 300 * np.sin(xx / 5.0) for t in range(12)])
    out["coast/mask_bitmap"] = len(masking.encode_bits(coast))
    # the context coder itself (encode_bits would fall back to zstd): scattered gaps (30 %) that persist from step
    # to step, 1 % of the points flipping each step; only the previous slice's bit predicts them
    rng = np.random.default_rng(10)
    frames = [rng.random((96, 128)) < 0.3]
    for _ in range(11):
        frames.append(frames[-1] ^ (rng.random((96, 128)) < 0.01))
    out["speckle/bitmap_coder"] = len(bitmap.encode(np.stack(frames)))
    return out


def ceiling(measured: int) -> int:
    return math.ceil(measured * (1 + MARGIN))


def main() -> None:
    measured = measure()
    OUT.write_text(json.dumps({"margin": MARGIN, "measured": measured,
                               "ceiling": {k: ceiling(v) for k, v in measured.items()}}, indent=1, sort_keys=True)
                   + "\n")
    for k, v in sorted(measured.items()):
        print(f"{k:36s} {v:8d}", file=sys.stderr)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent.parent))
    main()
