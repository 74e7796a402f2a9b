"""Predictor stage: the multilevel interpolation predictor as numba kernels (:mod:`.interp`).

A predictor visits the field in a fixed order and, for each point, predicts it from points already
reconstructed; the quantiser (:mod:`xdiffc.quantize`) turns the residual into a symbol, and the
entropy stage (:mod:`xdiffc.entropy`) codes the symbols. Encoder and decoder kernels run the same
float64 operations, so the decoder rebuilds exactly what the encoder checked.
"""
