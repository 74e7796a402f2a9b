"""The compressors xdiffc is measured against, at the same absolute bound.

- SZ3 through ``pysz`` in ABS mode.
- ZFP through ``zfpy`` in fixed-accuracy mode (``pip install xdiffc[bench]``).
- BitRound + zstd: keep the fewest mantissa bits that meet the bound, then zstd.

Each function returns the number of stored bytes and the reconstruction, so callers check the
bound themselves. Missing values (NaN, fill) are handed over as they are where the compressor
accepts them; NaN, which SZ3 and ZFP cannot take, is first replaced by the previous valid value,
which makes their job easier, not harder, and the result is not restored (their cost is a floor).
"""

from __future__ import annotations

import numpy as np
import zstandard

from .masking import fill_gaps


def _without_nan(x: np.ndarray) -> np.ndarray:
    nan = np.isnan(x)
    return np.ascontiguousarray(fill_gaps(x, nan) if nan.any() else x)


def sz3(x: np.ndarray, tol: float) -> tuple[int, np.ndarray]:
    from pysz import sz, szConfig, szErrorBoundMode

    cfg = szConfig()  # a fresh config per call
    cfg.errorBoundMode = szErrorBoundMode.ABS
    cfg.absErrorBound = float(tol)
    arr = _without_nan(x)
    blob, _ = sz.compress(arr, cfg)
    y = sz.decompress(blob, arr.dtype, arr.shape)
    return blob.nbytes, np.asarray(y[0] if isinstance(y, tuple) else y)


def zfp(x: np.ndarray, tol: float) -> tuple[int, np.ndarray]:
    import zfpy

    arr = _without_nan(x)
    blob = zfpy.compress_numpy(arr, tolerance=float(tol))
    return len(blob), zfpy.decompress_numpy(blob)


def bitround_zstd(x: np.ndarray, tol: float, level: int = 9) -> tuple[int, np.ndarray]:
    """Round mantissas to the fewest bits whose worst-case error over the array stays within ``tol``."""
    arr = np.ascontiguousarray(x)
    info = np.finfo(arr.dtype)
    uint = {4: np.uint32, 8: np.uint64}[arr.itemsize]
    finite = np.isfinite(arr)
    amax = float(np.max(np.abs(arr[finite]))) if finite.any() else 0.0
    y = arr
    for keep in range(0, info.nmant + 1):
        drop = info.nmant - keep
        if drop == 0:
            y = arr
            break
        bits = arr.view(uint)
        half = uint(1) << uint(drop - 1)
        mask = ~((uint(1) << uint(drop)) - uint(1))
        cand = ((bits + half) & mask).view(arr.dtype)
        cand = np.where(finite, cand, arr)
        with np.errstate(invalid="ignore", over="ignore"):
            err = np.abs(cand.astype(np.float64) - arr)
        if amax == 0 or np.max(err[finite], initial=0.0) <= tol:
            y = cand
            break
    raw = np.ascontiguousarray(y).view(np.uint8).reshape(-1, arr.itemsize).T
    return len(zstandard.ZstdCompressor(level=level).compress(np.ascontiguousarray(raw).tobytes())), y
