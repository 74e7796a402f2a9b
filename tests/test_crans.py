"""The compiled rANS of the interp payload (versions 2 and 3): compact tables read back as written, exact round
trips, and damage always refused."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xdiffc.coders import interp
from xdiffc.entropy import crans
from xdiffc.byteio import Reader
from xdiffc.entropy import zstd
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


@given(st.integers(1, 1 << 45))
def test_a_count_travels_exactly_up_to_four_then_within_a_quarter_octave(c):
    back = int(crans.count_of_code(crans.code_of_count(c)))
    if c <= crans.EXACT_COUNTS:
        assert back == c
    elif c <= 1 << 40:
        assert 2 ** -0.26 <= back / c <= 2 ** 0.26
    else:  # clamped at the largest code
        assert back == 1 << 40
    assert crans.code_of_count(c) <= crans.MAX_CODE


@st.composite
def count_tables(draw):
    """[model, k] counts (some models unused, some counts huge) and the increasing symbols the columns stand for."""
    n_models, width = draw(st.integers(1, 12)), draw(st.integers(1, 60))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([3, 1000, 1 << 36]))
    counts = (rng.random((n_models, width)) < draw(st.sampled_from([0.05, 0.5, 1.0]))) * rng.integers(1, scale, (
        n_models, width))
    sym_of = np.sort(rng.choice(65536, width, replace=False))
    return counts.astype(np.int64), sym_of.astype(np.int64)


@given(count_tables(), st.sampled_from([7, 12, 14, 16]))
def test_compact_tables_read_back_as_the_encoder_codes_with_them(table, prec):
    """The decoder's parsed tables hold exactly the used symbols and the frequencies the encoder coded with,
    each model summing to 2**prec; nothing is left unread."""
    counts, sym_of = table
    blob, freq = crans.compact_tables(counts, sym_of, prec)
    assert np.array_equal(freq > 0, counts > 0)
    assert np.all((freq.sum(axis=1) == 1 << prec) | (counts.sum(axis=1) == 0))
    r = Reader(blob, "test")
    t = crans.read_tables(r, counts.shape[0], prec, 65536, int(counts.sum()), "test", compact=True)
    r.done()
    for m in range(counts.shape[0]):
        used = np.flatnonzero(counts[m])
        a = t.start[m]
        assert t.nnz[m] == used.size
        assert t.syms[a : a + used.size].tolist() == sym_of[used].tolist()
        assert t.freqs[a : a + used.size].tolist() == freq[m, used].tolist()


def _raw_table(heads, gaps, codes) -> bytes:
    from xdiffc.byteio import uvarint

    raw = b"".join(uvarint(v) for v in [*heads, *gaps]) + bytes(codes)
    return zstd.frame(raw, 3)


@pytest.mark.parametrize("heads, gaps, codes, why", [
    ([2], [5, 1], [0, 3], None),  # valid: symbols 5 and 6, counts 1 and 4
    ([3], [5, 1], [0, 3], "a model with more symbols than given"),
    ([2], [5, 0], [0, 3], "a repeated symbol"),
    ([2], [70000, 1], [0, 3], "a symbol past the alphabet"),
    ([2], [5, 1], [0, crans.MAX_CODE + 1], "a count code past the largest"),
    ([2], [5, 1], [0, 3, 0], "a trailing byte"),
    ([9], [1] * 9, [0] * 9, "more used symbols than symbols coded"),
])
def test_a_hostile_compact_table_is_refused(heads, gaps, codes, why):
    r = Reader(_raw_table(heads, gaps, codes), "test")
    if why is None:
        t = crans.read_tables(r, 1, 12, 65536, 5, "test", compact=True)
        assert t.syms.tolist() == [5, 6] and t.freqs.tolist() == [819, 3277]
        return
    with pytest.raises(CorruptStreamError, match="frequency table"):
        crans.read_tables(r, 1, 12, 65536, 5, "test", compact=True)


def test_version_3_round_trips_every_slice_axis_and_radius():
    x = _field()
    for tol in (1e-3, 0.05, 1.0):
        payload, recon = interp.encode_reconstruct(x, tol, coder=interp.CODER_CTX)
        assert payload[0] == interp.VERSION_COMPACT
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


@st.composite
def raw_tables(draw):
    """A compact table as a damaged stream may hold one: model counts (some past what the precision has slots for),
    symbol gaps and count codes, mostly well formed, sometimes off by one somewhere; and the precision."""
    prec = draw(st.sampled_from([1, 2, 3, 4, 7, 12, 16]))
    heads = draw(st.lists(st.integers(0, 12), min_size=1, max_size=4))
    gaps = [draw(st.integers(0 if i == 0 else 1, 9)) for k in heads for i in range(k)]
    codes = draw(st.lists(st.integers(0, crans.MAX_CODE), min_size=len(gaps), max_size=len(gaps)))
    edit = draw(st.sampled_from([None, None, "head", "gap", "code", "cut", "extra"]))
    if edit == "head":
        heads[draw(st.integers(0, len(heads) - 1))] += draw(st.sampled_from([-1, 1]))
        heads = [max(h, 0) for h in heads]
    elif edit == "gap" and gaps:
        gaps[draw(st.integers(0, len(gaps) - 1))] = draw(st.sampled_from([0, 65535, 70000]))
    elif edit == "code" and codes:
        codes[draw(st.integers(0, len(codes) - 1))] = draw(st.integers(crans.MAX_CODE + 1, 255))
    elif edit == "cut" and codes:
        codes = codes[:-1]
    elif edit == "extra":
        codes = codes + [0]
    return heads, gaps, codes, prec


@settings(max_examples=300, deadline=None)
@given(raw_tables())
def test_a_compact_table_is_refused_or_every_model_sums_to_the_precision(table):
    """Whatever the bytes, a table the decoder accepts has increasing symbols in the alphabet and frequencies of
    at least 1 summing to exactly 2**prec per used model (else a symbol could take no slot, or the coder wrap):
    a model with more symbols than 2**prec slots is refused."""
    heads, gaps, codes, prec = table
    r = Reader(_raw_table(heads, gaps, codes), "test")
    try:
        t = crans.read_tables(r, len(heads), prec, 65536, 100, "test", compact=True)
    except CorruptStreamError:
        assert (any(h > 1 << prec for h in heads) or sum(heads) != len(codes) or max(codes, default=0) > crans.MAX_CODE
                or any(g == 0 for g, i in zip(gaps, _positions(heads)) if i) or _symbols_past(heads, gaps, 65536))
        return
    assert t.nnz.tolist() == heads
    for m, k in enumerate(heads):
        a = t.start[m]
        syms, freqs = t.syms[a : a + k], t.freqs[a : a + k]
        assert np.all(np.diff(syms) > 0) and (k == 0 or 0 <= syms.min() and syms.max() < 65536)
        if k:
            assert freqs.min() >= 1 and int(freqs.sum()) == 1 << prec
            assert t.cums[a : a + k].tolist() == np.concatenate([[0], np.cumsum(freqs)[:-1]]).tolist()


def _positions(heads):
    """The index of each gap within its model."""
    return [i for k in heads for i in range(k)]


def _symbols_past(heads, gaps, n_bins):
    at = 0
    for k in heads:
        if sum(gaps[at : at + k]) >= n_bins:
            return True
        at += k
    return False


def test_a_compact_table_frame_declaring_more_than_a_table_can_hold_is_refused_before_it_is_inflated():
    """A table holds at most 3 bytes per model and 4 per coded symbol: a frame declaring 64 MiB (of a table of one
    model and five symbols) is refused from its header, without allocating its content."""
    import tracemalloc

    bomb = zstd.frame(bytes(64 << 20), 3)
    tracemalloc.start()
    try:
        with pytest.raises(CorruptStreamError, match="declares"):
            crans.read_tables(Reader(bomb, "test"), 1, 12, 65536, 5, "test", compact=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
