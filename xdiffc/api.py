"""Argument checks, once, for every entry point: dtypes and chunk sizes (the bounds, modes and level are
:class:`xdiffc.options.Options`'s).

``compress``, the codecs, the accessor and ``convert`` all call these, so a bad argument gets the
same typed error (ValueError, or TypeError for a dtype) with the same words wherever it is given.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np

#: The dtypes xdiffc compresses lossily (integers and booleans are stored losslessly).
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


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
