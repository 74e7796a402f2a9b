"""Physically faithful output: no value outside the input's range, and (on request) zeros kept exactly.

After the residual coder and the cast to the output dtype, the decoder

1. clamps every value into ``[lo, hi]``, the ``range`` section: the min and max of the valid
   input (of its non-zero values where zeros are kept), narrowed to a CF ``valid_range`` where one
   is given. When ``x`` lies in the interval, clamping can only bring ``y`` closer to it, so it
   costs no bound and 16 bytes;
2. writes exact zeros at the ``zeros`` mask (packed bits, zstd: zeros in regions cost almost nothing).

The encoder applies the same :meth:`OutputRule.apply` before its exact check, so the bound holds
by construction. Streams without these sections (written before them) decode as they always did.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

from . import masking
from .errors import CorruptStreamError
from .kernels import kernel
from .options import Options

RANGE, ZEROS, BOUND = "range", "zeros", "bound"
_BOUND = struct.Struct("<dB")


@kernel
def _range(x, skip, masked):
    lo, hi, seen = np.inf, -np.inf, False
    for i in range(x.size):
        if not masked or not skip[i]:
            v = np.float64(x[i])
            lo, hi, seen = min(lo, v), max(hi, v), True
    return lo, hi, seen


def value_range(x: np.ndarray, skip: np.ndarray | None,
                valid_range: tuple[float, float] | None = None) -> tuple[float, float] | None:
    """``(min, max)`` of ``x`` outside ``skip``, narrowed to ``valid_range`` (in ``x``'s dtype) where that leaves
    an interval; None when every point is skipped."""
    flat = np.ascontiguousarray(x).reshape(-1)
    masked = skip is not None
    lo, hi, seen = _range(flat, np.ascontiguousarray(skip).reshape(-1) if masked else np.zeros(1, bool), masked)
    if not seen:
        return None
    if valid_range is not None:
        vlo, vhi = (float(x.dtype.type(v)) for v in valid_range)
        if max(lo, vlo) <= min(hi, vhi):
            lo, hi = max(lo, vlo), min(hi, vhi)
    return lo, hi


def zero_mask(x: np.ndarray, missing: np.ndarray) -> np.ndarray | None:
    """Where ``x`` is exactly zero (either sign) and not missing; None where there is no such point."""
    zeros = (x == 0) & ~missing
    return zeros if zeros.any() else None


def guarantee_section(options: Options) -> dict[str, bytes]:
    """The ``bound`` section, recording the guarantees of ``options`` beyond the header's ``tol``: f64, the
    pointwise-relative bound (NaN for none), u8 1 where zeros and signs are kept. Absent where there are
    none (then it is the header's bound alone)."""
    relative = options.pw_rel_tol
    if relative is None and not options.keep_sign:
        return {}
    return {BOUND: _BOUND.pack(math.nan if relative is None else relative, int(options.keep_sign))}


def read_guarantee(sections: dict[str, bytes]) -> tuple[float | None, bool]:
    """``(the pointwise-relative bound or None, zeros and signs kept)`` from a stream's sections, inverse of :func:`guarantee_section`."""
    if BOUND not in sections:
        return None, False
    try:
        pw, keep = _BOUND.unpack(sections[BOUND])
    except struct.error:
        raise CorruptStreamError(f"the stream's 'bound' section holds {len(sections[BOUND])} bytes, "
                                 f"not {_BOUND.size}") from None
    if keep > 1 or not (math.isnan(pw) or pw >= 0):
        raise CorruptStreamError(f"the stream's 'bound' section is malformed (relative bound {pw!r}, flag {keep})")
    return None if math.isnan(pw) else pw, bool(keep)


@dataclass(frozen=True)
class OutputRule:
    """What the decoder does between the cast and the missing values: clamp into ``bounds``, zero at ``zeros``."""

    bounds: tuple[float, float] | None = None
    zeros: np.ndarray | None = None

    def sections(self) -> dict[str, bytes]:
        """The stream sections that carry the rule."""
        out = {} if self.bounds is None else {RANGE: struct.pack("<dd", *self.bounds)}
        if self.zeros is not None:
            out[ZEROS] = masking.encode_bits(self.zeros)
        return out

    @classmethod
    def from_sections(cls, sections: dict[str, bytes], shape: tuple[int, ...]) -> OutputRule:
        """The rule a stream carries (none for a stream written before these sections)."""
        bounds = None
        if RANGE in sections:
            raw = sections[RANGE]
            if len(raw) != 16:
                raise CorruptStreamError(f"the stream's 'range' section holds {len(raw)} bytes, not 16")
            bounds = struct.unpack("<dd", raw)
            if not bounds[0] <= bounds[1]:
                raise CorruptStreamError(f"the stream's 'range' section is not an interval: {bounds}")
        zeros = None
        if ZEROS in sections:
            zeros = masking.decode_bits(sections[ZEROS], shape, "the stream's 'zeros' section")
        return cls(bounds, zeros)

    def apply(self, y: np.ndarray) -> None:
        """Clamp ``y`` (already in the output dtype) into the range, then write the zeros; in place."""
        if self.bounds is not None:
            lo, hi = (y.dtype.type(b) for b in self.bounds)
            np.clip(y, lo, hi, out=y)
        if self.zeros is not None:
            y[self.zeros] = 0
