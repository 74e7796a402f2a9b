"""Damaged streams raise CorruptStreamError or decode to an array of the declared shape and dtype.

The fuzz tests are structure-aware: they parse a stream, damage one section (or the header),
re-serialise it with a valid CRC, so every section decoder faces
the damage. Inside zstd-framed sections they also damage the decompressed content. Nothing but
CorruptStreamError may escape; no decode may take long or allocate much more than the original
array needs. The outcomes are tallied per section and printed at the end of the module (-s).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import math
import struct
import time
import tracemalloc
import zlib

import numpy as np
import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

import xdiffc
from xdiffc import guarantee
from xdiffc.bitstream import FORMAT_VERSION, MAGIC, MAX_RATIO, Header, Stream
from xdiffc.byteio import Reader, deflate, inflate, uvarint
from tests.helpers import assert_bounded

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
#: Decoding a damaged stream may allocate at most this much beyond a few copies of the original.
ALLOC_SLACK = 4 << 20
#: A hang detector, not a speed check (speed is measured in benchmarks/): a damaged stream that makes the decoder
#: loop over a shape it never allocates would run for minutes. Healthy decodes here take milliseconds; 10 s was
#: once exceeded (11.9 s) by a model-header case on a loaded 2-core machine, so the limit leaves room for load.
MAX_SECONDS = 60.0
TALLY: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)


# ----------------------------------------------------------------------------- the streams under test


def _field(shape, seed, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return rng.normal(size=shape).cumsum(axis=-1).astype(dtype)


def _sz3_with_exceptions():
    """An SZ3 stream with an ``exc`` section (exact values at every 97th point), and its array."""
    t = np.linspace(0, 1, 6 * 16 * 16).reshape(6, 16, 16)
    x = np.sin(t * 20) * 100 + np.random.default_rng(5).normal(size=t.shape) * 0.01
    from xdiffc.coders import sz3

    sections = {"sz3": sz3.encode(x, 1e-3), "exc": guarantee.encode_exceptions(x, np.arange(0, x.size, 97))}
    return x, Stream(Header(dtype="<f8", shape=x.shape, order="C", mode="pointwise", tol=1e-3), sections).to_bytes()


def _interp_ans():
    t = np.linspace(0, 1, 2 * 64 * 64).reshape(2, 64, 64)
    x = (np.sin(t * 30) + np.random.default_rng(6).normal(size=t.shape) * 0.3).astype(np.float32)
    return x, xdiffc.compress(x, tol=0.1)


def _interp_ans_f64():
    """The same field in float64: a version 3 payload (a float32 reconstruction is for float32 output only)."""
    x, _ = _interp_ans()
    x = x.astype(np.float64)
    return x, xdiffc.compress(x, tol=0.1)


def _interp_ans_v1():
    """The same field as a version 1 rANS payload (the default encoder writes version 2 or zstd)."""
    from xdiffc.coders import interp

    x, _ = _interp_ans()
    payload, recon = interp.encode_reconstruct(x, 0.1, coder=interp.CODER_ANS)
    sections = {"interp": payload}
    bad = guarantee.violations(x, recon.astype(np.float32), 0.1, None)
    if bad.size:
        sections["exc"] = guarantee.encode_exceptions(x, bad)
    return x, Stream(Header(dtype="<f4", shape=x.shape, order="C", mode="pointwise", tol=0.1), sections).to_bytes()


def _golden(name):
    """A golden stream of an older payload version (explicit frequency tables), and what it decodes to."""
    from pathlib import Path

    blob = (Path(__file__).resolve().parent / "golden" / name).read_bytes()
    return xdiffc.decompress(blob), blob


def _masked():
    x = _field((3, 12, 16), 7)
    x[0, 0, :4] = [np.nan, 1e20, -np.inf, np.nan]
    x[:, 4:9, 2:9] = 1e20  # land
    return x, xdiffc.compress(x, tol=0.05, fill_values=[1e20])


def _anomaly():
    """A climatology plus small anomalies, with a column missing at every step: the decomposition's stream."""
    rng = np.random.default_rng(10)
    x = (rng.normal(size=(1, 12, 16)).cumsum(axis=-1) * 10 + rng.normal(size=(12, 12, 16)) * 0.01).astype(np.float32)
    x[:, 0, 0] = np.nan
    x[3, 4, 5] = 1e20
    return x, xdiffc.compress(x, tol=0.01, fill_values=[1e20])


def _wavelet():
    """A smooth series with a column missing at every step and a fill value: the wavelet coder's stream."""
    from tests.test_wavelet import smooth_series

    x = smooth_series((16, 32, 48), seed=5)
    x[:, 0, :3] = np.nan
    x[2, 5, 6] = 1e20
    return x, xdiffc.compress(x, rel_tol=1e-2, fill_values=[1e20])


def _reference():
    """Annual-like steps around a fixed pattern, coded against an archive climatology: the 'ref' section."""
    from xdiffc.archive_climatology import Climatology

    rng = np.random.default_rng(11)
    pattern = rng.normal(size=(1, 12, 16)).cumsum(axis=-1) * 10
    x = (pattern + rng.normal(size=(6, 12, 16)) * 0.01).astype(np.float32)
    clim = Climatology.build(pattern, 0.01)
    blob = xdiffc.compress(x, tol=0.01, reference=clim)
    return x, blob, clim


def _l2():
    x = _field((2, 20, 20), 8, np.float64)
    x[0, 0, 0] = np.nan
    return x, xdiffc.compress(x, mode="l2", nrmse=1e-3)


def _model(predictor):
    from tests.test_model_guarantee import model_stream

    x = _field((8, 16, 16), 9)
    return x, model_stream(x, 0.05, predictor)


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    import torch

    from tests.test_model import TINY
    from xdiffc.neural import load_model, modelfile
    from xdiffc.neural.network import GCDTCNet

    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("models") / "untrained.pt"
    modelfile.save(path, GCDTCNet(TINY), max_abs_deviation=1e-5)
    return load_model(str(path))


@pytest.fixture(scope="module")
def streams(predictor):
    """name -> (original array, stream, decompress keyword arguments)."""
    cases = {
        "interp-zstd": lambda: (lambda x: (x, xdiffc.compress(x, tol=0.05)))(_field((3, 12, 16), 4)),
        "interp-ans": _interp_ans,
        "interp-ans-f64": _interp_ans_f64,
        "interp-ans-v1": _interp_ans_v1,
        "interp-ctx-v2": lambda: _golden("interp_v2.xdfc"),
        "wavelet-v1": lambda: _golden("wavelet.xdfc"),
        "mask-zstd": lambda: _golden("mask.xdfc"),
        "sz3-exc": _sz3_with_exceptions,
        "masked": _masked,
        "anomaly": _anomaly,
        "wavelet": _wavelet,
        "lossless": lambda: (lambda x: (x, xdiffc.compress(x, tol=0)))(_field((3, 12, 16), 3)),
        "l2": _l2,
        "model": lambda: _model(predictor),
    }
    out = {name: (*make(), {"model": predictor} if name == "model" else {}) for name, make in cases.items()}
    x, blob, clim = _reference()
    return {**out, "reference": (x, blob, {"reference": clim})}


#: (case, part) pairs the fuzz tests damage, with the sections each case must really hold.
TARGETS = [
    ("interp-zstd", "header"), ("interp-zstd", "interp"), ("interp-ans", "interp"), ("interp-ans-f64", "interp"),
    ("interp-ans-v1", "interp"),
    ("interp-ctx-v2", "interp"), ("wavelet-v1", "wavelet"), ("mask-zstd", "mask"),
    ("sz3-exc", "sz3"), ("sz3-exc", "exc"), ("sz3-exc", "header"),
    ("masked", "mask"), ("masked", "special"), ("masked", "interp"),
    ("anomaly", "anomaly"), ("anomaly", "header"),
    ("reference", "ref"), ("reference", "header"),
    ("wavelet", "wavelet"), ("wavelet", "header"),
    ("lossless", "raw"), ("lossless", "header"),
    ("l2", "l2base"), ("l2", "pca"), ("l2", "header"),
    ("model", "model"), ("model", "header"),
]


def test_the_streams_hold_what_the_fuzz_tests_damage(streams):
    for case, part in TARGETS:
        if part != "header":
            assert part in Stream.from_bytes(streams[case][1]).sections, (case, part)
    assert Stream.from_bytes(streams["interp-ans"][1]).sections["interp"][:2] == b"\x04\x03"  # v4 around v3
    assert Stream.from_bytes(streams["interp-ans-f64"][1]).sections["interp"][0] == 3  # v3: compact tables
    r = Reader(Stream.from_bytes(streams["anomaly"][1]).sections["anomaly"], "the anomaly payload")
    r.u8(), r.uvarint(), r.take(r.uvarint())  # version, period, the climatology's payload
    assert bytes(r.rest())[:1] == b"\x04"  # the anomalies' payload: v4 (a float32 reconstruction)
    assert Stream.from_bytes(streams["interp-ctx-v2"][1]).sections["interp"][:2] == b"\x02\x00"  # explicit tables
    assert Stream.from_bytes(streams["wavelet"][1]).sections["wavelet"][0] == 2
    assert Stream.from_bytes(streams["masked"][1]).sections["mask"][0] == 1  # a context-coded bitmap
    assert Stream.from_bytes(streams["mask-zstd"][1]).sections["mask"][:4] == ZSTD_MAGIC  # packed bits
    assert Stream.from_bytes(streams["wavelet-v1"][1]).sections["wavelet"][0] == 1
    assert Stream.from_bytes(streams["interp-ans-v1"][1]).sections["interp"][:2] == b"\x01\x00"  # v1 rANS
    assert Stream.from_bytes(streams["interp-zstd"][1]).sections["interp"][1] == 1  # the zstd body
    model_stream = Stream.from_bytes(streams["model"][1]).sections
    assert any(name in model_stream for name in ("interp", "sz3"))


# ----------------------------------------------------------------------------- damage


@st.composite
def byte_damage(draw, data: bytes) -> bytes:
    """One structural edit of ``data``: flip, set, truncate, extend, insert, delete or rewrite a varint."""
    n = len(data)
    kind = draw(st.sampled_from(["flip", "set", "truncate", "extend", "insert", "delete", "varint"]))
    at = draw(st.integers(0, max(n - 1, 0)))
    out = bytearray(data)
    if kind == "flip" and n:
        out[at] ^= 1 << draw(st.integers(0, 7))
    elif kind == "set" and n:
        out[at] = draw(st.integers(0, 255))
    elif kind == "truncate":
        del out[draw(st.integers(0, n)):]
    elif kind in ("extend", "insert"):
        extra = draw(st.binary(min_size=1, max_size=16))
        out[n if kind == "extend" else at : at] = extra
    elif kind == "delete":
        del out[at : at + draw(st.integers(1, 16))]
    else:
        out = _rewrite_varint(out, at, draw(st.sampled_from([0, 1, 2, 127, 128, 255, 256, 1 << 16, 1 << 31, 1 << 40,
                                                              (1 << 63) - 1, n, n + 1, n - 1])))
    return bytes(out)


def _rewrite_varint(data: bytearray, at: int, value: int) -> bytearray:
    """``data`` with the varint starting at ``at`` (at most 10 bytes) replaced by ``value``."""
    end = at
    while end < len(data) and end - at < 10 and data[end] & 0x80:
        end += 1
    data[at : end + 1] = uvarint(max(value, 0))
    return data


@st.composite
def section_damage(draw, data: bytes) -> bytes:
    """Damage ``data``, or, for a zstd frame, its decompressed content half of the time."""
    if data[:4] == ZSTD_MAGIC and draw(st.booleans()):
        inner = zstandard.ZstdDecompressor().decompress(data)
        return zstandard.ZstdCompressor().compress(draw(byte_damage(inner)))
    return draw(byte_damage(data))


@st.composite
def header_damage(draw, header: Header) -> bytes:
    """The packed header with one field changed, or its bytes damaged."""
    kind = draw(st.sampled_from(["shape", "ndim", "dtype", "order", "mode", "tol", "bytes"]))
    shape = list(header.shape)
    if kind == "shape":
        at = draw(st.integers(0, len(shape) - 1))  # x1000 stays within the size rule, to reach the decoders
        shape[at] = draw(st.sampled_from([0, 1, 2, shape[at] + 1, shape[at] * 1000, 255, 1 << 20, 1 << 40,
                                          (1 << 62) + 3]))
    elif kind == "ndim":
        shape = shape[:-1] if draw(st.booleans()) else shape + [draw(st.integers(0, 3))]
    new = dataclasses.replace(
        header, shape=tuple(shape),
        dtype=draw(st.sampled_from(["<f4", ">f4", "<f8", "<i2", "|b1", "<f2"])) if kind == "dtype" else header.dtype,
        order={"C": "F", "F": "C"}[header.order] if kind == "order" else header.order,
        mode=draw(st.sampled_from(["pointwise", "lossless", "l2"])) if kind == "mode" else header.mode,
        tol=draw(st.sampled_from([0.0, -1.0, math.nan, math.inf, 1e300])) if kind == "tol" else header.tol,
    )
    packed = new.pack()
    return draw(byte_damage(packed)) if kind == "bytes" else packed


def container(head: bytes, sections: dict[str, bytes]) -> bytes:
    """A stream with the packed header ``head`` as given, a valid CRC, and no padding."""
    out = bytearray(MAGIC) + bytes([FORMAT_VERSION]) + uvarint(len(head)) + head + bytes([len(sections)])
    for name, payload in sections.items():
        out += bytes([len(name)]) + name.encode() + uvarint(len(payload)) + payload
    return bytes(out + struct.pack("<I", zlib.crc32(out)))


def decode_or_corrupt(blob: bytes, original: Stream, nbytes: int, **kw) -> str:
    """'decoded' or 'raised'; fails on any other exception, a slow decode or a large allocation.

    A first, unmeasured decode loads (or compiles) the kernels that the damaged stream's path needs: their loading
    allocates megabytes once per process, which are not the stream's doing."""
    with contextlib.suppress(xdiffc.CorruptStreamError, xdiffc.ModelMismatchError):
        xdiffc.decompress(blob, **kw)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        y = xdiffc.decompress(blob, **kw)
    except xdiffc.CorruptStreamError:
        return "raised"
    except xdiffc.ModelMismatchError:  # only where the damage renamed the model or the reference the stream needs
        damaged = Stream.from_bytes(blob)
        header, ref = damaged.header, damaged.sections.get("ref", b"")[:32]
        assert ((header.model_id, header.model_sha256) != (original.header.model_id, original.header.model_sha256)
                or ref != original.sections.get("ref", b"")[:32])
        return "raised"
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert time.perf_counter() - start < MAX_SECONDS
        assert peak < ALLOC_SLACK + 64 * nbytes, f"decoding allocated {peak} bytes"
    header = Stream.from_bytes(blob).header
    assert y.shape == header.shape and y.dtype == np.dtype(header.dtype)
    return "decoded"


@pytest.mark.parametrize("case, part", TARGETS)
@given(data=st.data())
def test_damage_behind_a_valid_checksum(streams, case, part, data):
    x, blob, kw = streams[case]
    stream = Stream.from_bytes(blob)
    if part == "header":
        damaged = container(data.draw(header_damage(stream.header)), stream.sections)
    else:
        sections = {**stream.sections, part: data.draw(section_damage(stream.sections[part]))}
        damaged = container(stream.header.pack(), sections)
    TALLY[f"{case}/{part}"][decode_or_corrupt(damaged, stream, x.nbytes, **kw)] += 1


@pytest.fixture(scope="module", autouse=True)
def report_tally():
    yield
    for target, counts in sorted(TALLY.items()):
        print(f"\nfuzz {target}: {counts['decoded']} decoded, {counts['raised']} raised", end="")


# ----------------------------------------------------------------------------- size bombs


def _claims(shape: tuple[int, ...], sections: dict[str, bytes], mode: str = "lossless") -> bytes:
    return container(Header("<f8", shape, mode=mode).pack(), sections)


@pytest.mark.parametrize("mode", ["lossless", "pointwise", "l2"])
def test_a_size_bomb_is_refused_without_allocating_it(mode):
    x = np.zeros((4, 4))
    sections = Stream.from_bytes(xdiffc.compress(x, tol=0)).sections
    tracemalloc.start()
    try:
        with pytest.raises(xdiffc.CorruptStreamError, match="more than a stream of"):
            xdiffc.decompress(_claims((1 << 20, 1 << 20), sections, mode))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


@pytest.mark.parametrize("dtype", ["f,", "<f4,", "(2,)<f4", "<f4,<f4", "U8", "O", "<M8", "<f", ""])
def test_a_header_naming_any_other_dtype_is_a_damaged_stream(dtype):
    """numpy parses a comma in a dtype string with ``ast.literal_eval`` (a damaged "<f4" raised SyntaxError):
    the header takes a byte order and one of f, i, u, b with its size, and nothing else."""
    x = _field((3, 12, 16), 4)
    stream = Stream.from_bytes(xdiffc.compress(x, tol=0.05))
    head = dataclasses.replace(stream.header, dtype=dtype).pack()
    with pytest.raises(xdiffc.CorruptStreamError, match="unknown dtype"):
        xdiffc.decompress(container(head, stream.sections))


def test_a_zstd_frame_that_declares_more_than_the_array_is_refused():
    # A frame may declare any content size; python-zstandard allocates it before looking further.
    sections = {"raw": zstandard.ZstdCompressor().compress(bytes(1 << 16))}
    with pytest.raises(xdiffc.CorruptStreamError, match="declares 65536 bytes"):
        xdiffc.decompress(container(Header("<f8", (8,), mode="lossless").pack(), sections))
    assert xdiffc.decompress(container(Header("<f8", (1 << 13,), mode="lossless").pack(), sections)).shape == (1 << 13,)


def test_a_constant_field_is_padded_up_to_the_size_rule():
    x = np.zeros(1 << 20)  # 8 MiB in about 100 bytes of interp payload
    blob = xdiffc.compress(x, tol=0.1)
    assert x.nbytes <= MAX_RATIO * len(blob) and "pad" in Stream.from_bytes(blob).sections
    np.testing.assert_array_equal(xdiffc.decompress(blob), x)


# ----------------------------------------------------------------------------- counts checked exactly


def _exception_stream():
    x, blob = _sz3_with_exceptions()
    return x, Stream.from_bytes(blob)


def _exc_body(stream: Stream) -> bytes:
    return zstandard.ZstdDecompressor().decompress(stream.sections["exc"])


def _with_exc(stream: Stream, body: bytes) -> bytes:
    return Stream(stream.header, {**stream.sections, "exc": zstandard.ZstdCompressor().compress(body)}).to_bytes()


def test_exceptions_decode_within_the_bound():
    x, stream = _exception_stream()
    assert_bounded(x, xdiffc.decompress(stream.to_bytes()), 1e-3)


@pytest.mark.parametrize("edit", ["count-1", "count+1", "last value dropped", "one value too many"])
def test_exception_count_is_checked_exactly(edit):
    _, stream = _exception_stream()
    body = _exc_body(stream)
    n = int(np.frombuffer(body[:8], np.uint64)[0])
    if edit.startswith("count"):
        body = np.uint64(n + (1 if edit == "count+1" else -1)).tobytes() + body[8:]
    elif edit == "last value dropped":
        body = body[:-8]
    else:
        body += body[-8:]
    with pytest.raises(xdiffc.CorruptStreamError, match="exception section"):
        xdiffc.decompress(_with_exc(stream, body))


@pytest.mark.parametrize("deltas", [[5, 0], [2**64 - 1, 6], [10**9]])
def test_exception_indices_are_checked(deltas):
    _, stream = _exception_stream()
    values = np.zeros(len(deltas))
    body = np.uint64(len(deltas)).tobytes() + np.array(deltas, np.uint64).tobytes() + values.tobytes()
    with pytest.raises(xdiffc.CorruptStreamError, match="exception section"):
        xdiffc.decompress(_with_exc(stream, body))


def test_a_forced_exception_is_written_exactly():
    x = _field((3, 12, 16), 4)
    stream = Stream.from_bytes(xdiffc.compress(x, tol=0.05))
    idx = np.array([0, 7, x.size - 1])
    sections = {**stream.sections, "exc": guarantee.encode_exceptions(np.full_like(x, 123.25), idx)}
    y = xdiffc.decompress(Stream(stream.header, sections).to_bytes())
    assert np.all(y.ravel()[idx] == 123.25)


@pytest.mark.parametrize("edit", ["one value short", "one value over"])
def test_missing_value_count_is_checked_exactly(edit):
    x = _field((3, 12, 16), 7)
    x[0, 0, :2] = [np.nan, 1e20]  # two missing values: one left over would be broadcast over both
    stream = Stream.from_bytes(xdiffc.compress(x, tol=0.05, fill_values=[1e20]))
    special = zstandard.ZstdDecompressor().decompress(stream.sections["special"])
    special = special[:4] if edit == "one value short" else special + special[:4]
    sections = {**stream.sections, "special": zstandard.ZstdCompressor().compress(special)}
    with pytest.raises(xdiffc.CorruptStreamError, match="missing values"):
        xdiffc.decompress(Stream(stream.header, sections).to_bytes())


# ----------------------------------------------------------------------------- NaN bits


def _nans(dtype) -> np.ndarray:
    """Quiet and signalling NaNs with either sign and assorted payloads."""
    if np.dtype(dtype) == np.float32:
        bits = np.array([0x7FC00000, 0xFFC00000, 0x7FC00001, 0xFFA5A5A5, 0x7F800001, 0xFFFFFFFF], np.uint32)
    else:
        bits = np.array([0x7FF8000000000000, 0xFFF8000000000000, 0x7FF8000000000001, 0xFFF0DEADBEEF0001,
                         0x7FF0000000000001, 0xFFFFFFFFFFFFFFFF], np.uint64)
    return bits.view(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, ">f4"])
@pytest.mark.parametrize("tol", [0.0, 0.05])
def test_nan_sign_and_payload_come_back_bit_exact(dtype, tol):
    x = _field((3, 12, 16), 11, np.dtype(dtype).newbyteorder("=")).astype(dtype)
    nans = _nans(np.dtype(dtype).newbyteorder("="))
    x.ravel()[: nans.size * 7 : 7] = nans
    blob = xdiffc.compress(x, tol=tol)
    assert Stream.from_bytes(blob).header.mode == ("lossless" if tol == 0 else "pointwise")
    y = xdiffc.decompress(blob)
    itype = f"{np.dtype(dtype).byteorder.replace('|', '=')}u{np.dtype(dtype).itemsize}"
    assert np.array_equal(y.ravel()[: nans.size * 7 : 7].view(itype), x.ravel()[: nans.size * 7 : 7].view(itype))


# ----------------------------------------------------------------------------- foreign and unknown streams


@pytest.mark.parametrize("blob", [b"", b"XDFC", b"\x89HDF\r\n\x1a\n" + bytes(100), bytes(1000)])
def test_foreign_bytes(blob):
    with pytest.raises(xdiffc.CorruptStreamError):
        xdiffc.decompress(blob)


def test_damage_without_a_valid_checksum_is_caught_by_it():
    x, blob = _masked()
    for i in range(0, len(blob), 7):
        damaged = bytearray(blob)
        damaged[i] ^= 0x10
        with pytest.raises(xdiffc.CorruptStreamError):
            xdiffc.decompress(bytes(damaged))
    with pytest.raises(xdiffc.CorruptStreamError):
        xdiffc.decompress(blob[:-1])


def test_unknown_version_says_so():
    x = _field((3, 12, 16), 4)
    blob = bytearray(xdiffc.compress(x, tol=0.05))
    blob[4] = FORMAT_VERSION + 1
    with pytest.raises(xdiffc.CorruptStreamError, match="format version"):
        xdiffc.decompress(bytes(blob))


def test_corrupt_error_is_a_value_error():
    assert issubclass(xdiffc.CorruptStreamError, ValueError)


@given(st.lists(st.binary(max_size=3000), min_size=1, max_size=6), st.sampled_from([1, 3, 9, 15]))
def test_frames_from_kept_contexts_are_fresh_contexts_frames_in_every_thread(blobs, level):
    """``deflate`` keeps one zstd context per thread and level for small inputs: four threads at once write exactly
    the frames a fresh context writes, and ``inflate`` (one kept context per thread) gives the bytes back."""
    from concurrent.futures import ThreadPoolExecutor

    big = bytes(range(256)) * 5000  # past the size kept contexts take: a fresh context
    inputs = blobs + [big]
    expected = [zstandard.ZstdCompressor(level=level).compress(b) for b in inputs]

    def run(_):
        frames = [deflate(b, level) for b in inputs]
        return frames, [inflate(f, "a frame", size=len(b)) for f, b in zip(frames, inputs)]

    with ThreadPoolExecutor(4) as pool:
        for frames, back in pool.map(run, range(8)):
            assert frames == expected
            assert back == inputs


def test_a_header_is_parsed_once_and_a_damaged_one_raises_each_time() -> None:
    """Streams with the same header share one parsed (frozen) header; a malformed header is never remembered."""
    a = xdiffc.compress(np.arange(64.0).reshape(8, 8), tol=0.5)
    b = xdiffc.compress(np.arange(64.0).reshape(8, 8)[::-1].copy(), tol=0.5)
    assert Stream.from_bytes(a).header is Stream.from_bytes(b).header
    bad = Stream(Header("f8", (8, 8), mode="nonsense"), {"raw": b""}).to_bytes()
    for _ in range(2):
        with pytest.raises(xdiffc.CorruptStreamError, match="malformed"):
            Stream.from_bytes(bad)
