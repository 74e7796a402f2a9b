"""Properties of the interpolation residual coder: error bound, determinism, damage handling, ratio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from xdiffc.bitstream import Stream
from xdiffc.coders import interp
from xdiffc.errors import CorruptStreamError


def _roundtrip(values: np.ndarray, tol: float, skip: np.ndarray | None = None) -> bytes:
    """Encode and decode, assert the bound at every kept point, and return the payload."""
    payload = interp.encode(values, tol, skip)
    out = interp.decode(payload, values.shape, skip)
    assert out.dtype == np.float64 and out.shape == values.shape
    kept = np.ones(values.shape, bool) if skip is None else ~skip
    assert np.all(np.abs(out - values)[kept] <= tol)
    return payload


@st.composite
def _fields(draw: st.DrawFn) -> tuple[np.ndarray, float, np.ndarray | None]:
    """A random field (smooth, rough, constant, huge or tiny), a tolerance and maybe a skip mask."""
    ndim = draw(st.integers(0, 5))
    shape = tuple(draw(st.lists(st.integers(0, 9 if ndim < 3 else 4), min_size=ndim, max_size=ndim)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["smooth", "noise", "constant", "huge", "tiny"]))
    values = rng.normal(size=shape)
    if kind == "smooth" and ndim:
        values = np.cumsum(values, axis=-1)
    elif kind == "constant":
        values = np.full(shape, draw(st.floats(-1e300, 1e300)))
    elif kind == "huge":
        values = values * 1e30
    elif kind == "tiny":
        values = values * 1e-300
    tol = draw(st.sampled_from([1e-320, 1e-300, 1e-12, 1e-3, 0.5, 1e3, 1e40, 1e300, 1.7e308]))
    skip = None
    if draw(st.booleans()):
        skip = rng.random(shape) < draw(st.sampled_from([0.1, 0.5, 1.0]))
        values = np.where(skip, draw(st.sampled_from([np.nan, 1e36, -np.inf])), values)
    return np.ascontiguousarray(values, dtype=np.float64), tol, skip


@settings(max_examples=150, deadline=None)
@given(_fields())
def test_bound_holds_everywhere(case: tuple[np.ndarray, float, np.ndarray | None]) -> None:
    """Every kept point is reconstructed within tol, whatever the field, tolerance and mask."""
    _roundtrip(*case)


@settings(max_examples=30, deadline=None)
@given(_fields())
def test_encoding_is_deterministic(case: tuple[np.ndarray, float, np.ndarray | None]) -> None:
    """Encoding the same input twice gives identical bytes, and decoding twice identical arrays."""
    values, tol, skip = case
    payload = interp.encode(values, tol, skip)
    assert interp.encode(values, tol, skip) == payload
    first, second = (interp.decode(payload, values.shape, skip) for _ in range(2))
    assert np.array_equal(first.view(np.uint64), second.view(np.uint64))


@settings(max_examples=40, deadline=None)
@given(_fields(), st.sampled_from([1, 8, 9]))
def test_a_scratch_input_becomes_the_reconstruction_with_the_same_payload(case, level):
    """``scratch=True`` builds the reconstruction in the input's own memory (the decomposition's anomaly): the
    payload and the reconstruction are those of an ordinary encode, and the decoder's bit for bit. (The origin's
    value must be read before its reconstruction is written over it.)"""
    values, tol, skip = case
    payload, recon = interp.encode_reconstruct(values, tol, skip, level=level)
    scratch = values.copy()
    payload2, recon2 = interp.encode_reconstruct(scratch, tol, skip, level=level, scratch=True,
                                                 finish=lambda r: r)
    assert payload2 == payload
    assert np.array_equal(recon2.view(np.uint64), recon.view(np.uint64))
    decoded = interp.decode(payload, values.shape, skip)
    assert np.array_equal(recon.view(np.uint64), decoded.view(np.uint64))


@settings(max_examples=40, deadline=None)
@given(_fields(), st.sampled_from([1, 8]))
def test_the_passes_without_classes_are_those_with_them_but_the_classes(case, cost_stride):
    """Level 1 skips the activity classes in its pass: the symbols, reconstruction, interpolations and
    unpredictable values are the same, every fine class 0."""
    values, tol, skip = case
    assume(values.size and 0 < tol < 1e300)
    keep = None if skip is None else ~skip
    with_, without = (interp._Passes(values.reshape(values.shape or (1,)), None if keep is None else
                                     keep.reshape(values.shape or (1,)), tol, cost_stride, fine_classes=c)
                      for c in (True, False))
    for name in ("sym", "start", "kinds", "plevel", "unpred"):
        assert np.array_equal(getattr(with_, name), getattr(without, name)), name
    assert np.array_equal(with_.recon.view(np.uint64), without.recon.view(np.uint64))
    assert not without.fine.any()


@pytest.mark.parametrize("shape", [(), (0,), (1,), (1, 1, 1), (0, 5), (3, 2, 4, 2, 3)])
def test_degenerate_shapes(shape: tuple[int, ...]) -> None:
    """0-D, empty, single-point and 5-D arrays round-trip."""
    values = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape) * 0.37
    _roundtrip(values, 0.01)


def test_fully_skipped_field_ignores_junk() -> None:
    """A field that is all skipped decodes without reading its (NaN) values."""
    values = np.full((6, 7), np.nan)
    _roundtrip(values, 0.1, np.ones(values.shape, bool))


def test_extreme_values_are_stored_exactly() -> None:
    """Values whose codes overflow (huge range, tiny tol) still satisfy the bound."""
    rng = np.random.default_rng(1)
    values = rng.normal(size=(17, 9)) * 1e307
    _roundtrip(values, 1e-3)


def test_smooth_field_compresses_well() -> None:
    """A smooth 3-D field at tol = 1e-2 of its range compresses by more than 20x (vs float32)."""
    x = np.linspace(0.0, 6.0, 48)
    field = np.sin(x)[:, None, None] * np.cos(x)[None, :, None] + np.sin(2 * x)[None, None, :]
    payload = _roundtrip(field, 1e-2 * float(np.ptp(field)))
    assert field.size * 4 / len(payload) > 20


def test_masked_points_cost_nothing() -> None:
    """Skipping most of a noisy field shrinks the payload roughly in proportion."""
    rng = np.random.default_rng(2)
    values = rng.normal(size=(40, 50))
    skip = np.zeros(values.shape, bool)
    skip[:, 10:] = True
    assert len(_roundtrip(values, 1e-3, skip)) < 0.3 * len(_roundtrip(values, 1e-3))


def _small_payloads() -> list[tuple[bytes, tuple[int, ...], np.ndarray | None]]:
    """Small payloads covering both entropy coders, unpredictable values and a skip mask."""
    rng = np.random.default_rng(3)
    smooth = np.cumsum(rng.normal(size=(6, 7)), axis=1)
    skip = rng.random(smooth.shape) < 0.3
    wild = smooth.copy()
    wild[2, 3] = 1e300
    noise = rng.normal(size=(48, 48))
    cases = [(smooth, 0.05, None), (smooth, 0.05, skip), (wild, 1e-3, None), (noise, 0.3, None)]
    return [(interp.encode(v, t, s), v.shape, s) for v, t, s in cases]


def test_small_payloads_use_both_coders() -> None:
    """The damage tests below exercise both entropy coders: context rANS (version 3) and the zstd body (version 1)."""
    assert {(p[0], p[1] if p[0] == interp.VERSION else None) for p, _, _ in _small_payloads()} == {
        (interp.VERSION_COMPACT, None), (interp.VERSION, interp.CODER_ZSTD)}


def test_small_chunks_encode_the_zstd_body_only_where_it_may_win(monkeypatch: pytest.MonkeyPatch) -> None:
    """Below the estimate threshold, the zstd body is encoded only where the context rANS estimate comes within
    ``_SMALL_ZSTD_GAIN`` of the fast zstd size; a smooth field (rANS far smaller) skips it, unless it is tiny (the
    tables' cost is hard to estimate there); a random walk (near-white residuals) still weighs both, and the
    smaller payload is kept."""
    calls = []
    real = interp._zstd_body
    monkeypatch.setattr(interp, "_zstd_body", lambda sym, smallest: calls.append(sym.size) or real(sym, smallest))
    rng = np.random.default_rng(11)
    y, x = np.mgrid[0:64, 0:128]
    smooth = np.sin(x / 9.0) * np.cos(y / 7.0) + 0.01 * rng.normal(size=x.shape)
    payload = _roundtrip(smooth, 2e-3)
    assert calls == [] and payload[0] == interp.VERSION_COMPACT
    tiny = np.ascontiguousarray(smooth[:32, :32])  # under _WEIGH_BOTH_BELOW symbols: both, whatever the estimate
    _roundtrip(tiny, 2e-3)
    assert calls == [tiny.size]
    calls.clear()
    walk = np.cumsum(np.cumsum(rng.normal(size=(64, 128)), axis=0), axis=1)  # near-white residuals
    tol = 1e-3 * float(np.ptp(walk))
    payload = _roundtrip(walk, tol)
    assert len(calls) == 1
    assert len(payload) <= len(interp.encode_reconstruct(walk, tol, coder=interp.CODER_CTX)[0])
    assert len(payload) <= len(interp.encode_reconstruct(walk, tol, coder=interp.CODER_ZSTD)[0])


def test_truncated_payload_raises() -> None:
    """Every proper prefix of a payload is rejected with CorruptStreamError."""
    for payload, shape, skip in _small_payloads():
        for n in range(len(payload)):
            with pytest.raises(CorruptStreamError):
                interp.decode(payload[:n], shape, skip)


def test_flipped_bytes_never_crash() -> None:
    """A damaged payload either decodes to something or raises CorruptStreamError, nothing else."""
    rng = np.random.default_rng(4)
    for payload, shape, skip in _small_payloads():
        for pos in range(len(payload)):
            damaged = bytearray(payload)
            damaged[pos] ^= 1 << int(rng.integers(8))
            try:
                interp.decode(bytes(damaged), shape, skip)
            except CorruptStreamError:
                pass


def test_trailing_bytes_and_bad_version_raise() -> None:
    """Extra bytes after the payload, or an unknown version byte, are rejected."""
    payload, shape, skip = _small_payloads()[0]
    with pytest.raises(CorruptStreamError):
        interp.decode(payload + b"\0", shape, skip)
    with pytest.raises(CorruptStreamError):
        interp.decode(bytes([interp.VERSION + 1]) + payload[1:], shape, skip)


def test_a_chunk_past_the_estimates_size_limit_is_coded_by_the_others(monkeypatch):
    """The interpolation coder refuses chunks of 2**31 values or more (its estimates use 4-byte indices); the
    core then codes them without it, within the bound. Here the limit is lowered to a small field's size."""
    import xdiffc
    from xdiffc.bitstream import Stream

    x = np.cumsum(np.random.default_rng(3).normal(size=(6, 20, 30)), axis=-1).astype(np.float32)
    monkeypatch.setattr(interp, "MAX_VALUES", x.size)
    with pytest.raises(ValueError, match="fewer than 2\\*\\*31 values"):
        interp.encode_reconstruct(x, 0.1)
    blob = xdiffc.compress(x, tol=0.1)
    assert "interp" not in Stream.from_bytes(blob).sections
    assert np.max(np.abs(xdiffc.decompress(blob) - x)) <= 0.1


@pytest.mark.parametrize("level", [1, 9])
def test_many_unpredictable_values_grow_their_buffer_and_decode_exactly(level):
    """Spikes beyond the quantiser's range are stored raw; more than the encoder's first buffer holds (64) make it
    grow (:func:`xdiffc.kernels.grown`), and every one must still reach the decoder."""
    rng = np.random.default_rng(7)
    x = np.sin(np.linspace(0, 6, 48 * 40)).reshape(48, 40)
    spikes = rng.choice(x.size, 300, replace=False)
    x.reshape(-1)[spikes] = rng.normal(0, 1e9, spikes.size)
    tol = 1e-3
    payload, recon = interp.encode_reconstruct(x, tol, level=level)
    y = interp.decode(payload, x.shape)
    assert np.array_equal(y, recon)
    assert np.abs(y - x).max() <= tol * (1 + 1e-12)


@given(st.integers(0, 40), st.integers(0, 40), st.sampled_from([np.uint8, np.uint32, np.float64]))
def test_a_grown_buffer_keeps_its_first_values_and_zeros_the_rest(n, keep, dtype):
    from xdiffc.kernels import grown

    keep = min(keep, n)
    buffer = (np.arange(n) + 1).astype(dtype)
    out = grown(buffer, keep, n + 5)
    assert out.dtype == buffer.dtype and out.size == n + 5
    assert np.array_equal(out[:keep], buffer[:keep]) and not out[keep:].any()


@settings(max_examples=80, deadline=None)
@given(_fields(), st.sampled_from([1, 8, 9]), st.booleans())
def test_a_float32_output_is_reconstructed_in_float32_where_the_bound_allows(case, level, scratch):
    """For a float32 output, a bound of at least 64 times the float32 rounding margin gives a version 4 payload:
    the reconstruction is float32 (half the memory, and the output itself), bit for bit the decoder's, and within
    the bound with no rounding slack at every kept point. A tighter bound, or values near float32's range, keep
    the float64 reconstruction (version 1 to 3)."""
    values, tol, skip = case
    with np.errstate(over="ignore"):
        v32 = values.astype(np.float32)
    kept = np.ones(values.shape, bool) if skip is None else ~skip
    assume(np.all(np.isfinite(v32[kept])))
    margin = interp.float32_margin(v32.reshape(v32.shape or (1,)), None if skip is None else kept.reshape(v32.shape or (1,)),
                                   min(tol, 2.0**1000))
    given_values = v32.copy()
    payload, recon = interp.encode_reconstruct(given_values, tol, skip, dtype=np.float32, level=level,
                                               scratch=scratch)
    assert (payload[:1] == bytes([interp.VERSION_F32])) == (margin is not None and v32.size > 0)
    if scratch:  # the float32 values themselves became the reconstruction: the same payload as without
        assert interp.encode_reconstruct(v32, tol, skip, dtype=np.float32, level=level)[0] == payload
    decoded = interp.decode(payload, values.shape, skip, np.float32)
    assert recon.dtype == decoded.dtype == np.float32
    assert np.array_equal(recon.view(np.uint32), decoded.view(np.uint32))
    if payload[:1] == bytes([interp.VERSION_F32]):
        assert interp.decode(payload, values.shape, skip).dtype == np.float32  # no float64 field at all
        assert np.all(np.abs(decoded.astype(np.float64) - v32)[kept] <= tol)


def test_a_float32_reconstruction_wraps_one_payload_only() -> None:
    """Version 4 holds a version 1 or 3 payload, never version 2 or another version 4; and the byte alone is a
    damaged payload."""
    x = np.cumsum(np.random.default_rng(3).normal(size=(6, 20)), axis=-1).astype(np.float32)
    payload, _ = interp.encode_reconstruct(x, 0.05, dtype=np.float32)
    assert payload[0] == interp.VERSION_F32 and payload[1] in (interp.VERSION, interp.VERSION_COMPACT)
    for bad in (bytes([interp.VERSION_F32]) + payload, payload[:1], payload[:2]):
        with pytest.raises(CorruptStreamError):
            interp.decode(bad, x.shape)
    golden = Stream.from_bytes((Path(__file__).parent / "golden" / "interp_v2.xdfc").read_bytes())
    v2 = golden.sections["interp"]
    assert v2[0] == interp.VERSION_CTX and interp.decode(v2, golden.header.shape).shape == golden.header.shape
    with pytest.raises(CorruptStreamError, match="version 1 or 3"):
        interp.decode(bytes([interp.VERSION_F32]) + v2, golden.header.shape)


@pytest.mark.parametrize("level", [1, 8])
def test_the_float32_rounding_stays_within_the_bound_near_the_threshold(level) -> None:
    """Temperatures near 290 K under a bound just above 64 rounding margins: the float32 rounding of each
    reconstruction would carry about a hundred points past the bound if the bins were not narrowed by the
    margin."""
    rng = np.random.default_rng(7)
    x = (290 + np.cumsum(rng.normal(size=(8, 96, 128)), axis=-1) * 0.01).astype(np.float32)
    tol = 133.8 * float(np.spacing(np.float32(296)))  # float32 values: only a point within 0.3 spacings of the
    # bound can round past it (every value from 256 to 512 K has this spacing)
    payload, recon = interp.encode_reconstruct(x, tol, dtype=np.float32, level=level)
    assert payload[0] == interp.VERSION_F32
    assert np.abs(recon.astype(np.float64) - x).max() <= tol


def _previous_slice_reference(sym: np.ndarray, shape: tuple[int, ...], keep: np.ndarray, axis: int) -> np.ndarray:
    """:func:`~xdiffc.predict.interp.prev_symbols` in numpy: each pass's targets as an array in symbol order (the
    interpolation axis first, then the others in C order), its kept points numbered in that order, and each kept
    point given the symbol of the target one step back along ``axis`` (0 where there is none or it is skipped)."""
    from xdiffc.predict import interp as kern

    numbers = np.arange(int(np.prod(shape))).reshape(shape)
    prev, n = np.zeros(sym.size, np.uint16), 0
    for level, d in kern.passes(shape):
        h, s = 1 << (level - 1), 1 << level
        index = tuple(slice(h, None, s) if k == d else slice(None, None, h if k < d else s) for k in range(len(shape)))
        targets = np.moveaxis(numbers[index], d, 0)
        kept = keep.reshape(-1)[targets]
        laid = np.zeros(targets.shape, np.uint16)
        laid[kept] = sym[n : n + kept.sum()]
        moved = 0 if axis == d else axis + (axis < d)
        back = np.zeros_like(laid)
        ahead = [slice(None)] * laid.ndim
        ahead[moved] = slice(1, None)
        behind = list(ahead)
        behind[moved] = slice(None, -1)
        back[tuple(ahead)] = laid[tuple(behind)]
        prev[n : n + kept.sum()] = back[kept]
        n += kept.sum()
    return prev


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(1, 12), min_size=1, max_size=3), seed=st.integers(0, 2**32 - 1),
       masked=st.booleans(), data=st.data())
def test_the_previous_slice_contexts_match_a_numpy_reference(shape, seed, masked, data) -> None:
    """The encoder's previous-slice symbols (version 2 and 3 contexts) along every axis, with and without a mask,
    are those of a plain numpy walk over each pass's targets: the decoder reads the same neighbours."""
    from xdiffc.predict import interp as kern

    rng = np.random.default_rng(seed)
    shape = tuple(shape)
    keep = rng.random(shape) < 0.6 if masked else np.ones(shape, bool)
    keep.reshape(-1)[0] = True  # the origin is its own pass 0 here, as in the encoder's layout
    start = [0, 1]
    numbers = np.arange(keep.size).reshape(shape)
    for level, d in kern.passes(shape):
        h, s = 1 << (level - 1), 1 << level
        index = tuple(slice(h, None, s) if k == d else slice(None, None, h if k < d else s) for k in range(len(shape)))
        start.append(start[-1] + int(keep.reshape(-1)[numbers[index]].sum()))
    sym = rng.integers(0, 1 << 16, start[-1]).astype(np.uint16)
    axis = data.draw(st.integers(0, len(shape) - 1))
    ours = kern.prev_symbols(sym, np.array(start, np.int64), np.array(shape, np.int64),
                             keep.reshape(-1) if masked else np.ones(1, bool), masked, axis)
    assert ours[0] == 0
    np.testing.assert_array_equal(ours[1:], _previous_slice_reference(sym[1:], shape, keep, axis))


@pytest.mark.parametrize("cuts", [[4, 1, 5, 6, 7, 8], [1, 1, 5, 6, 7, 8], [0, 4, 5, 6, 7, 8], [1, 4, 5, 6, 7, 10]])
def test_a_header_whose_class_cuts_are_out_of_order_or_range_is_damaged(cuts) -> None:
    """The context classes' cuts must rise strictly within 1 .. N_FINE - 1: a header that says otherwise (behind a
    valid checksum) is refused as damaged, whatever the tables after it."""
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.normal(size=(16, 64, 64)) * np.exp(rng.normal(size=(16, 64, 64)) * 2), axis=-1)
    payload = bytearray(interp.encode_reconstruct(x, 1.0)[0])
    at = 1 + 8 + x.ndim + 1  # version, tol, axis order, level groups: then the number of cuts and the cuts
    assert payload[0] == interp.VERSION_COMPACT and list(payload[at + 1 : at + 1 + payload[at]]) == [1, 4, 5, 6, 7, 8]
    payload[at + 1 : at + 7] = bytes(cuts)
    with pytest.raises(CorruptStreamError, match="header is invalid"):
        interp.decode(bytes(payload), x.shape)


@given(st.lists(st.integers(1, 70), min_size=1, max_size=5))
def test_the_pass_count_is_the_length_of_the_pass_list(shape) -> None:
    """The decoder counts the passes (their cubic-or-linear bits) without listing them: the same number."""
    assert interp.kern.n_passes(tuple(shape)) == len(interp.kern.passes(tuple(shape)))


@pytest.mark.parametrize("level, coder", [(1, None), (8, None), (9, None), (8, interp.CODER_ZSTD)])
@pytest.mark.parametrize("masked", [False, True])
def test_an_unpredictable_origin_decodes_and_needs_its_value(level, coder, masked) -> None:
    """A constant field far from zero: only the origin (predicted as zero) is unpredictable, every other point
    follows from it. Its value comes back exactly; without it in the payload, the payload is damaged. Both
    decoders: the context rANS's kernel and the zstd body's passes."""
    x = np.full((3, 9, 17), 3.0e30)
    skip = None
    if masked:
        skip = np.zeros(x.shape, bool)
        skip[1, 2:5, 3] = True
    payload, recon = interp.encode_reconstruct(x, 0.5, skip, coder=coder, level=level)
    assert (payload[0] == interp.VERSION) == (coder == interp.CODER_ZSTD)
    assert np.array_equal(interp.decode(payload, x.shape, skip), recon) and recon.reshape(-1)[0] == 3.0e30
    from xdiffc.byteio import Reader, uvarint

    r = Reader(payload, "the test payload")
    interp._Header(r, x.ndim)
    n_unpred_at = r.pos
    assert r.uvarint() == 1  # the origin's value alone
    without = payload[:n_unpred_at] + uvarint(0) + payload[r.pos + 8:]
    with pytest.raises(CorruptStreamError, match="lacks unpredictable values"):
        interp.decode(without, x.shape, skip)


@pytest.mark.parametrize("level", [8, 9])
def test_a_large_zstd_body_takes_the_strongest_level_only_at_level_9(level, monkeypatch) -> None:
    """zstd's level 19 at xdiffc's level 9 (the smallest streams); below it, level 17 (about 0.6x the time). The
    body decodes either way, within the bound."""
    from xdiffc.entropy import zstd

    used = []
    real = zstd.deflate
    monkeypatch.setattr(zstd, "deflate", lambda raw, lv: used.append((len(raw), lv)) or real(raw, lv))
    x = np.random.default_rng(3).normal(size=(4, 96, 200)).cumsum(-1)
    payload, recon = interp.encode_reconstruct(x, 0.05, coder=interp.CODER_ZSTD, level=level)
    assert [lv for n, lv in used if n > zstd.SMALL_BYTES] == [zstd.LEVEL if level == 9 else zstd.FASTER_LEVEL]
    assert np.array_equal(interp.decode(payload, x.shape), recon) and np.abs(recon - x).max() <= 0.05
