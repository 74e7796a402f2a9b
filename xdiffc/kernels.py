"""The one compilation rule of xdiffc's numba kernels: :func:`kernel`.

Decoding must give the same bits on every machine, whatever compiled it: a stream written on one
computer decodes bit for bit on any other, and the encoder's reconstruction (which it checks the
bound on) is exactly the decoder's. So every kernel is compiled with ``fastmath=False``: LLVM may
then neither reassociate float operations nor contract a multiply and an add into one fused
multiply-add (FMA, one rounding instead of two, used or not depending on the CPU), and every
float64 operation is the IEEE one, in source order. The kernels add no ``parallel=True`` either (a
parallel reduction sums in an order that depends on the threads) and call no transcendental
function on the decoder's path (their last bit differs between math libraries).

Besides: ``cache=True`` (compiled once per machine, into ``__pycache__``) and ``nogil=True`` (threads
encode chunks at once). Write ``@kernel`` or ``@kernel(inline="always")``; the rule cannot be
overridden.

Arguments that travel together go as one plain tuple (a pass, a decoder, a context), which the kernel
unpacks: numba types a plain tuple at a call as fast as a scalar, a NamedTuple in microseconds. An
inlined helper called per symbol takes its arrays in one such tuple and reads them in place
(``dec[NNZ][m]``): arrays passed one by one, or bound to the helper's locals, cost an atomic reference
count increment and decrement each per call, which the compiler then cannot prune.
"""

from __future__ import annotations

import logging

import numba
import numpy as np
from numba.core import event

log = logging.getLogger("xdiffc")

#: Options of every kernel (see the module's docstring).
RULE = dict(cache=True, nogil=True, fastmath=False)


class _FirstCompilation(event.Listener):
    """Says once per process, on stderr (the ``xdiffc`` logger), that kernels are being compiled: the first
    calls on a machine take tens of seconds, which would otherwise pass in silence. Loads from the on-disk
    cache are no compilation, so later runs say nothing."""

    def __init__(self) -> None:
        self.said = False

    def on_start(self, ev: event.Event) -> None:
        dispatcher = (ev.data or {}).get("dispatcher")
        module = getattr(getattr(dispatcher, "py_func", None), "__module__", "") or ""
        if not self.said and module.startswith("xdiffc."):
            self.said = True
            log.warning("xdiffc: compiling its kernels for this machine (once: the first calls take up to a "
                        "minute; later runs load them from the on-disk cache)")

    def on_end(self, ev: event.Event) -> None:
        pass


event.register("numba:compile", _FirstCompilation())


def kernel(fn=None, **options):
    """``numba.njit`` under :data:`RULE`, plus ``options`` (``inline="always"``); as ``@kernel`` or ``@kernel(...)``."""
    if {"fastmath", "parallel"} & options.keys():
        raise TypeError("xdiffc kernels are compiled without fastmath and parallel: decoding must be bit-identical")
    opts = {**RULE, **options}
    return numba.njit(**opts) if fn is None else numba.njit(fn, **opts)


@kernel
def grown(buffer, keep, size):
    """A zeroed array of ``size`` elements of ``buffer``'s dtype holding ``buffer[:keep]``: a kernel's output
    buffer, grown when full.

    Copied by a loop: numba's slice assignment from an array (``out[:keep] = buffer[:keep]``) compiles its
    shape-mismatch error message, string formatting included, which cost seconds of a cold first call."""
    out = np.zeros(size, buffer.dtype)
    for i in range(keep):
        out[i] = buffer[i]
    return out
