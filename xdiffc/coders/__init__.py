"""Residual coders: each codes a field under an absolute bound, skipping masked points.

The contract is :class:`~xdiffc.coders.base.ResidualCoder`; :data:`REGISTRY` holds the coders in
order of priority, each with the lowest level that tries it:

==========  ========  =========  ============================================================
name        priority  min level  what
==========  ========  =========  ============================================================
anomaly     10        4          a climatology (mean or cycle) along the first axis, plus anomalies
                                 (below level 9, it or interp where a sample favours one)
interp      20        1          multilevel interpolation prediction, context rANS
sz3         30        9          SZ3 through pysz
wavelet     40        6          CDF 9/7 coefficients with outlier corrections
==========  ========  =========  ============================================================

The name is the stream's section name. Exact storage (:mod:`~xdiffc.coders.lossless`) is not a
residual coder: it is the floor the core compares every stream with.
"""

from __future__ import annotations

from .decomposition import DecompositionCoder
from .base import REGISTRY, ResidualCoder, Trial, enabled, register
from .interp import InterpCoder
from .sz3 import SZ3Coder
from .wavelet import WaveletCoder

for _coder in (DecompositionCoder(), InterpCoder(), SZ3Coder(), WaveletCoder()):
    register(_coder)

__all__ = ["REGISTRY", "ResidualCoder", "Trial", "enabled", "register"]
