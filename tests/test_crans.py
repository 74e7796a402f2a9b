"""The compiled rANS of interp payload version 2: exact round trips and damage always refused."""

from __future__ import annotations

import numpy as np
import pytest

from xdiffc.coders import interp
from xdiffc.entropy import crans
from xdiffc.errors import CorruptStreamError


def _field(seed=0, shape=(9, 20, 24)):
    rng = np.random.default_rng(seed)
    base = np.sin(np.linspace(0, 9, shape[1] * shape[2])).reshape(shape[1:]) * 5
    return (base[None] + rng.normal(size=(shape[0], 1, 1)) + rng.normal(size=shape) * 0.05).astype(np.float32)


def test_normalised_tables_sum_to_the_precision_and_keep_every_symbol():
    rng = np.random.default_rng(1)
    counts = rng.integers(0, 1000, size=(40, 300)) * (rng.random((40, 300)) < 0.3)
    counts[0] = 0
    counts[1, :] = 1  # more used symbols than a small table has slots: needs prec >= 9
    for prec in (9, 12, 14, 16):
        freq = crans.normalize(counts, prec)
        assert np.array_equal(freq > 0, counts > 0)
        sums = freq.sum(axis=1)
        assert np.all((sums == 1 << prec) | (counts.sum(axis=1) == 0))


def test_version_2_round_trips_every_slice_axis_and_radius():
    x = _field()
    for tol in (1e-3, 0.05, 1.0):
        payload, recon = interp.encode_reconstruct(x, tol, coder=interp.CODER_CTX)
        assert payload[0] == interp.VERSION_CTX
        assert np.array_equal(interp.decode(payload, x.shape).view(np.uint64), recon.view(np.uint64))
        assert np.max(np.abs(recon - x)) <= tol


def test_a_payload_cut_short_or_lengthened_is_refused():
    x = _field(2)
    payload, _ = interp.encode_reconstruct(x, 0.01, coder=interp.CODER_CTX)
    for bad in (payload[:-1], payload[:-4], payload + b"\0", payload[:-8] + payload[-4:] + payload[-8:-4]):
        with pytest.raises(CorruptStreamError):
            interp.decode(bad, x.shape)


def test_a_damaged_word_never_decodes_past_the_shape():
    """Any flipped bit in the words either decodes some field of the right shape or raises CorruptStreamError."""
    x = _field(3)
    payload, _ = interp.encode_reconstruct(x, 0.01, coder=interp.CODER_CTX)
    rng = np.random.default_rng(4)
    raised = 0
    for _ in range(60):
        b = bytearray(payload)
        k = int(rng.integers(len(b) - min(len(b) - 60, 400), len(b)))
        b[k] ^= 1 << int(rng.integers(0, 8))
        try:
            y = interp.decode(bytes(b), x.shape)
        except CorruptStreamError:
            raised += 1
        else:
            assert y.shape == x.shape
    assert raised > 30
