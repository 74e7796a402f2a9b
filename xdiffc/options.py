"""The compression options, declared once: what bound to keep, and how hard to search for a small stream.

Every entry point (``compress``, ``GCDTCCodec``, the Zarr serializer, ``ds.gcdtc``, ``xdiffc
convert``) builds one :class:`Options` from its keyword arguments and passes it down; the object
parses and checks each field once, so a bad argument gets the same typed error wherever it is
given. Its configuration (:meth:`Options.to_config`) is the codec configuration's bound keys.

One array (a chunk) takes scalars. A Dataset may name variables: the bounds :data:`BOUNDS` marks may be
``{variable: bound}`` and ``preserve_zero`` ``{variable: bool}`` or None (the default rule);
:meth:`Options.for_variable` picks one variable's entries, and the accessor's plan
(:class:`xdiffc.xarray.encoding.BoundPlan`) resolves the rest (a range, the default rule).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

#: The guarantees: one pointwise bound per value, or the paper's per-block L2 bound.
MODES = ("pointwise", "l2")
#: Pointwise-relative bounds are fractions of |x| below this: at 1 or more any value could shrink to 0.
PW_REL_LIMIT = 1.0
#: ``level=1`` is the fastest (one predictor, one entropy path), ``level=9`` the smallest (the full search).
LEVELS = range(1, 10)
#: From this level the encoder encodes every candidate its gates let through and keeps the smallest; below it, where
#: a sample or the store decides between two, only one (the temporal decomposition or interp; a chunk against the
#: store's archive climatology or not).
FULL_SEARCH_LEVEL = 9
#: The level when none is given: every coder but SZ3 (which won none of 153 benchmark chunks there; level 9 tries
#: it), and one full encode of the decomposition or interp where
#: level 9 encodes both (:data:`xdiffc.coders.decomposition.MISS`): on the 11 benchmark fields in 12-step chunks,
#: 0.14-0.16% smaller ratios for an encoder 1.04x / 1.18x / 1.29x as fast at eps 1e-2 / 1e-3 / 1e-4; and a chunk
#: that a store's archive climatology applies to is coded against it only (:data:`xdiffc.core.REFERENCE_MIN_LEVEL`).
#: Below the full search interp's context classes must also save 5% of the size to stay (level 9: 0.5%): whole
#: fields 0.3-1.2% smaller ratios for a decode up to 1.25x as fast (:data:`xdiffc.coders.interp._CLASS_MARGIN`).
#: Level 5 (no wavelet, no SZ3) loses up to 15% of the ratio of Zarr stores chunked along time at 1e-2
#: (benchmarks/RESULTS.md, "Levels").
DEFAULT_LEVEL = 8

PerVariable = Mapping[Hashable, float]
#: The bounds: each one's limit (it must stay below it; None: any finite number >= 0), and whether a Dataset may
#: give it per variable (``{variable: bound}``). One parser reads them all (:func:`parse_bounds`).
BOUNDS: dict[str, tuple[float | None, bool]] = {"tol": (None, True), "rel_tol": (None, False),
                                                "pw_rel_tol": (PW_REL_LIMIT, True), "nrmse": (None, False)}
#: How a bound is named in an error: ``(option, variable or None) -> label``.
Label = Callable[[str, Hashable | None], str]


def parse_bound(name: str, value: Any, below: float | None = None) -> float | None:
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


def bound_label(option: str, variable: Hashable | None) -> str:
    """``tol``, or ``tol['T']`` for variable T's entry: how the Python entry points name a bound in an error."""
    return option if variable is None else f"{option}[{variable!r}]"


def parse_bounds(given: Mapping[str, Any], label: Label = bound_label) -> dict[str, float | dict | None]:
    """The bounds of ``given`` (names of :data:`BOUNDS`), each checked by :func:`parse_bound` below its limit: a
    number or None, or ``{variable: number}`` where a Dataset may give it per variable. ``label`` names each one in
    its error (``xdiffc convert`` names its flags)."""
    out: dict[str, float | dict | None] = {}
    for option, value in given.items():
        below, per_variable = BOUNDS[option]
        if per_variable and isinstance(value, Mapping):
            out[option] = {k: parse_bound(label(option, k), v, below) for k, v in value.items()}
        else:
            out[option] = parse_bound(label(option, None), value, below)
    return out


def _parse_preserve_zero(value: Any) -> bool | dict | None:
    if isinstance(value, Mapping):
        return {k: _parse_flag(f"preserve_zero[{k!r}]", v) for k, v in value.items()}
    return None if value is None else _parse_flag("preserve_zero", value)


def _parse_flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _parse_interval(values: Sequence[float] | None) -> tuple[float, float] | None:
    """``(lo, hi)`` as floats; a ValueError unless they are two finite numbers (JSON has no inf) with lo <= hi."""
    if values is None:
        return None
    try:
        lo, hi = (float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"valid_range must be two numbers (lo, hi), got {values!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise ValueError(f"valid_range must be two finite numbers with lo <= hi, got {values!r}")
    return lo, hi


def _parse_level(level: Any) -> int:
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or level not in LEVELS:
        raise ValueError(f"level must be an integer from {LEVELS.start} (fastest) to {LEVELS.stop - 1} "
                         f"(smallest), got {level!r}")
    return int(level)


@dataclass(frozen=True)
class Options:
    """What to guarantee and how hard to search, parsed and checked at construction.

    tol : absolute bound ``|y - x| <= tol`` (0: lossless).
    rel_tol : bound as a fraction of the value range of the valid values.
    pw_rel_tol : pointwise-relative bound ``|y - x| <= r |x|``, zeros and signs kept; with ``tol`` or
        ``rel_tol`` too, the stricter holds at each point.
    nrmse : the bound of ``mode="l2"`` (every 8x8 patch meets the per-block L2 bound of the paper).
    mode : "pointwise" or "l2".
    preserve_zero : exact zeros stay exactly zero and every other valid value keeps its sign.
    valid_range : a CF valid range the output is clamped into.
    level : 1 (fastest) to 9 (smallest; default 8); the stream records nothing of it, decoding never needs it.
    """

    tol: float | PerVariable | None = None
    rel_tol: float | None = None
    pw_rel_tol: float | PerVariable | None = None
    nrmse: float | None = None
    mode: str = "pointwise"
    preserve_zero: bool | Mapping[Hashable, bool] | None = False
    valid_range: tuple[float, float] | None = None
    level: int = DEFAULT_LEVEL

    def __post_init__(self) -> None:
        parsed = parse_bounds({option: getattr(self, option) for option in BOUNDS})
        parsed.update(preserve_zero=_parse_preserve_zero(self.preserve_zero),
                      valid_range=_parse_interval(self.valid_range), level=_parse_level(self.level))
        for key, value in parsed.items():
            object.__setattr__(self, key, value)
        self._check_mode()

    def _check_mode(self) -> None:
        """A ValueError unless the bounds given fit ``mode``: "pointwise" takes every bound but nrmse (and
        preserve_zero); "l2" takes only nrmse."""
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.mode == "l2":
            if self.nrmse is None or self.tol is not None or self.rel_tol is not None:
                raise ValueError("mode='l2' takes nrmse= (the NRMSE bound), not tol or rel_tol")
            if self.keep_sign:
                raise ValueError("mode='l2' bounds the NRMSE; pw_rel_tol and preserve_zero are pointwise guarantees")
        elif self.nrmse is not None:
            raise ValueError("nrmse= is the bound of mode='l2'; for a pointwise bound give tol or rel_tol")

    def check_array(self) -> Options:
        """``self``, checked as the options of one array: scalars, and in pointwise mode the combinations of
        bounds that its error names."""
        if self._per_variable():
            raise ValueError("bounds per variable ({name: bound}) apply to Datasets; an array takes one number")
        if self.mode == "pointwise" and (self.tol is not None and self.rel_tol is not None or (
                self.uses_rel_tol and self.rel_tol is None)):
            raise ValueError("give exactly one of tol (absolute bound) or rel_tol (fraction of the value range), "
                             "or pw_rel_tol (pointwise-relative) with or without one of them")
        return self

    @property
    def uses_rel_tol(self) -> bool:
        """Whether a Dataset's variable with these options is bounded by ``rel_tol``: only where neither ``tol`` nor a
        pointwise-relative bound names it (an array takes the stricter of them at each point)."""
        return self.tol is None and self.pw_rel_tol is None

    @property
    def keep_sign(self) -> bool:
        """Whether zeros and signs are kept: asked for, or implied by a pointwise-relative bound."""
        return bool(self.preserve_zero) or self.pw_rel_tol is not None

    def absolute(self, values: np.ndarray, valid: np.ndarray | None = None) -> float:
        """The absolute bound on ``values`` (where ``valid``): ``tol``, ``rel_tol`` (in l2 mode ``nrmse``) times
        their range, or inf for a pointwise-relative bound alone."""
        fraction = self.nrmse if self.mode == "l2" else self.rel_tol
        if self.mode == "pointwise" and self.tol is not None:
            return self.tol
        if fraction is None:
            return math.inf
        if valid is not None:
            values = values[valid]
        if values.size == 0:
            return 0.0
        return fraction * (float(np.max(values)) - float(np.min(values)))

    def bound_at(self, x):
        """The pointwise bound at each point of ``x`` (numpy or xarray): ``tol`` (inf without one), tightened to
        ``r |x|`` by a pointwise-relative bound r. For options whose bound is absolute (no ``rel_tol``)."""
        tol, relative = math.inf if self.tol is None else self.tol, self.pw_rel_tol
        return tol if relative is None else np.minimum(tol, relative * abs(x))

    def for_variable(self, name: Hashable) -> Options:
        """Variable ``name``'s options: its entries in the fields given per variable (None where such a field does
        not name it: no bound, or the default rule), the other fields as they are."""
        return replace(self, **{option: values.get(name) for option, values in self._per_variable().items()})

    def named(self) -> dict[Hashable, str]:
        """``{variable: the first field that names it}`` over the fields given per variable."""
        out: dict[Hashable, str] = {}
        for option, values in self._per_variable().items():
            for name in values:
                out.setdefault(name, option)
        return out

    def _per_variable(self) -> dict[str, Mapping]:
        """The fields given per variable: ``{field: {variable: value}}``."""
        return {f.name: getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), Mapping)}

    def to_config(self) -> dict:
        """The codec configuration's bound keys: tol, rel_tol, mode and nrmse always (configs have always had
        them), the others only where set, so that configurations without them stay as they were."""
        config = {"tol": self.tol, "rel_tol": self.rel_tol, "mode": self.mode, "nrmse": self.nrmse}
        optional = {"pw_rel_tol": self.pw_rel_tol, "preserve_zero": True if self.preserve_zero else None,
                    "valid_range": None if self.valid_range is None else list(self.valid_range),
                    "level": None if self.level == DEFAULT_LEVEL else self.level}
        return config | {key: value for key, value in optional.items() if value is not None}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Options:
        """The options in a codec configuration (other keys are ignored)."""
        return cls(**{f.name: config[f.name] for f in fields(cls) if f.name in config})


#: The names of the options, for the entry points that take them as keywords.
NAMES = tuple(f.name for f in fields(Options))
