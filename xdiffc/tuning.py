"""Choosing the bound: per variable, the loosest bound whose reconstruction passes the criteria.

    found = xdiffc.tuning.suggest_tol(ds)           # found.table has the details, found.kwargs the bounds
    ds.gcdtc.to_zarr("out.zarr", **found.kwargs)   # absolute bounds, and pointwise-relative ones where they win

The search works on a deterministic *sample* of each variable: evenly spaced chunks of the
Zarr chunking the accessor would use, cut along their first axis so that the sample holds at
most :data:`SAMPLE_VALUES` values. Each sampled block is coded as one chunk, by the same codec
the store uses (native-grid layout and fill values included), decoded, and the criteria of
:mod:`xdiffc.metrics` are evaluated on the blocks pooled. The search is a bisection in log space
between ``LO_EPS`` and ``HI_EPS`` times the sample's value range: it keeps the loosest bound
seen to pass and the tightest seen to fail, and after ``iterations`` steps (default 8: a
factor 1e5 narrowed to about 5 %) returns the passing one. The tightest bound tried is never
below the float spacing of the sample's largest magnitude in its own dtype: a smaller bound
cannot move that value at all, so it is no lossy bound. If even the tightest bound fails, the
suggestion is 0: lossless. Passing is assumed monotone in the bound; it is only checked at
the bounds tried.

Where the spatial relative error (a pointwise-relative test) is what stopped the absolute search,
or no absolute bound passed, the same bisection runs over pointwise-relative bounds ``r``
(``|y - x| <= r |x|``, from the dtype's machine epsilon to :data:`PW_HI`), and the kind with the
better ratio on the sample wins. Precipitation, whose values span orders of magnitude, passes
only this way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from . import baselines, metrics
from .codec import GCDTCCodec
from .model_lookup import codec_model
from .grids import Layout
from .masking import special_mask
from .xarray.encoding import zarr_chunks
from .xarray.variables import LOSSY_DTYPES, fill_values, never_lossy, static_fields, valid

#: Values per variable in the default sample (1 MiB of float64 while evaluating).
SAMPLE_VALUES = 2**17
#: At least this many sampled blocks, where the variable has that many chunks.
SAMPLE_BLOCKS = 4
#: The search brackets: bounds between LO_EPS and HI_EPS times the value range.
LO_EPS, HI_EPS = 1e-6, 0.1
ITERATIONS = 8
#: The loosest pointwise-relative bound tried (10 % of each value).
PW_HI = 0.1
#: Bisection steps within a factor of 2 (to about 4 %).
REFINE_STEPS = 4
#: The criterion that a pointwise-relative bound can meet where no absolute one does.
POINTWISE_CRITERION = "spre_pct"

#: A compressor for the search: ``(x, tol) -> (stored bytes, reconstruction)``.
Compressor = Callable[[np.ndarray, float], tuple[int, np.ndarray]]
#: A sample: blocks of (values, valid mask).
Blocks = list[tuple[np.ndarray, np.ndarray]]


@dataclass
class Trial:
    """One bound tried: what it cost and how the reconstruction scored."""

    tol: float
    nbytes: int
    raw_bytes: int
    metrics: dict[str, float]
    passed: bool

    @property
    def ratio(self) -> float:
        """Compression ratio: bytes of the sample in memory over stored bytes."""
        return self.raw_bytes / self.nbytes if self.nbytes else math.inf


class Suggestion(dict):
    """``{variable: absolute bound}`` (0: lossless), plus ``pw_rel_tol``: ``{variable: r}`` for the variables
    best kept by a pointwise-relative bound. ``ds.gcdtc.compress(**suggestion.kwargs)`` applies both.

    ``table`` (a DataFrame, one row per variable) has ``kind`` ("tol", "pw_rel_tol" or "lossless"),
    the bound (``tol`` or ``pw_rel_tol``), ``eps`` (an absolute bound over the sample's value
    range), ``ratio`` (reached on the sample), ``passed`` (the criteria hold at the bound),
    ``lossless`` (no lossy bound passed), ``binding`` (the criteria that decided: those that failed at
    the next looser bound tried), the metrics at the bound, ``sample_values`` and ``evaluations``.
    ``criteria`` is the :class:`~xdiffc.metrics.Criteria` used.
    """

    def __init__(self, tol: Mapping[Hashable, float], pw_rel_tol: Mapping[Hashable, float], table: pd.DataFrame,
                 criteria: metrics.Criteria):
        super().__init__(tol)
        self.pw_rel_tol = dict(pw_rel_tol)
        self.table = table
        self.criteria = criteria

    @property
    def kwargs(self) -> dict:
        """The bound arguments of ``ds.gcdtc.compress``/``to_zarr`` and ``xdiffc.convert``: every variable named."""
        return {"tol": dict(self), "rel_tol": None, "pw_rel_tol": self.pw_rel_tol or None}


def xdiffc_compressor(fill_values: Sequence[float] = (), native: tuple[int, Layout] | None = None,
                      model: str | None = None, kind: str = "tol") -> Compressor:
    """The codec a store would use (:class:`~xdiffc.GCDTCCodec`, with its layout and fill values), one chunk.

    ``kind`` is the bound the search varies: "tol" (absolute) or "pw_rel_tol" (pointwise-relative).
    """
    model_id, sha = codec_model(model) if kind == "tol" else ("", "")  # the model path is pointwise-absolute only
    layout = None if native is None or native[1].kind == "none" else native[1].to_config(native[0])

    def run(x: np.ndarray, bound: float) -> tuple[int, np.ndarray]:
        codec = GCDTCCodec(model_id=model_id, model_sha256=sha, fill_values=fill_values, layout=layout,
                           **{kind: bound})
        blob = codec.encode_chunk(x)
        return len(blob), codec.decode_chunk(blob)

    return run


def baseline_compressor(name: str, fill_values: Sequence[float] = ()) -> Compressor:
    """Baseline ``name`` of :mod:`xdiffc.baselines` (its missing points gap-filled, not restored)."""
    def run(x: np.ndarray, tol: float) -> tuple[int, np.ndarray]:
        return baselines.run(name, x, tol, special_mask(x, fill_values))

    return run


def evaluate(blocks: Blocks, compressor: Compressor, tol: float, criteria: metrics.Criteria,
             native: tuple[int, Layout] | None = None, check_bound: bool = True) -> Trial:
    """Code every block at ``tol``, decode, and score the reconstructions with :func:`metrics.compare_blocks`.

    ``check_bound=False`` judges on the criteria alone, not on ``max |y - x| <= tol``: for baselines,
    whose bound is only a knob (ZFP's error can exceed a bound below float32 resolution).
    """
    outs = [compressor(x, tol) for x, _ in blocks]
    m = metrics.compare_blocks([(x, y, v) for (x, v), (_, y) in zip(blocks, outs)], tol if check_bound else None,
                               native, criteria.spre_rel_tol)
    return Trial(tol, sum(n for n, _ in outs), sum(x.nbytes for x, _ in blocks), m, criteria.passes(m))


def loosest(trial: Callable[[float], Trial], lo: float, hi: float,
            iterations: int = ITERATIONS) -> tuple[Trial | None, Trial | None]:
    """Bisection in log space: (the passing trial at the loosest bound found, the failing one just above it).

    ``hi`` passing gives (its trial, None); ``lo`` failing gives (None, its trial). Otherwise each
    step tries sqrt(lo * hi) and moves ``lo`` (pass) or ``hi`` (fail) there.
    """
    top = trial(hi)
    if top.passed:
        return top, None
    bottom = trial(lo)
    if not bottom.passed:
        return None, bottom
    for _ in range(iterations):
        mid = trial(math.sqrt(bottom.tol * top.tol))
        bottom, top = (mid, top) if mid.passed else (bottom, mid)
    return bottom, top


def float_spacing(blocks: Blocks) -> float:
    """The spacing of the blocks' dtype at their largest valid magnitude: the smallest bound that can move it."""
    vals = [x[v] for x, v in blocks if v.any()]
    if not vals:
        return 0.0
    top = max(float(np.max(np.abs(a))) for a in vals)
    return float(np.spacing(vals[0].dtype.type(top)))


def value_range(blocks: Blocks) -> float:
    """max - min of the valid values of the blocks (0 without any)."""
    vals = [x[v] for x, v in blocks if v.any()]
    return float(max(a.max() for a in vals)) - float(min(a.min() for a in vals)) if vals else 0.0


def search(blocks: Blocks, compressor: Compressor, criteria: metrics.Criteria,
           native: tuple[int, Layout] | None = None, iterations: int = ITERATIONS,
           check_bound: bool = True) -> tuple[Trial | None, Trial | None, int]:
    """:func:`loosest` between LO_EPS and HI_EPS times the value range: (pass, fail, evaluations)."""
    span = value_range(blocks)
    if not span > 0:
        return None, None, 0
    count = 0

    def trial(tol: float) -> Trial:
        nonlocal count
        count += 1
        return evaluate(blocks, compressor, tol, criteria, native, check_bound)

    lo = max(LO_EPS * span, float_spacing(blocks))
    if not lo < HI_EPS * span:  # no lossy bound above the float spacing: the data are as coarse as their dtype
        return None, None, 0
    good, bad = loosest(trial, lo, HI_EPS * span, iterations)
    return good, bad, count


def search_pw(blocks: Blocks, compressor: Compressor, criteria: metrics.Criteria,
              native: tuple[int, Layout] | None = None,
              iterations: int = ITERATIONS) -> tuple[Trial | None, Trial | None, int]:
    """:func:`loosest` over pointwise-relative bounds ``r``, judged on the criteria: (pass, fail, evaluations).

    From the dtype's machine epsilon (a smaller ``r`` cannot move any value) to :data:`PW_HI`;
    the codec itself holds ``|y - x| <= r |x|``, so only the criteria decide.
    """
    if not any(v.any() for _, v in blocks):
        return None, None, 0
    seen: dict[float, Trial] = {}

    def trial(r: float) -> Trial:
        if r not in seen:
            seen[r] = evaluate(blocks, compressor, r, criteria, native, check_bound=False)
        return seen[r]

    lo = max(LO_EPS, float(np.finfo(blocks[0][0].dtype).eps))
    start = criteria.spre_rel_tol
    if not (lo < start < PW_HI and trial(start).passed):
        good, bad = loosest(trial, lo, PW_HI, iterations)
        return good, bad, len(seen)
    # The spatial relative error's own threshold passes that criterion outright, and here every other:
    # the loosest passing bound is at most a few times larger. Double until a bound fails, then bisect
    # that factor of 2 (tight bounds, the slowest to code, are never tried).
    good, bad = trial(start), None
    while bad is None and good.tol < PW_HI:
        nxt = trial(min(2 * good.tol, PW_HI))
        good, bad = (nxt, None) if nxt.passed else (good, nxt)
    if bad is not None:
        good, bad = loosest(trial, good.tol, bad.tol, REFINE_STEPS)
    return good, bad, len(seen)


def sample_slices(shape: tuple[int, ...], chunks: tuple[int, ...], budget: int = SAMPLE_VALUES,
                  min_blocks: int = SAMPLE_BLOCKS) -> list[tuple[slice, ...]]:
    """Evenly spaced chunks (in C order over the chunk grid), each cut along its first axis to fit the budget.

    As many whole chunks as ``budget`` holds, and at least ``min_blocks`` (cut) where there are
    that many; each block keeps at least one index of its first axis. A 0-D shape is one block.
    """
    if not shape:
        return [()]
    grid = [math.ceil(n / c) for n, c in zip(shape, chunks)]
    total = math.prod(grid)
    nblocks = min(total, max(min_blocks, budget // max(1, math.prod(chunks))))
    per_block = max(1, budget // nblocks)
    out = []
    for flat in sorted({int(i) for i in np.linspace(0, total - 1, nblocks).round()}):
        idx = np.unravel_index(flat, grid)
        sl = [slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(idx, chunks, shape)]
        rest = math.prod(s.stop - s.start for s in sl[1:])
        sl[0] = slice(sl[0].start, min(sl[0].stop, sl[0].start + max(1, per_block // max(1, rest))))
        out.append(tuple(sl))
    return out


def candidates(ds: xr.Dataset) -> list[Hashable]:
    """The variables the accessor compresses lossily by default: float data variables that are not
    coordinates, bounds, cell measures or static fields."""
    skip = never_lossy(ds) | static_fields(ds)
    return [n for n, v in ds.data_vars.items() if v.dtype in LOSSY_DTYPES and n not in skip and v.ndim > 0]


@dataclass
class VariableSample:
    """A variable's sample: its blocks, fill values and native-grid layout."""

    name: Hashable
    blocks: Blocks
    fill_values: list[float]
    native: tuple[int, Layout] | None

    def compressors(self, names: Sequence[str] = ("xdiffc",), model: str | None = None) -> dict[str, Compressor]:
        """xdiffc (as the store codes it) and baselines by name."""
        return {n: xdiffc_compressor(self.fill_values, self.native, model) if n == "xdiffc"
                else baseline_compressor(n, self.fill_values) for n in names}


def sample_variable(ds: xr.Dataset, name: Hashable, sample: int | Mapping[Hashable, object] | None = None,
                    chunks: Mapping[Hashable, int] | None = None) -> VariableSample:
    """The sample of variable ``name`` (see the module docstring); ``sample``: a budget of values, or
    ``isel`` indexers taken whole (every chunk of the selection)."""
    da = ds[name]
    native = metrics.native_layout(ds, name)
    if isinstance(sample, Mapping):
        da = da.isel({k: v for k, v in sample.items() if k in da.dims})
    chunking = dict(chunks or {})
    if native is not None:
        chunking[da.dims[native[0]]] = da.shape[native[0]]  # the layout needs every column of a chunk
    shape = zarr_chunks(da.variable, chunking)
    budget = da.size if isinstance(sample, Mapping) else int(sample or SAMPLE_VALUES)
    blocks = []
    for sl in sample_slices(da.shape, shape, budget):
        part = da[sl]
        blocks.append((np.asarray(part.values), np.asarray(valid(part).values)))
    return VariableSample(name, blocks, fill_values(da.variable), native)


def suggest_tol(ds: xr.Dataset, criteria: str | metrics.Criteria | Mapping | None = "baker",
                sample: int | Mapping[Hashable, object] | None = None, variables: Sequence[Hashable] | None = None,
                *, model: str | None = None, chunks: Mapping[Hashable, int] | None = None,
                iterations: int = ITERATIONS) -> Suggestion:
    """Per variable, the loosest bound whose reconstruction passes ``criteria`` on a sample.

    An absolute bound first; where the spatial relative error decided (or no absolute bound
    passed), a pointwise-relative one too, and the one with the better ratio is kept.

    ``variables`` default to those the accessor compresses lossily; ``sample`` is a budget of
    values per variable (default :data:`SAMPLE_VALUES`) or ``isel`` indexers; ``model`` and
    ``chunks`` as for ``ds.gcdtc.compress``, so that the sample is coded as the store will be.
    Returns a :class:`Suggestion`: ``compress(**suggestion.kwargs)``, with a ``table`` of details.
    """
    crit = metrics.resolve_criteria(criteria)
    names = candidates(ds) if variables is None else list(variables)
    if not names:
        raise ValueError(f"nothing to tune: no float data variable would be compressed lossily; the data variables "
                         f"are {sorted(map(str, ds.data_vars))} (name one with --variable / variables=)")
    unknown = [n for n in names if n not in ds.data_vars]
    if unknown:
        raise ValueError(f"no data variable named {unknown}; the data variables are {sorted(map(str, ds.data_vars))}")
    tols, pw, rows = {}, {}, {}
    for name in names:
        vs = sample_variable(ds, name, sample, chunks)
        run = xdiffc_compressor(vs.fill_values, vs.native, model)
        good, bad, count = search(vs.blocks, run, crit, vs.native, iterations)
        used, kind = (good, "tol") if good is not None else (evaluate(vs.blocks, run, 0.0, crit, vs.native), "lossless")
        if kind == "lossless" or bad is not None and crit.checks(bad.metrics).get(POINTWISE_CRITERION) is False:
            pw_good, pw_bad, pw_count = search_pw(vs.blocks, xdiffc_compressor(vs.fill_values, vs.native,
                                                                               kind="pw_rel_tol"),
                                                  crit, vs.native, iterations)
            count += pw_count
            if pw_good is not None and (kind == "lossless" or pw_good.ratio > used.ratio):
                used, bad, kind = pw_good, pw_bad, "pw_rel_tol"
        span = value_range(vs.blocks)
        failed = [] if bad is None else [k for k, ok in crit.checks(bad.metrics).items() if ok is False]
        if kind == "pw_rel_tol":
            pw[name] = used.tol
        else:
            tols[name] = used.tol
        absolute = used.tol if kind != "pw_rel_tol" else math.nan
        rows[name] = {"kind": kind, "tol": absolute, "pw_rel_tol": used.tol if kind == "pw_rel_tol" else math.nan,
                      "eps": absolute / span if span > 0 else 0.0, "ratio": used.ratio,
                      "passed": used.passed, "lossless": kind == "lossless", "binding": ",".join(failed),
                      **{k: used.metrics[k] for k in ("pcc", "ks_p", "spre_pct", "dssim", "nrmse")},
                      "sample_values": sum(x.size for x, _ in vs.blocks), "evaluations": count}
    return Suggestion(tols, pw, pd.DataFrame.from_dict(rows, orient="index"), crit)
