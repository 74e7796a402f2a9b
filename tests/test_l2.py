"""The per-block L2 mode (xdiffc.l2): every block meets its bound, the stream round-trips, corruption is caught."""

import math
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xdiffc.byteio import Reader
from xdiffc import l2
from xdiffc.errors import CorruptStreamError

EPS = (1e-2, 1e-3, 1e-4)
SHAPES = [(1,), (7,), (130,), (8, 8), (9, 13), (5, 3), (17, 40), (3, 16, 16), (2, 11, 21), (2, 2, 9, 10)]
KINDS = ("smooth", "noise", "constant", "spiky")


def make_field(kind: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Random smooth field, white noise, a constant, or a smooth field with a few huge spikes."""
    rng = np.random.default_rng(seed)
    if kind == "constant":
        return np.full(shape, rng.normal() * 10.0 ** rng.integers(-3, 4))
    if kind == "noise":
        return rng.normal(size=shape) * 10.0 ** rng.integers(-3, 4)
    x = np.cumsum(np.cumsum(rng.normal(size=shape), axis=-1), axis=0) + 250.0
    if kind == "spiky":
        flat = x.reshape(-1)
        hit = rng.choice(flat.size, size=max(1, flat.size // 50), replace=False)
        flat[hit] += rng.normal(size=hit.size) * 1e4
    return x


def block_norms(x: np.ndarray, y: np.ndarray, missing: np.ndarray, patch=(8, 8)):
    """(error norm, valid count) of every block, computed independently of xdiffc.l2."""
    x, y, ok = (np.asarray(a) for a in (x, y.astype(np.float64), ~missing))
    if x.ndim == 1:
        d = patch[0] * patch[1]
        cuts = [(slice(i, i + d),) for i in range(0, x.size, d)]
        views = [(x, y, ok)]
    else:
        lead = x.reshape(-1, *x.shape[-2:]), y.reshape(-1, *x.shape[-2:]), ok.reshape(-1, *x.shape[-2:])
        views = list(zip(*lead))
        cuts = [(slice(i, i + patch[0]), slice(j, j + patch[1]))
                for i in range(0, x.shape[-2], patch[0]) for j in range(0, x.shape[-1], patch[1])]
    for xs, ys, oks in views:
        for c in cuts:
            m = oks[c]
            yield float(np.linalg.norm((xs[c] - ys[c])[m])), int(m.sum())


def assert_blocks_bounded(x, y, missing, eps, patch=(8, 8)):
    valid = x[~missing]
    scale = float(valid.max() - valid.min()) if valid.size else 0.0
    for norm, n in block_norms(x, y, missing, patch):
        assert norm <= eps * math.sqrt(n) * scale, (norm, eps * math.sqrt(n) * scale)


def roundtrip(x, missing, eps, dtype, **kw):
    sections = l2.encode(x, missing, eps, dtype=dtype, **kw)
    y = l2.decode(sections, x.shape, missing, dtype, model=kw.get("model"))
    assert y.shape == x.shape and y.dtype == dtype
    return sections, y


@settings(max_examples=100)
@given(kind=st.sampled_from(KINDS), shape=st.sampled_from(SHAPES), eps=st.sampled_from(EPS),
       dtype=st.sampled_from([np.float32, np.float64]), holes=st.sampled_from([0.0, 0.1, 0.6]),
       base_c=st.sampled_from([l2.BASE_C, 3.0]), seed=st.integers(0, 2**32 - 1))
def test_every_block_meets_its_bound(kind, shape, eps, dtype, holes, base_c, seed):
    """Also with a loose base (base_c=3), under which most blocks need the PCA correction."""
    x = make_field(kind, shape, seed).astype(dtype).astype(np.float64)  # representable in the output dtype
    missing = np.random.default_rng(seed + 1).random(shape) < holes
    x_in = np.where(missing, np.nan, x)  # missing points may hold anything: NaN, fill values
    _, y = roundtrip(x_in, missing, eps, np.dtype(dtype), base_c=base_c)
    assert_blocks_bounded(x, y, missing, eps)


@pytest.mark.parametrize("eps", EPS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_global_nrmse_and_corrections_on_a_realistic_field(eps, dtype):
    x = make_field("smooth", (6, 70, 90), 3).astype(dtype).astype(np.float64)
    missing = np.zeros(x.shape, bool)
    missing[:, 10:30, 50:75] = True  # a land mask, cutting patches at its edges
    x_in = np.where(missing, 1e20, x)
    sections, y = roundtrip(x_in, missing, eps, np.dtype(dtype), base_c=2.5)  # a loose base: many corrections
    assert l2.summary(sections["pca"])["corrected"] > 0, "no patch was corrected"
    assert_blocks_bounded(x, y, missing, eps)
    v = ~missing
    nrmse = np.sqrt(np.mean((y[v].astype(np.float64) - x[v]) ** 2)) / np.ptp(x[v])
    assert nrmse <= eps


def test_constant_field_comes_back_exactly():
    x = np.full((3, 20, 20), 287.25)
    _, y = roundtrip(x, np.zeros(x.shape, bool), 1e-3, np.dtype(np.float32))
    assert np.array_equal(y, x.astype(np.float32))


def test_all_missing_and_patch_size():
    x = np.full((4, 9), np.nan)
    _, y = roundtrip(x, np.ones(x.shape, bool), 1e-2, np.dtype(np.float64))
    assert y.shape == x.shape
    z = make_field("smooth", (2, 33, 47), 5)
    _, y = roundtrip(z, np.zeros(z.shape, bool), 1e-3, np.dtype(np.float64), patch=(4, 16), base_c=2.5)
    assert_blocks_bounded(z, y, np.zeros(z.shape, bool), 1e-3, patch=(4, 16))


@settings(max_examples=30)
@given(eps=st.sampled_from(EPS), dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**32 - 1),
       noise=st.sampled_from([0.0, 0.1, 3.0]), deviation=st.sampled_from([0.0, 0.2]))
def test_a_model_base_holds_every_block_on_any_device(eps, dtype, seed, noise, deviation):
    """x_hat replaces the interpolation base where used (which the interpolation coder skips); a decoder whose
    x_hat is off by up to the margin (another device) still meets every block's bound."""
    rng = np.random.default_rng(seed)
    x = make_field("smooth", (3, 24, 40), seed).astype(dtype).astype(np.float64)
    missing = rng.random(x.shape) < 0.05
    scale = float(np.ptp(x[~missing]))
    x_hat = x + rng.normal(size=x.shape) * noise * eps * scale
    used = np.zeros(x.shape, bool)
    used[:, :16, 8:32] = True
    margin = np.where(used, deviation * eps * scale, 0.0)
    sections = l2.encode(np.where(missing, np.nan, x), missing, eps, dtype=np.dtype(dtype),
                         model=l2.ModelBase(x_hat, used, margin))
    other = x_hat + np.where(used, margin * rng.choice([-1.0, 1.0], size=x.shape), 0.0)
    y = l2.decode(sections, x.shape, missing, np.dtype(dtype), model=l2.ModelBase(other, used))
    assert_blocks_bounded(x, y, missing, eps)
    if noise == 0.0 and deviation == 0.0:  # an exact model base needs no correction where it is used
        same = l2.decode(sections, x.shape, missing, np.dtype(dtype), model=l2.ModelBase(x_hat, used))
        assert np.array_equal(same[used & ~missing], x[used & ~missing].astype(dtype))
    with pytest.raises(ValueError):
        l2.decode(sections, x.shape, missing, np.dtype(dtype), model=l2.ModelBase(x_hat[:1], used[:1]))


def test_basis_and_coefficients_round_trip_bit_exactly(monkeypatch):
    fits = []
    real_fit = l2._fit
    monkeypatch.setattr(l2, "_fit", lambda *a: fits.append(real_fit(*a)) or fits[-1])
    x = make_field("smooth", (4, 48, 64), 11)
    missing = np.zeros(x.shape, bool)
    sections = l2.encode(x, missing, 1e-3, base_c=2.5)
    (fit,) = fits
    grid = l2._Grid.of(x.shape, (8, 8))
    r = Reader(sections["pca"], "pca")
    r.u8(), r.uvarint(64), r.uvarint(64), r.take(32), r.uvarint(1 << 40)
    n_corr, _ = r.uvarint(1 << 40), r.uvarint(1 << 40)
    comps, rows, counts, idx, q = l2._read_fit(r, grid, n_corr)
    bits = l2._basis_bits(grid.d)
    assert np.array_equal(comps, l2._components(fit.basis, bits))
    assert np.array_equal(rows, np.sort(fit.rows)) and np.array_equal(counts, fit.counts)
    used = np.arange(idx.shape[1]) < counts[:, None]
    assert np.array_equal(idx[used], fit.idx[used]) and np.array_equal(q[used], fit.q[used])
    y1 = l2.decode(sections, x.shape, missing, np.float64)
    y2 = l2.decode({k: bytes(v) for k, v in sections.items()}, x.shape, missing, np.float64)
    assert np.array_equal(y1.view(np.uint64), y2.view(np.uint64))


def test_corrupt_guarantee_section_raises():
    x = make_field("smooth", (2, 40, 48), 13)
    missing = np.zeros(x.shape, bool)
    sections = l2.encode(x, missing, 1e-3, base_c=2.5)
    pca = sections["pca"]
    rng = np.random.default_rng(0)
    damaged = [pca[:n] for n in range(0, len(pca), max(1, len(pca) // 40))]
    for bad in damaged:
        with pytest.raises(CorruptStreamError):
            l2.decode({**sections, "pca": bad}, x.shape, missing, np.float64)
    # Since version 2 the section has no CRC of its own (the container's covers it): a flipped
    # bit is caught or decodes to an array of the field's shape, never anything else.
    for k in rng.choice(len(pca), size=40):
        bad = bytes(b ^ (1 << int(rng.integers(8))) if i == k else b for i, b in enumerate(pca))
        try:
            y = l2.decode({**sections, "pca": bad}, x.shape, missing, np.float64)
        except CorruptStreamError:
            continue
        assert y.shape == x.shape and y.dtype == np.float64
    with pytest.raises(CorruptStreamError):
        l2.decode({"pca": pca}, x.shape, missing, np.float64)
    with pytest.raises(CorruptStreamError):  # a different field shape: the header does not match
        l2.decode(sections, (2, 40, 56), np.zeros((2, 40, 56), bool), np.float64)


def test_malformed_section_raises():
    """A body that lies (as a buggy writer would produce: the container's CRC would match) is caught."""
    x = make_field("smooth", (2, 24, 24), 17)
    missing = np.zeros(x.shape, bool)
    sections = l2.encode(x, missing, 1e-2, base_c=2.5)
    body = sections["pca"]

    for bad in (b"\x07" + body[1:], body + b"\x00", body[:-3]):
        with pytest.raises(CorruptStreamError):
            l2.decode({**sections, "pca": bad}, x.shape, missing, np.float64)


def test_version_1_sections_still_decode():
    """Release 0.1.0 wrote version 1: the same body followed by its own CRC32 over l2base + pca."""
    x = make_field("smooth", (2, 24, 24), 17)
    missing = np.zeros(x.shape, bool)
    sections = l2.encode(x, missing, 1e-2, base_c=2.5)
    body = b"\x01" + sections["pca"][1:]
    v1 = {**sections, "pca": body + struct.pack("<I", zlib.crc32(sections["l2base"] + body))}
    want = l2.decode(sections, x.shape, missing, np.float64)
    assert np.array_equal(l2.decode(v1, x.shape, missing, np.float64).view(np.uint64), want.view(np.uint64))
    with pytest.raises(CorruptStreamError):
        l2.decode({**v1, "pca": v1["pca"][:-1] + bytes([v1["pca"][-1] ^ 1])}, x.shape, missing, np.float64)


def test_rejects_bad_arguments():
    x = np.zeros((4, 4))
    with pytest.raises(ValueError):
        l2.encode(x, np.zeros(x.shape, bool), 0.0)
    with pytest.raises(ValueError):
        l2.encode(x, np.zeros(x.shape, bool), 1e-3, patch=(0, 8))
    with pytest.raises(ValueError):
        l2.encode(np.zeros(()), np.zeros((), bool), 1e-3)


def test_correction_kernel_matches_numpy():
    """The compiled patch correction does the 0.1.0 numpy arithmetic, bit for bit."""
    rng = np.random.default_rng(4)
    hat = rng.normal(size=(50, 64))
    comps = np.rint(rng.normal(size=(64, 64)) * 16) / 16
    counts = rng.integers(1, 9, size=50)
    idx = np.sort(rng.choice(64, size=(50, 8)), axis=1)
    q = rng.integers(-300, 300, size=(50, 8))
    want = hat.copy()
    for j in range(idx.shape[1]):
        rows = np.flatnonzero(counts > j)
        want[rows] = want[rows] + (q[rows, j] * 0.37)[:, None] * comps[idx[rows, j]]
    got = l2._correct(hat, counts, idx, q, comps, 0.37)
    assert np.array_equal(got.view(np.uint64), want.view(np.uint64))
