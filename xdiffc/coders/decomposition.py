"""Temporal decomposition as a residual coder: a climatology coded once, the anomalies under the bound.

Along the slowest axis (time, in a chunk of climate output) the field is split into a
climatology and anomalies. The climatology is the time mean, or with a period ``P`` (a
seasonal or diurnal cycle, detected from the values) one mean field per phase ``t mod P``.
It is coded once by the interpolation coder at :data:`MEAN_FRACTION` of the bound, so that
its coding error adds little roughness to the anomalies; the anomalies ``x - decoded
climatology`` are then coded under the full bound by the same coder. Interpolating over
neighbouring steps adds their anomalies to every prediction error; the climatology does not.

The decoder rebuilds ``climatology[t mod P] + anomaly`` exactly as the encoder does (in float64, or in
float32 where the anomalies were coded in float32: a float32 output under a bound that allows it), and the
core checks the bound on that sum in the output dtype. Skipped (missing)
points are left out of the means and given no symbol.

Payload (little-endian, ``uv`` = unsigned LEB128 varint):

==========  ==============================================================
``u8``      format version (1)
``uv``      period ``P`` (1 = the time mean), ``1 <= P <= shape[0]``
``uv``      length of the climatology payload, then that payload: the
            interpolation coder's, for shape ``(P,) + shape[1:]``
bytes       the anomalies: the interpolation coder's payload for ``shape``
==========  ==============================================================
"""

from __future__ import annotations

import math

import numpy as np

from ..byteio import Reader, uvarint
from ..errors import CorruptStreamError
from ..kernels import kernel
from ..narrow import narrow
from ..options import FULL_SEARCH_LEVEL
from . import interp
from .base import Trial

VERSION = 1
#: The climatology is coded at this fraction of the bound (the issue's calibration: 1/4 beat 1/2 by
#: 36% on 110 TREFHT annual means at eps 1e-2, and by 3% at 12 steps).
MEAN_FRACTION = 0.25
#: Fewest steps along the time axis for the decomposition to be tried.
MIN_STEPS = 4
#: Cycles tried, shortest first: diurnal in 6- and 3-hourly data, seasonal in monthly, diurnal in hourly.
PERIODS = (4, 8, 12, 24)
#: A period needs at least this many full cycles in the chunk (each phase mean is coded once).
MIN_CYCLES = 4
#: A period is kept where the per-phase means leave at most this fraction of the anomaly variance of the
#: best shorter choice (both unbiased: over ``n - P`` and ``n - 1`` degrees of freedom, so that fitting
#: more means to noise does not pass for a cycle; 24 is not taken for 12 on monthly data).
PERIOD_GAIN = 0.7
#: Tried only where the climatology leaves at most this fraction of the field's variance in the anomalies.
MAX_ANOMALY_VARIANCE = 0.5
#: Encoded in full only where its size on the sample block is below this times interp's there. The block's
#: ratio strays from the field's: on the 11 benchmark fields at eps 1e-2 to 1e-4 by -0.06 to +0.06 mostly,
#: but on a daily global TS at 1e-2 the central block read 1.15 where the field gave 0.90.
MARGIN = 1.25
#: Where the decomposition codes the sample block in at most this fraction of interp's bytes, interp alone is not
#: encoded in full (it cannot win): on the 11 benchmark fields at eps 1e-2 to 1e-4, every sample ratio below
#: 0.85 came with a full-field ratio of at most 0.91.
DECISIVE = 0.85
#: Encoded in full where fewer than this fraction of the sample block is valid (the block cannot tell).
MIN_SAMPLE_VALID = 0.5
#: From this level, where the sample ratio lies between DECISIVE and MARGIN, both the decomposition and interp
#: are encoded in full and the smaller kept. Below it only the one the ratio favours is, unless its full size
#: exceeds MISS times its estimate (its bytes on the block, scaled to the chunk's valid points): the block then
#: misjudged the chunk, and the other is encoded too. Measured on the 11 benchmark fields at eps 1e-2 to 1e-4,
#: whole and in 12-step chunks (2026-12-07): a daily global TS whose central block read 1.135 and 1.027 where
#: the field gave 0.893 and 0.955 missed by 4.1x and 1.9x; the blocks that judged right missed by 0.83-1.43x,
#: once 2.8x. Wrong choices not caught cost 0.3-1.8% of the chunk (four cells).
MISS = 1.5


def applies(shape: tuple[int, ...]) -> bool:
    """Whether the decomposition can be tried: at least 2 dimensions and :data:`MIN_STEPS` steps on the first."""
    return len(shape) >= 2 and shape[0] >= MIN_STEPS


def _cycles(a: np.ndarray, period: int) -> tuple[np.ndarray, np.ndarray]:
    """Views of ``a``: its full cycles along the first axis, shape ``(cycles, period) + shape[1:]``, and the last,
    partial cycle (maybe empty). One array operation over the cycles replaces a loop of one per cycle (a period of 1
    over 121 hourly steps had made a small chunk's decode 121 numpy calls). Never a copy, whatever ``a``'s layout
    (strides, not ``reshape``, which may copy; its ``copy=False`` needs numpy 2.1): writes reach ``a``."""
    full = a.shape[0] // period * period
    step = a.strides[0]
    cycles = np.lib.stride_tricks.as_strided(a, (full // period, period) + a.shape[1:], (step * period,) + a.strides)
    return cycles, a[full:]


def _counts(keep: np.ndarray, period: int) -> np.ndarray:
    """The number of valid points of each phase, shape ``(period,) + shape[1:]`` (exact in float64)."""
    cycles, rest = _cycles(keep, period)
    count = cycles.sum(axis=0, dtype=np.float64)  # zeros where there is no full cycle
    count[: len(rest)] += rest
    return count


def _empty(keep: np.ndarray | None, period: int) -> np.ndarray | None:
    """Where a phase has no valid point (the climatology's skip mask), or None."""
    if keep is None:
        return None
    empty = _counts(keep, period) == 0
    return empty if empty.any() else None


def _means(values: np.ndarray, keep: np.ndarray | None, period: int) -> np.ndarray:
    """The per-phase means over the valid points, shape ``(period,) + shape[1:]`` (0 where a phase has none)."""
    return _phase_means(*_rows(values, keep), period).reshape((period,) + values.shape[1:])


def _phase_means(values: np.ndarray, keep: np.ndarray, masked: bool, period: int) -> np.ndarray:
    """:func:`_means` of the (steps, points) rows of :func:`_rows`, shape ``(period, points)``."""
    total, count = _phase_sums(values, keep, masked, period)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


def _rows(values: np.ndarray, keep: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, bool]:
    """``values`` and ``keep`` as (steps, points) for the kernels, and whether there is a mask."""
    rows = values.reshape(values.shape[0], -1)
    return rows, (np.ones((1, 1), bool) if keep is None else keep.reshape(rows.shape)), keep is not None


@kernel
def _phase_sums(values, keep, masked, period):
    """Per-phase sums (float64) and counts of the valid ``values`` (steps, points), phase ``t mod period``.

    Each sum is taken in the order of the steps, as the loop of numpy additions over the cycles that this
    replaces did (same bits): that loop made the decomposition's statistics about a quarter of a small chunk's
    encode (an hourly 121 x 384 field: 121 numpy calls per mean, 12 means)."""
    n, m = values.shape
    total = np.zeros((period, m))
    count = np.zeros((period, m))
    for t in range(n):
        ph = t % period
        for j in range(m):
            if not masked or keep[t, j]:
                total[ph, j] += np.float64(values[t, j])
                count[ph, j] += 1.0
    return total, count


@kernel
def _square_sum(values, keep, masked, means):
    """(sum of the squared anomalies ``values[t] - means[t mod period]`` over the valid points, their count)."""
    n, m = values.shape
    period = means.shape[0]
    acc = np.zeros(4)  # four partial sums: one running sum would be a chain of dependent additions
    count = 0
    for t in range(n):
        ph = t % period
        for j in range(m):
            if not masked or keep[t, j]:
                d = np.float64(values[t, j]) - means[ph, j]
                acc[j & 3] += d * d
                count += 1
    return (acc[0] + acc[1]) + (acc[2] + acc[3]), count


def _combine(clim: np.ndarray, anomaly: np.ndarray, period: int) -> np.ndarray:
    """``clim[t mod period] + anomaly``, computed in float64 and stored in place in ``anomaly`` (float64, or
    float32): the decoder's output."""
    cycles, rest = _cycles(anomaly, period)
    cycles += clim
    rest += clim[: len(rest)]
    return anomaly


def _encode(values: np.ndarray, tol: float, skip: np.ndarray | None, period: int,
            dtype: np.dtype | None = None, level: int = FULL_SEARCH_LEVEL) -> tuple[bytes, np.ndarray]:
    """The payload, and what the decoder rebuilds from it (in ``dtype``, default float64); interp codes the
    climatology and the anomalies at ``level``."""
    keep = None if skip is None else ~skip
    head, clim = interp.encode_reconstruct(_means(values, keep, period), tol * MEAN_FRACTION, _empty(keep, period),
                                           level=level)
    anomaly = None
    if dtype is not None and np.dtype(dtype) == np.float32:
        # float32 anomalies, for interp's float32 reconstruction built in their memory. Their rounding (half a
        # float32 spacing) fits in the margin interp takes off the bound, two spacings of which its own rounding
        # uses half of one; where interp would keep float64, so do the anomalies.
        anomaly = _anomaly(values, clim, skip, period, np.float32)
        if interp.float32_margin(anomaly, keep, tol) is None:
            anomaly = None
    if anomaly is None:
        anomaly = _anomaly(values, clim, skip, period, np.float64)
    # rebuilt in the anomaly's memory, the climatology added back and cast before interp's estimates
    body, y = interp.encode_reconstruct(anomaly, tol, skip, dtype=dtype, level=level, scratch=True,
                                        finish=lambda recon: _combine(clim, recon, period))
    del anomaly
    payload = bytes([VERSION]) + uvarint(period) + uvarint(len(head)) + head + body
    return payload, y


def _anomaly(values: np.ndarray, clim: np.ndarray, skip: np.ndarray | None, period: int, dtype: type) -> np.ndarray:
    """``values - clim[t mod period]`` in ``dtype``, 0 at skipped points."""
    anomaly = np.empty(values.shape, dtype)
    with np.errstate(invalid="ignore", over="ignore"):  # at skipped points (set to 0 below), or past float64
        (cycles, rest), (out, out_rest) = _cycles(values, period), _cycles(anomaly, period)
        np.subtract(cycles, clim, out=out)  # no temporary
        np.subtract(rest, clim[: len(rest)], out=out_rest)
    if skip is not None:
        anomaly[skip] = 0.0
    return anomaly


def detect_period(values: np.ndarray, keep: np.ndarray | None) -> int:
    """The cycle along the first axis whose per-phase means remove most anomaly variance, or 1 (none).

    A period is taken only with :data:`MIN_CYCLES` full cycles and where it leaves at most
    :data:`PERIOD_GAIN` of the variance that the best shorter choice leaves.
    """
    n = values.shape[0]
    best, best_var = 1, _anomaly_variance(values, keep, 1) * n / (n - 1)
    for period in PERIODS:
        if n >= MIN_CYCLES * period:
            var = _anomaly_variance(values, keep, period) * n / (n - period)
            if var <= PERIOD_GAIN * best_var:
                best, best_var = period, var
    return best


def _anomaly_variance(values: np.ndarray, keep: np.ndarray | None, period: int) -> float:
    """The mean squared anomaly from the per-phase means over the valid points (inf where it overflows)."""
    rows = _rows(values, keep)
    square, n = _square_sum(*rows, _phase_means(*rows, period))
    return square / n if n else 0.0


def _sample(shape: tuple[int, ...]) -> tuple[slice, ...]:
    """A central block with every step and at most :data:`interp.SAMPLE_SIZE` points: halve the longest other axis."""
    ext = list(shape)
    while math.prod(ext) > interp.SAMPLE_SIZE and max(ext[1:]) > 1:
        k = 1 + int(np.argmax(ext[1:]))
        ext[k] //= 2
    return tuple(slice((n - e) // 2, (n - e) // 2 + e) for n, e in zip(shape, ext))


def sample_ratio(values: np.ndarray, tol: float, skip: np.ndarray | None, trial: Trial | None = None) -> float:
    """The decomposition's bytes over interp's on a central block with every step, where it may pay: 0 where
    the block is the whole field or mostly missing (it cannot tell; to be encoded in full), inf where it
    cannot win (the shape, or the climatology explains too little variance). Kept in ``trial`` for the next
    call, with both sizes scaled to the field's valid points (``trial.block_estimates``)."""
    if trial is not None and trial.anomaly_ratio is not None:
        return trial.anomaly_ratio
    ratio, estimates = _sample_ratio(values, tol, skip, FULL_SEARCH_LEVEL if trial is None else trial.level)
    if trial is not None:
        trial.anomaly_ratio, trial.block_estimates = ratio, estimates
    return ratio


def _sample_ratio(values: np.ndarray, tol: float, skip: np.ndarray | None,
                  level: int) -> tuple[float, tuple[float, float] | None]:
    if not applies(values.shape):
        return math.inf, None
    block = _sample(values.shape)
    v = np.ascontiguousarray(values[block])
    sub = None if skip is None else np.ascontiguousarray(skip[block])
    keep = None if sub is None else ~sub
    if keep is not None and np.mean(keep) < MIN_SAMPLE_VALID:
        return (0.0 if np.any(~skip) else math.inf), None
    with np.errstate(invalid="ignore", over="ignore"):  # an overflow makes the estimate inf: not tried
        total = float(np.var(v[keep] if keep is not None else v, dtype=np.float64))
    period = detect_period(v, keep)
    if not np.isfinite(total) or _anomaly_variance(v, keep, period) > MAX_ANOMALY_VARIANCE * total:
        return math.inf, None
    if v.size == values.size:  # the block is the whole field: encoding it is the estimate
        return 0.0, None
    ours = len(_encode(v, tol, sub, period, level=level)[0])
    theirs = len(interp.encode_reconstruct(v, tol, sub, level=level)[0])
    scale = (values.size if skip is None else np.count_nonzero(~skip)) / (v.size if keep is None else np.count_nonzero(keep))
    return ours / theirs, (ours * scale, theirs * scale)


def worth_trying(values: np.ndarray, tol: float, skip: np.ndarray | None, trial: Trial | None = None) -> bool:
    """Whether to encode in full: the shape allows it, the climatology (mean or cycle) explains most of the
    variance on a central block with every step, and the decomposition codes that block smaller than
    interp alone (by :data:`MARGIN`); or the block is mostly missing (land in an ocean field), so it
    cannot tell, and the field has valid points."""
    return sample_ratio(values, tol, skip, trial) < MARGIN


def supersedes_interp(values: np.ndarray, tol: float, skip: np.ndarray | None, trial: Trial | None = None) -> bool:
    """Whether the sample block says the decomposition wins so clearly (:data:`DECISIVE`) that interp alone
    need not be encoded in full."""
    return 0.0 < sample_ratio(values, tol, skip, trial) < DECISIVE


def encode_reconstruct(values: np.ndarray, tol: float, skip: np.ndarray | None = None, *,
                       dtype: np.dtype | None = None, level: int = FULL_SEARCH_LEVEL) -> tuple[bytes, np.ndarray]:
    """The payload and the field :func:`decode` rebuilds from it, bit for bit (cast to ``dtype`` if given);
    ``level`` is interp's, for the climatology and the anomalies."""
    if not applies(values.shape):
        raise ValueError(f"the temporal decomposition needs >= 2 dimensions and >= {MIN_STEPS} steps, "
                         f"got shape {values.shape}")
    if not (math.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be finite and positive, got {tol!r}")
    skip = None if skip is None else np.asarray(skip, bool)
    period = detect_period(values, None if skip is None else ~skip)
    return _encode(values, float(tol), skip, period, dtype, level)


def encode(values: np.ndarray, tol: float, skip: np.ndarray | None = None) -> bytes:
    """Compress ``values`` so that :func:`decode` returns them within ``tol`` (up to float64 rounding) off ``skip``."""
    return encode_reconstruct(values, tol, skip)[0]


def decode(payload: bytes, shape: tuple[int, ...], skip: np.ndarray | None = None,
           dtype: np.dtype | None = None) -> np.ndarray:
    """The field of ``shape`` (float64, or float32 where the anomalies were coded in float32; cast to ``dtype`` if
    given) that :func:`encode` coded into ``payload``."""
    shape = tuple(int(n) for n in shape)
    if not applies(shape):
        raise CorruptStreamError(f"a temporal-decomposition section cannot hold shape {shape}")
    r = Reader(payload, "the anomaly payload")
    if r.u8() != VERSION:
        raise CorruptStreamError("the anomaly payload has an unknown version")
    period = r.uvarint()
    if not 1 <= period <= shape[0]:
        raise CorruptStreamError(f"the anomaly payload's period {period} does not fit {shape[0]} steps")
    head = bytes(r.take(r.uvarint()))
    body = bytes(r.rest())
    keep = None if skip is None else ~np.asarray(skip, bool)
    clim = interp.decode(head, (period,) + shape[1:], _empty(keep, period))
    y = _combine(clim, interp.decode(body, shape, skip), period)
    return narrow(y, dtype)


class DecompositionCoder:
    """The temporal decomposition, tried first from level :attr:`min_level`: where its sample block wins
    decisively (:data:`DECISIVE`), interp and SZ3 are not encoded after it. Below :data:`FULL_SEARCH_LEVEL` one
    of it and interp is encoded where the block favours one, the other only where the block misjudged the chunk
    (:data:`MISS`): if interp is favoured, the decomposition's gate is asked again after interp has run."""

    name, priority, min_level = "anomaly", 10, 4

    def applies(self, shape: tuple[int, ...]) -> bool:
        return applies(shape)

    def worth_encoding(self, trial: Trial) -> bool:
        if not worth_trying(trial.target, trial.tol, trial.skip, trial):
            return False
        if _both(trial) or trial.anomaly_ratio < 1.0:
            return True
        if self.name not in trial.recheck:  # first ask: interp is favoured; ask again once it has run
            trial.recheck.append(self.name)
            return False
        # asked again: only where interp's full size missed its block estimate (or interp could not code it)
        return "interp" not in trial.sizes or trial.sizes["interp"] > MISS * trial.block_estimates[1]

    def encode(self, trial: Trial) -> tuple[bytes, np.ndarray]:
        payload, y = encode_reconstruct(trial.target, trial.tol, trial.skip, dtype=trial.dtype, level=trial.level)
        trial.superseded = supersedes_interp(trial.target, trial.tol, trial.skip, trial) or (
            not _both(trial) and len(payload) <= MISS * trial.block_estimates[0])
        return payload, y

    def decode(self, payload: bytes, shape: tuple[int, ...], skip: np.ndarray | None = None,
               dtype: np.dtype | None = None) -> np.ndarray:
        return decode(payload, shape, skip, dtype)


def _both(trial: Trial) -> bool:
    """Whether both the decomposition and interp are encoded, as before :data:`MISS`: at the full search, and
    where the block could not tell (no estimates)."""
    return trial.level >= FULL_SEARCH_LEVEL or trial.block_estimates is None
