"""Pointwise-relative bounds through log2: code ``t = log2|x|`` under an absolute bound, decode ``2**t``.

``|y - x| <= r * |x|`` holds where ``|t_hat - t| <= log2(1 + r)`` (then ``2**-b >= 1 - r`` too), so a
pointwise-relative bound is an absolute bound on ``log2|x|``. Signs travel as a bitmap and zeros as
the zero mask (:mod:`xdiffc.fidelity`); the coders skip both, and the exact check (with any point
that still fails stored exactly) makes the bound hold whatever the arithmetic did.

Bit-identical decoding: :func:`exp2` uses only +, -, * and exact scaling by powers of two, never
libm's or a SIMD library's ``exp``/``exp2`` (whose last bits differ across CPUs), and no fused
multiply-add (numpy never fuses). The encoder may use ``np.log2``: it runs the same :func:`exp2`
and checks what it gives.
"""

from __future__ import annotations

import math

import numpy as np

from . import masking

#: The section that holds the sign bitmap (packed bits, zstd); its presence means the coder coded log2|x|.
SECTION = "log2"

#: ln(2)**k / k! for k = 0..12, as exact float64 literals (computed once with 50-digit arithmetic):
#: 2**f = sum c_k f**k, truncation error below 2e-16 relative for |f| <= 1/2.
_EXP2_COEFFS = tuple(float.fromhex(h) for h in (
    "0x1.0000000000000p+0", "0x1.62e42fefa39efp-1", "0x1.ebfbdff82c58fp-3", "0x1.c6b08d704a0c0p-5",
    "0x1.3b2ab6fba4e77p-7", "0x1.5d87fe78a6731p-10", "0x1.430912f86c787p-13", "0x1.ffcbfc588b0c7p-17",
    "0x1.62c0223a5c824p-20", "0x1.b5253d395e7c4p-24", "0x1.e4cf5158b8ecap-28", "0x1.e8cac7351bb25p-32",
    "0x1.c3bd650fc2986p-36",
))
#: Exponents beyond these give 0 or inf in float64 whatever the fraction; clipping keeps the integer part small.
_T_MIN, _T_MAX = -1100.0, 1100.0
#: Unit roundoff of each output dtype: the final cast may move a value by this fraction.
_ROUNDOFF = {np.dtype(np.float32): 2.0**-24, np.dtype(np.float64): 2.0**-53}


def exp2(t: np.ndarray) -> np.ndarray:
    """``2**t`` in float64, the same bits on every machine: ``ldexp(p(t - n), n)`` with ``n = rint(t)``.

    ``p`` is the degree-12 Taylor polynomial of ``2**f`` evaluated by Horner's rule in a fixed
    order (a product, then a sum, each rounded); ``rint``, the subtraction ``t - n`` and ``ldexp``
    are exact (``ldexp`` rounds correctly where the result is subnormal).
    """
    t = np.clip(np.asarray(t, np.float64), _T_MIN, _T_MAX)
    n = np.rint(t)
    f = t - n
    p = np.full_like(f, _EXP2_COEFFS[-1])
    for c in _EXP2_COEFFS[-2::-1]:
        p *= f
        p += c
    with np.errstate(over="ignore", under="ignore"):  # beyond float64's range: inf or 0, as intended
        return np.ldexp(p, n.astype(np.int32))


def log_bound(r: float, dtype: np.dtype) -> float:
    """The absolute bound on ``log2|x|`` that keeps the pointwise-relative bound ``|y - x| <= r |x|`` after the cast
    to ``dtype``."""
    return math.log2((1 + r) / (1 + _ROUNDOFF[np.dtype(dtype)]))


def encode(x: np.ndarray, skip: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """``log2|x|`` in float64 (0 at ``skip``, which must hold every zero and missing point) and where x < 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.log2(np.abs(x, dtype=np.float64))
    negative = np.signbit(x)
    if skip is not None:
        t[skip] = 0.0
        negative &= ~skip
    return t, negative


def to_linear(t_hat: np.ndarray, negative: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``y = -exp2(t_hat)`` where ``negative``, else ``exp2(t_hat)``, cast to ``dtype``."""
    y = exp2(t_hat)
    np.negative(y, out=y, where=negative)
    with np.errstate(over="ignore"):  # beyond float32's range: inf, then clamped into the stream's range
        return y.astype(dtype, copy=False)


def decode(t_hat: np.ndarray, signs: bytes, dtype: np.dtype) -> np.ndarray:
    """:func:`to_linear` with the sign bitmap of the stream's :data:`SECTION`."""
    return to_linear(t_hat, masking.decode_bits(signs, t_hat.shape, f"the stream's {SECTION!r} section (the signs)"),
                     dtype)
