"""GCDTCZarrCodec as a Zarr v3 serializer, and GCDTCCodec in Zarr format 2 arrays."""

from __future__ import annotations

import pickle
import subprocess
import sys
import threading

import numpy as np
import pytest
import zarr

import xdiffc
from xdiffc.codec import GCDTCCodec
from xdiffc.zarr_codec import GCDTCZarrCodec

from test_codec import OTHER_MODEL, claim_model, field


def create(path, x, serializer, chunks=(16, 32), fill_value=np.nan, **kwargs) -> zarr.Array:
    a = zarr.create_array(store=str(path), shape=x.shape, chunks=chunks, dtype=x.dtype, fill_value=fill_value,
                          serializer=serializer, compressors=None, **kwargs)
    a[:] = x
    return a


def test_dict_round_trip_and_registry():
    codec = GCDTCZarrCodec(tol=0.1, fill_values=[1e20], steps=3)
    d = codec.to_dict()
    assert d == {"name": "xdiffc.gcdtc", "configuration": {"tol": 0.1, "rel_tol": None, "model_id": "",
                                                          "model_sha256": "", "steps": 3, "fill_values": [1e20],
                                                          "layout": None, "mode": "pointwise", "nrmse": None}}
    assert GCDTCZarrCodec.from_dict(d) == codec
    named = GCDTCZarrCodec(tol=0.1, variable="T")
    assert named.to_dict()["configuration"]["variable"] == "T" and GCDTCZarrCodec.from_dict(named.to_dict()) == named
    assert pickle.loads(pickle.dumps(codec)) == codec
    assert zarr.registry.get_codec_class("xdiffc.gcdtc") is GCDTCZarrCodec
    with pytest.raises(ValueError):
        GCDTCZarrCodec(tol=-1.0)


def test_edge_chunks_padded_with_fill_value_keep_the_bound(tmp_path):
    # 50x70 with 16x32 chunks: the last row and column of chunks are padded with 1e20.
    # With a per-chunk rel_tol, padding that counted as data would widen the bound by ~1e17.
    x = field((50, 70))
    x[10, 10:15] = 1e20
    a = create(tmp_path / "a.zarr", x, GCDTCZarrCodec(rel_tol=1e-3), fill_value=1e20)
    y = zarr.open_array(str(tmp_path / "a.zarr"))[:]
    valid = x != np.float32(1e20)
    assert np.abs(y[valid].astype(np.float64) - x[valid]).max() <= 1e-3 * (float(x.max(initial=0, where=valid)) - 270)
    assert np.array_equal(y[~valid], x[~valid])
    assert a.nbytes_stored() < x.nbytes / 2


def test_all_nan_chunks_read_back_as_nan(tmp_path):
    x = field((32, 64))
    x[:16, :32] = np.nan  # exactly one chunk
    for write_empty in (False, True):
        path = tmp_path / f"{write_empty}.zarr"
        create(path, x, GCDTCZarrCodec(tol=0.01), config={"write_empty_chunks": write_empty})
        assert (path / "c" / "0" / "0").exists() == write_empty
        y = zarr.open_array(str(path))[:]
        assert np.isnan(y[:16, :32]).all() and not np.isnan(y[16:]).any()
        assert np.abs(y[16:] - x[16:]).max() <= 0.01


def test_opens_in_a_fresh_process_that_imports_only_zarr(tmp_path):
    x = field((40, 40), np.float64)
    create(tmp_path / "a.zarr", x, GCDTCZarrCodec(tol=0.001))
    code = ("import sys, zarr, numpy as np\n"
            f"y = zarr.open_array({str(tmp_path / 'a.zarr')!r})[:]\n"
            "sys.stdout.buffer.write(y.tobytes())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout
    assert out == zarr.open_array(str(tmp_path / "a.zarr"))[:].tobytes()
    assert np.abs(np.frombuffer(out).reshape(x.shape) - x).max() <= 0.001


def test_concurrent_writes_match_the_serial_codec_and_every_chunk_is_coded_once(tmp_path, monkeypatch):
    x = field((64, 128))
    codec = GCDTCZarrCodec(tol=0.02)
    threads = []
    real = GCDTCCodec.encode_chunk

    def spy(self, array, extra=()):
        threads.append(threading.get_ident())
        return real(self, array, extra)

    monkeypatch.setattr(GCDTCCodec, "encode_chunk", spy)
    with zarr.config.set({"async.concurrency": 16, "threading.max_workers": 8, "codec_pipeline.batch_size": 4}):
        create(tmp_path / "a.zarr", x, codec, chunks=(16, 16))
        y = zarr.open_array(str(tmp_path / "a.zarr"))[:]
    assert len(threads) == 32 and threading.get_ident() not in threads  # coded in worker threads, off the loop
    for i in range(4):
        for j in range(8):
            stored = (tmp_path / "a.zarr" / "c" / str(i) / str(j)).read_bytes()
            assert stored == codec.numcodec.encode(x[16 * i:16 * i + 16, 16 * j:16 * j + 16])
    assert np.abs(y - x).max() <= 0.02


def test_zarr_format_2_with_the_numcodecs_codec(tmp_path):
    x = field((50, 70))
    x[:5, :5] = np.nan
    a = zarr.create_array(store=str(tmp_path / "v2.zarr"), shape=x.shape, chunks=(16, 32), dtype="f4",
                          zarr_format=2, compressors=GCDTCCodec(tol=0.05), filters=None, fill_value=np.nan)
    a[:] = x
    y = zarr.open_array(str(tmp_path / "v2.zarr"))[:]
    assert np.array_equal(np.isnan(y), np.isnan(x))
    assert np.nanmax(np.abs(y - x)) <= 0.05


@pytest.mark.parametrize("dtype", ["complex64", "float16"])
def test_unsupported_dtype_is_refused_at_creation(tmp_path, dtype):
    with pytest.raises(TypeError, match="float32"):
        zarr.create_array(store=str(tmp_path / "a.zarr"), shape=(8,), dtype=dtype, serializer=GCDTCZarrCodec(tol=1.0))


def test_integers_are_stored_losslessly(tmp_path):
    x = np.arange(-500, 500, dtype=np.int32).reshape(20, 50)
    create(tmp_path / "a.zarr", x, GCDTCZarrCodec(tol=3.0), fill_value=0)
    assert np.array_equal(zarr.open_array(str(tmp_path / "a.zarr"))[:], x)


def test_chunk_from_another_model_raises_model_mismatch(tmp_path):
    create(tmp_path / "a.zarr", field((32, 32)), GCDTCZarrCodec(tol=0.1))
    chunk = tmp_path / "a.zarr" / "c" / "1" / "0"
    chunk.write_bytes(claim_model(chunk.read_bytes(), *OTHER_MODEL))
    a = zarr.open_array(str(tmp_path / "a.zarr"))
    assert np.isfinite(a[:16]).all()  # chunks written model-free still read
    with pytest.raises(xdiffc.ModelMismatchError, match=OTHER_MODEL[0]):
        a[:]


def _damage(chunk) -> None:
    blob = bytearray(chunk.read_bytes())
    blob[len(blob) // 2] ^= 0x40
    chunk.write_bytes(bytes(blob))


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_a_damaged_chunk_on_disk_names_the_variable_and_the_chunk(tmp_path, zarr_format):
    x = field((32, 64))
    path = tmp_path / "a.zarr"
    if zarr_format == 3:
        create(path, x, GCDTCZarrCodec(tol=0.05, variable="T"))
        chunk = path / "c" / "1" / "0"
    else:
        a = zarr.create_array(store=str(path), shape=x.shape, chunks=(16, 32), dtype="f4", zarr_format=2,
                              compressors=GCDTCCodec(tol=0.05, variable="T"), filters=None, fill_value=np.nan)
        a[:] = x
        chunk = path / "1.0"
    _damage(chunk)
    a = zarr.open_array(str(path))
    assert np.abs(a[:16] - x[:16]).max() <= 0.05
    # zarr tells a v3 serializer the chunk's shape; a v2 compressor gets bytes only
    chunk_named = r"chunk of shape \(16, 32\)" if zarr_format == 3 else "a chunk"
    with pytest.raises(xdiffc.CorruptStreamError, match=rf"variable 'T', {chunk_named}: .*checksum"):
        a[16:]


def test_a_chunk_that_declares_another_shape_is_refused_before_decoding(tmp_path):
    path = tmp_path / "a.zarr"
    create(path, field((32, 64)), GCDTCZarrCodec(tol=0.05, variable="T"))
    (path / "c" / "0" / "0").write_bytes(xdiffc.compress(np.zeros((400, 400), np.float32), tol=0.05))
    with pytest.raises(xdiffc.CorruptStreamError, match=r"variable 'T', chunk of shape \(16, 32\).*do not fit"):
        zarr.open_array(str(path))[:]
