"""Argument checks, once, for every entry point: bounds, modes, dtypes and chunk sizes.

``compress``, the codecs, the accessor and ``convert`` all call these, so a bad argument gets the
same typed error (ValueError, or TypeError for a dtype) with the same words wherever it is given.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping

import numpy as np

#: The dtypes xdiffc compresses lossily (integers and booleans are stored losslessly).
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
#: The guarantees: one pointwise bound per value, or the paper's per-block L2 bound.
MODES = ("pointwise", "l2")


#: Pointwise-relative bounds are fractions of |x| below this: at 1 or more any value could shrink to 0.
PW_REL_LIMIT = 1.0


def check_bound(name: str, value: float | None, below: float | None = None) -> float | None:
    """``value`` as a float, or None; a ValueError naming ``name`` unless it is a finite number >= 0 (and
    below ``below`` where given: :data:`PW_REL_LIMIT` for pointwise-relative bounds)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    if below is not None and value >= below:
        raise ValueError(f"{name} must be below {below:g}: it is a fraction of |x| (0.01 allows 1%), and at "
                         f"{below:g} or more any value could shrink to 0; got {value!r}")
    return value


def check_mode(mode: str, *, tol=None, rel_tol=None, nrmse=None, pw_rel_tol=None, preserve_zero=None) -> None:
    """A ValueError unless the bounds given fit ``mode``: "pointwise" takes tol, rel_tol and pw_rel_tol
    (and preserve_zero); "l2" takes only nrmse."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "l2":
        if nrmse is None or tol is not None or rel_tol is not None:
            raise ValueError("mode='l2' takes nrmse= (the NRMSE bound), not tol or rel_tol")
        if pw_rel_tol is not None or preserve_zero:
            raise ValueError("mode='l2' bounds the NRMSE; pw_rel_tol and preserve_zero are pointwise guarantees")
    elif nrmse is not None:
        raise ValueError("nrmse= is the bound of mode='l2'; for a pointwise bound give tol or rel_tol")


def is_float(dtype: np.dtype) -> bool:
    """Whether ``dtype`` (either byte order) is one xdiffc compresses lossily."""
    dtype = np.dtype(dtype)
    return dtype.kind == "f" and dtype.newbyteorder("=") in FLOAT_DTYPES


def check_chunks(chunks: Mapping[Hashable, int] | None, sizes: Mapping[Hashable, int]) -> dict[Hashable, int]:
    """``chunks`` with ``-1`` replaced by the whole dimension; ValueError for an unknown dimension or a bad size."""
    out: dict[Hashable, int] = {}
    for dim, n in (chunks or {}).items():
        if dim not in sizes:
            raise ValueError(f"chunks names dimension {dim!r}, which this Dataset lacks; its dimensions are "
                             f"{dict(sizes)}")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < -1 or n == 0:
            raise ValueError(f"chunks[{dim!r}] must be a positive number of elements, or -1 for the whole "
                             f"dimension; got {n!r}")
        out[dim] = sizes[dim] if n == -1 else int(n)
    return out
