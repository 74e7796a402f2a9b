"""The residual coder protocol, the trial every coder of a chunk shares, and the registry.

A residual coder codes a field (float32 or float64 values) under an absolute bound ``tol``, with
points where ``skip`` is True left free (missing values, kept zeros). To add one, implement
:class:`ResidualCoder` in a module of this package, :func:`register` an instance in
``coders/__init__.py`` with a section name, a priority and the lowest level that tries it, and
pass ``tests/test_coders.py``, the conformance test that runs over every registered coder.

The core's search is a short loop (:func:`xdiffc.core`): for each coder the level enables, in
order of priority, ``applies``, then ``worth_encoding`` (an estimate on samples, never a full
encode), then ``encode``; the exact check in the output dtype follows, and the smallest
candidate wins. ``Trial`` carries what the coders learn on the way, as typed fields, so that a
later coder's gate can read an earlier coder's estimate. A coder that declines but wants to see
how a later one fared puts its name in ``trial.recheck``: after the loop its gate is asked once more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass
class Trial:
    """One chunk's residual target as the coders see it, and what they learn of it.

    target : the values to code (float32 or float64), any shape.
    tol : the absolute bound, finite and > 0.
    skip : the don't-care points (None: none).
    level : 1 (fastest) to 9 (smallest): coders choose how hard to search within themselves.
    dtype : the reconstruction's dtype (the output dtype on the linear path; None: float64).
    sizes : bytes of each candidate checked so far, by coder name (set by the core).
    sample_bytes : interp's estimated payload on its central sample block, scaled by its real size over
        its estimate (SZ3's gate compares its own size on that block with it).
    anomaly_ratio : the temporal decomposition's bytes over interp's on its sample block (its gate).
    block_estimates : the decomposition's and interp's bytes on that block, scaled to the chunk's valid points
        (a full encode that exceeds its own by a margin says the block misjudged the chunk).
    superseded : the decomposition won its sample so clearly that interp and SZ3 need not be encoded.
    wavelet_probe : the wavelet's probe and trial from its gate, reused by its encoder.
    wavelet_trace : a list to receive one record per wavelet step tried (tests), or None.
    recheck : the names of the coders that declined until the coders after them have run; the core asks their
        gates again (a gate that finds its name here is being asked the second time).
    """

    target: np.ndarray
    tol: float
    skip: np.ndarray | None = None
    level: int = 9
    dtype: np.dtype | None = None
    sizes: dict[str, int] = field(default_factory=dict)
    sample_bytes: float | None = None
    anomaly_ratio: float | None = None
    block_estimates: tuple[float, float] | None = None
    superseded: bool = False
    wavelet_probe: tuple | None = None
    wavelet_trace: list | None = None
    recheck: list[str] = field(default_factory=list)

    @property
    def best(self) -> float:
        """The bytes of the smallest candidate so far (inf before the first)."""
        return min(self.sizes.values(), default=float("inf"))


@runtime_checkable
class ResidualCoder(Protocol):
    """The contract of a residual coder.

    - ``name``: the stream's section name, fixed forever; ``priority``: lower is tried first;
      ``min_level``: the lowest level that tries it.
    - ``applies(shape)``: whether the coder can code a field of this shape at all.
    - ``worth_encoding(trial)``: whether to encode in full, from estimates on samples and on
      ``trial``'s earlier candidates; it may leave what it computed in ``trial`` for ``encode``. A gate
      that declines may append its name to ``trial.recheck``: it is then asked again, once, after the
      coders of lower priority have run (``trial.sizes`` then holds their sizes).
    - ``encode(trial)``: ``(payload, reconstruction)``, where the reconstruction is bit for bit what
      ``decode(payload, shape, skip, trial.dtype)`` returns, with ``|reconstruction - target| <= tol``
      off ``skip`` up to float64 rounding (the core checks every point in the output dtype and stores
      the few violations exactly). The reconstruction may be None where the payload alone costs
      ``trial.best`` or more: it cannot win. Raises ValueError where it cannot code this input.
    - ``decode(payload, shape, skip, dtype)``: the field, float64 or cast to ``dtype``; raises
      :class:`~xdiffc.errors.CorruptStreamError` for a damaged or truncated payload.
    """

    name: str
    priority: int
    min_level: int

    def applies(self, shape: tuple[int, ...]) -> bool: ...

    def worth_encoding(self, trial: Trial) -> bool: ...

    def encode(self, trial: Trial) -> tuple[bytes, np.ndarray | None]: ...

    def decode(self, payload: bytes, shape: tuple[int, ...], skip: np.ndarray | None = None,
               dtype: np.dtype | None = None) -> np.ndarray: ...


#: name -> coder, in order of priority.
REGISTRY: dict[str, ResidualCoder] = {}


def register(coder: ResidualCoder) -> ResidualCoder:
    """Add ``coder`` to :data:`REGISTRY` (kept in order of priority); a ValueError for a name or priority taken."""
    if not isinstance(coder, ResidualCoder):
        raise TypeError(f"{coder!r} does not implement the ResidualCoder protocol")
    if coder.name in REGISTRY or any(c.priority == coder.priority for c in REGISTRY.values()):
        raise ValueError(f"a coder named {coder.name!r} or with priority {coder.priority} is registered already")
    items = sorted([*REGISTRY.values(), coder], key=lambda c: c.priority)
    REGISTRY.clear()
    REGISTRY.update((c.name, c) for c in items)
    return coder


def enabled(level: int, coders: dict[str, ResidualCoder] | None = None) -> list[ResidualCoder]:
    """The coders ``level`` tries, in order of priority."""
    return [c for c in (REGISTRY if coders is None else coders).values() if c.min_level <= level]
