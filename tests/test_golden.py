"""Golden streams decode to their recorded sha256 (bit-identical decoding), kernels match the numpy
reference of release 0.1.0, and two threads encode at once without disturbing each other."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import xdiffc
from xdiffc.coders import interp

GOLDEN = Path(__file__).resolve().parent / "golden"
sys.path.insert(0, str(GOLDEN))
from make_golden import decode_golden, decoded_digest  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reference_interp as ref  # noqa: E402  (the numpy interpolation coder of release 0.1.0)

SUMS = dict(line.split()[::-1] for line in (GOLDEN / "SHA256SUMS").read_text().splitlines())


def test_every_golden_file_is_listed():
    assert set(SUMS) == {p.name for p in GOLDEN.glob("*.xdfc")}
    assert {"interp_rans.xdfc", "interp_zstd.xdfc", "sz3_exc.xdfc", "mask.xdfc", "l2.xdfc", "lossless.xdfc",
            "v010_pointwise.xdfc", "v010_l2.xdfc", "interp_v2.xdfc", "interp_v2_mask.xdfc", "l2_model.xdfc"} <= set(SUMS)
    assert {"wavelet.xdfc", "wavelet_v2.xdfc"} <= set(SUMS)  # the wavelet coder (packet decomposition, corrections)
    assert {"interp_v3.xdfc", "interp_v3_mask.xdfc"} <= set(SUMS)  # compact tables
    assert {"interp_v4.xdfc", "interp_v4_zstd.xdfc", "anomaly_v4.xdfc"} <= set(SUMS)  # float32 reconstructions
    assert "bitmap.xdfc" in SUMS  # context-coded bitmaps
    assert {"ref.xdfc", "pad.xdfc", "sz3_v2.xdfc"} <= set(SUMS)  # the archive climatology; the size rule's padding


@pytest.mark.parametrize("name", sorted(SUMS))
def test_golden_stream_decodes_to_its_hash(name):
    """Written by this release (or by 0.1.0: ``v010_*``); a change that decodes it differently fails.

    ``l2_model`` needs its (numpy-only) model, :class:`make_golden.GoldenModel`; ``ref`` its climatology."""
    blob = (GOLDEN / name).read_bytes()
    assert decoded_digest(decode_golden(name, blob)) == SUMS[name]


def _cases(n: int, seed: int):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        ndim = int(rng.integers(1, 5))
        shape = tuple(int(s) for s in rng.integers(1, 13 if ndim < 3 else 7, size=ndim))
        v = rng.normal(size=shape)
        kind = int(rng.integers(0, 3))
        if kind == 1:
            v = np.cumsum(v, axis=-1)
        elif kind == 2:
            v = v * 1e30
        tol = float(rng.choice([1e-3, 0.1, 0.5, 3.0, 1e-300]))
        skip = rng.random(shape) < 0.3 if rng.random() < 0.4 else None
        if skip is not None:
            v = np.where(skip, np.nan, v)
        yield v, tol, skip


def test_kernels_match_the_numpy_reference():
    """Same symbols, classes, unpredictables and cubic choices as 0.1.0's numpy predictor."""
    for v, tol, skip in _cases(60, 1):
        keep = np.ones(v.shape, bool) if skip is None else ~skip
        bins = ref._level_bins(tol, 1.0, 1.0, ref._levels(v.shape))
        records, kinds = ref._predict_all(v, keep, tol, bins)
        p = interp._Passes(np.ascontiguousarray(v), None if skip is None else keep, tol)
        assert np.array_equal(np.concatenate([r.sym for r in records]), p.sym)
        assert np.array_equal(np.concatenate([r.fine for r in records]), p.fine)
        assert np.array_equal(np.concatenate([r.unpred for r in records]), p.unpred)
        assert [bool(k) for k in kinds] == [bool(k) for k in p.kinds]


def test_decoder_matches_the_reference_and_the_encoder_bit_for_bit():
    """Payloads of either implementation decode to the same bits, equal to the encoder's reconstruction."""
    for v, tol, skip in _cases(60, 2):
        for coder in (interp.CODER_ANS, interp.CODER_ZSTD):
            payload, recon = interp.encode_reconstruct(v, tol, skip, coder=coder)
            ours, theirs = interp.decode(payload, v.shape, skip), ref.decode(payload, v.shape, skip)
            assert np.array_equal(ours.view(np.uint64), theirs.view(np.uint64))
            assert np.array_equal(recon.view(np.uint64), ours.view(np.uint64))
        old = ref.encode(v, tol, skip)
        assert np.array_equal(interp.decode(old, v.shape, skip).view(np.uint64),
                              ref.decode(old, v.shape, skip).view(np.uint64))


def test_version_2_decodes_to_the_encoders_reconstruction_and_to_version_1s():
    """Context rANS payloads (version 2) rebuild the encoder's reconstruction bit for bit, which is the one a
    version 1 payload of the same field rebuilds (same prediction and quantisation)."""
    for v, tol, skip in _cases(60, 3):
        payload, recon = interp.encode_reconstruct(v, tol, skip, coder=interp.CODER_CTX)
        assert v.size == 0 or payload[0] == interp.VERSION_COMPACT
        ours = interp.decode(payload, v.shape, skip)
        assert np.array_equal(recon.view(np.uint64), ours.view(np.uint64))
        old, _ = interp.encode_reconstruct(v, tol, skip, coder=interp.CODER_ZSTD)
        assert np.array_equal(interp.decode(old, v.shape, skip).view(np.uint64), ours.view(np.uint64))


def test_two_threads_encode_at_once():
    """Concurrent compress calls (as Zarr and Dask make them) give the same streams as sequential ones."""
    rng = np.random.default_rng(3)
    fields = [rng.normal(size=(6, 40, 50)).cumsum(-1).astype(np.float32) for _ in range(2)]
    fields[1][2, 3:9, 4:7] = np.nan
    expected = [xdiffc.compress(f, rel_tol=1e-3) for f in fields]
    with ThreadPoolExecutor(2) as pool:
        for _ in range(4):
            got = list(pool.map(lambda f: xdiffc.compress(f, rel_tol=1e-3), fields))
            assert got == expected
            decoded = list(pool.map(xdiffc.decompress, got))
            for f, y in zip(fields, decoded):
                ok = np.isfinite(f)
                assert np.all(np.abs(y[ok].astype(np.float64) - f[ok]) <= 1e-3 * float(np.nanmax(f) - np.nanmin(f)))
                assert np.array_equal(np.isnan(y), np.isnan(f))


def test_size_estimate_kernel_matches_the_numpy_formula():
    """The encoder's compiled size estimate (merges, groupings) agrees with the numpy formula."""
    from xdiffc.entropy.estimate import _pair_bits, model_bits

    rng = np.random.default_rng(5)
    for _ in range(20):
        a = rng.integers(0, 3, size=(4, 50)) * rng.integers(0, 70000, size=(4, 50))
        b = rng.integers(0, 2, size=(4, 50)) * rng.integers(0, 300, size=(4, 50))
        assert np.isclose(_pair_bits(a, b), float(model_bits(a + b).sum()), rtol=1e-9)
