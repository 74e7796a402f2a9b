"""Fast size estimates, used by encoders to choose between candidates before encoding the winner.

The kernels take the coded symbols themselves (each with its row: level and class, or context)
and count them into compressed rows, the nonzero counts in symbol order (:func:`rows_of`). The
dense table of counts per (row, symbol) would be mostly zeros where the bound is tight (thousands
of distinct symbols, most seen once or twice): building, zeroing and scanning it cost more than
the estimate itself. Here the cost grows with the symbols coded. Sums of rows that several
candidates share (a level grouping's rows, a radius's buckets) are priced once. Every estimate
equals :func:`model_bits` of the dense table, summed in the same order with the same operations,
so the encoder's choices (and its streams) do not depend on how it is computed.
"""

from __future__ import annotations

import numpy as np

from ..kernels import kernel


def model_bits(counts: np.ndarray) -> np.ndarray:
    """Estimated coded size in bits of each row of ``counts`` under a static model of its own histogram.

    The entropy of the counts plus a compact table (:func:`xdiffc.entropy.crans.compact_tables`):
    :data:`TABLE_MODEL_BYTES` per row and :data:`TABLE_SYMBOL_BYTES` per nonzero bin.
    """
    counts = np.asarray(counts)
    total = counts.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = np.where(counts > 0, counts * np.log2(total / np.maximum(counts, 1)), 0.0).sum(axis=-1)
    used = (counts > 0).sum(axis=-1)
    return ent + 8.0 * (TABLE_MODEL_BYTES + TABLE_SYMBOL_BYTES * used)


#: Bytes of a compact frequency table per model and per used symbol, as the estimates count them. Measured on
#: the interp and wavelet payloads of the benchmark fields (eps 1e-2 to 1e-4, chunks of 1 to 110 steps): the
#: zstd-coded tables cost 0.6-1.6 bytes per used symbol, the lower figures in the larger tables.
TABLE_MODEL_BYTES = 0.5
TABLE_SYMBOL_BYTES = 1.0


#: ``c log2 c`` of the counts below 2**16, looked up by :func:`xlog2` (a logarithm costs tens of nanoseconds).
XLOG = np.zeros(1 << 16)
XLOG[1:] = np.arange(1, 1 << 16) * np.log2(np.arange(1, 1 << 16))


@kernel(inline="always")
def xlog2(c, table):
    """``c log2 c`` of a count ``c >= 1``, from ``table`` (:data:`XLOG`) where it holds it."""
    return table[c] if c < table.size else c * np.log2(c)


@kernel
def _row_bits(cnt, lo, hi, total):
    """:func:`model_bits` of one row whose nonzero counts, in symbol order, are ``cnt[lo:hi]`` (sum ``total``)."""
    if total == 0:
        return 8.0 * TABLE_MODEL_BYTES
    ent = xlog2(total, XLOG)
    for j in range(lo, hi):
        ent -= xlog2(cnt[j], XLOG)
    return ent + 8.0 * (TABLE_MODEL_BYTES + TABLE_SYMBOL_BYTES * (hi - lo))


@kernel
def rows_of(keys, syms, dense, n_rows, width):
    """The compressed table of counts of (row, symbol) pairs, item ``i`` being row ``keys[i]``, symbol
    ``dense[syms[i]]`` (< ``width``; ``dense`` maps the coder's symbols to their index among those present, so that
    no array of those indices is needed): (row starts, symbols, counts, row totals), each row's symbols in order.

    The rows of the dense [row, symbol] table one would count. Where that table holds at most a quarter as many
    entries as there are items, it is counted as it is (:func:`_dense_rows`); else without building it: a
    counting sort by row (one 4-byte index per item: the items of a chunk number < 2**31, see folded_bits), then
    each row counted into one scratch row of ``width`` and read out in symbol order, as :func:`merged_bits` does;
    linear in the items, rows and width. Either way the arrays returned hold the distinct pairs only, not one
    entry per item (a 108 MB chunk's estimates had kept two such arrays, 2x the chunk, through the search).
    """
    n = keys.size
    ptr = np.zeros(n_rows + 1, np.int64)
    if n_rows * width <= max(n // 4, 1 << 16):  # a dense table of the counts: smaller than the sort's index
        return _dense_rows(keys, syms, dense, n_rows, width, ptr)
    for i in range(n):
        ptr[keys[i] + 1] += 1
    tot = ptr[1:].copy()
    for r in range(n_rows):
        ptr[r + 1] += ptr[r]
    order = np.empty(n, np.int32)
    fill = ptr[:-1].copy()
    for i in range(n):
        order[fill[keys[i]]] = i
        fill[keys[i]] += 1
    acc = np.zeros(width, np.int64)
    seen = np.empty(width, np.int64)
    cap = min(n, n_rows * width)  # the distinct (row, symbol) pairs
    sym = np.empty(cap, np.int32)
    cnt = np.empty(cap, np.int32)
    m = 0
    for r in range(n_rows):
        first, k, lo, hi = m, np.int64(0), width, -1  # k: not the literal 0 (one compilation of _heap_sort)
        for j in range(ptr[r], ptr[r + 1]):
            s = dense[syms[order[j]]]
            if acc[s] == 0:
                seen[k] = s
                k += 1
                lo, hi = min(lo, s), max(hi, s)
            acc[s] += 1
        if hi - lo < 4 * k:  # dense enough: sweep the symbols' range in order
            for s in range(lo, hi + 1):
                if acc[s]:
                    sym[m], cnt[m] = s, acc[s]
                    m += 1
                    acc[s] = 0
        else:  # sparse: sort the symbols seen
            _heap_sort(seen, k)
            for s in seen[:k]:
                sym[m], cnt[m] = s, acc[s]
                m += 1
                acc[s] = 0
        ptr[r] = first
    ptr[n_rows] = m
    return ptr, sym[:m].copy(), cnt[:m].copy(), tot


@kernel
def _dense_rows(keys, syms, dense, n_rows, width, ptr):
    """:func:`rows_of` through a dense [row, symbol] table of counts (4 bytes an entry), where that table is
    smaller than the counting sort's index of one int32 per item."""
    table = np.zeros(n_rows * width, np.int32)
    for i in range(keys.size):
        table[np.int64(keys[i]) * width + dense[syms[i]]] += 1
    m = 0
    for c in table:
        m += c != 0
    sym = np.empty(m, np.int32)
    cnt = np.empty(m, np.int32)
    tot = np.zeros(n_rows, np.int64)
    m = 0
    for r in range(n_rows):
        ptr[r] = m
        for s in range(width):
            c = table[r * width + s]
            if c:
                sym[m], cnt[m] = s, c
                tot[r] += c
                m += 1
    ptr[n_rows] = m
    return ptr, sym, cnt, tot


@kernel
def merged_bits(ptr, sym, cnt, tot, rows, n_rows, acc, seen):
    """:func:`model_bits` of the sum of compressed rows ``rows[:n_rows]`` (``tot``: the row totals).

    ``acc`` (zeros, one slot per symbol) and ``seen`` are scratch; ``acc`` is zero again on return.
    """
    total = np.int64(0)  # int64, not the literal 0: one compilation of _row_bits
    for i in range(n_rows):
        total += tot[rows[i]]
    if n_rows == 1:  # one row is already in symbol order
        return _row_bits(cnt, ptr[rows[0]], ptr[rows[0] + 1], total)
    if total == 0:
        return 8.0 * TABLE_MODEL_BYTES
    m, lo, hi = np.int64(0), acc.size, -1  # m: not the literal 0 (one compilation of _heap_sort)
    for i in range(n_rows):
        for j in range(ptr[rows[i]], ptr[rows[i] + 1]):
            s = sym[j]
            if acc[s] == 0:
                seen[m] = s
                m += 1
                lo, hi = min(lo, s), max(hi, s)
            acc[s] += cnt[j]
    ent = xlog2(total, XLOG)
    if hi - lo < 4 * m:  # dense enough: sweep the symbols' range in order
        for s in range(lo, hi + 1):
            c = acc[s]
            if c:
                ent -= xlog2(c, XLOG)
                acc[s] = 0
    else:  # sparse: sort the symbols seen
        _heap_sort(seen, m)
        for s in seen[:m]:
            ent -= xlog2(acc[s], XLOG)
            acc[s] = 0
    return ent + 8.0 * (TABLE_MODEL_BYTES + TABLE_SYMBOL_BYTES * m)


@kernel
def _heap_sort(a, n):
    """Sort ``a[:n]`` in place, ascending (numba's ``np.sort`` would compile a quicksort for about 2 s on the first
    call; the sparse tables sort a few symbols)."""
    for root in range(n // 2 - 1, -1, -1):
        _sift_down(a, root, n)
    for end in range(n - 1, 0, -1):
        a[0], a[end] = a[end], a[0]
        _sift_down(a, np.int64(0), end)


@kernel
def _sift_down(a, root, n):
    child = 2 * root + 1
    while child < n:
        if child + 1 < n and a[child] < a[child + 1]:
            child += 1
        if a[root] >= a[child]:
            return
        a[root], a[child] = a[child], a[root]
        root, child = child, 2 * child + 1


@kernel
def _block_bits(table, n_lv, s, e, lo, hi, scratch):
    """:func:`model_bits` of classes ``s..e-1`` and levels ``lo..hi`` summed (row ``c * n_lv + l``) of the compressed
    ``table`` (:func:`rows_of`); ``scratch`` = (rows, acc, seen) of :func:`merged_bits`."""
    ptr, sym, cnt, tot = table
    rows, acc, seen = scratch
    n = np.int64(0)  # not the literal 0: one compilation of merged_bits
    for c in range(s, e):
        for lv in range(lo, hi + 1):
            rows[n] = c * n_lv + lv
            n += 1
    return merged_bits(ptr, sym, cnt, tot, rows, n, acc, seen)


@kernel
def choose_grouping(syms, dense, cls, pass_start, plevel, levels, n_cls, width, max_groups):
    """Best (bits, groups, class start flags) over level groupings of the symbols ``dense[syms]`` (< ``width``) in
    classes ``cls`` (< ``n_cls``), pass ``p`` (``syms[pass_start[p]:pass_start[p + 1]]``) at level ``plevel[p]``.

    Level ``l`` falls in group ``max(1, min(l, groups)) - 1``; for each grouping, adjacent
    classes are merged greedily while the estimate shrinks (the pair whose merge saves most
    first). The bits of a (class range, level range) block are priced once for all groupings:
    groups ``1 .. groups - 2`` hold one level each, the same in every grouping.
    """
    n_lv = levels + 1
    first = pass_start[0]
    keys = np.empty(pass_start[-1] - first, np.uint16)  # row c * n_lv + level (< 2**16; uint16 as folded_bits' contexts: one rows_of)
    for p in range(pass_start.size - 1):
        for j in range(pass_start[p], pass_start[p + 1]):
            keys[j - first] = cls[j] * n_lv + plevel[p]
    table = rows_of(keys, syms[first : pass_start[-1]], dense, n_cls * n_lv, width)
    scratch = (np.empty(n_cls * n_lv, np.int64), np.zeros(width, np.int64), np.empty(width, np.int64))
    # cache[s, e, id]: bits of classes s..e-1 over a level set, id (0, 1) -> 0, all -> 1, (l, l) -> l,
    # (g, last) -> n_lv + g
    cache = np.full((n_cls, n_cls + 1, 2 * n_lv + 1), np.nan)
    best_bits, best_groups = np.inf, 1
    best_flags = np.zeros(n_cls, np.bool_)
    for groups in range(1, min(max(levels, 1), max_groups) + 1):
        lo = np.empty(groups, np.int64)
        hi = np.empty(groups, np.int64)
        ids = np.empty(groups, np.int64)
        if groups == 1:
            lo[0], hi[0], ids[0] = 0, n_lv - 1, 1
        else:
            lo[0], hi[0], ids[0] = 0, 1, 0
            for g in range(1, groups - 1):
                lo[g], hi[g], ids[g] = g + 1, g + 1, g + 1
            lo[groups - 1], hi[groups - 1], ids[groups - 1] = groups, n_lv - 1, n_lv + groups
        bounds = np.arange(n_cls + 1)  # part j: classes bounds[j] .. bounds[j + 1] - 1
        bits = np.empty(n_cls)
        grouping = (lo, hi, ids)
        for c in range(n_cls):
            bits[c] = _part_bits(table, n_lv, c, c + 1, grouping, cache, scratch)
        gains = np.empty(max(n_cls - 1, 1))
        for i in range(n_cls - 1):
            gains[i] = bits[i] + bits[i + 1] - _part_bits(table, n_lv, i, i + 2, grouping, cache, scratch)
        m = n_cls
        while m > 1:
            i = 0
            for j in range(1, m - 1):
                if gains[j] > gains[i]:
                    i = j
            if gains[i] <= 0:
                break
            bits[i] = bits[i] + bits[i + 1] - gains[i]
            for j in range(i + 1, m - 1):
                bits[j] = bits[j + 1]
            for j in range(i + 1, m):
                bounds[j] = bounds[j + 1]
            for j in range(i, m - 2):
                gains[j] = gains[j + 1]
            m -= 1
            for j in (i - 1, i):
                if 0 <= j < m - 1:
                    gains[j] = bits[j] + bits[j + 1] - _part_bits(table, n_lv, bounds[j], bounds[j + 2], grouping,
                                                                  cache, scratch)
        total = 0.0
        for j in range(m):
            total += bits[j]
        if total < best_bits:
            best_bits, best_groups = total, groups
            best_flags = np.zeros(n_cls, np.bool_)
            for j in range(m):
                best_flags[bounds[j]] = True
    return best_bits, best_groups, best_flags


@kernel
def _part_bits(table, n_lv, s, e, grouping, cache, scratch):
    """Bits of classes ``s..e-1`` under the ``grouping`` (lo, hi, ids) of levels: its groups' blocks summed in
    order, each block's bits cached in ``cache[s, e, id]``."""
    lo, hi, ids = grouping
    bits = 0.0
    for g in range(lo.size):
        b = cache[s, e, ids[g]]
        if np.isnan(b):
            b = _block_bits(table, n_lv, s, e, lo[g], hi[g], scratch)
            cache[s, e, ids[g]] = b
        bits += b
    return bits


@kernel
def folded_bits(syms, dense, ctx, width, n_gc, kmax, ks):
    """:func:`model_bits` summed over the models of the symbols ``dense[syms]`` (< ``width``) under models ``ctx``
    (``(group-class) * P + bucket``, ``P = 2 kmax + 2``, or 1 when kmax = 0, as
    :func:`xdiffc.predict.interp.contexts` numbers them) after folding the previous-slice buckets to
    each radius ``k <= kmax`` of ``ks`` (bucket 0 stays, the others clamp to ``[-k, k]``; k = 0
    merges them all). The buckets that stay alone are priced once for all radii."""
    pmax = 2 * kmax + 2 if kmax else 1
    ptr, sym, cnt, tot = rows_of(ctx, syms, dense, n_gc * pmax, width)
    acc = np.zeros(width, np.int64)
    seen = np.empty(width, np.int64)
    rows = np.empty(pmax, np.int64)
    single = np.empty(n_gc * pmax)
    for r in range(n_gc * pmax):
        single[r] = _row_bits(cnt, ptr[r], ptr[r + 1], tot[r])
    out = np.zeros(ks.size)
    for t in range(ks.size):
        k = ks[t]
        for gc in range(n_gc):
            base = gc * pmax
            if not k:  # every bucket in one model
                for b in range(pmax):
                    rows[b] = base + b
                out[t] += 0.0 + merged_bits(ptr, sym, cnt, tot, rows, pmax, acc, seen)
                continue
            bits = single[base]  # bucket 0
            n = np.int64(0)
            for b in range(1, kmax + 2 - k):  # the low edge: buckets clamped to -k
                rows[n] = base + b
                n += 1
            bits += merged_bits(ptr, sym, cnt, tot, rows, n, acc, seen)
            for b in range(kmax + 2 - k, kmax + 1 + k):  # -k < offset < k: alone
                bits += single[base + b]
            n = np.int64(0)
            for b in range(kmax + 1 + k, pmax):  # the high edge: clamped to k
                rows[n] = base + b
                n += 1
            bits += merged_bits(ptr, sym, cnt, tot, rows, n, acc, seen)
            out[t] += bits
    return out


def _pair_bits(a: np.ndarray, b: np.ndarray) -> float:
    """:func:`model_bits` summed over the rows of the dense tables ``a + b``, through the compressed kernels
    (what tests compare with the numpy formula)."""
    both = np.concatenate([a, b]).astype(np.int64)
    keys = np.repeat(np.repeat(np.arange(both.shape[0]), both.shape[1]), both.ravel())
    syms = np.repeat(np.tile(np.arange(both.shape[1]), both.shape[0]), both.ravel())
    ptr, sym, cnt, tot = rows_of(keys, syms, np.arange(both.shape[1]), both.shape[0], both.shape[1])
    acc, seen = np.zeros(a.shape[1], np.int64), np.empty(a.shape[1], np.int64)
    bits = 0.0
    for r in range(a.shape[0]):
        bits += merged_bits(ptr, sym, cnt, tot, np.array([r, r + a.shape[0]]), 2, acc, seen)
    return bits
