"""xdiffc.entropy.estimate: the compressed-row kernels give the dense algorithm's estimates and choices exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from xdiffc.entropy import estimate

_XLOG = estimate.XLOG


# --- a dense reference: every symbol of every row, in order, with the kernels' own float operations ------------

def _xlog2(c: int) -> float:
    return float(_XLOG[c]) if c < _XLOG.size else c * math.log2(c)


def _row_bits(row: np.ndarray) -> float:
    total = int(row.sum())
    if total == 0:
        return 8.0 * estimate.TABLE_MODEL_BYTES
    ent, used = _xlog2(total), 0
    for c in row:
        if c > 0:
            ent -= _xlog2(int(c))
            used += 1
    return ent + 8.0 * (estimate.TABLE_MODEL_BYTES + estimate.TABLE_SYMBOL_BYTES * used)


def _table_bits(rows: np.ndarray) -> float:
    bits = 0.0
    for row in rows:
        bits += _row_bits(row)
    return bits


def _merge_adjacent(table: np.ndarray) -> tuple[float, list[bool]]:
    parts = [table[:, c, :].copy() for c in range(table.shape[1])]
    bits = [_table_bits(p) for p in parts]
    starts = list(range(len(parts)))
    while len(parts) > 1:
        gains = [bits[i] + bits[i + 1] - _table_bits(parts[i] + parts[i + 1]) for i in range(len(parts) - 1)]
        i = int(np.argmax(gains))  # the first of equal gains, as the kernel
        if gains[i] <= 0:
            break
        parts[i : i + 2] = [parts[i] + parts[i + 1]]
        bits[i : i + 2] = [bits[i] + bits[i + 1] - gains[i]]
        del starts[i + 1]
    total = 0.0
    for b in bits:
        total += b
    return total, [c in starts for c in range(table.shape[1])]


def _choose_grouping(table: np.ndarray, levels: int, max_groups: int) -> tuple[float, int, list[bool]]:
    best = (math.inf, 1, [False] * table.shape[1])
    for groups in range(1, min(max(levels, 1), max_groups) + 1):
        grouped = np.zeros((groups,) + table.shape[1:], np.int64)
        for lv in range(levels + 1):
            grouped[max(1, min(lv, groups)) - 1] += table[lv]
        bits, flags = _merge_adjacent(grouped)
        if bits < best[0]:
            best = (bits, groups, flags)
    return best


def _folded_bits(counts: np.ndarray, n_gc: int, kmax: int, ks: list[int]) -> list[float]:
    pmax = 2 * kmax + 2 if kmax else 1
    out = []
    for k in ks:
        pk = 2 * k + 2 if k else 1
        total = 0.0
        for gc in range(n_gc):
            tmp = np.zeros((pk, counts.shape[1]), np.int64)
            for b in range(pmax):
                tmp[min(max(b - kmax - 1, -k), k) + k + 1 if k and b else 0] += counts[gc * pmax + b]
            total += _table_bits(tmp)
        out.append(total)
    return out


@st.composite
def sparse_tables(draw, max_rows=6, max_classes=6, max_width=40):
    """[row, class, symbol] counts, mostly zeros, some large (varints of 2-3 bytes), some rows empty."""
    shape = (draw(st.integers(1, max_rows)), draw(st.integers(1, max_classes)), draw(st.integers(1, max_width)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    # every density with every scale but the dense table of 3-byte counts (tens of millions of items to shuffle)
    density, scale = draw(st.sampled_from([(d, s) for d in (0.02, 0.2, 0.7) for s in (2, 300, 60000) if d * s < 20000]))
    return ((rng.random(shape) < density) * rng.integers(1, scale, shape)).astype(np.int64)


def stream(table: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The items whose counts are the [row, symbol] table ``table``, shuffled: (rows, symbols)."""
    rows = np.repeat(np.repeat(np.arange(table.shape[0]), table.shape[1]), table.ravel())
    syms = np.repeat(np.tile(np.arange(table.shape[1]), table.shape[0]), table.ravel())
    order = rng.permutation(rows.size)
    return rows[order], syms[order]


def passes(table: np.ndarray, rng: np.random.Generator):
    """The symbols of a [level, class, symbol] table as the coder gives them: passes (two per level here, in
    shuffled order within), each at one level. Returns (symbols, classes, pass starts, pass levels)."""
    syms, cls, start, plevel = [], [], [0], []
    for lv in range(table.shape[0]):
        c, k = stream(table[lv], rng)
        cut = int(rng.integers(0, c.size + 1))
        for part in (slice(0, cut), slice(cut, None)):
            syms.append(k[part])
            cls.append(c[part])
            start.append(start[-1] + k[part].size)
            plevel.append(lv)
    return (np.concatenate(syms).astype(np.int64), np.concatenate(cls).astype(np.uint8), np.array(start, np.int64),
            np.array(plevel, np.int64))


# --- tests -----------------------------------------------------------------------------------------------------

def test_compressed_rows_by_hand():
    """Counts (3, 1): entropy 4 log2 4 - 3 log2 3 = 3.245 bits, a compact table of 0.5 + 2 x 1 bytes."""
    ptr, sym, cnt, tot = estimate.rows_of(np.array([0, 0, 0, 0]), np.array([1, 3, 1, 1]), np.arange(4), 2, 4)
    assert ptr.tolist() == [0, 2, 2] and sym.tolist() == [1, 3] and cnt.tolist() == [3, 1] and tot.tolist() == [4, 0]
    acc, seen = np.zeros(4, np.int64), np.empty(4, np.int64)
    one = estimate.merged_bits(ptr, sym, cnt, tot, np.array([0]), 1, acc, seen)
    assert one == pytest.approx(8 - 3 * math.log2(3) + 8 * 2.5, rel=1e-12)
    assert estimate.merged_bits(ptr, sym, cnt, tot, np.array([1]), 1, acc, seen) == 4.0  # an empty row: its count
    assert estimate.merged_bits(ptr, sym, cnt, tot, np.array([0, 1]), 2, acc, seen) == one


@given(sparse_tables())
def test_counted_rows_price_as_the_dense_table(table):
    """The compressed rows of a stream are its dense count table's; any set of them, summed, costs the dense
    formula's bits, with the kernels' operations exactly; the scratch is left clean."""
    rows = table.reshape(-1, table.shape[-1])
    rng = np.random.default_rng(int(table.sum()))
    ptr, sym, cnt, tot = estimate.rows_of(*stream(rows, rng), np.arange(rows.shape[1]), rows.shape[0], rows.shape[1])
    dense = np.zeros_like(rows)
    for r in range(rows.shape[0]):
        assert np.all(np.diff(sym[ptr[r] : ptr[r + 1]]) > 0)
        dense[r, sym[ptr[r] : ptr[r + 1]]] = cnt[ptr[r] : ptr[r + 1]]
    assert np.array_equal(dense, rows) and np.array_equal(tot, rows.sum(axis=1))
    acc, seen = np.zeros(rows.shape[1], np.int64), np.empty(rows.shape[1], np.int64)
    pick = rng.choice(rows.shape[0], size=int(rng.integers(1, rows.shape[0] + 1)), replace=False)
    bits = estimate.merged_bits(ptr, sym, cnt, tot, pick.astype(np.int64), pick.size, acc, seen)
    assert bits == _row_bits(rows[pick].sum(axis=0))
    assert bits == pytest.approx(float(estimate.model_bits(rows[pick].sum(axis=0))), rel=1e-9)
    assert not acc.any()


@given(sparse_tables(max_rows=9, max_classes=8), st.integers(1, 8))
def test_choose_grouping_matches_the_dense_algorithm(table, max_groups):
    levels = table.shape[0] - 1
    syms, cls, start, plevel = passes(table, np.random.default_rng(int(table.sum())))
    bits, groups, flags = estimate.choose_grouping(syms, np.arange(table.shape[2]), cls, start, plevel, levels, table.shape[1], table.shape[2],
                                                   max_groups)
    assert (bits, groups, flags.tolist()) == _choose_grouping(table, levels, max_groups)


@given(sparse_tables(max_rows=1, max_classes=1, max_width=30), st.integers(1, 4), st.sampled_from([0, 1, 2, 4]))
def test_folded_bits_match_the_dense_fold(seed_table, n_gc, kmax):
    pmax = 2 * kmax + 2 if kmax else 1
    rng = np.random.default_rng(int(seed_table.sum()))
    width = seed_table.shape[-1]
    counts = (rng.random((n_gc * pmax, width)) < 0.3) * rng.integers(1, 500, (n_gc * pmax, width))
    ctx, syms = stream(counts, rng)
    ks = [k for k in (0, 1, 2, 4) if k <= kmax]
    got = estimate.folded_bits(syms, np.arange(width), ctx.astype(np.uint16), width, n_gc, kmax, np.array(ks, np.int64))
    assert got.tolist() == _folded_bits(counts, n_gc, kmax, ks)


def test_folded_bits_without_buckets_read_one_row_per_model():
    """kmax = 0: one model per (group, class), as the context numbering has it."""
    counts = np.array([[5, 0, 1], [0, 2, 2]], np.int64)
    ctx, syms = stream(counts, np.random.default_rng(0))
    got = estimate.folded_bits(syms, np.arange(3), ctx.astype(np.uint16), 3, 2, 0, np.array([0], np.int64))
    assert got[0] == pytest.approx(float(estimate.model_bits(counts).sum()), rel=1e-12)


def test_choose_grouping_on_a_wide_sparse_table():
    """Thousands of distinct symbols, each seen about once (a tight bound): the dense algorithm's answer, and the
    same with the symbols renumbered densely (only their order matters)."""
    rng = np.random.default_rng(3)
    table = np.zeros((8, 10, 6000), np.int64)
    np.add.at(table, (rng.integers(0, 8, 3000), rng.integers(0, 10, 3000), rng.integers(0, 6000, 3000)), 1)
    syms, cls, start, plevel = passes(table, rng)
    got = estimate.choose_grouping(syms, np.arange(6000), cls, start, plevel, 7, 10, 6000, 8)
    used = np.unique(syms)
    narrow = estimate.choose_grouping(syms, np.searchsorted(used, np.arange(6000)), cls, start, plevel, 7, 10, used.size, 8)
    assert (got[0], got[1], got[2].tolist()) == _choose_grouping(table, 7, 8)
    assert (narrow[0], narrow[1], narrow[2].tolist()) == (got[0], got[1], got[2].tolist())


def test_choose_grouping_at_the_interp_coders_size():
    """As many rows as the interp coder counts on a 4096-long axis (10 fine classes over 13 levels: 130 rows, past
    any 8-bit row number) and some 100,000 symbols: the dense algorithm's answer."""
    from xdiffc.predict.interp import N_FINE

    rng = np.random.default_rng(5)
    table = np.zeros((13, N_FINE, 60), np.int64)
    n = 100_000
    np.add.at(table, (rng.integers(0, 13, n), rng.integers(0, N_FINE, n), np.minimum(rng.geometric(0.15, n), 59)), 1)
    syms, cls, start, plevel = passes(table, rng)
    got = estimate.choose_grouping(syms, np.arange(60), cls, start, plevel, 12, N_FINE, 60, 8)
    assert (got[0], got[1], got[2].tolist()) == _choose_grouping(table, 12, 8)
