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


@njit(nogil=True, cache=True)
def table_bits(counts):
    """:func:`model_bits` summed over the rows of a 2-D table (encoder-only: summation order is free)."""
    bits = 0.0
    for r in range(counts.shape[0]):
        total = 0
        for c in counts[r]:
            total += c
        if total == 0:
            bits += 8.0
            continue
        ent, var = 0.0, 0.0
        for c in counts[r]:
            if c > 0:
                ent += c * np.log2(total / c)
                var += 2.0 + np.floor(np.log2(c) / 7)
        bits += ent + 8.0 * (1.0 + var)
    return bits


@njit(nogil=True, cache=True)
def merge_adjacent(table):
    """Greedily merge adjacent classes of a [row, class, symbol] table while the estimate shrinks.

    Returns (bits, start flags): ``starts[c]`` is True where class ``c`` begins a merged class.
    """
    n = table.shape[1]
    parts = [table[:, c, :].copy() for c in range(n)]
    bits = [table_bits(p) for p in parts]
    starts = [c for c in range(n)]
    gains = [bits[i] + bits[i + 1] - table_bits(parts[i] + parts[i + 1]) for i in range(n - 1)]
    while len(parts) > 1:
        i = 0
        for j in range(1, len(gains)):
            if gains[j] > gains[i]:
                i = j
        if gains[i] <= 0:
            break
        parts[i] = parts[i] + parts[i + 1]
        bits[i] = bits[i] + bits[i + 1] - gains[i]
        parts.pop(i + 1)
        bits.pop(i + 1)
        starts.pop(i + 1)
        gains.pop(i)
        for j in (i - 1, i):
            if 0 <= j < len(parts) - 1:
                gains[j] = bits[j] + bits[j + 1] - table_bits(parts[j] + parts[j + 1])
    flags = np.zeros(n, np.bool_)
    for s in starts:
        flags[s] = True
    total = 0.0
    for b in bits:
        total += b
    return total, flags
