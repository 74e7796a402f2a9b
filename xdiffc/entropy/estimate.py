"""Fast size estimates, used by encoders to choose between candidates before encoding the winner."""

from __future__ import annotations

import numpy as np


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
