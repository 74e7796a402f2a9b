"""Linear quantiser of prediction residuals, with unpredictable values (the pipeline's quantiser stage).

A value ``t`` predicted as ``pr`` gets the code ``q = rint((t - pr) / bin)`` and the reconstruction
``pr + q * bin``.  Its symbol is ``q + RADIUS`` when ``|q| < RADIUS`` and that reconstruction lies
within ``tol`` of ``t``; otherwise the symbol is 0 and ``t`` is stored raw (float64), an
"unpredictable" value.  The bin is ``2 * tol`` (coarse levels may get a tighter bound, see
:func:`level_bins`).  The functions are numba-inlined into the predictor's kernels, so encoder and
decoder run the same IEEE float64 operations (:mod:`xdiffc.kernels`).
"""

from __future__ import annotations

import numpy as np

from .kernels import kernel

#: Codes q with |q| < RADIUS get a symbol; symbol 0 marks an unpredictable value.
RADIUS = 1 << 15


def level_bins(tol: float, alpha: float, beta: float, levels: int) -> np.ndarray:
    """Bin width per level (index = level): ``2 * tol / min(alpha**(l - 1), beta)`` (alpha, beta >= 1)."""
    bins, div = [2.0 * tol], 1.0
    for _ in range(levels):
        bins.append(2.0 * (tol / min(div, beta)))
        div = div * alpha
    return np.array(bins)


@kernel(inline="always")
def quantize(t, pr, bin_, tol):
    """(symbol, reconstruction) of value ``t`` predicted as ``pr``: symbol 0 and ``t`` itself when unpredictable."""
    q = np.rint((t - pr) / bin_)
    inside = abs(q) < RADIUS
    if not inside:
        q = 0.0
    rec = pr + q * bin_
    if inside and abs(rec - t) <= tol:
        return np.int64(q + RADIUS), rec
    return np.int64(0), t


@kernel(inline="always")
def dequantize(s, pr, bin_):
    """Reconstruction of a nonzero symbol ``s`` predicted as ``pr``."""
    return pr + (np.float64(s) - RADIUS) * bin_
