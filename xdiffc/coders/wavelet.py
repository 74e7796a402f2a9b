"""Transform residual coder: CDF 9/7 wavelets, uniform quantisation, context-modelled rANS, outlier correction.

The field (length-1 axes dropped, more than three axes merged into the first) is transformed by
:mod:`xdiffc.predict.wavelet` (1 to 3 dimensions, any sizes); missing points are first filled
smoothly (:mod:`xdiffc.predict.inpaint`). Coefficients are quantised by a dead-zone quantiser,
``q = trunc(c / step)``, with ``step = factor * tol``; the factor is chosen by the encoder
(estimated sizes) among :data:`STEP_FACTORS`. The decoder dequantises to the middle of each bin,
``sign(q) * (|q| + 1/2) * step`` (0 where ``q = 0``), and inverts the transform. Since
the transform is not an L-infinity isometry, some points then miss the bound: as in SPERR, the
encoder runs the decoder's reconstruction, finds them, and codes a correction
``k = rint((x - y) / (2 tol))`` for each (``y + k * 2 tol``), so the pointwise bound holds up to
float64 rounding, which the core's exact check repairs.

The coefficients are coded band by band under contexts (band class and the activity of the
coefficients just before along each axis, :mod:`xdiffc.entropy.subbands`) with the compiled rANS
of :mod:`xdiffc.entropy.crans` under frozen tables; the encoder merges fine contexts into
models where that is estimated smaller, and records the merge. A quiet region then costs almost
nothing: its zero coefficients sit in contexts where 0 takes (nearly) all the probability.

Payload (little-endian; ``uv`` = unsigned LEB128 varint):

==============  ===========================================================
``u8``          format version (2; version 1, still read, has explicit tables)
``f64``         tol (the correction bin is ``2 * tol``)
``f64``         step (``> 0``, finite)
``u8``          decomposition: 0 dyadic, 1 packet (:mod:`xdiffc.predict.wavelet`)
``u8`` x 3      model merge: level groups ``G`` (1 to 8), band split (0 or 1),
                number of bucket cuts ``C`` (0 to 8), then ``C`` increasing cuts
                (1 to 8)
``u8``          rANS table precision (1 to 16 bits)
tables          one frequency table per model, compact (:mod:`xdiffc.entropy.crans`)
``uv`` + words  number of 32-bit rANS words, then the words
``uv`` + bytes  number of raw bits, then ``ceil(bits / 8)`` bytes
``uv``          number of corrections ``n``; if ``n > 0``: ``uv`` byte count and a
                zstd frame of ``n`` varint index gaps (the first: the flat index;
                then index - previous - 1) followed by ``n`` zigzag varints ``k``
==============  ===========================================================

Model of fine context ``(class c, bucket b)``: group 0 for ``c = 0``; else, with ``level =
(c - 1) // 3`` and ``h = (c - 1) % 3``, ``1 + min(level, G - 1) * S + (h if split)`` with
``S = 3`` if split else 1; the model is ``group * (C + 1) + (number of cuts <= b)``.
"""

from __future__ import annotations

import functools
import math
import struct

import numpy as np

from ..byteio import MAX_VARINT, Reader, deflate, inflate, put_varint, read_varint, uvarint
from ..entropy import crans, subbands as sb
from ..entropy.estimate import TABLE_MODEL_BYTES, TABLE_SYMBOL_BYTES, XLOG, xlog2
from ..errors import CorruptStreamError
from ..heap import release_freed
from ..narrow import narrow
from ..kernels import kernel
from ..predict import wavelet as wt
from ..predict.inpaint import inpaint
from .base import Trial

#: Version 2: compact frequency tables (:mod:`xdiffc.entropy.crans`); version 1 (explicit tables) is still read.
VERSION = 2
#: Decompositions the encoder tries by default, by the number of axes the transform sees: on 3 axes only
#: the packet one (time first: it won on every benchmark field with a time axis, at half the probe's
#: cost); on 2 axes both (a single map, like tos, is 6% smaller dyadic at eps 1e-2).
PROBE_PACKETS = {1: (False,), 2: (False, True), 3: (True,)}
#: The full payload was at least 1.12x the probe's coefficient bytes on the benchmark fields: encoded in full
#: only where this times the probe undercuts the smallest candidate so far.
PROBE_MARGIN = 1.1
#: The payload came within 0.96-1.0x the estimated total (corrections included) at :data:`PROBE_FACTOR` on the
#: benchmark fields at eps 1e-2 (the other steps win up to 4%): encoded in full only where this times that
#: total undercuts the smallest candidate so far.
TRIAL_MARGIN = 0.9
#: Quantisation steps tried, in units of tol (larger: fewer coefficient bits, more corrections).
STEP_FACTORS = (1.25, 1.5, 2.0)
#: The step at which the two decompositions are compared (coefficient bits only), and the estimate's.
PROBE_FACTOR = 1.5
_PREC = 14
_ZSTD_LEVEL = 9
#: Merges the encoder tries: level groups, band split by number of high axes, bucket cuts.
_GROUPS = (1, 2, 3, 4, 8)
_CUTS = ((), (1, 3), (1, 2, 3, 5, 7), (1, 2, 3, 4, 5, 6, 7, 8))


def wavelet_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The 1 to 3 dimensional shape the transform sees: length-1 axes dropped, leading axes merged past 3."""
    dims = tuple(int(n) for n in shape if n != 1) or (1,)
    if len(dims) > 3:
        dims = (math.prod(dims[:-2]),) + dims[-2:]
    return dims


def _shape3(wshape: tuple[int, ...]) -> tuple[int, int, int]:
    return (1,) * (3 - len(wshape)) + tuple(wshape)


@functools.lru_cache(maxsize=None)
def model_map(groups: int, split: bool, cuts: tuple[int, ...]) -> tuple[np.ndarray, int]:
    """Model index of every fine context, and the number of models (the array is shared: do not write to it)."""
    per = 3 if split else 1
    n_b = len(cuts) + 1
    out = np.empty(sb.N_FINE, np.int64)
    for c in range(sb.N_CLASSES):
        g = 0 if c == 0 else 1 + min((c - 1) // 3, groups - 1) * per + ((c - 1) % 3 if split else 0)
        for b in range(sb.N_BUCKETS):
            out[c * sb.N_BUCKETS + b] = g * n_b + int(np.searchsorted(np.array(cuts, np.int64), b, side="right"))
    out.flags.writeable = False
    return out, (1 + groups * per) * n_b


#: Every merge the encoder weighs, in order: (groups, split, cuts).
_MERGES = [(g, split, cuts) for g in _GROUPS for split in (False, True) for cuts in _CUTS]


@functools.lru_cache(maxsize=64)
def _band_layout(wshape: tuple[int, ...], packet: bool) -> tuple[np.ndarray, ...]:
    """:func:`~xdiffc.entropy.subbands.band_arrays` of the subbands of ``wshape`` (cached: chunks of a store share
    their shapes; the arrays are shared, so read-only)."""
    arrays = sb.band_arrays(wt.subbands(wshape, packet), _shape3(wshape))
    for a in arrays:
        a.flags.writeable = False
    return arrays


@functools.lru_cache(maxsize=None)
def _merge_maps() -> tuple[np.ndarray, np.ndarray]:
    """The model map of every merge of :data:`_MERGES` stacked [merge, fine context], and their model counts."""
    maps = [model_map(*m) for m in _MERGES]
    return np.stack([m for m, _ in maps]), np.array([n for _, n in maps], np.int64)


@kernel
def _merge_bits(counts, maps, n_models, model_bytes, symbol_bytes):
    """:func:`~xdiffc.entropy.estimate.model_bits` summed over the used models of each merge (one compiled pass;
    a small chunk weighs 40 merges per decomposition)."""
    out = np.zeros(maps.shape[0])
    merged = np.zeros((int(n_models.max()), counts.shape[1]), np.int64)
    for k in range(maps.shape[0]):
        merged[:] = 0
        for f in range(counts.shape[0]):
            m = maps[k, f]
            for s in range(counts.shape[1]):
                merged[m, s] += counts[f, s]
        bits = 0.0
        for m in range(n_models[k]):
            total, used, ent = 0, 0, 0.0
            for s in range(counts.shape[1]):
                c = merged[m, s]
                if c:
                    total += c
                    used += 1
                    ent -= xlog2(c, XLOG)
            if total:
                bits += ent + xlog2(total, XLOG) + 8.0 * (model_bytes + symbol_bytes * used)
        out[k] = bits
    return out


def _choose_merge(counts: np.ndarray) -> tuple[float, tuple[int, bool, tuple[int, ...]]]:
    """The merge of fine contexts with the smallest estimated size: (bits, (groups, split, cuts))."""
    maps, n_models = _merge_maps()
    rows, cols = counts.any(axis=1), counts.any(axis=0)  # only used contexts and symbols add bits
    bits = _merge_bits(np.ascontiguousarray(counts[rows][:, cols]), np.ascontiguousarray(maps[:, rows]), n_models,
                       TABLE_MODEL_BYTES, TABLE_SYMBOL_BYTES)
    k = int(np.argmin(bits))
    return float(bits[k]), _MERGES[k]


@kernel(inline="always")
def _code(x, y, bin_):
    """The correction code ``rint((x - y) / bin_)`` of a missed point (0 where it would not fit)."""
    k = np.rint((x - y) / bin_)
    return np.int64(k) if abs(k) < 2.0**53 else np.int64(0)


@kernel(inline="always")
def _varint_len(v):
    """Bytes of ``v >= 0`` as an unsigned LEB128 varint (:func:`~xdiffc.byteio.put_varint`)."""
    n = 1
    while v >= 128:
        v >>= 7
        n += 1
    return n


@kernel
def _corrections(x, y, keep, masked, tol):
    """The corrections where ``y`` misses ``x`` by more than ``tol`` (valid points only), with their codes
    ``k = rint((x - y) / (2 tol))``: (how many, their payload bytes: the index gaps' varints, then the codes'
    zigzag varints). ``y`` is corrected in place, as the decoder will (:func:`_apply`). A first sweep sizes the
    bytes, a second writes them: no index and code arrays, which cost 16 bytes a correction where a fifth of a
    chunk's points may need one."""
    bin_ = 2.0 * tol
    n, n_gaps, n_codes, prev = 0, np.int64(0), np.int64(0), np.int64(-1)
    for i in range(x.size):
        if (not masked or keep[i]) and not abs(x[i] - y[i]) <= tol:
            k = _code(x[i], y[i], bin_)
            n_gaps += _varint_len(i - prev - 1)
            n_codes += _varint_len(2 * k if k >= 0 else -2 * k - 1)
            prev = i
            n += 1
    out = np.empty(n_gaps + n_codes, np.uint8)
    ga, ca, prev = np.int64(0), n_gaps, np.int64(-1)  # int64, not literals: one compilation of put_varint
    for i in range(x.size):
        if (not masked or keep[i]) and not abs(x[i] - y[i]) <= tol:
            k = _code(x[i], y[i], bin_)
            ga = put_varint(out, ga, i - prev - 1)
            ca = put_varint(out, ca, 2 * k if k >= 0 else -2 * k - 1)
            prev = i
            y[i] = y[i] + np.float64(k) * bin_
    return n, out


@kernel
def _apply(y, idx, ks, bin_):
    """The decoder's corrections: ``y[idx] += ks * bin_``, one value at a time (as :func:`_corrections`)."""
    for j in range(idx.size):
        y[idx[j]] = y[idx[j]] + np.float64(ks[j]) * bin_


@kernel
def _parse_corrections(buf, n, size):
    """(indices, codes, ok) of ``n`` corrections for a field of ``size`` points."""
    idx = np.empty(n, np.int64)
    ks = np.empty(n, np.int64)
    at, prev = 0, np.int64(-1)
    for part in range(2):
        for j in range(n):
            v, at = read_varint(buf, at, buf.size, MAX_VARINT)
            if at < 0:
                return idx, ks, False
            if part == 0:
                prev = prev + 1 + v
                if v >= size or prev >= size:
                    return idx, ks, False
                idx[j] = prev
            else:
                if v >= np.int64(1) << 54:
                    return idx, ks, False
                ks[j] = v >> 1 if v % 2 == 0 else -(v >> 1) - 1
    return idx, ks, at == buf.size


class _Coded:
    """One quantisation of the coefficients: symbols, contexts, the chosen merge and the estimated bits.

    With ``give_up_at`` (bits), the merges are not weighed where the symbols cost at least that much under
    their finest contexts: no merge can then cost less (merging contexts never lowers the empirical entropy,
    and every model adds table bytes). ``merge`` is then None and ``bits`` that floor."""

    def __init__(self, coef: np.ndarray, step: float, bands: tuple, packet: bool,
                 give_up_at: float | None = None, in_place: bool = False) -> None:
        """``in_place``: the symbols are quantised over ``coef``'s own memory (``coef`` is used up)."""
        self.packet = packet
        self.q = coef.reshape(-1).view(np.int64) if in_place else np.empty(coef.size, np.int64)
        if not _quantize(coef.reshape(-1), step, self.q):
            raise ValueError("the wavelet coefficients do not fit the quantiser at this bound")
        self.step = step
        self.sym, self.fine, self.raw, self.n_raw = sb.symbols(self.q, bands)
        self.fine_counts = _fine_counts(self.fine, self.sym)
        floor = _entropy_bits(self.fine_counts) + self.n_raw
        if give_up_at is not None and floor >= give_up_at:
            self.bits, self.merge = floor, None
            return
        bits, self.merge = _choose_merge(self.fine_counts)
        self.bits = bits + self.n_raw


@kernel
def _entropy_bits(counts):
    """The empirical entropy of ``counts`` [context, symbol] in bits, each context its own model, no tables."""
    bits = 0.0
    for m in range(counts.shape[0]):
        total = 0
        for s in range(counts.shape[1]):
            c = counts[m, s]
            if c:
                total += c
                bits -= xlog2(c, XLOG)
        if total:
            bits += xlog2(total, XLOG)
    return bits


@kernel
def _fine_counts(fine, sym):
    """Counts of each symbol in each fine context, [N_FINE, N_SYMBOLS]."""
    out = np.zeros((sb.N_FINE, sb.N_SYMBOLS), np.int64)
    for k in range(sym.size):
        out[fine[k], sym[k]] += 1
    return out


@kernel
def _quantize(coef, step, q):
    """``q = trunc(coef / step)`` in place (no float temporaries); False where one does not fit :data:`sb.MAX_Q`."""
    for i in range(coef.size):
        v = np.trunc(coef[i] / step)
        if not abs(v) <= sb.MAX_Q:  # also NaN and inf
            return False
        q[i] = np.int64(v)
    return True


@kernel
def _dequantize(q, step, out):
    """``sign(q) (|q| + 1/2) step``, 0 where ``q = 0``: the middle of each bin of the dead-zone quantiser (``out``
    may be ``q``'s own memory: each value is read before it is written)."""
    for i in range(q.size):
        v = q[i]
        if v == 0:
            out[i] = 0.0
        else:
            m = (np.float64(abs(v)) + 0.5) * step
            out[i] = -m if v < 0 else m
    return out


def _reconstruct(q: np.ndarray, step: float, wshape: tuple[int, ...], packet: bool) -> np.ndarray:
    """The decoder's field before corrections: the inverse transform of the dequantised ``q`` (float64, ``wshape``).

    The encoder's ``q`` (int64) is dequantised in its own memory and so consumed: one array less at the peak."""
    return wt.inverse(_dequantize(q, step, q.view(np.float64)).reshape(wshape), packet)


def _prepare(values: np.ndarray, skip: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None, tuple[int, ...]]:
    """(float64 field in the wavelet shape, smooth where skipped; flat keep mask or None; wavelet shape)."""
    wshape = wavelet_shape(values.shape)
    with np.errstate(invalid="ignore", over="ignore"):
        v = np.asarray(values, np.float64).reshape(wshape)
    keep = None
    if skip is not None and np.any(skip):
        s = np.asarray(skip, bool).reshape(wshape)
        v = inpaint(v, s)
        keep = ~s.reshape(-1)
    if not np.all(np.isfinite(v)):
        raise ValueError("the wavelet coder needs finite values")
    return np.ascontiguousarray(v), keep, wshape


def _probe(values: np.ndarray, tol: float, skip: np.ndarray | None, packets: tuple[bool, ...] | None,
           give_up_at: float | None = None):
    """The decomposition (of ``packets``, default :data:`PROBE_PACKETS`) whose coefficients cost fewest bits at
    :data:`PROBE_FACTOR`: ``(keep, wshape, fill, bands, coded at PROBE_FACTOR)``, ``fill`` the prepared field's
    values at the skipped points (None without). The prepared field is dropped: the
    corrections compare with ``values`` themselves. With ``give_up_at`` (bits), None where every decomposition
    costs at least that much; one that does is never the answer where another does not.

    Each decomposition's coefficients are quantised in their own memory, the last one transformed in the
    prepared copy's: one float64 field at a time, where coefficients and symbols had been two and more (a 108 MB
    float32 chunk's probe peaked at 4.4 times the chunk). The encoder transforms again for its other steps."""
    v, keep, wshape = _prepare(values, skip)
    fill = None if keep is None else v.reshape(-1)[~keep]
    ours = not np.shares_memory(v, values)
    best = None
    choices = (PROBE_PACKETS[len(wshape)] if packets is None else packets) if len(wshape) > 1 else (False,)
    for i, packet in enumerate(choices):
        bands = _band_layout(wshape, packet)
        coef = wt.forward(v, packet, overwrite=ours and i == len(choices) - 1)
        coded = _Coded(coef, PROBE_FACTOR * tol, bands, packet, give_up_at, in_place=True)
        del coef
        if coded.merge is not None and (best is None or coded.bits < best[1].bits):
            best = (bands, coded)
        del coded
    return None if best is None else (keep, wshape, fill) + best


def _coefficients(values: np.ndarray, wshape: tuple[int, ...], keep: np.ndarray | None, fill: np.ndarray | None,
                  packet: bool) -> np.ndarray:
    """The coefficients of ``values`` under the decomposition ``packet``: the prepared field rebuilt from the
    values and the probe's ``fill`` at the skipped points (no second inpainting), transformed in its memory."""
    with np.errstate(invalid="ignore", over="ignore"):
        v = np.array(values, np.float64).reshape(wshape)
    if keep is not None:
        v.reshape(-1)[~keep] = fill
    return wt.forward(v, packet, overwrite=True)


def _target(values: np.ndarray) -> np.ndarray:
    """The flat values the reconstruction must meet, as given (float32 or float64: each is widened exactly
    where it is compared; skipped points, NaN or fill, never are)."""
    values = np.asarray(values)
    return np.ascontiguousarray(values if values.dtype in (np.float32, np.float64) else values.astype(np.float64)
                                ).reshape(-1)


def _trial(x: np.ndarray, keep: np.ndarray | None, wshape: tuple[int, ...], coded: _Coded, tol: float,
           dtype: np.dtype | None) -> tuple:
    """One quantisation carried through: (estimated total bits, coded, corrected reconstruction cast to ``dtype``
    (float64 where None), the number of corrections, their frame). The coefficients' bits are estimated,
    the corrections' are exact."""
    y = _reconstruct(coded.q, coded.step, wshape, coded.packet).reshape(-1)  # dequantised in q's memory
    coded.q = None  # the payload needs the symbols only
    n, raw = _corrections(x, y, keep if keep is not None else np.ones(1, bool), keep is not None, tol)
    y = narrow(y, dtype)  # before the corrections' frame is made: not the float64 field, its corrections and their frame at once
    frame = deflate(raw, _ZSTD_LEVEL) if n else b""
    del raw
    return coded.bits + 8.0 * len(frame), coded, y, n, frame


def _step(values: np.ndarray, fill: np.ndarray | None, x: np.ndarray, keep: np.ndarray | None,
          wshape: tuple[int, ...], bands: tuple, packet: bool, factor: float, tol: float, dtype: np.dtype | None) -> tuple:
    """:func:`_trial` of the quantisation step ``factor * tol``, from a fresh transform quantised in its own memory
    (the previous step's freed arrays given back first: :mod:`xdiffc.heap`)."""
    release_freed(8 * x.size)
    return _trial(x, keep, wshape, _Coded(_coefficients(values, wshape, keep, fill, packet), factor * tol, bands,
                                          packet, in_place=True), tol, dtype)


def encode_reconstruct(values: np.ndarray, tol: float, skip: np.ndarray | None = None, *, trial: Trial | None = None,
                       dtype: np.dtype | None = None, factors: tuple[float, ...] | None = None,
                       packets: tuple[bool, ...] | None = None) -> tuple[bytes, np.ndarray]:
    """The payload and the field :func:`decode` rebuilds from it, bit for bit (cast to ``dtype`` if given).

    ``factors``: the quantisation steps to try, in units of tol (default :data:`STEP_FACTORS`);
    ``packets``: the decompositions to try. ``trial`` may hold the probe of :func:`worth_trying` on
    the same values, tol and dtype, with its trial at :data:`PROBE_FACTOR`, which are then reused (and removed);
    its ``wavelet_trace``, where a list, receives one record per step tried.
    """
    if not (math.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be finite and positive, got {tol!r}")
    tol = float(tol)
    out_shape = np.shape(values)
    probe, trace = None, None
    if trial is not None:
        probe, trial.wavelet_probe, trace = trial.wavelet_probe, None, trial.wavelet_trace
    if probe is None or probe[0] is not values or probe[1] != tol or probe[-1][2].dtype != np.dtype(dtype or np.float64):
        probe = (values, tol, *_probe(values, tol, skip, packets), None)
    _, _, keep, wshape, fill, bands, probe_coded, probed = probe
    del probe
    packet = probe_coded.packet
    x = _target(values)
    steps = sorted(factors or STEP_FACTORS, key=lambda f: f != PROBE_FACTOR)  # the probe's first: it is done
    # One step's reconstruction at a time: each step transforms afresh and quantises in the coefficients' own
    # memory; the best step so far is kept as its payload only, and its reconstruction is decoded from that where
    # it was not the last step. A kept reconstruction and kept coefficients had made the peak 6.8 times a 108 MB
    # float32 chunk.
    best_bits, payload, won, run = math.inf, b"", None, None  # the smallest step so far: its bits, payload, factor
    for f in steps:
        run = None
        if f == PROBE_FACTOR:
            run = probed if probed is not None else _trial(x, keep, wshape, probe_coded, tol, dtype)
            probed = probe_coded = None
        else:
            run = _step(values, fill, x, keep, wshape, bands, packet, f, tol, dtype)
        if trace is not None:
            trace.append((packet, f, run[1].bits / 8, run[3], run[0] / 8))
        if won is None or run[0] < best_bits:  # the first of equals
            best_bits, won = run[0], f
            payload = _assemble(run[1], tol, run[3], run[4])
    y = run[2] if won == steps[-1] else None
    del run
    if y is None:  # the winner's field decoded afresh, the last step's arrays given back first
        release_freed(8 * x.size)
        return payload, decode(payload, out_shape, skip, dtype)
    return payload, y.reshape(out_shape)


def _assemble(coded: _Coded, tol: float, n_corrections: int, frame: bytes) -> bytes:
    groups, split, cuts = coded.merge
    m_of, n_models = model_map(groups, split, cuts)
    counts = np.zeros((n_models, sb.N_SYMBOLS), np.int64)
    np.add.at(counts, m_of, coded.fine_counts)  # each model's counts: those of its fine contexts summed
    used = counts.any(axis=0)
    dense = np.full(sb.N_SYMBOLS, -1, np.int64)
    dense[used] = np.arange(int(used.sum()))
    table, freq = crans.compact_tables(counts[:, used], np.flatnonzero(used), _PREC)
    # Each coefficient's model (at most 225) in one byte, its fine context dropped: the symbols and models go to
    # the rANS coder as bytes. Two-byte copies of both (interp's types) had set the compress peak of a 108 MB
    # float32 chunk at 3.0 times the chunk (np.take into the fine contexts' memory would widen them to intp).
    ctx = m_of.astype(np.uint8)[coded.fine]
    coded.fine = None
    words = crans.encode(coded.sym, ctx, dense, freq, _PREC)
    del ctx
    head = struct.pack("<Bdd", VERSION, tol, coded.step) + bytes([int(coded.packet), groups, int(split), len(cuts), *cuts, _PREC])
    body = (table + uvarint(words.size) + words.astype("<u4").tobytes()
            + uvarint(coded.n_raw) + coded.raw.tobytes() + uvarint(n_corrections))
    if n_corrections:
        body += uvarint(len(frame)) + frame
    return head + body


def applies(shape: tuple[int, ...]) -> bool:
    """Whether the transform has anything to do: some axis at least :data:`~xdiffc.predict.wavelet.MIN_LEN` long."""
    return max(wavelet_shape(shape)) >= wt.MIN_LEN


def worth_trying(values: np.ndarray, tol: float, skip: np.ndarray | None, trial: Trial | None = None) -> bool:
    """Whether to encode in full, where there is a candidate already (``trial.sizes``, set by the core;
    else always). Two gates, each cheaper than what it saves: :data:`PROBE_MARGIN` times the coefficients'
    bytes at :data:`PROBE_FACTOR` must undercut the smallest candidate (the probe: one transform per
    decomposition, its symbols and their estimated bits); then :data:`TRIAL_MARGIN` times the estimated
    total at that step, corrections included, must too (the trial: one inverse transform). Both are left in
    ``trial`` for the encoder, which would compute them anyway."""
    if not applies(values.shape):
        return False
    if trial is None or not trial.sizes:
        return True
    best = trial.best
    try:  # merges are weighed only where the finest contexts' entropy does not already fail the gate
        probed = _probe(values, float(tol), skip, None, give_up_at=8.0 * best / PROBE_MARGIN)
    except ValueError:  # the coefficients do not fit the quantiser
        return False
    if probed is None:
        return False
    probe = (values, float(tol), *probed)
    if PROBE_MARGIN * probe[-1].bits / 8 >= best:
        return False
    _, _, keep, wshape, _, _, coded = probe
    run = _trial(_target(values), keep, wshape, coded, float(tol), trial.dtype)
    if TRIAL_MARGIN * run[0] / 8 >= best:
        return False
    trial.wavelet_probe = probe + (run,)
    return True


def encode(values: np.ndarray, tol: float, skip: np.ndarray | None = None) -> bytes:
    """Compress ``values`` so that :func:`decode` returns them within ``tol`` (up to float64 rounding) off ``skip``."""
    return encode_reconstruct(values, tol, skip)[0]


def decode(payload: bytes, shape: tuple[int, ...], skip: np.ndarray | None = None,
           dtype: np.dtype | None = None) -> np.ndarray:
    """The float64 field of ``shape`` (or that field cast to ``dtype``) that :func:`encode` coded into ``payload``."""
    shape = tuple(int(n) for n in shape)
    size = math.prod(shape)
    wshape = wavelet_shape(shape)
    r = Reader(payload, "the wavelet payload")
    version = r.u8()
    if version not in (1, VERSION):
        raise CorruptStreamError("the wavelet payload has an unknown version")
    tol, step = r.f64(), r.f64()
    packet = r.u8()
    groups, split, n_cuts = r.u8(), r.u8(), r.u8()
    cuts = tuple(r.take(n_cuts)) if n_cuts <= sb.N_BUCKETS - 1 else ()
    prec = r.u8()
    if not (packet in (0, 1) and math.isfinite(tol) and tol > 0 and math.isfinite(step) and step > 0 and 1 <= groups <= 8
            and split in (0, 1) and n_cuts <= sb.N_BUCKETS - 1 and all(1 <= c < sb.N_BUCKETS for c in cuts)
            and all(a < b for a, b in zip(cuts, cuts[1:])) and 1 <= prec <= crans.MAX_PREC):
        raise CorruptStreamError("the wavelet payload's header is invalid")
    m_of, n_models = model_map(groups, bool(split), cuts)
    t = crans.read_tables(r, n_models, prec, sb.N_SYMBOLS, size, "the wavelet payload", compact=version == VERSION)
    words = np.frombuffer(r.take(4 * r.uvarint((r.end - r.pos) // 4)), "<u4").astype(np.uint32)
    n_raw = r.uvarint(8 * (r.end - r.pos))
    raw = np.frombuffer(r.take((n_raw + 7) // 8), np.uint8)
    n_corr = r.uvarint(size)
    if n_corr:
        buf = np.frombuffer(inflate(r.take(r.uvarint(r.end)), "the wavelet corrections", limit=20 * n_corr),
                            np.uint8)
        idx, ks, ok = _parse_corrections(buf, n_corr, size)
        if not ok:
            raise CorruptStreamError("the wavelet payload's corrections are malformed")
    else:
        idx = ks = np.zeros(0, np.int64)
    r.done()
    bands = _band_layout(wshape, bool(packet))
    q = np.zeros(size, np.int64)
    dec = crans.open_decoder(t, words, "the wavelet payload")
    if sb.decode(dec, m_of, raw, n_raw, bands, q) < 0:
        raise CorruptStreamError("the wavelet payload's coefficients are damaged")
    crans.check_end(dec, "the wavelet payload")
    y = _reconstruct(q, step, wshape, bool(packet)).reshape(-1)
    _apply(y, idx, ks, 2.0 * tol)
    return narrow(y.reshape(shape), dtype)


class WaveletCoder:
    """The wavelet transform, from level :attr:`min_level`, gated by its probe and trial (:func:`worth_trying`)."""

    name, priority, min_level = "wavelet", 40, 6

    def applies(self, shape: tuple[int, ...]) -> bool:
        return applies(shape)

    def worth_encoding(self, trial: Trial) -> bool:
        return worth_trying(trial.target, trial.tol, trial.skip, trial)

    def encode(self, trial: Trial) -> tuple[bytes, np.ndarray]:
        return encode_reconstruct(trial.target, trial.tol, trial.skip, trial=trial, dtype=trial.dtype)

    def decode(self, payload: bytes, shape: tuple[int, ...], skip: np.ndarray | None = None,
               dtype: np.dtype | None = None) -> np.ndarray:
        return decode(payload, shape, skip, dtype)
