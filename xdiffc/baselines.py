"""The compressors xdiffc is measured against, at the same absolute bound.

- ``sz3``: SZ3 through ``pysz`` in ABS mode.
- ``zfp``: ZFP through ``zfpy`` in fixed-accuracy mode (``pip install xdiffc[bench]``).
- ``sperr``: SPERR (wavelets, SPECK, outlier coding) through ``numcodecs-wasm-sperr`` in its
  pointwise-error mode (``pip install xdiffc[bench]``).
- ``bitround_zstd``: keep the fewest mantissa bits that meet the bound, byte-shuffle, zstd.

Missing points (NaN, inf, fill values, |x| >= 1e30) are handed to every baseline already
replaced by the previous valid value (:func:`prepare`): none of them can skip points, a huge
fill value costs SZ3 dearly and breaks ZFP's bound on its neighbours, and NaN is refused
outright. So each baseline gets its easiest job, its mask is neither stored nor counted,
and the missing values are not restored: a baseline's ratio is an upper bound on what it
would reach while keeping the data intact. xdiffc's own ratio always counts its mask.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import zstandard

from .masking import fill_gaps, special_mask

_BITROUND_ZSTD_LEVEL = 9


@dataclass(frozen=True)
class Baseline:
    """A compressor as two functions: ``encode(x, tol) -> bytes`` and ``decode(blob, dtype, shape) -> array``."""

    name: str
    encode: Callable[[np.ndarray, float], bytes]
    decode: Callable[[bytes, np.dtype, tuple[int, ...]], np.ndarray]


def prepare(x: np.ndarray, missing: np.ndarray | None = None) -> np.ndarray:
    """The array a baseline is given: C-contiguous, native byte order, missing points gap-filled."""
    arr = np.ascontiguousarray(x, dtype=x.dtype.newbyteorder("="))
    missing = special_mask(arr) if missing is None else missing
    return np.ascontiguousarray(fill_gaps(arr, missing)) if missing.any() else arr


def _sz3_encode(x: np.ndarray, tol: float) -> bytes:
    from pysz import sz, szConfig, szErrorBoundMode

    cfg = szConfig()  # a fresh config per call
    cfg.errorBoundMode = szErrorBoundMode.ABS
    cfg.absErrorBound = float(tol)
    blob, _ = sz.compress(x, cfg)
    return blob.tobytes()


def _sz3_decode(blob: bytes, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    from pysz import sz

    y = sz.decompress(np.frombuffer(blob, np.uint8), dtype, shape)
    return np.asarray(y[0] if isinstance(y, tuple) else y).reshape(shape)


def _zfp_encode(x: np.ndarray, tol: float) -> bytes:
    import zfpy

    return zfpy.compress_numpy(x, tolerance=float(tol))


def _zfp_decode(blob: bytes, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    import zfpy

    return zfpy.decompress_numpy(blob).reshape(shape)


def _sperr_codec(x: np.ndarray, tol: float):
    """SPERR bounding its float64 reconstruction by ``tol`` less one ulp of ``max|x|`` in ``x``'s dtype,
    so that the cast to float32 cannot take a point past ``tol`` (the brief, section 6)."""
    from numcodecs_wasm_sperr import Sperr

    amax = float(np.max(np.abs(x))) if x.size else 0.0
    pwe = float(tol) - float(np.spacing(x.dtype.type(amax)))
    return Sperr(mode="pwe", pwe=max(pwe, float(tol) / 2))


def _sperr_encode(x: np.ndarray, tol: float) -> bytes:
    return bytes(np.asarray(_sperr_codec(x, tol).encode(x)).tobytes())


def _sperr_decode(blob: bytes, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    from numcodecs_wasm_sperr import Sperr

    y = Sperr(mode="pwe", pwe=1.0).decode(np.frombuffer(blob, np.uint8))  # the stream holds shape and bound
    return np.asarray(y, dtype).reshape(shape)


def _bitround(x: np.ndarray, tol: float) -> np.ndarray:
    """Round mantissas (to nearest) to the fewest bits whose worst error over the array stays within ``tol``."""
    info = np.finfo(x.dtype)
    uint = np.dtype(f"u{x.itemsize}").type
    bits = x.view(uint)
    for drop in range(info.nmant, 0, -1):
        half, keep = uint(1) << uint(drop - 1), ~((uint(1) << uint(drop)) - uint(1))
        rounded = ((bits + half) & keep).view(x.dtype)
        with np.errstate(invalid="ignore", over="ignore"):
            if np.all(np.abs(rounded.astype(np.float64) - x) <= tol):
                return rounded
    return x


def _bitround_encode(x: np.ndarray, tol: float) -> bytes:
    planes = _bitround(x, tol).view(np.uint8).reshape(-1, x.itemsize).T
    return zstandard.ZstdCompressor(level=_BITROUND_ZSTD_LEVEL).compress(np.ascontiguousarray(planes).tobytes())


def _bitround_decode(blob: bytes, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    raw = np.frombuffer(zstandard.ZstdDecompressor().decompress(blob), np.uint8).reshape(dtype.itemsize, -1)
    return np.ascontiguousarray(raw.T).view(dtype).reshape(shape)


BASELINES: dict[str, Baseline] = {
    "sz3": Baseline("SZ3", _sz3_encode, _sz3_decode),
    "zfp": Baseline("ZFP", _zfp_encode, _zfp_decode),
    "sperr": Baseline("SPERR", _sperr_encode, _sperr_decode),
    "bitround_zstd": Baseline("BitRound+zstd", _bitround_encode, _bitround_decode),
}


def run(name: str, x: np.ndarray, tol: float, missing: np.ndarray | None = None) -> tuple[int, np.ndarray]:
    """Compress and decompress ``x`` with baseline ``name``: (stored bytes, reconstruction of the prepared array)."""
    base = BASELINES[name]
    arr = prepare(x, missing)
    blob = base.encode(arr, tol)
    return len(blob), base.decode(blob, arr.dtype, arr.shape)
