"""``compress`` and ``decompress``: the error-bounded pipeline for numpy arrays.

    x -> mask NaN/inf/fill (kept exactly) -> residual coders under the bound, each tried
      -> exact check in the output dtype, violations stored exactly -> keep the cheapest
      -> container (header, sections, CRC32)

Every candidate is decoded exactly as the decoder will decode it, then checked in the
output dtype, so the bound holds whatever the coder's arithmetic did. Exact storage is
always a candidate, so no chunk costs more than lossless zstd.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from . import guarantee, masking
from .bitstream import Header, Stream
from .coders import RESIDUAL_CODERS, lossless
from .errors import CorruptStreamError

log = logging.getLogger(__name__)

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
#: Arrays smaller than this are stored exactly: no residual coder beats zstd on a handful of values.
MIN_LOSSY_SIZE = 16
#: Coders never see a bound above this, so 2*tol stays finite.
_MAX_CODER_TOL = 1e300


def _check_bound(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return value


def resolve_tol(x: np.ndarray, valid: np.ndarray | None, tol: float | None, rel_tol: float | None) -> float:
    """The absolute bound: ``tol``, or ``rel_tol`` times the range of the valid values."""
    tol, rel_tol = _check_bound("tol", tol), _check_bound("rel_tol", rel_tol)
    if (tol is None) == (rel_tol is None):
        raise ValueError("give exactly one of tol (absolute bound) or rel_tol (fraction of the value range)")
    if tol is not None:
        return tol
    data = x if valid is None else x[valid]
    if data.size == 0:
        return 0.0
    value_range = float(np.max(data)) - float(np.min(data))
    return rel_tol * value_range


@dataclass
class _Candidate:
    sections: dict[str, bytes]

    @property
    def nbytes(self) -> int:
        return sum(len(v) for v in self.sections.values())


def _input_array(x) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiub" or arr.dtype.kind == "f" and arr.dtype.newbyteorder("=") not in FLOAT_DTYPES:
        raise TypeError(
            f"xdiffc compresses float32 and float64 arrays (integers and booleans losslessly); "
            f"got dtype {arr.dtype}. Convert with x.astype(np.float32) first."
        )
    return arr


def _working_layout(arr: np.ndarray) -> tuple[np.ndarray, str]:
    """A C-contiguous, native-byte-order array and the order to give back ('F' input is coded transposed)."""
    order = "F" if arr.ndim > 1 and arr.flags.f_contiguous and not arr.flags.c_contiguous else "C"
    work = arr.T if order == "F" else arr
    return np.ascontiguousarray(work, dtype=work.dtype.newbyteorder("=")), order


def _pointwise_candidates(work: np.ndarray, tol: float, mask: np.ndarray) -> list[_Candidate]:
    valid = ~mask
    skip = mask if mask.any() else None
    values = work.astype(np.float64)
    coder_tol = min(tol, _MAX_CODER_TOL)
    out = []
    for name, coder in RESIDUAL_CODERS.items():
        try:
            payload = coder.encode(values, coder_tol, skip)
            y = coder.decode(payload, work.shape, skip).astype(work.dtype)
        except Exception as err:  # a coder that cannot handle this input is simply not a candidate
            log.debug("residual coder %s skipped: %s", name, err)
            continue
        bad = guarantee.violations(work, y, tol, valid)
        sections = {name: payload}
        if bad.size:
            sections["exc"] = guarantee.encode_exceptions(work, bad)
        out.append(_Candidate(sections))
    return out


def compress(
    x,
    tol: float | None = None,
    rel_tol: float | None = None,
    *,
    fill_values: Iterable[float] = (),
    fill_threshold: float = masking.FILL_THRESHOLD,
) -> bytes:
    """Compress a numpy array so that every valid value moves by at most the bound.

    Parameters
    ----------
    x : array_like
        float32 or float64, any shape (0-D to N-D), any memory order or byte order.
        Integer and boolean arrays are stored losslessly.
    tol : float
        Absolute bound: ``|y - x| <= tol`` for every finite, non-fill value. ``0`` is lossless.
    rel_tol : float
        Relative bound: ``tol = rel_tol * (max - min)`` over the finite, non-fill values.
    fill_values : iterable of float
        Values that mark missing data (``_FillValue``, ``missing_value``); kept bit-exactly.
    fill_threshold : float
        Values at least this large in magnitude are also treated as fill (default 1e30).

    Returns
    -------
    bytes
        A self-describing stream; :func:`decompress` gives back the same shape and dtype.
    """
    arr = _input_array(x)
    work, order = _working_layout(arr)
    is_float = work.dtype.kind == "f"
    mask = masking.special_mask(work, fill_values, fill_threshold) if is_float else None
    bound = resolve_tol(work, None if mask is None else ~mask, tol, rel_tol)
    header = dict(dtype=arr.dtype.str, shape=arr.shape, order=order, tol=bound,
                  rel_tol=float("nan") if rel_tol is None else float(rel_tol))

    exact = _Candidate({"raw": lossless.encode(work)})
    if not is_float or bound == 0 or work.size < MIN_LOSSY_SIZE:
        return Stream(Header(mode="lossless", **{**header, "tol": 0.0}), exact.sections).to_bytes()

    sections: dict[str, bytes] = {}
    if mask.any():
        sections["mask"], sections["special"] = masking.encode(work, mask)
    candidates = _pointwise_candidates(work, bound, mask)
    best = min(candidates, key=lambda c: c.nbytes, default=None)
    if best is None or best.nbytes + sum(map(len, sections.values())) >= exact.nbytes:
        return Stream(Header(mode="lossless", **{**header, "tol": 0.0}), exact.sections).to_bytes()
    sections.update(best.sections)
    return Stream(Header(mode="pointwise", **header), sections).to_bytes()


def decompress(blob: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    """Rebuild the array from a stream written by :func:`compress`: same shape, dtype and memory order.

    Raises :class:`~xdiffc.errors.CorruptStreamError` for a truncated, damaged or foreign stream.
    """
    if isinstance(blob, np.ndarray):
        blob = blob.tobytes()
    stream = Stream.from_bytes(blob)
    h = stream.header
    dtype = np.dtype(h.dtype)
    native = dtype.newbyteorder("=")
    work_shape = h.shape[::-1] if h.order == "F" else h.shape
    if h.mode == "lossless":
        y = lossless.decode(stream.section("raw"), work_shape, native)
    elif h.mode == "pointwise":
        y = _decode_pointwise(stream, work_shape, native)
    else:
        raise CorruptStreamError(f"this xdiffc cannot decode mode {h.mode!r}")
    if h.order == "F":
        y = y.T
    return y.astype(dtype, copy=False)


def _decode_pointwise(stream: Stream, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    if dtype not in FLOAT_DTYPES:
        raise CorruptStreamError(f"a pointwise stream cannot hold dtype {dtype}")
    mask = special = None
    if "mask" in stream.sections:
        mask, special = masking.decode(stream.section("mask"), stream.section("special"), shape, dtype)
    names = [n for n in RESIDUAL_CODERS if n in stream.sections]
    if len(names) != 1:
        raise CorruptStreamError("the stream does not name exactly one residual coder")
    y = RESIDUAL_CODERS[names[0]].decode(stream.sections[names[0]], shape, mask).astype(dtype)
    if mask is not None:
        y[mask] = special
    guarantee.apply_exceptions(y, stream.sections.get("exc", b""))
    return y
