"""Freed memory is given back between the wavelet's steps of a large chunk only (xdiffc.heap)."""

from __future__ import annotations

import numpy as np

from xdiffc import heap
from xdiffc.coders import wavelet


def test_only_a_large_chunk_trims(monkeypatch):
    calls = []
    monkeypatch.setattr(heap, "_malloc_trim", lambda: lambda pad: calls.append(pad) or 1)
    assert heap.release_freed(heap.TRIM_FROM_BYTES - 1) is False and calls == []
    assert heap.release_freed(heap.TRIM_FROM_BYTES) is True and calls == [0]


def test_without_malloc_trim_nothing_happens(monkeypatch):
    monkeypatch.setattr(heap, "_malloc_trim", lambda: None)
    assert heap.release_freed(1 << 40) is False


def test_each_wavelet_step_after_the_probe_trims_for_its_float64_field(monkeypatch):
    """The steps other than the probe's transform afresh: each first gives back what the last one freed (the
    wavelet's coefficients are float64, 8 bytes a value, whatever the input's dtype); so does the decoding of the
    winner's field where the winner was not the last step. Both cases run."""
    asked, decoded = [], []
    monkeypatch.setattr(wavelet, "release_freed", lambda n: asked.append((n, len(decoded))))
    real_decode = wavelet.decode
    monkeypatch.setattr(wavelet, "decode", lambda *a, **k: decoded.append(1) or real_decode(*a, **k))
    x = np.random.default_rng(0).normal(size=(6, 40, 48)).cumsum(-1).astype(np.float32)
    n_decoded = []
    for factors in (wavelet.STEP_FACTORS, (wavelet.PROBE_FACTOR,)):
        asked.clear(), decoded.clear()
        wavelet.encode_reconstruct(x, 0.05, factors=factors)
        assert asked == [(8 * x.size, 0)] * (len(factors) - 1 + len(decoded))
        n_decoded.append(len(decoded))
    assert n_decoded == [1, 0]  # the default steps end on a loser; a single step is its own winner
