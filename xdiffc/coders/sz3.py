"""SZ3 (through ``pysz``, ABS mode) as a residual coder.

SZ3 cannot skip points, so masked points are first filled with their previous valid
neighbour (:func:`xdiffc.masking.fill_gaps`). SZ3 works in float32 when the bound is far
above float32 resolution, which halves the cost of its unpredictable values; the guarantee
layer repairs any point that this rounding pushes past the bound.

Payload, version 2: u8 ``0x80 | dtype code`` (code 0: float32, 1: float64), ``uv`` length of the SZ3
stream, the SZ3 stream (its length is checked: pysz decodes a stream cut short by a byte without a
word). Version 1, written before 0.3 and still read: u8 dtype code, then the SZ3 stream.
"""

from __future__ import annotations

import logging

import numpy as np

from ..byteio import Reader, uvarint
from ..errors import CorruptStreamError
from ..masking import fill_gaps
from . import interp
from .base import Trial

log = logging.getLogger(__name__)

#: SZ3 handles at most four dimensions; leading dimensions are merged.
_MAX_NDIM = 4
_DTYPES = (np.float32, np.float64)
#: The first byte's flag of version 2 payloads, which give the SZ3 stream's length.
_LENGTH_FLAG = 0x80


def _sz_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    shape = tuple(n for n in shape if n != 1) or (1,)
    if len(shape) > _MAX_NDIM:
        shape = (int(np.prod(shape[: len(shape) - _MAX_NDIM + 1])),) + shape[-_MAX_NDIM + 1 :]
    return shape


def _config(tol: float):
    from pysz import szConfig, szErrorBoundMode

    cfg = szConfig()  # a fresh config per call: pysz configs are not shared between threads
    cfg.errorBoundMode = szErrorBoundMode.ABS
    cfg.absErrorBound = float(tol)
    return cfg


def encode(values: np.ndarray, tol: float, skip: np.ndarray | None = None) -> bytes:
    from pysz import sz

    x = values if skip is None else fill_gaps(values, skip)
    amax = float(np.max(np.abs(x))) if x.size else 0.0
    # float32 keeps ~7 digits: use it only where its rounding is far below the bound.
    code = 0 if amax * 2.0**-22 < tol and amax < 1e37 else 1
    arr = np.ascontiguousarray(x, dtype=_DTYPES[code]).reshape(_sz_shape(x.shape))
    blob, _ = sz.compress(arr, _config(tol))
    return bytes([_LENGTH_FLAG | code]) + uvarint(blob.nbytes) + blob.tobytes()


def decode(payload: bytes, shape: tuple[int, ...], skip: np.ndarray | None = None,
           dtype: np.dtype | None = None) -> np.ndarray:
    """The float64 field (or, given ``dtype``, that field cast to it, with no float64 copy)."""
    from pysz import sz

    if len(payload) < 2 or payload[0] & ~_LENGTH_FLAG > 1:
        raise CorruptStreamError("the stream's SZ3 section is damaged")
    coded = _DTYPES[payload[0] & ~_LENGTH_FLAG]
    r = Reader(payload, "the stream's SZ3 section")
    r.u8()
    if payload[0] & _LENGTH_FLAG:
        body = r.take(r.uvarint(len(payload)))
        if len(r.rest()):
            raise CorruptStreamError("the stream's SZ3 section has bytes after its SZ3 stream")
    else:
        body = r.rest()
    try:
        out = sz.decompress(np.frombuffer(body, np.uint8), coded, _sz_shape(shape))
    except Exception as err:  # pysz raises RuntimeError/ValueError for bad input
        raise CorruptStreamError(f"the stream's SZ3 section is damaged ({err})") from None
    out = out[0] if isinstance(out, tuple) else out
    if out.size != int(np.prod(shape, dtype=np.int64)):
        raise CorruptStreamError("the stream's SZ3 section has the wrong size")
    return np.asarray(out, dtype or np.float64).reshape(shape)


#: SZ3 is encoded in full where its size on interp's sample block is below this times interp's estimate
#: there (it never won on the benchmark fields, where its full size was 1.05-2.2x interp's).
MARGIN = 1.1


class SZ3Coder:
    """SZ3 as a candidate beside interp, at the full search only (:attr:`min_level`); its gate compares the two on
    interp's sample block. At level 8 it won none of 153 chunks of the 11 benchmark fields (whole, in 12-step
    chunks and single steps, eps 1e-2 to 1e-4, 2026-12-07), and cost a (1, 64, 128) chunk 0.43 ms of 4: small
    chunks are always encoded by it, having no sample."""

    name, priority, min_level = "sz3", 30, 9

    def applies(self, shape: tuple[int, ...]) -> bool:
        return True

    def worth_encoding(self, trial: Trial) -> bool:
        """Always on small arrays, and where interp left no sample estimate; else where SZ3's size on interp's
        sample block is below :data:`MARGIN` times interp's estimate there. Never where the decomposition
        superseded interp."""
        if trial.superseded:
            return False
        if trial.target.size <= interp.SAMPLE_SIZE or trial.sample_bytes is None:
            return True
        block = interp.sample_block(trial.target.shape)
        sub = None if trial.skip is None else np.ascontiguousarray(trial.skip[block])
        try:
            size = len(encode(np.ascontiguousarray(trial.target[block]), trial.tol, sub))
        except Exception as err:  # SZ3 cannot code this input
            log.debug("SZ3 estimate failed: %s", err)
            return False
        return size < MARGIN * trial.sample_bytes

    def encode(self, trial: Trial) -> tuple[bytes, np.ndarray | None]:
        """The payload, and its decoded field unless the payload alone costs what the best candidate costs."""
        payload = encode(trial.target, trial.tol, trial.skip)
        if len(payload) >= trial.best:
            return payload, None
        return payload, decode(payload, trial.target.shape, trial.skip, dtype=trial.dtype)

    def decode(self, payload: bytes, shape: tuple[int, ...], skip: np.ndarray | None = None,
               dtype: np.dtype | None = None) -> np.ndarray:
        return decode(payload, shape, skip, dtype)
