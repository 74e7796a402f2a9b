"""Casting a float64 working array to the output dtype in its own memory: :func:`narrow`.

The coders reconstruct in float64 (predictions read float64 neighbours), but a float32 chunk's output
is float32: ``recon.astype(np.float32)`` holds both at once, 1.5 times the float64 array. Here the cast
writes the float32 values over the start of the float64 buffer, which is then shrunk in place
(``realloc``: for a large array, the tail's pages go back to the system), so the peak is the float64
array alone. The values are those of ``astype`` bit for bit: numpy's own cast, block by block.
"""

from __future__ import annotations

import numpy as np

#: Values cast per step: each block reads ahead of what it writes, so no block overwrites a value not yet cast.
_BLOCK = 1 << 16


def narrow(a: np.ndarray, dtype: np.dtype | type | None) -> np.ndarray:
    """``a.astype(dtype)``, in ``a``'s memory where ``dtype`` is narrower; ``a`` is consumed.

    ``a`` must be C-contiguous and span the whole memory of the array that owns it (itself, or the base of
    a reshape or of a same-size view), and neither that array nor any view of it may be used afterwards:
    the memory is resized in place, which leaves every other view of it pointing at freed memory.
    Otherwise (and for a 0-d array, or one of at most :data:`_BLOCK` values) it is ``a.astype(dtype)``. With ``dtype`` None or ``a``'s own, ``a``
    comes back as it is.
    """
    dtype = a.dtype if dtype is None else np.dtype(dtype)
    if dtype == a.dtype:
        return a
    if dtype.itemsize >= a.itemsize or a.ndim == 0 or a.size <= _BLOCK:
        return a.astype(dtype)  # a small array's memory does not matter, and the cast in place costs ~20 us more
    owner = a
    while isinstance(owner.base, np.ndarray):
        owner = owner.base
    whole = (owner.base is None and owner.flags.c_contiguous and owner.flags.writeable and a.flags.c_contiguous
             and owner.nbytes == a.nbytes and owner.ctypes.data == a.ctypes.data)
    if not whole:
        return a.astype(dtype)
    shape, n = a.shape, a.size
    src, dst = a.reshape(-1), owner.reshape(-1).view(np.uint8)[: n * dtype.itemsize].view(dtype)
    del a
    for k in range(0, n, _BLOCK):  # block k writes over values k/2 .. (k + block)/2, all cast by then
        dst[k : k + _BLOCK] = src[k : k + _BLOCK]  # numpy copes with the overlap inside a block
    del src, dst
    owner.resize((-(-n * dtype.itemsize // owner.itemsize),), refcheck=False)
    return owner.reshape(-1).view(np.uint8)[: n * dtype.itemsize].view(dtype).reshape(shape)
