"""The temporal decomposition's climatology: coded at a quarter of the bound (checked on the decoded climatology
itself, not only through the sum), and the size that calibration buys, pinned."""

from __future__ import annotations

import struct

import numpy as np
import pytest

import xdiffc
from xdiffc.bitstream import Stream
from xdiffc.byteio import Reader
from xdiffc.coders import decomposition, interp
from tests.test_decomposition import climate


def split(payload: bytes) -> tuple[int, bytes, bytes]:
    """(period, climatology payload, anomaly payload) of an anomaly payload (its documented layout)."""
    r = Reader(payload, "test")
    assert r.u8() == decomposition.VERSION
    period = r.uvarint()
    head = bytes(r.take(r.uvarint()))
    return period, head, bytes(r.rest())


def coded_tol(payload: bytes) -> float:
    """The bound an interp payload records: right after the version (3), or after the coder byte (1 and 2)."""
    at = {interp.VERSION: 2, interp.VERSION_CTX: 2, interp.VERSION_COMPACT: 1}[payload[0]]
    return struct.unpack("<d", payload[at : at + 8])[0]


def phase_means(x: np.ndarray, keep: np.ndarray | None, period: int) -> np.ndarray:
    """The exact per-phase means over the valid points (NaN where a phase has none), by numpy."""
    x = x.astype(np.float64)
    out = np.full((period,) + x.shape[1:], np.nan)
    for p in range(period):
        v = x[p::period]
        k = np.ones(v.shape, bool) if keep is None else keep[p::period]
        n = k.sum(axis=0)
        with np.errstate(invalid="ignore"):
            out[p] = np.where(n > 0, np.where(k, v, 0).sum(axis=0) / n, np.nan)
    return out


@pytest.mark.parametrize("shape, period, masked", [
    ((12, 40, 50), 1, False), ((40, 48, 64), 1, True), ((32, 30, 40), 4, False), ((48, 30, 40), 12, True),
])
def test_the_climatology_is_coded_at_a_quarter_of_the_bound(shape, period, masked):
    x = climate(shape, 1, period=period)
    skip = None
    if masked:
        rng = np.random.default_rng(7)
        skip = rng.random(shape) < 0.2
        skip[:, :5, :7] = True  # land: every step missing, the climatology skips it too
        x[skip] = np.nan
    keep = None if skip is None else ~skip
    tol = 1e-3 * float(np.nanmax(x) - np.nanmin(x))
    payload, y = decomposition.encode_reconstruct(x, tol, skip)
    got_period, head, body = split(payload)
    assert got_period == period
    assert coded_tol(head) == tol / 4  # the interp payload records the bound it was coded at
    empty = None if skip is None else ~np.isfinite(phase_means(x, keep, period))
    clim = interp.decode(head, (period,) + shape[1:], empty)
    exact = phase_means(x, keep, period)
    have = np.isfinite(exact)
    err = np.abs(clim[have] - exact[have])
    slack = 1e-12 * float(np.abs(exact[have]).max())  # the mean's own rounding (numpy's sum order vs the coder's)
    assert err.max() <= tol / 4 + slack
    assert err.max() > tol / 16  # quantised at that bound, not coded (much) tighter
    # the anomalies are coded under the full bound, on top of the decoded climatology
    assert coded_tol(body) == tol
    recon = interp.decode(body, shape, skip) + clim[np.arange(shape[0]) % period]
    assert np.array_equal(recon, y)
    valid = np.ones(shape, bool) if keep is None else keep
    assert np.abs(y[valid] - x[valid].astype(np.float64)).max() <= tol * (1 + 1e-9)


#: Bytes of the anomaly streams measured when the climatology moved to tol/4 (ceiling: + 2 %); at tol/1 the
#: first is 4,834 (+38 %) and 110 x 64 x 128 goes from 8,866 to 18,070 bytes.
CEILINGS = {(40, 48, 64): 3513, (12, 40, 50): 2560}


@pytest.mark.parametrize("shape", sorted(CEILINGS))
def test_the_anomaly_stream_size_is_pinned(shape):
    x = climate(shape, 1)
    blob = xdiffc.compress(x, rel_tol=1e-3)
    assert "anomaly" in Stream.from_bytes(blob).sections
    assert len(blob) <= int(CEILINGS[shape] * 1.02), len(blob)
