"""Interpolation predictor and linear quantiser, as numba kernels (encoder and decoder).

The field (C-contiguous, already in coding axis order) is visited coarse-to-fine: level ``L``
holds only the origin, predicted as zero; each finer level ``l`` (stride ``s = 2**l``, half
stride ``h = s // 2``) has one pass per dimension ``d`` with ``shape[d] > h``.  The pass
predicts the points that are odd multiples of ``h`` along ``d``, multiples of ``h`` along
earlier dimensions and multiples of ``s`` along later ones, from reconstructed neighbours at
``h`` and ``3h`` along ``d`` (linear or cubic, chosen per pass by the encoder).

Targets of a pass are visited in C order with the interpolation axis moved first (the symbol
order of the payload).  Each kernel runs the same IEEE float64 operations in the same order as
the numpy implementation of release 0.1.0, so payloads written by either decode to the same bits.
Compiled under :mod:`xdiffc.kernels`' rule, with no transcendental functions: the decoder is
bit-identical on every machine.
"""

from __future__ import annotations

import numpy as np

from ..entropy.crans import STATE, decode_one, decode_step
from ..kernels import grown, kernel
from ..quantize import RADIUS, dequantize, quantize
#: Activity (|right - left| neighbour difference, in bins) thresholds of the fine context classes.
ACTIVITY_EDGES = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 64.0)
N_FINE = len(ACTIVITY_EDGES) + 1

# Decoder error codes (the caller turns them into CorruptStreamError).
OK, ERR_SYMBOLS, ERR_UNPRED, ERR_COUNT = 0, -1, -2, -3


def n_levels(shape: tuple[int, ...]) -> int:
    """Number of refinement levels: the smallest L with 2**L >= every extent."""
    m = max(int(n) for n in shape)
    return m.bit_length() - 1 + (m & (m - 1) != 0)


def passes(shape: tuple[int, ...]) -> list[tuple[int, int]]:
    """(level, dim) of every non-empty pass, in coding order (the origin is not a pass)."""
    return [(lv, d) for lv in range(n_levels(shape), 0, -1) for d in range(len(shape)) if shape[d] > 1 << (lv - 1)]


def n_passes(shape: tuple[int, ...]) -> int:
    """``len(passes(shape))``, without listing them: an axis of extent n has a pass at every level whose half
    stride lies below n, ``(n - 1).bit_length()`` of them."""
    return sum((int(n) - 1).bit_length() for n in shape)


# ----------------------------------------------------------------------------- pass geometry


@kernel
def _geometry(shape, level, d):
    """(flat step per axis, count per axis, odd count, even count) of pass (level, d) on a C array."""
    ndim = shape.size
    h, s = 1 << (level - 1), 1 << level
    step, cnt = np.empty(ndim, np.int64), np.empty(ndim, np.int64)
    stride = 1
    for k in range(ndim - 1, -1, -1):
        st = h if k <= d else s
        cnt[k] = (shape[k] + st - 1) // st
        step[k] = st * stride
        stride *= shape[k]
    n_odd = cnt[d] // 2
    return step, cnt, n_odd, cnt[d] - n_odd


@kernel(inline="always")
def _predict(r, base, es, i, n_odd, n_even, cubic):
    """Prediction of odd point ``i`` from the evens ``r[base + k * es]`` (same arithmetic as 0.1.0), in float64
    whatever ``r`` holds (a float32 reconstruction is widened value by value)."""
    n_mid = min(n_odd, n_even - 1)
    if cubic and n_even >= 4:
        top = min(n_odd - 1, n_even - 3)
        if i == 0:
            return (_at(r, base) * 3.0 + _at(r, base + es) * 6.0 - _at(r, base + 2 * es)) * 0.125
        if i <= top:
            a, b = _at(r, base + (i - 1) * es), _at(r, base + i * es)
            c, e = _at(r, base + (i + 1) * es), _at(r, base + (i + 2) * es)
            return ((b + c) * 9.0 - (a + e)) * 0.0625
        if i == n_mid - 1:
            return (_at(r, base + i * es) * 6.0 + _at(r, base + (i + 1) * es) * 3.0
                    - _at(r, base + (i - 1) * es)) * 0.125
    if i < n_mid:
        return (_at(r, base + i * es) + _at(r, base + (i + 1) * es)) * 0.5
    if n_odd >= 2:
        return _at(r, base + (n_odd - 1) * es) * 1.5 - _at(r, base + (n_odd - 2) * es) * 0.5
    return _at(r, base + (n_odd - 1) * es)


@kernel(inline="always")
def _at(r, k):
    """``r[k]`` as float64: the predictor's arithmetic is float64 for a float32 reconstruction too."""
    return np.float64(r[k])


@kernel(inline="always")
def _fine_class(r, base, es, i, n_odd, n_even, inv_bin, edges):
    """Fine context class: position of ``|right - left| * inv_bin`` among ``edges`` (numpy searchsorted 'left')."""
    if i >= min(n_odd, n_even - 1):
        return 0  # activity 0 lies on the first edge
    act = abs(_at(r, base + (i + 1) * es) - _at(r, base + i * es)) * inv_bin
    if act != act:
        return len(edges)
    c = 0
    for e in edges:  # branch-free count of the edges below act (a short, unrolled loop)
        c += e < act
    return c


@kernel(inline="always")
def _finite(x):
    return x if x - x == 0.0 else 0.0


# ----------------------------------------------------------------------------- encoder


@kernel
def _rows(shape, level, d):
    """The targets of pass (level, d) as rows in memory order, for loops whose inner step is one row.

    A row is a run of targets along the last axis (along ``d`` when ``d`` is the last axis). Target
    ``q`` of row ``r`` lies at the flat offset ``t0[r] + q * ms``, has index ``i0[r] + q * di`` along
    ``d``, the interpolation base ``pb0[r] + q * pstep`` (:func:`_predict`'s ``base``) and the number
    ``j0[r] + q * js`` in symbol order. Within a pass no target depends on another (each is predicted
    from points of earlier passes), so any visiting order gives the same bits; memory order keeps the
    neighbours in cache. Returns (t0, pb0, i0, j0, n_in, ms, pstep, di, js, es, n_odd, n_even, n_oth).
    """
    cnt, offs, bst, n_odd, n_even, n_oth, oo = _lattice(shape, level, d)
    es = offs[d]
    last = shape.size - 1
    if d == last:
        n_in, ms, pstep, di, js = n_odd, es, np.int64(0), np.int64(1), n_oth
    else:
        n_in, ms, pstep, di, js = cnt[last], offs[last], offs[last], np.int64(0), np.int64(1)
    n_rows = n_odd * n_oth // n_in
    t0, pb0 = np.empty(n_rows, np.int64), np.empty(n_rows, np.int64)
    i0, j0 = np.empty(n_rows, np.int64), np.empty(n_rows, np.int64)
    idx = np.zeros(shape.size, np.int64)
    off, b = np.int64(0), np.int64(0)
    for r in range(n_rows):
        i = 0 if d == last else idx[d]
        t0[r], pb0[r], i0[r], j0[r] = off + oo, off - i * es, i, i * n_oth + b
        a = last - 1
        while a >= 0:  # the odometer over every axis but the last, in C order
            idx[a] += 1
            off += offs[a]
            b += bst[a]
            if idx[a] < cnt[a]:
                break
            off -= idx[a] * offs[a]
            b -= idx[a] * bst[a]
            idx[a] = 0
            a -= 1
    return t0, pb0, i0, j0, n_in, ms, pstep, di, js, es, n_odd, n_even, n_oth


@kernel
def encode_passes(values, keep, shape, bins, tol, recon, sym, fine, pass_start, kinds, plevel, cost_stride,
                  fine_classes):
    """Predict and quantise every pass of ``values`` (flat, C order of ``shape``), at the points where ``keep``
    (the same size as ``values``; any other size: every point).

    Fills ``recon`` (the decoder's reconstruction: float64, or float32 with each value rounded as it is stored,
    as the decoder stores it; it may be ``values`` itself, overwritten: each
    target's value is read before its reconstruction is written, and no value is read after), ``sym`` (uint16 symbol of each kept
    point, pass by pass in symbol order), ``fine`` (its fine class where ``fine_classes``, else 0), ``pass_start`` (offsets into
    ``sym``; entry 0 is the origin), ``kinds`` (1 = cubic) and ``plevel`` (level of each entry).
    Returns the raw values of the unpredictable kept points (symbol 0), in symbol order. Each pass's
    interpolation (linear or cubic) is the one with the smaller summed residual over every
    ``cost_stride``-th row of its targets along the pass's axis (1: all of them). Targets are visited
    in memory order (:func:`_rows`); with a mask, a pass's symbols are gathered in symbol order after it.
    """
    masked = keep.size == values.size
    edges = ACTIVITY_EDGES
    ndim = shape.size
    top = bins.size - 1
    unpred = np.empty(64, np.float64)
    nu = 0
    n = 0
    # the origin, predicted as zero (its value read first: ``recon`` may be ``values`` itself)
    pass_start[0] = 0
    plevel[0] = top
    t = np.float64(values[0])
    recon[0] = 0.0
    if not masked or keep[0]:
        s, recon[0] = quantize(t, 0.0, bins[top], tol)
        sym[n] = s
        if s == 0:
            unpred[nu] = recon[0]
            nu += 1
        fine[n] = 0
        n += 1
    # with a mask: one pass's symbols and fine classes by lattice number (class 255: skipped)
    full = values.size // 2 + 1 if masked else 0
    sym_full, fine_full = np.empty(full, np.uint16), np.empty(full, np.uint8)
    p = 1
    for level in range(top, 0, -1):
        h = 1 << (level - 1)
        bin_ = bins[level]
        inv_bin = 1.0 / bin_
        for d in range(ndim):
            if shape[d] <= h:
                continue
            pass_start[p] = n
            plevel[p] = level
            t0, pb0, i0, j0, n_in, ms, pstep, di, js, es, n_odd, n_even, n_oth = _rows(shape, level, d)
            # cubic or linear: the smaller summed clipped residual (in bins) over the kept points
            c_lin = 0.0
            c_cub = 0.0
            q_step = cost_stride if di else 1
            for r in range(t0.size):
                if not di and i0[r] % cost_stride:
                    continue
                for q in range(0, n_in, q_step):
                    tgt = t0[r] + q * ms
                    if not masked or keep[tgt]:
                        i, pb = i0[r] + q * di, pb0[r] + q * pstep
                        t = np.float64(values[tgt])
                        e1 = abs(t - _predict(recon, pb, es, i, n_odd, n_even, False)) * inv_bin
                        e2 = abs(t - _predict(recon, pb, es, i, n_odd, n_even, True)) * inv_bin
                        c_lin += e1 if e1 < 1e6 else 1e6
                        c_cub += e2 if e2 < 1e6 else 1e6
            cubic = c_cub < c_lin
            kinds[p - 1] = cubic
            n_unpred = 0
            for r in range(t0.size):
                for q in range(n_in):
                    tgt, i, pb, j = t0[r] + q * ms, i0[r] + q * di, pb0[r] + q * pstep, j0[r] + q * js
                    pr = _predict(recon, pb, es, i, n_odd, n_even, cubic)
                    if masked and not keep[tgt]:
                        recon[tgt] = _finite(pr)
                        fine_full[j] = 255
                        continue
                    t = np.float64(values[tgt])
                    s, recon[tgt] = quantize(t, pr, bin_, tol)
                    n_unpred += s == 0
                    f = _fine_class(recon, pb, es, i, n_odd, n_even, inv_bin, edges) if fine_classes else 0
                    if masked:
                        sym_full[j], fine_full[j] = s, f
                    else:
                        sym[n + j], fine[n + j] = s, f
            # in symbol order: the kept symbols (with a mask) and the unpredictable values (their reconstruction);
            # a pass without unpredictables is not swept for them (that sweep took 4.7 of TREFHT's 17 ms at level 1)
            if nu + n_unpred > unpred.size:
                unpred = grown(unpred, nu, 2 * (nu + n_unpred))
            if masked or n_unpred:
                n, nu = _symbol_order(sym, fine, sym_full, fine_full, masked, n, _lattice(shape, level, d), d, recon,
                                      unpred, nu)
            else:
                n += n_odd * n_oth
            p += 1
    pass_start[p] = n
    return unpred[:nu].copy()


@kernel
def _symbol_order(sym, fine, sym_full, fine_full, masked, n, lattice, d, recon, unpred, nu):
    """One pass of :func:`encode_passes` in symbol order, its symbols from ``n`` on: with a mask, its kept symbols
    and classes gathered from ``sym_full`` and ``fine_full`` (class 255: skipped); its unpredictable values
    appended to ``unpred`` from ``nu`` on (it has room). Returns the new counts of symbols and unpredictable values."""
    cnt, offs, bst, n_odd, n_even, n_oth, oo = lattice
    k = n
    for j in range(n_odd * n_oth):
        if masked:
            if fine_full[j] == 255:
                continue
            sym[k], fine[k] = sym_full[j], fine_full[j]
        if sym[k] == 0:
            unpred[nu] = recon[_offset_of(j, lattice, d)]
            nu += 1
        k += 1
    return k, nu


@kernel(inline="always")
def _offset_of(j, lattice, d):
    """Flat offset of target number ``j`` (symbol order) of the pass whose :func:`_lattice` is ``lattice``."""
    cnt, offs, bst, n_odd, n_even, n_oth, oo = lattice
    i, b = j // n_oth, j % n_oth
    off = oo + i * offs[d]
    for k in range(cnt.size):
        if k != d:
            off += (b // bst[k]) % cnt[k] * offs[k]
    return off


@kernel
def layout(sym, fine, pass_start, unpred, cls_of_fine, n_cls):
    """Symbols in payload order (per pass, stably by context class), segment lengths and unpredictables.

    Returns (symbols, lengths[pass, class], unpredictables in payload order).
    """
    n_pass = pass_start.size - 1
    out = np.empty(sym.size, np.uint16)
    lengths = np.zeros((n_pass, n_cls), np.int64)
    uout = np.empty(unpred.size, np.float64)
    zeros = np.zeros(n_cls, np.int64)
    at = np.zeros(n_cls, np.int64)
    uat = np.zeros(n_cls, np.int64)
    u0 = 0
    for p in range(n_pass):
        a, b = pass_start[p], pass_start[p + 1]
        zeros[:] = 0
        for j in range(a, b):
            c = cls_of_fine[fine[j]]
            lengths[p, c] += 1
            if sym[j] == 0:
                zeros[c] += 1
        pos, upos = a, u0
        for c in range(n_cls):
            at[c], uat[c] = pos, upos
            pos += lengths[p, c]
            upos += zeros[c]
        u = u0
        for j in range(a, b):
            c = cls_of_fine[fine[j]]
            out[at[c]] = sym[j]
            at[c] += 1
            if sym[j] == 0:
                uout[uat[c]] = unpred[u]
                uat[c] += 1
                u += 1
        u0 = u
    return out, lengths, uout


# ----------------------------------------------------------------------------- decoder
#
# The decoding kernels take pass (level, d) as the pass tuple ``pas = (shape, level, d, cubic, bin, inv_bin)``: the
# field's shape (int64, coding order), the level, the interpolation axis, the prediction (cubic or linear) and the
# quantisation bin and its inverse. A version 2 or 3 pass codes target ``j`` of class ``c`` under the model
# ``base + c * n_b + bmap[code]``, ``code`` being that of the target one slice back along ``axis`` (none on the
# first slice; ``bmap``: :func:`bucket_map`): the context tuple ``ctx = (bmap, base, n_b, axis)``. Plain tuples,
# as every kernel argument (:mod:`xdiffc.kernels`).


@kernel
def _lattice(shape, level, d):
    """The targets of pass (level, d) as a C-order lattice: per-axis counts, flat steps and steps of ``b``.

    A target with index ``i`` along ``d`` and ``b`` over the other axes (C order) is number
    ``j = i * n_other + b`` in symbol order.
    """
    step, cnt, n_odd, n_even = _geometry(shape, level, d)
    ndim = shape.size
    offs = step.copy()
    offs[d] = 2 * step[d]
    cnt[d] = n_odd
    bst = np.zeros(ndim, np.int64)
    m = 1
    for k in range(ndim - 1, -1, -1):
        if k != d:
            bst[k] = m
            m *= cnt[k]
    return cnt, offs, bst, n_odd, n_even, m, step[d]


@kernel
def classify_pass(recon, keep, masked, pas, cls_of_fine, n_cls, cls, counts):
    """Context class of every target of the pass tuple ``pas`` into ``cls`` (symbol order; 255 = skipped); returns
    the number of kept targets. With one class (``n_cls``) every kept target is class 0 and its activity is not
    computed. The kept counts per class go into ``counts`` where it is not empty (the version 1 decoder's
    segments): a counter in memory per target, a chain through memory, took 40% of the sweep (PRECT at 1e-2,
    7.3 against 4.4 ms), so the context decoders, which need the total only, pass none. Visits the targets in
    memory order (:func:`_rows`)."""
    edges = ACTIVITY_EDGES
    shape, level, d, _, _, inv_bin = pas
    t0, pb0, i0, j0, n_in, ms, pstep, di, js, es, n_odd, n_even, n_oth = _rows(shape, level, d)
    per_class = counts.size > 0
    if per_class:
        counts[:] = 0
    one = n_cls == 1
    n = 0
    for r in range(t0.size):
        for q in range(n_in):
            j = j0[r] + q * js
            if masked and not keep[t0[r] + q * ms]:
                cls[j] = 255
            else:
                c = 0 if one else cls_of_fine[_fine_class(recon, pb0[r] + q * pstep, es, i0[r] + q * di, n_odd,
                                                          n_even, inv_bin, edges)]
                cls[j] = c
                n += 1
                if per_class:
                    counts[c] += 1
    return n


def n_targets(shape: tuple[int, ...], level: int, d: int) -> int:
    """Number of target points of pass (level, d)."""
    h, s = 1 << (level - 1), 1 << level
    n = 1
    for k, ext in enumerate(shape):
        c = -(-ext // (h if k <= d else s))
        n *= c // 2 if k == d else c
    return n


@kernel
def decode_pass(recon, pas, cls, classed, syms, seg_start, unpred, upos, code):
    """Dequantise the pass tuple ``pas``: ``syms`` holds its symbols class by class (class c at ``seg_start[c]``).

    ``cls`` comes from :func:`classify_pass` when ``classed`` (else every target is kept, class 0).
    Unpredictables are taken from ``unpred[upos:]`` in the same class-major order.  A first sweep in
    symbol order gives each target its symbol or unpredictable value (``code``: -1 skipped, a
    symbol > 0, or ``-2 - k`` for ``unpred[k]``); a second one, in memory order, reconstructs.
    Returns the new ``upos``, or ERR_UNPRED when ``unpred`` runs out.
    """
    n_cls = seg_start.size - 1
    zeros = np.zeros(n_cls, np.int64)
    for c in range(n_cls):
        for k in range(seg_start[c], seg_start[c + 1]):
            if syms[k] == 0:
                zeros[c] += 1
    uat = np.empty(n_cls, np.int64)
    at = np.empty(n_cls, np.int64)
    u = upos
    for c in range(n_cls):
        uat[c] = u
        u += zeros[c]
        at[c] = seg_start[c]
    if u > unpred.size:
        return ERR_UNPRED
    shape, level, d, _, _, _ = pas
    _, _, _, n_odd, _, n_oth, _ = _lattice(shape, level, d)
    total = n_odd * n_oth
    for j in range(total):
        c = cls[j] if classed else 0
        if c == 255:
            code[j] = -1
            continue
        s = syms[at[c]]
        at[c] += 1
        if s == 0:
            code[j] = -2 - uat[c]
            uat[c] += 1
        else:
            code[j] = s
    if reconstruct_pass(recon, pas, code, unpred) != OK:
        return ERR_UNPRED
    return u


@kernel
def model_hists(sym, lengths, seg_model, n_models, lo, width):
    """Histograms [model, symbol - lo] of the segments (``lengths`` flat, ``seg_model`` their models)."""
    hists = np.zeros((n_models, width), np.int64)
    j = 0
    for k in range(lengths.size):
        m = seg_model[k]
        for _ in range(lengths[k]):
            hists[m, sym[j] - lo] += 1
            j += 1
    return hists


@kernel
def dense_symbols(sym):
    """(index of each symbol among the distinct symbols present, number of distinct symbols)."""
    dense = np.full(1 << 16, -1, np.int64)
    for s in sym:
        dense[s] = 0
    n = 0
    for s in range(dense.size):
        if dense[s] == 0:
            dense[s] = n
            n += 1
    return dense, max(n, 1)



# ----------------------------------------------------------------------------- previous-slice contexts (payload v2)


@kernel(inline="always")
def prev_bucket(s, radius_k):
    """Context bucket of the previous slice's symbol ``s`` (<= 0: none): 0 for none or unpredictable,
    else ``clamp(s - RADIUS, -K, K) + K + 1``; always 0 when ``K = 0``."""
    if s <= 0 or radius_k == 0:
        return 0
    q = s - RADIUS
    if q < -radius_k:
        q = -radius_k
    elif q > radius_k:
        q = radius_k
    return q + radius_k + 1


@kernel
def _slice_stride(cnt, bst, n_oth, d, axis):
    """(stride in symbol order, count) of the lattice along ``axis`` for pass direction ``d``."""
    return (n_oth if axis == d else bst[axis]), cnt[axis]


@kernel
def prev_symbols(sym, pass_start, shape, keep, masked, axis):
    """For every symbol, the symbol of the same pass's lattice point one step back along ``axis`` (0: none,
    the first slice, a skipped point, or an unpredictable one).

    With a mask, each pass's lattice is swept twice: once in memory order (:func:`_rows`) to mark its kept
    points, once in symbol order to lay out their symbols (0 where skipped), which the next slice reads back: one
    byte and one uint16 per lattice point, where numbering the symbols in int64 took 1.5 times as long (43 against
    28 ms a call on an 83%-missing sea-ice field)."""
    prev = np.zeros(sym.size, np.uint16)
    top = n_levels_of(shape)
    p = 1
    ndim = shape.size
    kept, laid = np.empty(1, np.bool_), np.empty(1, np.uint16)
    for level in range(top, 0, -1):
        h = 1 << (level - 1)
        for d in range(ndim):
            if shape[d] <= h:
                continue
            cnt, offs, bst, n_odd, n_even, n_oth, oo = _lattice(shape, level, d)
            total = n_odd * n_oth
            sa, ca = _slice_stride(cnt, bst, n_oth, d, axis)
            a = pass_start[p]
            if masked:
                if kept.size < total:
                    kept, laid = np.empty(total, np.bool_), np.empty(total, np.uint16)
                t0, _, _, j0, n_in, ms, _, _, js, _, _, _, _ = _rows(shape, level, d)
                for r in range(t0.size):
                    for q in range(n_in):
                        kept[j0[r] + q * js] = keep[t0[r] + q * ms]
            n = a
            ia, lo = 0, 0
            for j in range(total):
                if masked:
                    s = 0
                    if kept[j]:
                        s = sym[n]
                        if ia > 0:
                            prev[n] = laid[j - sa]
                        n += 1
                    laid[j] = s
                elif ia > 0:
                    prev[a + j] = sym[a + j - sa]
                lo += 1
                if lo == sa:
                    lo = 0
                    ia += 1
                    if ia == ca:
                        ia = 0
            p += 1
    return prev


@kernel
def n_levels_of(shape):
    m = 0
    for n in shape:
        m = max(m, n)
    lv = 0
    while (np.int64(1) << lv) < m:
        lv += 1
    return lv


@kernel
def contexts(fine, pass_start, plevel, prev, groups, cls_of_fine, n_cls, radius_k):
    """Model index ``(group * n_cls + class) * P + bucket`` of every symbol (``P = 2K + 2``, or 1 when K = 0)."""
    n_b = 2 * radius_k + 2 if radius_k else 1
    ctx = np.empty(fine.size, np.uint16)
    for p in range(pass_start.size - 1):
        g = max(1, min(plevel[p], groups)) - 1
        for j in range(pass_start[p], pass_start[p + 1]):
            ctx[j] = (g * n_cls + cls_of_fine[fine[j]]) * n_b + prev_bucket(prev[j], radius_k)
    return ctx


@kernel
def context_counts(sym, ctx, n_models, dense, n_dense):
    """Symbol counts [model, dense symbol]."""
    out = np.zeros((n_models, n_dense), np.int64)
    for j in range(sym.size):
        out[ctx[j], dense[sym[j]]] += 1
    return out


@kernel
def decode_ctx_pass(recon, pas, cls, classed, dec, ctx, unpred, upos, code):
    """Decode and reconstruct the pass tuple ``pas`` of a version 2 or 3 payload: its symbols, in symbol order,
    into ``code`` (as :func:`decode_pass`'s: -1 skipped, a symbol > 0, ``-2 - k`` for ``unpred[k]``) with the
    rANS decoder tuple ``dec`` (:func:`~xdiffc.entropy.crans.open_decoder`), each under the model that the
    context tuple ``ctx`` gives it (class ``cls[j]`` when ``classed``, else 0); then :func:`reconstruct_pass`.
    Returns the new unpredictable count, ERR_SYMBOLS on a damaged stream, or ERR_UNPRED when ``unpred`` runs
    out."""
    shape, level, d, _, _, _ = pas
    bmap, base, n_b, axis = ctx
    cnt, offs, bst, n_odd, n_even, n_oth, oo = _lattice(shape, level, d)
    total = n_odd * n_oth
    sa, ca = _slice_stride(cnt, bst, n_oth, d, axis)
    ia, lo = 0, 0
    u = upos
    state = dec[STATE]
    x, wp = state[0], state[1]  # in locals: the loop keeps them in registers
    for j in range(total):
        c = cls[j] if classed else 0
        if c == 255:
            code[j] = -1
        else:
            b = 0
            if ia > 0:
                pc = code[j - sa]
                b = bmap[pc if pc > 0 else 0]
            s, x, wp = decode_step(x, wp, dec, base + c * n_b + b)
            if s < 0:
                return ERR_SYMBOLS
            if s == 0:
                code[j] = -2 - u
                u += 1
            else:
                code[j] = s
        lo += 1
        if lo == sa:
            lo = 0
            ia += 1
            if ia == ca:
                ia = 0
    state[0], state[1] = x, wp
    if u > unpred.size or reconstruct_pass(recon, pas, code, unpred) != OK:
        return ERR_UNPRED
    return u


@kernel(inline="always")
def decode_origin(s, recon, unpred, bin_):
    """Write the origin's value, from its symbol ``s``, into ``recon[0]`` (symbol 0: the first unpredictable value);
    return how many unpredictable values it used, or ERR_UNPRED where there is none (every payload version)."""
    if s != 0:
        recon[0] = (np.float64(s) - RADIUS) * bin_
        return 0
    if unpred.size < 1:
        return ERR_UNPRED
    recon[0] = unpred[0]
    return 1


@kernel
def decode_ctx_passes(recon, field, plan, dec, unpred, left, scratch):
    """The origin and every pass of a version 2 or 3 payload, coarse to fine (:func:`decode_ctx_pass` each, after
    :func:`classify_pass` when ``classed``), in one call: a small chunk's decoding is not a Python loop over
    its passes. ``field = (keep, masked, shape, kinds, bins, inv_bins, cls_of_fine, classed)`` (``kinds``: cubic
    or not, per pass), ``plan = (groups, n_cls, n_b, axis, bmap)``, ``scratch = (cls, code)``; ``left``
    symbols remain to decode. Returns (unpredictables used, symbols left), or an error code (ERR_COUNT: the
    shape needs more symbols) first."""
    keep, masked, shape, kinds, bins, inv_bins, cls_of_fine, classed = field
    groups, n_cls, n_b, axis, bmap = plan
    cls, code = scratch
    per_class = np.zeros(0, np.int64)  # none: the total count is all this decoder needs
    top = bins.size - 1
    upos = 0
    if not masked or keep[0]:  # the origin: one symbol under the coarsest group's first model, or unpredictable
        if left < 1:
            return ERR_COUNT, left
        left -= 1
        s = decode_one(dec, (max(1, min(top, groups)) - 1) * n_cls * n_b)
        if s < 0:
            return ERR_SYMBOLS, left
        upos = decode_origin(s, recon, unpred, bins[top])
        if upos < 0:
            return upos, left
    p = 0
    for level in range(top, 0, -1):
        h = 1 << (level - 1)
        for d in range(shape.size):
            if shape[d] <= h:
                continue
            pas = (shape, level, d, kinds[p], bins[level], inv_bins[level])
            if classed:
                n = classify_pass(recon, keep, masked, pas, cls_of_fine, n_cls, cls, per_class)
            else:
                _, _, _, n_odd, _, n_oth, _ = _lattice(shape, level, d)
                n = n_odd * n_oth
            if n > left:
                return ERR_COUNT, left
            left -= n
            ctx = (bmap, (max(1, min(level, groups)) - 1) * n_cls * n_b, n_b, axis)
            upos = decode_ctx_pass(recon, pas, cls, classed, dec, ctx, unpred, upos, code)
            if upos < 0:
                return upos, left
            p += 1
    return upos, left


@kernel
def reconstruct_pass(recon, pas, code, unpred):
    """Reconstruct the pass tuple ``pas`` in memory order (:func:`_rows`) from ``code`` (-1 skipped, a symbol > 0,
    or ``-2 - k`` for ``unpred[k]``): the second sweep of every payload version; ERR_UNPRED when an
    unpredictable index lies beyond ``unpred``."""
    shape, level, d, cubic, bin_, _ = pas
    t0, pb0, i0, j0, n_in, ms, pstep, di, js, es, n_odd, n_even, n_oth = _rows(shape, level, d)
    nu = unpred.size
    for r in range(t0.size):
        for q in range(n_in):
            i = i0[r] + q * di
            k = code[j0[r] + q * js]
            pr = _predict(recon, pb0[r] + q * pstep, es, i, n_odd, n_even, cubic)
            if k > 0:
                recon[t0[r] + q * ms] = dequantize(k, pr, bin_)
            elif k == -1:
                recon[t0[r] + q * ms] = _finite(pr)
            elif -2 - k < nu:
                recon[t0[r] + q * ms] = unpred[-2 - k]
            else:
                return ERR_UNPRED
    return OK


@kernel
def bucket_map(radius_k):
    """:func:`prev_bucket` of every symbol 0..65535 (the decoder's table)."""
    out = np.empty(1 << 16, np.int64)
    for s in range(out.size):
        out[s] = prev_bucket(s, radius_k)
    return out
