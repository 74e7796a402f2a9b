"""Fast size estimates, used by encoders to choose between candidates before encoding the winner."""

from __future__ import annotations

import numpy as np
from numba import njit


def model_bits(counts: np.ndarray) -> np.ndarray:
    """Estimated coded size in bits of each row of ``counts`` under a static model of its own histogram.

    The entropy of the counts plus the sparse histogram (:func:`xdiffc.entropy.rans.histogram_bytes`:
    a varint gap and a varint count per nonzero bin, and a varint bin count).
    """
    counts = np.asarray(counts)
    total = counts.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = np.where(counts > 0, counts * np.log2(total / np.maximum(counts, 1)), 0.0).sum(axis=-1)
    varint = np.where(counts > 0, 2.0 + np.floor(np.log2(np.maximum(counts, 1)) / 7), 0.0).sum(axis=-1)
    return ent + 8.0 * (1.0 + varint)


_XLOG = np.zeros(1 << 16)
_XLOG[1:] = np.arange(1, 1 << 16) * np.log2(np.arange(1, 1 << 16))


@njit(nogil=True, cache=True, inline="always")
def _xlog2(c, table):
    return table[c] if c < table.size else c * np.log2(c)


@njit(nogil=True, cache=True)
def _pair_bits(a, b):
    """:func:`model_bits` summed over the rows of ``a + b`` (2-D integer tables), without allocating.

    Entropy as ``T log2 T - sum c log2 c``; varints as ``2 + (bit length - 1) // 7`` bytes.
    """
    xl = _XLOG
    bits = 0.0
    for r in range(a.shape[0]):
        total = 0
        for k in range(a.shape[1]):
            total += a[r, k] + b[r, k]
        if total == 0:
            bits += 8.0
            continue
        ent, var = _xlog2(total, xl), 0.0
        for k in range(a.shape[1]):
            c = a[r, k] + b[r, k]
            if c > 0:
                ent -= _xlog2(c, xl)
                nb, v = 0, c
                while v:
                    nb += 1
                    v >>= 1
                var += 2.0 + (nb - 1) // 7
        bits += ent + 8.0 * (1.0 + var)
    return bits


@njit(nogil=True, cache=True)
def merge_adjacent(table):
    """Greedily merge adjacent classes of a [row, class, symbol] table while the estimate shrinks.

    Returns (bits, start flags): ``starts[c]`` is True where class ``c`` begins a merged class.
    (Encoder-only: the summation order is free.)
    """
    n = table.shape[1]
    parts = np.empty((n, table.shape[0], table.shape[2]), np.int64)
    for c in range(n):
        parts[c] = table[:, c, :]
    zero = np.zeros((table.shape[0], table.shape[2]), np.int64)
    bits = np.empty(n)
    for c in range(n):
        bits[c] = _pair_bits(parts[c], zero)
    starts = np.arange(n)
    gains = np.empty(max(n - 1, 1))
    for i in range(n - 1):
        gains[i] = bits[i] + bits[i + 1] - _pair_bits(parts[i], parts[i + 1])
    m = n
    while m > 1:
        i = 0
        for j in range(1, m - 1):
            if gains[j] > gains[i]:
                i = j
        if gains[i] <= 0:
            break
        parts[i] += parts[i + 1]
        bits[i] = bits[i] + bits[i + 1] - gains[i]
        for j in range(i + 1, m - 1):
            parts[j] = parts[j + 1]
            bits[j] = bits[j + 1]
            starts[j] = starts[j + 1]
        for j in range(i, m - 2):
            gains[j] = gains[j + 1]
        m -= 1
        for j in (i - 1, i):
            if 0 <= j < m - 1:
                gains[j] = bits[j] + bits[j + 1] - _pair_bits(parts[j], parts[j + 1])
    flags = np.zeros(n, np.bool_)
    total = 0.0
    for j in range(m):
        flags[starts[j]] = True
        total += bits[j]
    return total, flags


@njit(nogil=True, cache=True)
def choose_grouping(table, levels, max_groups):
    """Best (bits, groups, class start flags) over level groupings of a [level, class, symbol] table.

    Level ``l`` falls in group ``max(1, min(l, groups)) - 1``.
    """
    best_bits, best_groups = np.inf, 1
    best_flags = np.zeros(table.shape[1], np.bool_)
    for groups in range(1, min(max(levels, 1), max_groups) + 1):
        grouped = np.zeros((groups, table.shape[1], table.shape[2]), np.int64)
        for lv in range(levels + 1):
            grouped[max(1, min(lv, groups)) - 1] += table[lv]
        bits, flags = merge_adjacent(grouped)
        if bits < best_bits:
            best_bits, best_groups, best_flags = bits, groups, flags
    return best_bits, best_groups, best_flags


@njit(nogil=True, cache=True)
def folded_bits(counts, n_gc, kmax, ks):
    """:func:`model_bits` summed over the models of ``counts`` [(group-class) * (2 kmax + 2) + bucket, symbol]
    after folding the previous-slice buckets to each radius ``k`` of ``ks`` (bucket 0 stays, the others
    clamp to ``[-k, k]``; k = 0 merges them all)."""
    pmax = 2 * kmax + 2
    width = counts.shape[1]
    out = np.zeros(ks.size)
    for t in range(ks.size):
        k = ks[t]
        pk = 2 * k + 2 if k else 1
        tmp = np.zeros((pk, width), np.int64)
        zero = np.zeros((pk, width), np.int64)
        for gc in range(n_gc):
            tmp[:] = 0
            for b in range(pmax):
                nb = 0
                if k and b:
                    nb = min(max(b - kmax - 1, -k), k) + k + 1
                tmp[nb] += counts[gc * pmax + b]
            out[t] += _pair_bits(tmp, zero)
    return out
