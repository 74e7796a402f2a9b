"""The model in L2 mode: per block of the predictor, its reconstruction or the interpolation base.

GCDTC's base is the model's reconstruction, which the PCA guarantee (:mod:`xdiffc.l2`) then
corrects.  Here each block of the predictor takes whichever base costs less, in bits:

- interpolation: the block coded alone by the interpolation coder under the base bound
  ``base_c * eps * R``, plus the estimated correction of its patches under that base;
- model: the block's latents and side information (the predictor's estimate), plus the estimated
  correction of its patches with ``x_hat`` as the base (tensor correction on), under the patch
  bound tightened by the block's cross-device margin (:func:`xdiffc.model_path.margin`, as in
  pointwise mode).  A block whose margin is half of ``eps * R`` or more never takes the model.

The correction estimate (:func:`xdiffc.l2.correction_bits`) fits the PCA correction once per
base over the whole field.  The core keeps the resulting stream only where it is smaller than
the model-free L2 stream, so no chunk costs more than without the model.
"""

from __future__ import annotations

import numpy as np

from . import l2, masking, model_path
from .coders import interp


def model_base(predictor, payload: bytes, shape: tuple[int, ...], margins: np.ndarray | None = None) -> l2.ModelBase:
    """The base a model payload gives, exactly as the decoder computes it: ``x_hat`` on the blocks it carries.

    ``margins`` (per block, encoder only) become each point's cross-device margin.
    """
    shape = tuple(int(n) for n in shape)
    x_hat = predictor.reconstruct(payload, shape)
    use = predictor.used_blocks(payload, shape)
    used, margin = np.zeros(shape, bool), np.zeros(shape)
    for b, region in enumerate(predictor.block_slices(shape)):
        if use[b]:
            used[region] = True
            margin[region] = 0.0 if margins is None else margins[b]
    return l2.ModelBase(x_hat, used, margin)


def choose_blocks(predictor, values: np.ndarray, missing: np.ndarray, eps: float, steps: int, dtype: np.dtype,
                  base_c: float = l2.BASE_C) -> tuple[bytes, l2.ModelBase] | None:
    """The model payload of the blocks where the model base is estimated cheaper, and that base; None if none is.

    ``values`` is the float64 field (anything at ``missing`` points), ``eps`` the NRMSE bound.
    """
    dtype = np.dtype(dtype)
    missing = np.broadcast_to(np.asarray(missing, bool), values.shape)
    filled = masking.fill_gaps(values, missing) if missing.any() else values
    scale = l2._value_range(values, ~missing)
    if not scale > 0:
        return None
    analysis = predictor.analyse(filled, missing, steps)
    margins = model_path.margin(predictor, analysis.block_ranges, filled, dtype)
    regions = predictor.block_slices(values.shape)
    eligible = np.array([m < 0.5 * eps * scale and not missing[r].all() for m, r in zip(margins, regions)])
    if not eligible.any():
        return None
    full = np.zeros(values.shape, bool)
    margin = np.zeros(values.shape)
    for b in np.flatnonzero(eligible):
        full[regions[b]] = True
        margin[regions[b]] = margins[b]
    base_tol = base_c * eps * scale
    target = np.where(missing, 0.0, values)
    skip = missing if missing.any() else None
    _, interp_hat = interp.encode_reconstruct(target, base_tol, skip)
    with_model = l2.ModelBase(np.where(full, analysis.x_hat, interp_hat), full, margin)
    bits_interp = _bits_per_block(regions, l2.correction_bits(values, missing, interp_hat, eps, scale, dtype))
    bits_model = _bits_per_block(regions, l2.correction_bits(values, missing, with_model.x_hat, eps, scale, dtype,
                                                             with_model))
    use = np.zeros(len(regions), bool)
    for b in np.flatnonzero(eligible):
        block_skip = missing[regions[b]] if missing[regions[b]].any() else None
        free = 8 * len(interp.encode(np.ascontiguousarray(target[regions[b]]), base_tol, block_skip))
        use[b] = 8 * analysis.block_bytes[b] + bits_model[b] < free + bits_interp[b]
    if not use.any():
        return None
    payload = predictor.pack(analysis, use)
    return payload, model_base(predictor, payload, values.shape, margins)


def _bits_per_block(regions: list[tuple[slice, ...]], bits: np.ndarray) -> np.ndarray:
    """The sum of a per-point cost map over each block's region."""
    return np.array([float(bits[r].sum()) for r in regions])
