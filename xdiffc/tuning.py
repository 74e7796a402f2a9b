"""Choosing the bound: per variable, the loosest bound whose reconstruction passes the criteria.

    found = xdiffc.tuning.suggest_tol(ds)           # found.table has the details, found.kwargs the bounds
    ds.gcdtc.to_zarr("out.zarr", **found.kwargs)   # absolute bounds, and pointwise-relative ones where they win

The search works on a deterministic *sample* of each variable: evenly spaced chunks of the
Zarr chunking the accessor would use, cut along their first axis so that the sample holds at
most :data:`SAMPLE_VALUES` values (a block keeps at least one index of that axis, so a chunk
that holds more per index is taken whole). Each sampled block is coded as one chunk, by the
same codec the store uses (native-grid layout and fill values included), decoded, and the
criteria of :mod:`xdiffc.metrics` are evaluated on the blocks pooled. Every bound reported was
tried so.

The search (:func:`gallop`) starts from a first guess: the loosest absolute bound at which the
spatial relative error passes whatever the codec does, ``spre_rel_tol`` times the
``spre_max_pct`` percentile of ``|x|`` (at most that share of the points can move by more than
``spre_rel_tol`` of their value). Where the guess passes, the answer often lies just above it:
the search steps up by factors f^2, f^4, f^8, ... (f the resolution below), or by 2, 4, 16, ...
where the codec stored the guess exactly. Where it fails, another criterion binds at no known
distance: the search tries the tightest bound (failing there too means lossless), then steps
down from the guess by factors 2, 4, 16, 256, ... Bounds stay between ``LO_EPS`` and ``HI_EPS``
times the sample's value range. When the outcome flips, the last step is bisected in log space
until the passing and failing bounds are within f, the resolution of ``iterations`` bisection
steps over the whole bracket (default 8: a factor 1e5 narrowed to about 4.6 %); the loosest
bound seen to pass is the answer. The tightest bound tried is never below the float spacing of
the sample's largest magnitude in its own dtype: a smaller bound cannot move that value at all,
so it is no lossy bound. If even the tightest bound fails, the suggestion is 0: lossless.
Passing is assumed monotone in the bound; it is only checked at the bounds tried. A failing
trial skips the costly criteria (KS, DSSIM) once a cheaper one has failed; the failing trial
that decided is completed, so that the table names every criterion that failed there.

The bound found is then confirmed on a wider sample (:data:`CHECK_VALUES` values of evenly
spaced chunks, the whole variable where it is smaller): a bound at the edge of the criteria on
the sample can fail on the rest, so it steps down by the resolution until it passes there too
(at most :data:`CHECK_STEPS` times; else lossless), and the table reports that sample. Each block
is judged by its lossy reconstruction, even where storing it exactly would be smaller: a sample
block stored exactly passes every criterion, while the store's larger chunks may be coded lossily.

Where the spatial relative error (a pointwise-relative test) is what stopped the absolute search,
or no absolute bound passed, the same search runs over pointwise-relative bounds ``r``
(``|y - x| <= r |x|``, from the dtype's machine epsilon to :data:`PW_HI`, first guess
``spre_rel_tol``, which passes that criterion outright), and the kind with the better ratio on
the sample wins. Precipitation, whose values span orders of magnitude, passes only this way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from . import baselines, metrics
from .codec import GCDTCCodec
from .model_files import codec_model
from .grids import Layout
from .masking import special_mask
from .options import Options
from .xarray.encoding import layout_pays, zarr_chunks
from .xarray.variables import LOSSY_DTYPES, exact_by_default, fill_values, never_lossy, valid

#: Values per variable in the default sample (1 MiB of float64 while evaluating).
SAMPLE_VALUES = 2**17
#: The bound, relative to each chunk's range, at which tune weighs a native-grid layout before it knows the bound
#: (the accessor's default; the store weighs it again at the variable's own bound).
LAYOUT_REL_TOL = 1e-3
#: At least this many sampled blocks, where the variable has that many chunks.
SAMPLE_BLOCKS = 4
#: Values of the wider sample (the whole variable, where smaller) on which the bound found is confirmed; where it
#: fails there, the bound steps down by the search's resolution, at most :data:`CHECK_STEPS` times.
CHECK_VALUES = 2**22
CHECK_STEPS = 8
#: The search brackets: bounds between LO_EPS and HI_EPS times the value range.
LO_EPS, HI_EPS = 1e-6, 0.1
#: The resolution: that of this many bisection steps over the bracket (a factor 1e5 to about 4.6 %).
ITERATIONS = 8
#: The loosest pointwise-relative bound tried (10 % of each value).
PW_HI = 0.1
#: The criterion that a pointwise-relative bound can meet where no absolute one does.
POINTWISE_CRITERION = "spre_pct"
#: The kinds of bound the search varies, each named by its keyword (the codec's, the accessor's and the table's):
#: absolute and pointwise-relative.
ABSOLUTE, RELATIVE = "tol", "pw_rel_tol"

#: A compressor for the search: ``(x, tol) -> (stored bytes, reconstruction)``.
Compressor = Callable[[np.ndarray, float], tuple[int, np.ndarray]]
#: A sample: blocks of (values, valid mask).
Blocks = list[tuple[np.ndarray, np.ndarray]]


@dataclass
class Trial:
    """One bound tried: what it cost and how the reconstruction scored.

    A failing trial may leave the costly metrics NaN (the criteria that failed first decided);
    ``rest`` computes them all, and :meth:`completed` applies it.
    """

    tol: float
    nbytes: int
    raw_bytes: int
    metrics: dict[str, float]
    passed: bool
    rest: Callable[[], dict[str, float]] | None = field(default=None, repr=False, compare=False)

    @property
    def ratio(self) -> float:
        """Compression ratio: bytes of the sample in memory over stored bytes."""
        return self.raw_bytes / self.nbytes if self.nbytes else math.inf

    def completed(self) -> Trial:
        """This trial with every metric computed (and its reconstructions let go)."""
        if self.rest is not None:
            self.metrics, self.rest = self.rest(), None
        return self


class Suggestion(dict):
    """``{variable: absolute bound}`` (0: lossless), plus ``pw_rel_tol``: ``{variable: r}`` for the variables
    best kept by a pointwise-relative bound. ``ds.gcdtc.compress(**suggestion.kwargs)`` applies both.

    ``table`` (a DataFrame, one row per variable) has ``kind`` (:data:`ABSOLUTE`, :data:`RELATIVE` or
    "lossless"), the bound (in the column its kind names), ``eps`` (an absolute bound over the sample's value
    range), ``ratio`` (reached on the sample), ``passed`` (the criteria hold at the bound),
    ``lossless`` (no lossy bound passed), ``binding`` (the criteria that decided: those that failed at
    the next looser bound tried), the metrics at the bound, ``sample_values`` and ``evaluations``.
    ``criteria`` is the :class:`~xdiffc.metrics.Criteria` used.
    """

    def __init__(self, found: Mapping[str, Mapping[Hashable, float]], table: pd.DataFrame, criteria: metrics.Criteria):
        """``found``: ``{kind: {variable: bound}}`` for the kinds :data:`ABSOLUTE` and :data:`RELATIVE`."""
        super().__init__(found.get(ABSOLUTE, {}))
        self.pw_rel_tol = dict(found.get(RELATIVE, {}))
        self.table = table
        self.criteria = criteria

    @property
    def kwargs(self) -> dict:
        """The bound arguments of ``ds.gcdtc.compress``/``to_zarr`` and ``xdiffc.convert``: every variable named."""
        return {ABSOLUTE: dict(self), "rel_tol": None, RELATIVE: self.pw_rel_tol or None}


def xdiffc_compressor(fill_values: Sequence[float] = (), native: tuple[int, Layout] | None = None,
                      model: str | None = None, kind: str = ABSOLUTE) -> Compressor:
    """The codec a store would use (:class:`~xdiffc.GCDTCCodec`, with its layout and fill values), one chunk.

    ``kind`` is the bound the search varies: :data:`ABSOLUTE` or :data:`RELATIVE`.
    """
    model_id, sha = codec_model(model) if kind == ABSOLUTE else ("", "")  # the model path is pointwise-absolute only
    layout = None if native is None or native[1].kind == "none" else native[1].to_config(native[0])

    def run(x: np.ndarray, bound: float) -> tuple[int, np.ndarray]:
        codec = GCDTCCodec(model_id=model_id, model_sha256=sha, fill_values=fill_values, layout=layout,
                           **{kind: bound})
        # the lossy stream even where exact storage is smaller: a sample block stored exactly passes every
        # criterion, while the store's larger chunks of the same field may be coded lossily at this bound
        blob = codec.encode_chunk(x, exact_floor=False)
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
    The spectral error, no criterion, is not computed (NaN); once a cheaper criterion fails, nor
    are KS and DSSIM (:meth:`Trial.completed` adds them).
    """
    outs = [compressor(x, tol) for x, _ in blocks]
    args = ([(x, y, v) for (x, v), (_, y) in zip(blocks, outs)], Options(tol=tol) if check_bound else None, native,
            criteria.spre_rel_tol)
    m = metrics.compare_blocks(*args, spectral=False, enough=lambda part: not criteria.passes(part))
    passed = criteria.passes(m)
    rest = None if passed else lambda: metrics.compare_blocks(*args, spectral=False)
    return Trial(tol, sum(n for n, _ in outs), sum(x.nbytes for x, _ in blocks), m, passed, rest)


def resolution(iterations: int = ITERATIONS) -> float:
    """The ratio of the failing to the passing bound at which a search stops: ``iterations``
    bisection steps over the bracket ``HI_EPS / LO_EPS`` (8: 1.046)."""
    return (HI_EPS / LO_EPS) ** (0.5 ** min(max(iterations, 0), 40))  # 40: still above 1 in floats


def gallop(trial: Callable[[float], Trial], start: float, lo: float, hi: float,
           iterations: int = ITERATIONS) -> tuple[Trial | None, Trial | None]:
    """The loosest passing bound in ``[lo, hi]`` from a first guess ``start``: (its trial, the failing one above it).

    A passing guess: steps up while bounds pass, by factors f^2, f^4, f^8, ... (f the
    :func:`resolution`; the searches guess where the spatial relative error surely passes, and
    the answer often lies just above), or by 2, 4, 16, ... where the guess's reconstruction was
    exact (nothing moved: nothing says the answer is near). A failing guess: tries ``lo`` (failing
    there too means no lossy bound, found in two trials), then steps down from the guess by
    factors 2, 4, 16, 256, ... (another criterion binds, at no known distance). Steps are clamped
    to ``[lo, hi]``; then the last one is bisected in log space until the ratio of failing to
    passing bound is at most f. ``hi`` passing gives (its trial, None); ``lo`` failing gives
    (None, its trial).
    """
    res = resolution(iterations)
    first = trial(min(max(start, lo), hi))
    if first.passed:
        good, bad, step = first, None, 2.0 if first.metrics.get("max_abs_err") == 0 else res * res
        while bad is None and good.tol < hi:
            nxt = trial(min(good.tol * step, hi))
            good, bad = (nxt, None) if nxt.passed else (good, nxt)
            step *= step
        if bad is None:
            return good, None
    else:
        if first.tol <= lo:
            return None, first
        good, bad, step = trial(lo), first, 2.0
        if not good.passed:
            return None, good
        while bad.tol / step > lo:
            nxt = trial(bad.tol / step)
            good, bad = (nxt, bad) if nxt.passed else (good, nxt)
            if nxt.passed:
                break
            step *= step
    ratio = math.log(bad.tol / good.tol) / math.log(res)  # in steps of the resolution (1e-9: rounding)
    for _ in range(math.ceil(math.log2(ratio) - 1e-9) if ratio > 1 + 1e-9 else 0):
        mid = trial(math.sqrt(good.tol * bad.tol))
        good, bad = (mid, bad) if mid.passed else (good, mid)
    return good, bad


def confirm(blocks: Blocks, compressor: Compressor, bound: float, criteria: metrics.Criteria,
            native: tuple[int, Layout] | None, factor: float, check_bound: bool = True) -> tuple[Trial | None, int]:
    """``bound``, or the first of ``bound / factor``, ``bound / factor**2``, ... (at most :data:`CHECK_STEPS`)
    that passes on ``blocks``: (its trial or None, evaluations)."""
    for k in range(CHECK_STEPS + 1):
        trial = evaluate(blocks, compressor, bound / factor**k, criteria, native, check_bound)
        if trial.passed:
            return trial, k + 1
    return None, CHECK_STEPS + 1


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


def spre_safe(blocks: Blocks, criteria: metrics.Criteria) -> float:
    """The loosest absolute bound at which the spatial relative error passes whatever the codec does.

    ``spre_rel_tol`` times the magnitude below which at most ``spre_max_pct`` % of the valid
    values lie: only those can move by more than ``spre_rel_tol`` of themselves (0 without values).
    Lowered by 1e-9 of itself, so that rounding in ``|y - x| / |x|`` cannot tip a point over.
    """
    vals = [np.abs(x[v]) for x, v in blocks if v.any()]
    if not vals:
        return 0.0
    mags = np.concatenate(vals).astype(np.float64)
    k = min(math.floor(mags.size * min(max(criteria.spre_max_pct, 0.0), 100.0) / 100.0), mags.size - 1)
    return criteria.spre_rel_tol * float(np.partition(mags, k)[k]) * (1 - 1e-9)


def search(blocks: Blocks, compressor: Compressor, criteria: metrics.Criteria,
           native: tuple[int, Layout] | None = None, iterations: int = ITERATIONS,
           check_bound: bool = True) -> tuple[Trial | None, Trial | None, int]:
    """:func:`gallop` over absolute bounds from LO_EPS to HI_EPS times the value range, first guess
    :func:`spre_safe`: (pass, fail with every metric computed, evaluations)."""
    span = value_range(blocks)
    if not span > 0:
        return None, None, 0
    seen: dict[float, Trial] = {}

    def trial(tol: float) -> Trial:
        if tol not in seen:
            seen[tol] = evaluate(blocks, compressor, tol, criteria, native, check_bound)
        return seen[tol]

    lo = max(LO_EPS * span, float_spacing(blocks))
    if not lo < HI_EPS * span:  # no lossy bound above the float spacing: the data are as coarse as their dtype
        return None, None, 0
    good, bad = gallop(trial, spre_safe(blocks, criteria), lo, HI_EPS * span, iterations)
    return good, bad and bad.completed(), len(seen)


def search_pw(blocks: Blocks, compressor: Compressor, criteria: metrics.Criteria,
              native: tuple[int, Layout] | None = None,
              iterations: int = ITERATIONS) -> tuple[Trial | None, Trial | None, int]:
    """:func:`gallop` over pointwise-relative bounds ``r``, judged on the criteria: (pass, fail with every metric
    computed, evaluations).

    From the dtype's machine epsilon (a smaller ``r`` cannot move any value) to :data:`PW_HI`,
    first guess the spatial relative error's own threshold (which passes that criterion outright);
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
    good, bad = gallop(trial, criteria.spre_rel_tol, lo, PW_HI, iterations)
    return good, bad and bad.completed(), len(seen)


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
    coordinates, bounds, cell measures, static fields or series along time alone."""
    skip = never_lossy(ds) | exact_by_default(ds)
    return [n for n, v in ds.data_vars.items() if v.dtype in LOSSY_DTYPES and n not in skip and v.ndim > 0]


@dataclass
class VariableSample:
    """A variable's sample: its blocks, fill values, native-grid layout (the canvas of the metrics) and
    whether the store codes it on that layout (``coded``) or in the file's order."""

    name: Hashable
    blocks: Blocks
    fill_values: list[float]
    native: tuple[int, Layout] | None
    coded: bool = True

    @property
    def coded_layout(self) -> tuple[int, Layout] | None:
        return self.native if self.coded else None

    def compressors(self, names: Sequence[str] = ("xdiffc",), model: str | None = None) -> dict[str, Compressor]:
        """xdiffc (as the store codes it) and baselines by name."""
        return {n: xdiffc_compressor(self.fill_values, self.coded_layout, model) if n == "xdiffc"
                else baseline_compressor(n, self.fill_values) for n in names}


def sample_variable(ds: xr.Dataset, name: Hashable, sample: int | Mapping[Hashable, object] | None = None,
                    chunks: Mapping[Hashable, int] | None = None, coded: bool | None = None) -> VariableSample:
    """The sample of variable ``name`` (see the module docstring); ``sample``: a budget of values, or
    ``isel`` indexers taken whole (every chunk of the selection). ``coded``: whether the store codes it on its
    native-grid layout, where already known (finding out takes two trial encodings)."""
    da = ds[name]
    native = metrics.native_layout(ds, name)
    chunking = dict(chunks or {})
    if native is not None:
        chunking[da.dims[native[0]]] = da.shape[native[0]]  # the layout needs every column of a chunk
    if coded is None:
        coded = native is None or native[1].kind == "none" or layout_pays(
            da, {"rel_tol": LAYOUT_REL_TOL, "fill_values": fill_values(da.variable),
                 "layout": native[1].to_config(native[0])}, native[1].attrs(), zarr_chunks(da.variable, chunking))
    if isinstance(sample, Mapping):
        da = da.isel({k: v for k, v in sample.items() if k in da.dims})
    shape = zarr_chunks(da.variable, chunking)
    budget = da.size if isinstance(sample, Mapping) else int(sample or SAMPLE_VALUES)
    blocks = []
    for sl in sample_slices(da.shape, shape, budget):
        part = da[sl]
        blocks.append((np.asarray(part.values), np.asarray(valid(part).values)))
    return VariableSample(name, blocks, fill_values(da.variable), native, coded)


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
    found: dict[str, dict[Hashable, float]] = {ABSOLUTE: {}, RELATIVE: {}}
    rows = {}
    for name in names:
        vs = sample_variable(ds, name, sample, chunks)
        wider = None if isinstance(sample, Mapping) else sample_variable(ds, name, max(CHECK_VALUES, sample or 0),
                                                                          chunks, coded=vs.coded)
        if wider is not None and sum(x.size for x, _ in wider.blocks) <= sum(x.size for x, _ in vs.blocks):
            wider = None  # the sample is already all there is to check on
        runs = (xdiffc_compressor(vs.fill_values, vs.coded_layout, model),
                xdiffc_compressor(vs.fill_values, vs.coded_layout, kind=RELATIVE))
        kind, bound, rows[name] = _tune_variable(vs, runs, crit, iterations, wider)
        found[RELATIVE if kind == RELATIVE else ABSOLUTE][name] = bound
    return Suggestion(found, pd.DataFrame.from_dict(rows, orient="index"), crit)


def _tune_variable(vs: VariableSample, runs: tuple[Compressor, Compressor], criteria: metrics.Criteria,
                  iterations: int = ITERATIONS, wider: VariableSample | None = None) -> tuple[str, float, dict]:
    """One variable's search (``runs``: its absolute and its pointwise-relative compressor), confirmed on the
    ``wider`` sample where given: (kind, bound, table row)."""
    run, run_pw = runs
    good, bad, count = search(vs.blocks, run, criteria, vs.native, iterations)
    used, kind = good, ABSOLUTE
    if good is None or bad is not None and criteria.checks(bad.metrics).get(POINTWISE_CRITERION) is False:
        pw_good, pw_bad, pw_count = search_pw(vs.blocks, run_pw, criteria, vs.native, iterations)
        count += pw_count
        if pw_good is not None and (good is None or pw_good.ratio > good.ratio):
            used, bad, kind = pw_good, pw_bad, RELATIVE
    if used is not None and wider is not None:  # a bound at the edge on the sample may fail on the rest
        used, steps = confirm(wider.blocks, run if kind == ABSOLUTE else run_pw, used.tol, criteria, wider.native,
                              resolution(iterations), check_bound=kind == ABSOLUTE)
        count, vs = count + steps, wider
    if used is None:  # no lossy bound passes: stored exactly
        used, kind = evaluate(vs.blocks, run, 0.0, criteria, vs.native), "lossless"
    span = value_range(vs.blocks)
    failed = [] if bad is None else [k for k, ok in criteria.checks(bad.metrics).items() if ok is False]
    absolute = used.tol if kind != RELATIVE else math.nan
    row = {"kind": kind, ABSOLUTE: absolute, RELATIVE: used.tol if kind == RELATIVE else math.nan,
           "eps": absolute / span if span > 0 else 0.0, "ratio": used.ratio,
           "passed": used.passed, "lossless": kind == "lossless", "binding": ",".join(failed),
           **{k: used.metrics[k] for k in ("pcc", "ks_p", "spre_pct", "dssim", "nrmse")},
           "sample_values": sum(x.size for x, _ in vs.blocks), "evaluations": count}
    return kind, used.tol, row
