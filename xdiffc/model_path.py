"""The model path: a learned prediction, chosen block by block, plus a residual coded under the bound.

For each block of the predictor, the encoder compares two costs, both measured by actually
coding the block with the interpolation coder:

- model-free: the block's values at the bound;
- model: the block's latents, plus its residual ``x - x_hat`` at a bound tightened by the
  cross-device margin (below).

Blocks where the model does not pay are not sent: the decoder's prediction there is zero.
The residual of the whole chunk is then coded by the residual coders of :mod:`xdiffc.coders`,
and the core keeps this candidate only if it beats the model-free candidates as a whole.

Cross-device margin: a network evaluated on another device (GPU vs CPU, another BLAS) gives a
slightly different ``x_hat``. The predictor documents ``max_abs_deviation``, the largest such
difference in normalised units (block range 1). The residual is coded, and checked, against
``tol - margin`` with ``margin = max_abs_deviation * block range + 4 ulp(max |x|)``, so the
decoder's values stay within ``tol`` whichever device computes ``x_hat``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .coders import interp


@dataclass
class ModelCandidate:
    """What the core needs from the model path: the sections and the number of blocks used."""

    payload: bytes
    prediction: np.ndarray
    tol: float
    blocks_used: int


def margin(predictor, block_ranges: np.ndarray, values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Per-block absolute margin covering cross-device differences of the prediction and the final rounding.

    ``values`` must be finite (missing points already filled).
    """
    amax = float(np.max(np.abs(values))) if values.size else 0.0
    ulp = float(np.spacing(dtype.type(amax))) if amax else 0.0
    return predictor.max_abs_deviation * np.asarray(block_ranges, np.float64) + 4 * ulp


def choose_blocks(predictor, values: np.ndarray, mask: np.ndarray, tol: float, steps: int,
                  dtype: np.dtype) -> ModelCandidate | None:
    """Run the predictor, keep the blocks where latents + residual cost less than the block alone.

    ``values`` has its missing points filled (:func:`xdiffc.masking.fill_gaps`), so the
    predictor only ever sees finite numbers. Returns None when no block pays (the caller then
    uses the model-free path only).
    """
    analysis = predictor.analyse(values, mask, steps)
    margins = margin(predictor, analysis.block_ranges, values, dtype)
    use = np.zeros(len(margins), bool)
    for b, region in enumerate(predictor.block_slices(values.shape)):
        tight = tol - margins[b]
        if tight <= 0.5 * tol:
            continue
        skip = mask[region] if mask[region].any() else None
        if skip is not None and skip.all():
            continue
        block = values[region]
        residual = block - analysis.x_hat[region]
        if skip is not None:
            block, residual = np.where(skip, 0.0, block), np.where(skip, 0.0, residual)
        free = len(interp.encode(np.ascontiguousarray(block), tol, skip))
        with_model = analysis.block_bytes[b] + len(interp.encode(np.ascontiguousarray(residual), tight, skip))
        use[b] = with_model < free
    if not use.any():
        return None
    payload = predictor.pack(analysis, use)
    prediction = predictor.reconstruct(payload, values.shape)  # exactly what the decoder will compute
    return ModelCandidate(payload, prediction, tol - float(margins[use].max()), int(use.sum()))
