"""Model-free residual coder: multilevel interpolation prediction, linear quantisation, entropy coding.

The field is predicted coarse-to-fine, in the spirit of SZ3's interpolation predictor
(written from scratch here).  Level ``L`` holds only the origin, predicted as zero; each
finer level ``l`` (stride ``s = 2**l``, half stride ``h = s // 2``) visits the dimensions in
order, and the pass for dimension ``d`` predicts the points that are odd multiples of ``h``
along ``d``, multiples of ``h`` along earlier dimensions and multiples of ``s`` along later
ones, from already reconstructed neighbours at distance ``h`` and ``3h`` along ``d``.
Each pass is one compiled kernel (:mod:`xdiffc.predict.interp`), with linear or cubic
interpolation chosen per pass by the encoder (whichever leaves the smaller residuals) and
recorded in the payload.

The residual ``v - pred`` is quantised with bin width ``2 * eb_l``, where the level bound
``eb_l = tol / min(alpha**(l - 1), beta)`` can be made tighter on coarse levels (SZ3's
trick; the format carries alpha and beta, the encoder writes 1 and 1, which measured best).
The reconstruction ``pred + q * 2 * eb_l`` is checked against ``tol`` in float64; points that fail, or whose code would leave the code range, are stored as raw
float64 ("unpredictable").  Skipped points (a mask shared with the decoder) get no symbol
and are reconstructed as their (finite) prediction.  Encoder and decoder run the very same
elementwise IEEE float64 operations, so the reconstruction is bit-identical everywhere.

Symbols are ``q + RADIUS`` for ``|q| < RADIUS`` and 0 for unpredictable points.  They are
entropy coded either with rANS (``constriction``) under static per-(level group, context
class) histograms, the context class being the local activity ``|right - left| / bin`` of
the two interpolation neighbours (groups and classes chosen by the encoder from estimated
sizes), or with zstandard on zigzag byte planes; the encoder estimates both sizes and encodes
only the smaller (:mod:`xdiffc.entropy`).  The axis order of the passes is chosen on a central
sample block and stored as a permutation.

Version 2 payloads (written since 0.2; layout and decoding rules in ``docs/format.md``) code the
same symbols, in pass order without class grouping, with the compiled rANS of
:mod:`xdiffc.entropy.crans` under frozen integer tables per (level group, context class,
previous-slice bucket): the bucket is the symbol of the same pass's target one lattice step back
along a slice axis, clamped to ``[-K, K]``.  It catches the residuals that repeat from one time
step to the next, for which version 1 needed zstd's slow strong level.  The encoder estimates the
version 2 size from context counts (slice axis and K chosen there) and writes it, or a version 1
zstd body where estimates say zstd is smaller. It now writes version 3 in place of version 2:
the same symbols and contexts, a 9-byte header and compact tables (symbol counts on a log scale,
3-4x smaller; version 2's tables were 9-33% of its payloads). Version 4 wraps a version 1 or 3 payload whose
reconstruction is float32 (:data:`VERSION_F32`): for a float32 output under a bound far above float32's
rounding, the encoder's and the decoder's field take half the memory, and the decoder's is the output itself.

Version 1 payload layout (little-endian; ``uv`` = unsigned LEB128 varint):

====================  =======================================================
``u8``                format version (1)
``u8``                entropy coder: 0 = rANS, 1 = zstd
``f64``               tol (as given to ``encode``)
``f64``, ``f64``      alpha, beta of the level bounds
``u8`` * ndim         axis order: the field is coded as ``values.transpose(order)``
``u8``                G, number of level groups (level ``l`` uses group
                      ``max(1, min(l, G)) - 1``; the origin counts as level ``L``)
``u8``                number of context cuts ``K - 1``, then the cuts (``u8`` each,
                      increasing fine-class indices where a new class starts; fine
                      class = position of the activity in ``_ACTIVITY_EDGES``)
``uv``                number of unpredictable values, then that many raw ``f64``
bytes                 one bit per pass (1 = cubic), ``numpy.packbits`` order
rANS body             ``G * K`` histograms (group-major), each ``uv`` number of
                      nonzero bins then, per bin, ``uv`` gap to the previous symbol
                      (first: the symbol itself) and ``uv`` count; then ``uv``
                      number of 32-bit words and the rANS words
zstd body             ``uv`` frame length, then one zstd frame holding the zigzag codes
                      (0 = unpredictable, ``2q + 1`` for ``q >= 0``, ``-2q`` for ``q < 0``)
                      of all symbols as a low-byte plane followed by a high-byte plane
====================  =======================================================

Symbols are emitted pass by pass (origin first); within a pass by context class, and
within a class in C order of the pass's target points with the interpolation axis moved
first.
"""

from __future__ import annotations

import functools
import itertools
import math
import struct
from collections.abc import Callable

import numpy as np

from ..byteio import Reader, uvarint
from ..entropy import codes, crans, rans, zstd
from ..entropy.estimate import choose_grouping, folded_bits
from ..errors import CorruptStreamError
from ..narrow import narrow
from ..options import FULL_SEARCH_LEVEL
from ..predict import interp as kern
from ..predict.interp import N_FINE
from .base import Trial
from ..quantize import RADIUS, level_bins

VERSION = 1
#: Version 2: symbols coded by the compiled rANS of :mod:`xdiffc.entropy.crans` under contexts that
#: include the previous slice's symbol (see :func:`_ctx_plan`).
VERSION_CTX = 2
#: Version 3: version 2 with compact frequency tables (counts on a log scale, :mod:`xdiffc.entropy.crans`)
#: and a shorter header (no coder byte; alpha and beta fixed at 1); the encoder writes it in place of
#: version 2, which is still read.
VERSION_COMPACT = 3
#: Version 4: a float32 reconstruction. The byte 4 followed by a complete version 1 or 3 payload whose
#: predictor stores every reconstructed value in float32 (rounded to nearest) and reads it back widened; the
#: arithmetic stays float64. Written where the output is float32 and the bound allows it
#: (:func:`float32_margin`): the decoder's field is then half the size, and is the output itself.
VERSION_F32 = 4
#: The float32 reconstruction is used where its rounding margin is at most this fraction of the bound (the bins
#: shrink by it: at most 0.023 bits a value) ...
F32_MAX_MARGIN = 1.0 / 64
#: ... and the values stay below this magnitude (no prediction from them can overflow float32).
F32_MAX_VALUE = 2.0**100
CODER_ANS = 0
CODER_ZSTD = 1
#: ``coder`` value that asks for a context-rANS payload (version 3).
CODER_CTX = 2
#: Largest previous-slice context radius K the encoder tries (the format allows up to 127).
_MAX_K = 16
_K_CHOICES = (0, 1, 2, 4, 8, 16)
#: Version 2 drops the context classes unless they save more than this fraction of the size: without them the
#: decoder skips its classification sweep. Measured at level 8 (2026-12-07, the 11 benchmark fields at eps 1e-2 /
#: 1e-3 / 1e-4, geometric means against a margin of 0.005): 0.05 costs 0.27 / 1.0 / 0.87% of the CR for a decode in
#: 0.98 / 0.75 / 0.76 of the time (up to 0.26 on a field whose classes go); 0.02 costs 0 / 0.16 / 0.21% for 1.0 /
#: 0.93 / 0.94; no classes at all 7.6 / 10 / 5.7% for 0.93 / 0.61 / 0.52.
_CLASS_MARGIN = 0.05
#: ... and at the full search's level (:data:`~xdiffc.options.FULL_SEARCH_LEVEL`, the smallest streams) this one.
_FULL_SEARCH_CLASS_MARGIN = 0.005
#: Frequency-table precision of version 2 payloads (bits).
_PREC = 14
#: Chunks of this many values or more are refused (the estimates' counting sorts use 4-byte indices); the
#: core then codes them with its other coders or exactly.
MAX_VALUES = 1 << 31
#: Largest [model, symbol] count table the context estimate builds (entries).
_MAX_TABLE = 1 << 22

_MAX_TOL = 2.0**1000  # larger tolerances are clamped so that bin widths stay finite
# Level-bound parameters.  SZ3-style tightening (alpha > 1) made every benchmark field
# larger here (e.g. geometric-mean ratio 1.5/4: -2%, 2/8: -5%), so the encoder uses none.
_ALPHA = 1.0
_BETA = 1.0
_MAX_GROUPS = 8
#: Points of the central block on which the axis order (and, in core, SZ3 or not) is chosen.
SAMPLE_SIZE = 1 << 16
#: Where rANS's estimate lies below the first bound times the fast zstd size, rANS is taken outright; above the
#: second zstd is; in between the strong size is estimated on slices (at level 19: 10-25% of a level-9 encode).
#: The strong level's size over the fast level's ranges 0.74-0.99 on the benchmark fields, but over their 29
#: cases in 0.7-0.98 (11 fields at eps 1e-2 to 1e-4, 2026-12-07) zstd was smaller only 5 times, by 0.8-3.0%:
#: 4 of the 12 cases from 0.9 up, 1 of the 17 below (by 0.8%, which the estimate missed too). Below 0.9 the
#: estimate chose rANS every time, so skipping it there changes none of those streams.
_ZSTD_GAIN = (0.9, 0.98)
#: Below :data:`_ESTIMATE_ZSTD_FROM` symbols, the zstd body is encoded beside the context rANS only where the
#: rANS estimate exceeds this fraction of the fast zstd size. Measured on 98 small chunks of the benchmark
#: fields (one step or 12 steps, eps 1e-2 to 1e-4): zstd won only above 0.98 (context rANS 1-23% smaller below).
_SMALL_ZSTD_GAIN = 0.95
#: Below this many symbols both bodies are always encoded: the estimate misses the tables' cost by up to 30%
#: there (a 384-value climatology: 656 estimated, 855 bytes), and zstd on so few bytes costs microseconds.
_WEIGH_BOTH_BELOW = 1 << 11
#: From this many symbols on, the strong zstd level's size is estimated on slices, not encoded in full.
_ESTIMATE_ZSTD_FROM = 1 << 17


#: From this level the encoder estimates its context models (level groups, classes, slice axis, radius K) ...
MODEL_LEVEL = 2
#: ... and from this one also the axis order (on a sample block) and whether a zstd body is smaller.
SEARCH_LEVEL = 3
#: Below MODEL_LEVEL: two level groups, no activity classes, radius 4 on the previous point along the first axis
#: longer than 1 (:func:`_fixed_slice_axis`); with no classes the decoder skips its classification sweep. A table
#: of FIXED_GROUPS * (2 FIXED_K + 2) models over at most 2**16 symbols stays within _MAX_TABLE.
FIXED_GROUPS = 2
FIXED_K = 4
#: ... and each pass's interpolation weighed on every 8th row of its targets.
FIXED_COST_STRIDE = 8


def _group(level: int, groups: int) -> int:
    """Level group of ``level``: the finest levels get their own, the coarse ones share the last."""
    return max(1, min(level, groups)) - 1


@functools.lru_cache(maxsize=256)
def classes_of_fine(cuts: tuple[int, ...]) -> np.ndarray:
    """The context class of every fine activity class under ``cuts`` (uint8; shared, so read-only)."""
    out = np.searchsorted(np.array(cuts, np.int64), np.arange(N_FINE), side="right").astype(np.uint8)
    out.flags.writeable = False
    return out


@functools.lru_cache(maxsize=256)
def _bins(tol: float, alpha: float, beta: float, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`~xdiffc.quantize.level_bins` and their reciprocals (shared, so read-only), built once per bound: the
    chunks of one variable share it, and a small chunk's decode is otherwise a few microseconds more."""
    bins = level_bins(tol, alpha, beta, levels)
    with np.errstate(over="ignore"):  # a subnormal bin: infinite activity, as in release 0.1.0
        inv = 1.0 / bins
    bins.flags.writeable = inv.flags.writeable = False
    return bins, inv


# ----------------------------------------------------------------------------- encoder


class _Passes:
    """What the predictor produced for the kept points of every pass (the origin is pass 0)."""

    def __init__(self, values: np.ndarray, keep: np.ndarray | None, tol: float, cost_stride: int = 1,
                 in_place: bool = False, recon_dtype: type = np.float64, fine_classes: bool = True) -> None:
        """``in_place``: ``values`` (C order, of ``recon_dtype``) becomes the reconstruction, built in
        ``recon_dtype`` (float32: see :data:`VERSION_F32`). Without ``fine_classes`` every fine class is 0 (level 1
        has no activity classes: the pass then takes 0.77-0.80 of the time on fields without missing values)."""
        shape = np.array(values.shape, np.int64)
        self.levels = kern.n_levels(values.shape)
        self.n_pass = len(kern.passes(values.shape))
        n_keep = values.size if keep is None else int(np.count_nonzero(keep))
        bins = level_bins(tol, _ALPHA, _BETA, self.levels)
        self.recon = values.reshape(-1) if in_place else np.empty(values.size, recon_dtype)
        self.sym = np.empty(n_keep, np.uint16)
        self.fine = np.empty(n_keep, np.uint8)
        self.start = np.empty(self.n_pass + 2, np.int64)
        self.kinds = np.zeros(self.n_pass, np.uint8)
        self.plevel = np.empty(self.n_pass + 1, np.int64)
        flat_keep = keep.reshape(-1) if keep is not None else np.ones(0, bool)
        self.unpred = kern.encode_passes(values.reshape(-1), flat_keep, shape, bins, tol, self.recon, self.sym,
                                         self.fine, self.start, self.kinds, self.plevel, cost_stride, fine_classes)
        self.start = self.start[: self.n_pass + 2]


def _fixed_slice_axis(shape: tuple[int, ...]) -> int:
    """The axis of level 1's previous-slice context: the first longer than 1 (time, in CF's order).

    The predictor interpolates most finely along the last axis, so the neighbour along it tells the model little
    that the prediction has not used; the one along the first axis (the same place a step earlier, for climate
    output) does. Measured (2026-12-07, the 11 benchmark fields at eps 1e-2 / 1e-3 / 1e-4, level 1, geometric-mean
    CR over SZ3's): the last axis with activity classes gave 1.101 / 1.158 / 1.109 on whole fields; the first
    axis 1.270 / 1.299 / 1.175, and without the classes 1.195 / 1.257 / 1.154, decoded in 0.55-0.59 of the time and
    encoded in 0.77-0.99 (level 1 is the fast level, so it has none). On 12-step chunks: 1.085 / 1.141 / 1.111 to
    1.122 / 1.257 / 1.175; on single steps (lat or level first, most of them too small for classes before):
    1.011 / 1.059 / 1.021 to 1.035 / 1.076 / 1.032. The worst whole field lost 7% (a 3-hourly precipitation at
    1e-2), and 32 of the 54 single steps up to 4.7%. Estimating the better axis gained 1-2% more for 1.2-1.55x the
    encoder's time."""
    live = [a for a, n in enumerate(shape) if n > 1]
    return live[0] if live else 0


def _choose_models(p: _Passes) -> tuple[float, int, list[int]]:
    """Pick the level grouping and context classes of smallest estimated size: (bits, groups, cuts)."""
    dense, n_dense = kern.dense_symbols(p.sym)
    bits, groups, starts = choose_grouping(p.sym, dense, p.fine, p.start, p.plevel, p.levels, N_FINE, n_dense,
                                           _MAX_GROUPS)
    return float(bits) + 64.0 * p.unpred.size, int(groups), [int(c) for c in np.flatnonzero(starts)[1:]]


def _orders(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Candidate axis orders: permutations of the axes longer than 1 (the others keep their places)."""
    live = [k for k, n in enumerate(shape) if n > 1]
    perms = list(itertools.permutations(live)) if len(live) <= 3 else [tuple(live), tuple(live)[::-1]]
    out = []
    for p in perms:
        order, it = [], iter(p)
        for k, n in enumerate(shape):
            order.append(next(it) if n > 1 else k)
        out.append(tuple(order))
    return out


def sample_block(shape: tuple[int, ...]) -> tuple[slice, ...]:
    """The central block of at most :data:`SAMPLE_SIZE` points on which choices are estimated."""
    ext = list(shape)
    while math.prod(ext) > SAMPLE_SIZE:
        ext[int(np.argmax(ext))] //= 2
    return tuple(slice((n - e) // 2, (n - e) // 2 + e) for n, e in zip(shape, ext))


def _choose_order(values: np.ndarray, keep: np.ndarray | None, tol: float,
                  recon_dtype: type = np.float64) -> tuple[tuple[int, ...], float, tuple]:
    """Axis order (a permutation) whose prediction codes the sample block smallest, and that estimate in bits.

    The last axis in the order gets the most (and closest) interpolation steps.  Where the block
    is the whole field, the third item is the winner's (passes, models), which the encoder reuses.
    """
    block = sample_block(values.shape)
    whole = all(b.stop - b.start == n for b, n in zip(block, values.shape))
    runs = []
    for order in _orders(values.shape):
        v = np.ascontiguousarray(values[block].transpose(order))
        k = None if keep is None else np.ascontiguousarray(keep[block].transpose(order))
        p = _Passes(v, k, tol, recon_dtype=recon_dtype)
        models = _choose_models(p)
        runs.append((models[0], order, (p, models) if whole else None))
    bits, order, reuse = min(runs, key=lambda r: r[0])
    return order, bits, reuse


def _head(coder: int, tol: float, order: tuple[int, ...], groups: int, cuts: list[int]) -> bytes:
    return struct.pack("<BBddd", VERSION, coder, tol, _ALPHA, _BETA) + bytes(order) + bytes([groups, len(cuts)] + cuts)


def _ans_body(sym: np.ndarray, lengths: np.ndarray, plevel: np.ndarray, groups: int, n_cls: int) -> bytes:
    """Histograms plus rANS words for all symbols (``lengths[pass, class]`` symbols per segment)."""
    model_of_seg = (np.array([_group(int(lv), groups) for lv in plevel])[:, None] * n_cls + np.arange(n_cls)).ravel()
    ends = np.cumsum(lengths.ravel())
    lo = int(sym.min()) if sym.size else 0
    width = (int(sym.max()) - lo + 1) if sym.size else 1
    n_models = groups * n_cls
    hists = kern.model_hists(sym, lengths.ravel(), model_of_seg, n_models, lo, width)
    sparse = [rans.sparse(h) for h in hists]
    sparse = [(nz + lo, c) for nz, c in sparse]
    models = [rans.model_of(nz, c) for nz, c in sparse]
    segments = [(int(m), sym[e - n : e]) for m, n, e in zip(model_of_seg, lengths.ravel(), ends) if n]
    words = rans.encode_segments(segments, models)
    return b"".join(rans.histogram_bytes(nz, c) for nz, c in sparse) + rans.words_bytes(words)


def _zstd_body(sym: np.ndarray, smallest: bool) -> bytes:
    """Length-prefixed zstd frame of the interpolation codes (0 = unpredictable, else zigzag(q) + 1), at zstd's
    strong level (``smallest``: its strongest, :func:`~xdiffc.entropy.zstd.strong_level`).

    zstd's long-range matching finds residual patterns that repeat (e.g. from one time step to
    the next), which the static rANS models cannot.
    """
    planes = codes.offset_planes(sym, RADIUS)
    return zstd.frame(planes, zstd.strong_level(planes.size, smallest))


def _fast_zstd_bytes(sym: np.ndarray) -> int:
    """Size of the zstd body at the fast level (about 300 MB/s): the estimate the coder choice starts from."""
    return len(zstd.frame(codes.offset_planes(sym, RADIUS), zstd.FAST_LEVEL))


def _strong_zstd_estimate(sym: np.ndarray, fast: int, smallest: bool) -> float:
    """Bytes of the zstd body at the strong level (:func:`_zstd_body`'s): ``fast`` times the strong/fast ratio on
    two slices.

    The slices are 1/16 of the symbols each (the last, finest ones and the middle ones); measured
    on the benchmark fields, the estimate lies within 4% of the real size, at 1/8 of its cost.
    """
    m = sym.size // 16
    ratios = []
    for a in (sym.size - m, (sym.size - m) // 2):
        planes = codes.offset_planes(sym[a : a + m], RADIUS)
        strong = len(zstd.frame(planes, zstd.strong_level(2 * sym.size, smallest)))
        ratios.append(strong / max(len(zstd.frame(planes, zstd.FAST_LEVEL)), 1))
    return fast * float(np.mean(ratios))


def encode(values: np.ndarray, tol: float, skip: np.ndarray | None = None) -> bytes:
    """Compress ``values`` so that ``decode`` returns them within ``tol`` wherever ``skip`` is False."""
    return encode_reconstruct(values, tol, skip)[0]


def encode_reconstruct(values: np.ndarray, tol: float, skip: np.ndarray | None = None,
                       coder: int | None = None, dtype: np.dtype | None = None,
                       level: int = 9, scratch: bool = False,
                       finish: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[bytes, np.ndarray]:
    """The payload and the field that :func:`decode` will rebuild from it, bit for bit (float64, or float32 where
    ``dtype`` is float32 and the bound allows it: :data:`VERSION_F32`).

    ``values`` may be float32 or float64 (converted value by value inside the kernels).
    ``coder`` forces an entropy coder (tests); by default the smaller estimate is encoded.
    ``dtype``: the reconstruction comes back cast to it (default float64), without a float64 copy.
    ``level``: see :class:`InterpCoder`.
    ``scratch``: the caller no longer needs ``values``; where they are of the reconstruction's dtype, it is built
    in their memory (a copy of the chunk fewer at the peak); ``values`` must not be used afterwards.
    ``finish``: the caller's last step on the reconstruction (in place), taken before the cast to
    ``dtype`` and before the entropy estimates, so that no float64 field outlives the prediction passes.
    """
    payload, recon, _ = _encode(values, tol, skip, coder, dtype, level, scratch, finish)
    return payload, recon


def _encode(values: np.ndarray, tol: float, skip: np.ndarray | None, coder: int | None, dtype: np.dtype | None,
            level: int, scratch: bool = False, finish: Callable[[np.ndarray], np.ndarray] | None = None,
            ) -> tuple[bytes, np.ndarray, float | None]:
    """:func:`encode_reconstruct`, and the estimated payload bytes of the central :func:`sample_block`, scaled
    by the full payload's size over its estimate (None where the level estimates nothing)."""
    values = np.asarray(values)
    out_shape = values.shape
    if values.dtype not in (np.float32, np.float64):
        values = values.astype(np.float64)
    if not (np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be finite and positive, got {tol!r}")
    shape = values.shape if values.ndim else (1,)
    keep = None if skip is None else ~np.asarray(skip, bool).reshape(shape)
    values = values.reshape(shape)
    work_tol = min(float(tol), _MAX_TOL)
    order = tuple(range(len(shape)))
    if values.size == 0:
        return _head(CODER_ANS, tol, order, 1, []) + uvarint(0), np.zeros(out_shape, dtype or np.float64), None
    if values.size >= MAX_VALUES:
        raise ValueError(f"the interpolation coder takes chunks of fewer than 2**31 values, got {values.size} "
                         f"(its estimates index symbols with 4 bytes); split the chunk")
    margin = float32_margin(values, keep, work_tol) if dtype is not None and np.dtype(dtype) == np.float32 else None
    recon_dtype = np.float64 if margin is None else np.float32
    if margin is not None:  # the float32 rounding of each reconstruction (<= margin / 4) stays within the bound
        work_tol = tol = work_tol - margin
    if level >= SEARCH_LEVEL:
        order, sample_bits, reuse = _choose_order(values, keep, work_tol, recon_dtype)
    else:
        sample_bits, reuse = math.nan, None
    coded_shape = tuple(shape[k] for k in order)
    if reuse is not None:
        p, models = reuse
        keep = None if keep is None else np.ascontiguousarray(keep.transpose(order))
    else:
        given = values
        if order != tuple(range(len(shape))):
            values = np.ascontiguousarray(values.transpose(order))
            keep = None if keep is None else np.ascontiguousarray(keep.transpose(order))
        else:
            values = np.ascontiguousarray(values)
            keep = None if keep is None else np.ascontiguousarray(keep)
        # the values are given up, or a copy of them (transposed): the reconstruction may be built in them
        in_place = (scratch or not np.may_share_memory(values, given)) and values.dtype == recon_dtype
        del given
        fixed = level < MODEL_LEVEL
        p = _Passes(values, keep, work_tol, FIXED_COST_STRIDE if fixed else 1, in_place, recon_dtype, not fixed)
    del values
    # the reconstruction in the output dtype before the estimates: the float64 one is their size again
    if finish is None:
        recon = _in_shape(narrow(p.recon, dtype), coded_shape, order)
    else:
        recon = narrow(finish(_in_shape(p.recon, coded_shape, order)), dtype)
    p.recon = None
    if reuse is not None:
        ans_bits, groups, cuts = models
    elif level >= MODEL_LEVEL:
        ans_bits, groups, cuts = _choose_models(p)
    else:
        ans_bits, groups, cuts = math.nan, max(1, min(FIXED_GROUPS, p.levels)), []
    plan = None
    if (coder is None or coder == CODER_CTX) and level >= MODEL_LEVEL:
        class_margin = _FULL_SEARCH_CLASS_MARGIN if level >= FULL_SEARCH_LEVEL else _CLASS_MARGIN
        plan = _CtxPlan(p, keep, coded_shape, groups, cuts, class_margin)
    elif coder is None or coder == CODER_CTX:
        plan = _CtxPlan.fixed(p, keep, coded_shape, groups, _fixed_slice_axis(coded_shape), FIXED_K)
    del keep
    smallest = level >= FULL_SEARCH_LEVEL  # zstd's strongest level for its body; below, a faster one (entropy.zstd)
    if coder is None and level < SEARCH_LEVEL:
        coders = [CODER_CTX]
    elif coder is None:
        # zstd's strong level finds repeats (e.g. from year to year) that the static models cannot
        # (the version 2 contexts on the previous slice catch most of them); it costs ~20x the fast
        # level, so it runs only where estimates say it may win.
        ctx_bytes = plan.bits / 8 + 12  # + the axis, K and precision bytes and the final rANS state
        fast = _fast_zstd_bytes(p.sym)
        if _ZSTD_GAIN[0] * fast >= ctx_bytes:
            coders = [CODER_CTX]
        elif p.sym.size < _ESTIMATE_ZSTD_FROM:  # small: both are cheap; weigh both unless rANS is surely smaller
            sure = _SMALL_ZSTD_GAIN * fast >= ctx_bytes and p.sym.size >= _WEIGH_BOTH_BELOW
            coders = [CODER_CTX] if sure else [CODER_CTX, CODER_ZSTD]
        elif _ZSTD_GAIN[1] * fast < ctx_bytes:
            coders = [CODER_ZSTD]
        else:
            coders = [CODER_ZSTD if _strong_zstd_estimate(p.sym, fast, smallest) < ctx_bytes else CODER_CTX]
    else:
        coders = [coder]
    payloads = []
    for k, c in enumerate(coders):
        last = k == len(coders) - 1
        if c == CODER_CTX:
            payloads.append(_assemble_ctx(p, plan, float(tol), order, last=last))
        else:
            payloads.append(_assemble(p, c, float(tol), order, groups, cuts, smallest, last=last))
    payload = min(payloads, key=len)
    if margin is not None:
        payload = bytes([VERSION_F32]) + payload
    sample = None if math.isnan(sample_bits) else sample_bits / 8 * len(payload) / max(ans_bits / 8, 1.0)
    return payload, recon.reshape(out_shape), sample


def float32_margin(values: np.ndarray, keep: np.ndarray | None, tol: float) -> float | None:
    """How much to take off ``tol`` so that a float32 reconstruction stays within it (twice the float32 spacing
    at the largest value reconstructed), or None where that is more than :data:`F32_MAX_MARGIN` of ``tol``
    (the bound is too tight for float32: the reconstruction stays float64)."""
    where = True if keep is None else keep
    with np.errstate(invalid="ignore"):
        hi = float(np.max(values, where=where, initial=-np.inf))
        lo = float(np.min(values, where=where, initial=np.inf))
    top = max(abs(hi), abs(lo), 0.0) + 2.0 * tol if hi >= lo else 2.0 * tol
    if not top < F32_MAX_VALUE:
        return None
    margin = 2.0 * float(np.spacing(np.float32(top)))
    return margin if margin <= F32_MAX_MARGIN * tol else None


def _in_shape(flat: np.ndarray, coded_shape: tuple[int, ...], order: tuple[int, ...]) -> np.ndarray:
    """The field of ``coded_shape`` (flat, C order), laid out in the original axis order (``order`` undone)."""
    if order == tuple(range(len(order))):
        return flat.reshape(coded_shape)
    return np.ascontiguousarray(flat.reshape(coded_shape).transpose(np.argsort(order)))


def _assemble(p: _Passes, coder: int, tol: float, order: tuple[int, ...], groups: int, cuts: list[int],
              smallest: bool, last: bool = False) -> bytes:
    """The complete payload for one entropy coder (zstd: one model, no classes, at its strongest level where
    ``smallest``); ``last`` frees ``p``'s symbols."""
    if coder == CODER_ZSTD:
        groups, cuts = 1, []
    cls_of_fine = classes_of_fine(tuple(cuts))
    if len(cuts):
        sym, lengths, unpred = kern.layout(p.sym, p.fine, p.start, p.unpred, cls_of_fine, len(cuts) + 1)
    else:  # one class: the symbols are already in payload order
        sym, lengths, unpred = p.sym, np.diff(p.start)[:, None], p.unpred
    if last:
        p.sym = p.fine = None
    head = _head(coder, tol, order, groups, cuts)
    mid = uvarint(unpred.size) + unpred.astype("<f8").tobytes() + np.packbits(p.kinds.astype(bool)).tobytes()
    if coder == CODER_ANS:
        return head + mid + _ans_body(sym, lengths, p.plevel, groups, len(cuts) + 1)
    return head + mid + _zstd_body(sym, smallest)


# ----------------------------------------------------------------------------- version 2 (context rANS)


class _CtxPlan:
    """The version 2 choice: slice axis, radius K, context classes (version 1's or none) and the estimated bits;
    :meth:`ctx` gives the symbols' model indices.

    Without classes the decoder skips the classification sweep (about a third of its time), so
    that option wins unless the classes save more than ``class_margin`` of the size (:data:`_CLASS_MARGIN` below
    the full search, :data:`_FULL_SEARCH_CLASS_MARGIN` at it).
    """

    def __init__(self, p: _Passes, keep: np.ndarray | None, coded_shape: tuple[int, ...], groups: int,
                 cuts: list[int], class_margin: float) -> None:
        self.groups = groups
        shape = np.array(coded_shape, np.int64)
        masked = keep is not None
        flat_keep = keep.reshape(-1) if masked else np.ones(1, bool)
        self.dense, self.n_dense = kern.dense_symbols(p.sym)
        extra = 64.0 * p.unpred.size
        options = [list(cuts), []] if cuts else [[]]
        axes = [a for a, n in enumerate(coded_shape) if n > 1]
        best = None  # (bits to compare, bits, axis, k, cuts)
        opts = []
        for opt in options:
            cls_of_fine = classes_of_fine(tuple(opt))
            n_gc = groups * (len(opt) + 1)
            kmax = _MAX_K
            while kmax and n_gc * (2 * kmax + 2) * self.n_dense > _MAX_TABLE:
                kmax //= 2
            opts.append((opt, cls_of_fine, n_gc, kmax, 1.0 if opt else 1.0 - class_margin))
        for axis in axes or [None]:
            prev = None
            for opt, cls_of_fine, n_gc, kmax, scale in opts:
                if axis is None or not kmax:
                    if axes and axis != axes[0]:
                        continue
                    kmax, pv = 0, np.zeros(p.sym.size, np.uint16)
                else:
                    if prev is None:
                        prev = kern.prev_symbols(p.sym, p.start, shape, flat_keep, masked, axis)
                    pv = prev
                ctx = kern.contexts(p.fine, p.start, p.plevel, pv, groups, cls_of_fine, len(opt) + 1, kmax)
                ks = np.array([k for k in _K_CHOICES if k <= kmax], np.int64)
                for k, bits in zip(ks, folded_bits(p.sym, self.dense, ctx, self.n_dense, n_gc, kmax, ks) + extra):
                    if best is None or bits * scale < best[0]:
                        best = (float(bits) * scale, float(bits), 0 if not k else axis, int(k), opt)
                del ctx
            del prev
        _, self.bits, self.axis, self.k, self.cuts = best
        self.cls_of_fine = classes_of_fine(tuple(self.cuts))
        self.n_cls = len(self.cuts) + 1
        self.keep, self.shape, self.masked = flat_keep, shape, masked

    @classmethod
    def fixed(cls, p: _Passes, keep: np.ndarray | None, coded_shape: tuple[int, ...], groups: int, axis: int,
              k: int) -> _CtxPlan:
        """The plan of the given choices and no activity classes, estimated nothing (level 1)."""
        plan = cls.__new__(cls)
        plan.dense, plan.n_dense = kern.dense_symbols(p.sym)
        plan.groups, plan.cuts, plan.bits, plan.n_cls = groups, [], math.nan, 1
        plan.axis, plan.k = (axis, k) if k else (0, 0)
        plan.cls_of_fine = classes_of_fine(())
        plan.masked = keep is not None
        plan.keep = keep.reshape(-1) if plan.masked else np.ones(1, bool)
        plan.shape = np.array(coded_shape, np.int64)
        return plan

    def ctx(self, p: _Passes) -> np.ndarray:
        """The model index of every symbol. Computed again for the payload, not kept from the estimates: a kept
        one, beside the next option's and the previous-slice symbols, was the encoder's peak (2 bytes a value)."""
        prev = (kern.prev_symbols(p.sym, p.start, self.shape, self.keep, self.masked, self.axis) if self.k
                else np.zeros(p.sym.size, np.uint16))
        return kern.contexts(p.fine, p.start, p.plevel, prev, self.groups, self.cls_of_fine, self.n_cls, self.k)


def _assemble_ctx(p: _Passes, plan: _CtxPlan, tol: float, order: tuple[int, ...], last: bool = False) -> bytes:
    """The complete version 3 payload (version 2 with compact tables)."""
    n_b = 2 * plan.k + 2 if plan.k else 1
    n_models = plan.groups * plan.n_cls * n_b
    ctx = plan.ctx(p)
    if last:  # the fine classes are in the contexts now
        p.fine = None
    counts = kern.context_counts(p.sym, ctx, n_models, plan.dense, plan.n_dense)
    prec = _PREC if int((counts > 0).sum(axis=1).max(initial=0)) <= 1 << _PREC else crans.MAX_PREC
    table, freq = crans.compact_tables(counts, np.flatnonzero(plan.dense >= 0), prec)
    del counts
    words = crans.encode(p.sym, ctx, plan.dense, freq, prec)
    head = (struct.pack("<Bd", VERSION_COMPACT, tol) + bytes(order)
            + bytes([plan.groups, len(plan.cuts)] + plan.cuts) + bytes([plan.axis, plan.k, prec]))
    mid = uvarint(p.unpred.size) + p.unpred.astype("<f8").tobytes() + np.packbits(p.kinds.astype(bool)).tobytes()
    if last:
        p.sym = None
    return head + mid + table + uvarint(words.size) + words.astype("<u4").tobytes()


# ----------------------------------------------------------------------------- decoder


class _Header:
    """Decoded fixed part of a payload."""

    def __init__(self, r: Reader, ndim: int) -> None:
        self.version = r.u8()
        if self.version not in (VERSION, VERSION_CTX, VERSION_COMPACT):
            raise CorruptStreamError("interp payload has an unknown format version")
        # fields read a few at a time and checked in plain Python: numpy calls on a few bytes took 23 us of each
        # decode, and a call per field a few more
        if self.version == VERSION_COMPACT:  # no coder byte; alpha and beta are the constants
            self.coder, self.alpha, self.beta = CODER_ANS, _ALPHA, _BETA
            self.tol = r.f64()
        else:
            self.coder, self.tol, self.alpha, self.beta = struct.unpack("<Bddd", r.take(25))
        self.order = tuple(r.take(ndim))
        self.groups, n_cuts = r.take(2)
        cuts = list(r.take(n_cuts))
        self.cuts = tuple(cuts)
        valid = (
            self.coder in (CODER_ANS, CODER_ZSTD)
            and math.isfinite(self.tol) and self.tol > 0
            and math.isfinite(self.alpha) and math.isfinite(self.beta) and self.alpha >= 1 and self.beta >= 1
            and sorted(self.order) == list(range(ndim))
            and 1 <= self.groups <= _MAX_GROUPS
            and all(a < b for a, b in zip(cuts, cuts[1:])) and all(1 <= c < N_FINE for c in cuts)
        )
        if self.version >= VERSION_CTX:
            self.axis, self.k, self.prec = r.take(3)
            valid = (valid and self.coder == CODER_ANS and self.axis < ndim and self.k <= 127
                     and 1 <= self.prec <= crans.MAX_PREC)
        if not valid:
            raise CorruptStreamError("interp payload header is invalid")


class _ZstdSource:
    """All symbols of a zstd body, handed out in decode order."""

    def __init__(self, r: Reader, n_symbols: int) -> None:
        raw = zstd.read_frame(r, 2 * n_symbols, "the interp zstd frame")
        self.flat = codes.offset_symbols(np.frombuffer(raw, np.uint8), n_symbols, RADIUS)
        if len(r.rest()):
            raise CorruptStreamError("interp payload has trailing bytes")
        self.pos = 0

    def take(self, model: int, n: int) -> np.ndarray:
        if self.pos + n > self.flat.size:
            raise CorruptStreamError("interp zstd frame holds too few symbols")
        self.pos += n
        return self.flat[self.pos - n : self.pos]

    def finish(self) -> None:
        if self.pos != self.flat.size:
            raise CorruptStreamError("interp payload holds more symbols than the shape needs")


def _ans_source(r: Reader, n_models: int, n_symbols: int) -> rans.Decoder:
    models = [rans.model_of(*rans.read_histogram(r, 2 * RADIUS, n_symbols, "the interp payload"))
              for _ in range(n_models)]
    dec = rans.Decoder(r, models, n_symbols, "the interp payload")
    if len(r.rest()):
        raise CorruptStreamError("interp payload has trailing bytes")
    return dec


def decode(payload: bytes, shape: tuple[int, ...], skip: np.ndarray | None = None,
           dtype: np.dtype | None = None) -> np.ndarray:
    """Reconstruct the array of ``shape`` that ``encode`` compressed into ``payload``: float64, or float32 for a
    version 4 payload (cast to ``dtype`` if given, in the reconstruction's memory).

    The whole payload is parsed and its counts checked against ``shape`` before any array of
    that shape is allocated.
    """
    shape = tuple(int(n) for n in shape)
    coded = shape if shape else (1,)
    n_keep = math.prod(coded) - (0 if skip is None else int(np.count_nonzero(skip)))
    r = Reader(payload, "the interp payload")
    recon_dtype = np.float64
    if bytes(payload[:1]) == bytes([VERSION_F32]):  # a version 1 or 3 payload follows, reconstructed in float32
        r.u8()
        recon_dtype = np.float32
    h = _Header(r, len(coded))
    if recon_dtype == np.float32 and h.version not in (VERSION, VERSION_COMPACT):
        raise CorruptStreamError("interp payload: version 4 wraps a version 1 or 3 payload only")
    unpred = np.frombuffer(r.take(8 * r.uvarint(n_keep)), "<f8").astype(np.float64)
    if math.prod(coded) == 0:
        if len(r.rest()):
            raise CorruptStreamError("interp payload has trailing bytes")
        return np.zeros(shape, dtype or np.float64)
    coded = tuple(coded[i] for i in h.order)
    n_pass = kern.n_passes(coded)
    kinds = np.unpackbits(np.frombuffer(r.take((n_pass + 7) // 8), np.uint8))[:n_pass].astype(bool)
    n_cls = len(h.cuts) + 1
    if h.version >= VERSION_CTX:
        source = _CtxSource(r, h, n_cls, n_keep)
    elif h.coder == CODER_ANS:
        source = _ans_source(r, h.groups * n_cls, n_keep)
    else:
        source = _ZstdSource(r, n_keep)
    masked = skip is not None
    if masked:
        keep = ~np.asarray(skip, bool).reshape(shape if shape else (1,))
        keep = np.ascontiguousarray(keep.transpose(h.order)).reshape(-1)
    else:
        keep = np.ones(1, bool)
    bins, inv_bins = _bins(min(h.tol, _MAX_TOL), h.alpha, h.beta, kern.n_levels(coded))
    if h.version >= VERSION_CTX:
        recon = _reconstruct_ctx(coded, keep, masked, bins, inv_bins, h, kinds, source, unpred, recon_dtype)
    else:
        recon = _reconstruct(coded, keep, masked, bins, inv_bins, h, kinds, source, unpred, recon_dtype)
    source.finish()
    return _in_shape(narrow(recon, dtype), coded, h.order).reshape(shape)


def _code_buffer(n_max: int, size: int) -> np.ndarray:
    """The kernels' ``code`` scratch of one pass (-1, a symbol, or ``-2 - k`` for unpredictable value ``k < size``):
    4 bytes a target where that holds every code (8 would add half the float64 field to the decoder's peak)."""
    return np.empty(n_max, np.int32 if size < 2**31 - 2 else np.int64)


def _reconstruct(coded, keep, masked, bins, inv_bins, h, kinds, source, unpred, recon_dtype) -> np.ndarray:
    """Replay the encoder's prediction passes, dequantising the decoded symbols."""
    n_cls = len(h.cuts) + 1
    cls_of_fine = classes_of_fine(h.cuts)
    shape = np.array(coded, np.int64)
    recon = np.zeros(math.prod(coded), recon_dtype)
    top = bins.size - 1
    # the origin: one symbol (class 0) unless skipped
    upos = 0
    if not masked or keep[0]:
        upos = kern.decode_origin(int(source.take(_group(top, h.groups) * n_cls, 1)[0]), recon, unpred,
                                  float(bins[top]))
        if upos < 0:
            raise CorruptStreamError("interp payload lacks unpredictable values")
    n_max = max(1, recon.size // 2 + 1)
    cls = np.empty(n_max, np.uint8)
    code = _code_buffer(n_max, recon.size)
    counts = np.zeros(n_cls, np.int64)
    seg = np.zeros(n_cls + 1, np.int64)
    classed = n_cls > 1 or masked
    for i, (level, d) in enumerate(kern.passes(coded)):
        pas = (shape, level, d, bool(kinds[i]), bins[level], inv_bins[level])  # the kernels' pass tuple
        if classed:
            kern.classify_pass(recon, keep, masked, pas, cls_of_fine, n_cls, cls, counts)
        else:
            counts[0] = kern.n_targets(coded, level, d)
        base = _group(level, h.groups) * n_cls
        np.cumsum(counts, out=seg[1:])
        parts = [source.take(base + c, int(counts[c])) for c in range(n_cls)]
        syms = parts[0] if n_cls == 1 else np.concatenate(parts)
        upos = kern.decode_pass(recon, pas, cls, classed, np.ascontiguousarray(syms, np.int64), seg, unpred, upos, code)
        if upos < 0:
            raise CorruptStreamError("interp payload lacks unpredictable values")
    if upos != unpred.size:
        raise CorruptStreamError("interp payload holds surplus unpredictable values")
    return recon


class _CtxSource:
    """The frequency tables and rANS words of a version 2 payload."""

    def __init__(self, r: Reader, h: _Header, n_cls: int, n_symbols: int) -> None:
        self.n_b = 2 * h.k + 2 if h.k else 1
        tables = crans.read_tables(r, h.groups * n_cls * self.n_b, h.prec, 2 * RADIUS, n_symbols, "the interp payload",
                                   compact=h.version == VERSION_COMPACT)
        n_words = r.uvarint((r.end - r.pos) // 4)
        words = np.frombuffer(r.take(4 * n_words), "<u4").astype(np.uint32)
        if len(r.rest()):
            raise CorruptStreamError("interp payload has trailing bytes")
        self.dec = crans.open_decoder(tables, words, "the interp payload")
        self.left = n_symbols

    def finish(self) -> None:
        if self.left:
            raise CorruptStreamError("interp payload: the shape needs a different number of symbols")
        crans.check_end(self.dec, "the interp payload")


@functools.lru_cache(maxsize=None)
def _bucket_map(k: int) -> np.ndarray:
    """:func:`xdiffc.predict.interp.bucket_map` of radius ``k``, built once per process (512 KB; read-only)."""
    out = kern.bucket_map(k)
    out.flags.writeable = False
    return out


def _reconstruct_ctx(coded, keep, masked, bins, inv_bins, h, kinds, src: _CtxSource, unpred, recon_dtype) -> np.ndarray:
    """Versions 2 and 3: the origin, then each pass's symbols in symbol order under their contexts, reconstructed
    (one kernel call)."""
    n_cls = len(h.cuts) + 1
    recon = np.zeros(math.prod(coded), recon_dtype)
    n_max = max(1, recon.size // 2 + 1)
    scratch = (np.empty(n_max, np.uint8), _code_buffer(n_max, recon.size))
    plan = (h.groups, n_cls, src.n_b, h.axis, _bucket_map(h.k))  # the kernel's plan tuple
    field = (keep, masked, np.array(coded, np.int64), kinds, bins, inv_bins, classes_of_fine(h.cuts),
             n_cls > 1 or masked)  # the kernel's field tuple
    upos, src.left = kern.decode_ctx_passes(recon, field, plan, src.dec, unpred, src.left, scratch)
    if upos == kern.ERR_COUNT:
        raise CorruptStreamError("interp payload: the shape needs a different number of symbols")
    if upos == kern.ERR_SYMBOLS:
        raise CorruptStreamError("interp payload: the rANS stream is damaged")
    if upos < 0:
        raise CorruptStreamError("interp payload lacks unpredictable values")
    if upos != unpred.size:
        raise CorruptStreamError("interp payload holds surplus unpredictable values")
    return recon


# ----------------------------------------------------------------------------- the coder


class InterpCoder:
    """Interpolation prediction, the coder every level tries. Level 1 codes in the array's own axis order with
    fixed context models (no estimates); level 2 estimates the context models; from level 3 it also picks the
    axis order on a sample block and weighs a zstd body."""

    name, priority, min_level = "interp", 20, 1

    def applies(self, shape: tuple[int, ...]) -> bool:
        return math.prod(shape) < MAX_VALUES

    def worth_encoding(self, trial: Trial) -> bool:
        return not trial.superseded

    def encode(self, trial: Trial) -> tuple[bytes, np.ndarray]:
        payload, recon, trial.sample_bytes = _encode(trial.target, trial.tol, trial.skip, None, trial.dtype,
                                                     trial.level)
        return payload, recon

    def decode(self, payload: bytes, shape: tuple[int, ...], skip: np.ndarray | None = None,
               dtype: np.dtype | None = None) -> np.ndarray:
        return decode(payload, shape, skip, dtype)
