"""Residual coders: each codes a float64 field under an absolute bound, skipping masked points.

A residual coder has two functions::

    encode(values, tol, skip) -> bytes
    decode(payload, shape, skip) -> float64 array

with ``abs(decode(...) - values) <= tol`` wherever ``skip`` is False, up to the final cast to the
output dtype, which the guarantee layer checks and repairs. The core tries the coders listed in
:data:`RESIDUAL_CODERS` on each chunk and keeps the one that costs the fewest bytes.
"""

from __future__ import annotations

from . import anomaly, interp, sz3, wavelet

#: name -> module with encode/decode; the name is stored in the stream. ``anomaly`` (a climatology
#: plus anomalies along the first axis) and ``wavelet`` (CDF 9/7 coefficients with outlier
#: corrections) are tried only where their ``worth_trying`` estimates say they may win.
RESIDUAL_CODERS = {"interp": interp, "sz3": sz3, "anomaly": anomaly, "wavelet": wavelet}
