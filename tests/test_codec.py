"""GCDTCCodec as a numcodecs codec: config, registration, bound, exact specials, models, threads."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numcodecs
import numpy as np
import pytest

import xdiffc
from xdiffc.bitstream import Stream
from xdiffc.codec import GCDTCCodec
from xdiffc.model_files import codec_model

OTHER_MODEL = ("other-model-v9", "ab" * 32)


def field(shape=(40, 60), dtype=np.float32, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (280 + rng.standard_normal(shape).cumsum(0).cumsum(1) * 0.1).astype(dtype)


def claim_model(blob: bytes, model_id: str, sha256: str) -> bytes:
    """The same stream, with a header that says it was encoded with another model."""
    stream = Stream.from_bytes(blob)
    header = dataclasses.replace(stream.header, model_id=model_id, model_sha256=sha256)
    return Stream(header, stream.sections).to_bytes()


def test_config_is_json_and_round_trips():
    codec = GCDTCCodec(rel_tol=1e-3, steps=2, fill_values=[1e20, np.float32(-999.0), np.nan])
    config = json.loads(json.dumps(codec.get_config()))
    assert config == {"id": "xdiffc.gcdtc", "tol": None, "rel_tol": 1e-3, "model_id": "", "model_sha256": "",
                      "steps": 2, "fill_values": [-999.0, 1e20], "layout": None, "mode": "pointwise",
                      "nrmse": None}
    again = numcodecs.get_codec(config)
    assert isinstance(again, GCDTCCodec) and again == codec
    assert GCDTCCodec.from_config(dict(config)).get_config() == config
    assert pickle.loads(pickle.dumps(codec)) == codec


def test_registered_by_entry_point_without_importing_xdiffc():
    blob = GCDTCCodec(tol=0.5).encode(field())
    code = (
        "import sys, numcodecs, numpy as np\n"
        "assert 'xdiffc' not in sys.modules\n"
        "c = numcodecs.get_codec({'id': 'xdiffc.gcdtc', 'tol': 0.5})\n"
        "y = c.decode(sys.stdin.buffer.read())\n"
        "print(type(c).__module__, y.shape, y.dtype)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True, check=True)
    assert out.stdout.decode().split() == ["xdiffc.codec", "(40,", "60)", "float32"]


@pytest.mark.parametrize("kwargs", [dict(tol=-1.0), dict(tol=float("nan")), dict(rel_tol=float("inf")),
                                    dict(), dict(tol=0.1, rel_tol=1e-3), dict(tol="0.1"), dict(tol=0.1, steps=0)])
def test_bad_arguments_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        GCDTCCodec(**kwargs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bound_holds_and_specials_come_back_exactly(dtype):
    x = field((30, 20, 24), dtype)
    x[0, :3] = np.nan
    x[1, 5, :] = 1e20
    x[2, 0, 0] = -999.0
    x[3, 1, 1] = np.inf
    codec = GCDTCCodec(tol=0.05, fill_values=[1e20, -999.0])
    blob = codec.encode(x)
    y = codec.decode(blob)
    assert y.shape == x.shape and y.dtype == x.dtype
    special = ~np.isfinite(x) | (x == dtype(1e20)) | (x == dtype(-999.0))
    assert np.abs(y[~special].astype(np.float64) - x[~special]).max() <= 0.05
    bits = np.dtype(f"i{x.itemsize}")
    np.testing.assert_array_equal(y[special].view(bits), x[special].view(bits))
    assert len(blob) < x.nbytes / 2
    out = np.empty_like(x)
    assert codec.decode(blob, out=out) is out and np.array_equal(out, y, equal_nan=True)


def test_rel_tol_is_per_chunk():
    x = field()
    y = GCDTCCodec(rel_tol=1e-3).decode(GCDTCCodec(rel_tol=1e-3).encode(x))
    bound = 1e-3 * (float(x.max()) - float(x.min()))
    assert np.abs(y.astype(np.float64) - x).max() <= bound
    assert Stream.from_bytes(GCDTCCodec(rel_tol=1e-3).encode(x)).header.tol == pytest.approx(bound)


def test_unsupported_dtype_is_a_type_error():
    with pytest.raises(TypeError, match="float32"):
        GCDTCCodec(tol=0.1).encode(np.zeros((4, 4), np.complex64))


def test_model_resolver(tmp_path):
    assert codec_model(None) == ("", "") and codec_model("none") == ("", "")
    model = tmp_path / "mine.pt"
    model.write_bytes(b"weights")
    assert codec_model(str(model)) == (str(model), hashlib.sha256(b"weights").hexdigest())
    with pytest.raises(ValueError, match="no-such-model"):
        codec_model("no-such-model")


def test_chunk_written_with_another_model_is_refused_naming_it():
    x = field()
    blob = claim_model(GCDTCCodec(tol=0.1).encode(x), *OTHER_MODEL)
    with pytest.raises(xdiffc.ModelMismatchError, match=f"{OTHER_MODEL[0]}.*{OTHER_MODEL[1]}"):
        GCDTCCodec(tol=0.1).decode(blob)
    right = GCDTCCodec(tol=0.1, model_id=OTHER_MODEL[0], model_sha256=OTHER_MODEL[1])
    assert np.abs(right.decode(blob) - x).max() <= 0.1
    with pytest.raises(xdiffc.ModelMismatchError, match="cannot be loaded"):
        right.encode(x)


def test_damaged_chunk_is_a_corrupt_stream_error_naming_where():
    blob = bytearray(GCDTCCodec(tol=0.1).encode(field()))
    blob[len(blob) // 2] ^= 0xFF
    # without an output chunk, a codec cannot know the shape of a chunk whose header is not trusted
    with pytest.raises(xdiffc.CorruptStreamError, match=r"^variable 'T', a chunk: .*checksum"):
        GCDTCCodec(tol=0.1, variable="T").decode(bytes(blob))
    with pytest.raises(xdiffc.CorruptStreamError, match=r"^a chunk: not an xdiffc stream"):
        GCDTCCodec(tol=0.1).decode(bytes(100))


def test_variable_is_in_the_config_only_when_set():
    assert "variable" not in GCDTCCodec(tol=0.1).get_config()
    config = GCDTCCodec(tol=0.1, variable="T").get_config()
    assert config["variable"] == "T" and numcodecs.get_codec(config).variable == "T"


def test_a_stream_larger_than_the_output_chunk_is_refused_before_decoding():
    blob = GCDTCCodec(tol=0.1).encode(field((40, 60)))
    out = np.empty((20, 60), np.float32)
    with pytest.raises(xdiffc.CorruptStreamError, match="do not fit the chunk"):
        GCDTCCodec(tol=0.1, variable="T").decode(blob, out=out)


def test_one_codec_shared_by_threads_gives_the_serial_result():
    codec = GCDTCCodec(tol=0.02, fill_values=[1e20])
    chunks = [field((24, 32), seed=s) for s in range(12)]
    serial = [codec.encode(c) for c in chunks]
    with ThreadPoolExecutor(6) as pool:
        threaded = list(pool.map(codec.encode, chunks))
        decoded = list(pool.map(codec.decode, threaded))
    assert threaded == serial
    for c, y in zip(chunks, decoded):
        assert np.abs(y.astype(np.float64) - c).max() <= 0.02
