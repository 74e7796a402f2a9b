"""Archive-level climatology: the reference itself, chunks coded against it, and stores that carry it."""

import base64
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import xdiffc
from tests.helpers import assert_bounded
from xdiffc.codec import GCDTCCodec
from xdiffc.errors import CorruptStreamError, ModelMismatchError
from xdiffc.archive_climatology import Climatology
from xdiffc.xarray.climatology_choice import period_of

RNG = np.random.default_rng(0)


def seasonal(steps: int, ny: int = 16, nx: int = 24, seed: int = 0, dtype=np.float32, trend: float = 0.01) -> np.ndarray:
    """A smooth spatial pattern with a 12-step cycle of its own amplitude, a trend and weather noise."""
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.linspace(-1, 1, ny), np.linspace(0, 2 * np.pi, nx), indexing="ij")
    base = 280 + 20 * np.cos(np.pi * y / 2) + 3 * np.sin(x)
    t = np.arange(steps)[:, None, None]
    cycle = 10 * y * np.cos(2 * np.pi * t / 12)
    return (base + cycle + trend * t + rng.normal(0, 0.3, (steps, ny, nx))).astype(dtype)


def monthly(steps: int = 48, **kw) -> xr.Dataset:
    """``seasonal`` as a monthly Dataset of variable T."""
    times = pd.date_range("2000-01-01", periods=steps, freq="MS")
    return xr.Dataset({"T": (("time", "lat", "lon"), seasonal(steps, **kw), {"units": "K"})}, coords={"time": times})


def climatology_of(x: np.ndarray, period: int, tol: float) -> Climatology:
    means = np.stack([x[p::period].astype(np.float64).mean(0) for p in range(period)])
    return Climatology.build(means, tol)


def test_config_round_trip_and_damage():
    clim = climatology_of(seasonal(36), 12, 0.1)
    again = Climatology.from_config(json.loads(json.dumps(clim.to_config())))
    assert again.sha256 == clim.sha256 and np.array_equal(again.values, clim.values)
    assert clim.values.shape == (12, 16, 24) and clim.period == 12
    means = np.stack([seasonal(36)[p::12].astype(np.float64).mean(0) for p in range(12)])
    assert np.abs(clim.values - means).max() <= 0.1 * 0.25  # coded at a quarter of the bound
    config = clim.to_config()
    with pytest.raises(CorruptStreamError, match="sha256"):
        Climatology.from_config({**config, "sha256": "0" * 64})
    with pytest.raises(CorruptStreamError, match="malformed"):
        Climatology.from_config({"sha256": config["sha256"]})
    blob = bytearray(clim.blob)
    blob[:4] = b"ABCD"
    with pytest.raises(CorruptStreamError, match="XDCL"):
        Climatology(bytes(blob))


def test_a_blob_claiming_a_huge_shape_is_refused_without_allocating_it():
    blob = b"XDCL" + bytes([12, 2]) + b"\xff\xff\x3f" * 2 + b"\x00" * 8
    with pytest.raises(CorruptStreamError, match="more than"):
        Climatology(blob)


@given(steps=st.integers(1, 30), shift=st.integers(0, 11), tol=st.sampled_from([1e-3, 0.05, 0.5, 3.0]),
       dtype=st.sampled_from([np.float32, np.float64]), holes=st.booleans(), seed=st.integers(0, 2**16))
def test_chunks_against_a_reference_hold_the_bound(steps, shift, tol, dtype, holes, seed):
    series = seasonal(48, 8, 12, seed=seed, dtype=dtype)
    clim = climatology_of(series, 12, tol)
    x = series[shift:shift + steps].copy()
    if holes:
        x[np.random.default_rng(seed).random(x.shape) < 0.1] = np.nan
    blob = xdiffc.compress(x, tol, reference=clim)
    assert_bounded(x, xdiffc.decompress(blob, reference=clim), tol)


@given(x=hnp.arrays(np.float64, (5, 4, 6), elements=st.floats(-1e6, 1e6) | st.just(np.nan) | st.floats(width=32)))
def test_any_values_against_a_reference_hold_the_bound(x):
    clim = Climatology.build(np.linspace(-3, 3, 24 * 2).reshape(2, 4, 6), 0.5)
    y = xdiffc.decompress(xdiffc.compress(x, 0.5, reference=clim), reference=clim)
    assert_bounded(x, y, 0.5)


def test_the_reference_pays_and_its_phase_is_found():
    series = seasonal(60)
    tol = 0.5  # above the weather noise: the cycle is what costs bits
    clim = climatology_of(series, 12, tol)
    x = series[17:29]  # starts at phase 5
    with_ref = xdiffc.compress(x, tol, reference=clim)
    assert len(with_ref) < 0.8 * len(xdiffc.compress(x, tol))
    assert clim.best_phase(x, None) == 5


@pytest.mark.parametrize("level", [5, 8, 9])
def test_below_the_full_search_a_chunk_is_coded_against_the_reference_only(monkeypatch, level):
    """Coding a chunk without the store's climatology as well took 50-80% of its encoding time and seldom won:
    below level 9 it is not done (unless nothing could be coded against the reference)."""
    from xdiffc import core

    series = seasonal(60)
    clim = climatology_of(series, 12, 0.1)
    x = series[17:29]
    searches = []
    search = core._residual_candidates

    def spy(work, values, tol, skip, prediction=None, **kw):
        searches.append("plain" if prediction is None else "reference")
        return search(work, values, tol, skip, prediction, **kw)

    monkeypatch.setattr(core, "_residual_candidates", spy)
    blob = xdiffc.compress(x, 0.1, reference=clim, level=level)
    assert searches == (["reference", "plain"] if level == 9 else ["reference"])
    assert_bounded(x, xdiffc.decompress(blob, reference=clim), 0.1)
    searches.clear()
    monkeypatch.setattr(core, "_reference_candidates", lambda *a: [])  # nothing coded against it: coded without
    assert_bounded(x, xdiffc.decompress(xdiffc.compress(x, 0.1, reference=clim, level=level)), 0.1)
    assert searches == ["plain"]


def test_a_stream_needs_its_reference():
    series = seasonal(36)
    clim = climatology_of(series, 12, 0.05)
    blob = xdiffc.compress(series[:12], 0.05, reference=clim)
    with pytest.raises(ModelMismatchError, match="climatology"):
        xdiffc.decompress(blob)
    other = climatology_of(series + 1, 12, 0.05)
    with pytest.raises(ModelMismatchError, match=clim.sha256):
        xdiffc.decompress(blob, reference=other)
    wrong_shape = Climatology.build(np.zeros((12, 16, 23)) + np.arange(23), 0.05)
    with pytest.raises(ModelMismatchError):
        xdiffc.decompress(blob, reference=wrong_shape)


def test_a_chunk_of_another_shape_codes_without_the_reference():
    clim = climatology_of(seasonal(24), 12, 0.05)
    x = seasonal(12, 8, 24)
    y = xdiffc.decompress(xdiffc.compress(x, 0.05, reference=clim))
    assert_bounded(x, y, 0.05)


@pytest.mark.parametrize("freq, period", [("MS", 12), ("h", 24), ("3h", 8), ("6h", 4), ("D", 1), ("YS", 1)])
def test_the_period_comes_from_the_time_coordinate(freq, period):
    assert period_of(xr.DataArray(pd.date_range("2000-01-01", periods=40, freq=freq), dims="time")) == period


def test_period_of_irregular_or_short_times_is_one():
    times = pd.to_datetime(["2000-01-01", "2000-01-03", "2000-02-11", "2001-01-01"])
    assert period_of(xr.DataArray(times, dims="time")) == 1
    assert period_of(xr.DataArray(times[:2], dims="time")) == 1


def stored_codec(store, name="T"):
    meta = json.loads((store / name / "zarr.json").read_text())
    return meta["codecs"][0]["configuration"]


def test_the_accessor_stores_a_climatology_that_pays_and_a_plain_reader_opens_it(tmp_path):
    ds = monthly(120, trend=0.0)
    ds.gcdtc.to_zarr(tmp_path / "c.zarr", tol=0.5, chunks={"time": 12})
    ds.gcdtc.to_zarr(tmp_path / "p.zarr", tol=0.5, chunks={"time": 12}, climatology=False)
    config = stored_codec(tmp_path / "c.zarr")
    assert "climatology" in config and "climatology" not in stored_codec(tmp_path / "p.zarr")
    with_clim = zarr.open_group(tmp_path / "c.zarr")["T"].nbytes_stored()
    plain = zarr.open_group(tmp_path / "p.zarr")["T"].nbytes_stored()
    assert with_clim < 0.95 * plain  # metadata included; chunks alone shrink ~27%, weather noise is the floor
    code = ("import sys, xarray as xr\n"
            f"sys.stdout.buffer.write(xr.open_zarr({str(tmp_path / 'c.zarr')!r}).T.values.tobytes())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout
    assert_bounded(ds.T.values, np.frombuffer(out, np.float32).reshape(ds.T.shape), 0.5)


def test_a_whole_series_chunk_or_a_flat_field_gets_no_climatology(tmp_path):
    ds = monthly(24)
    ds.gcdtc.to_zarr(tmp_path / "w.zarr", tol=0.05, chunks={"time": -1})
    assert "climatology" not in stored_codec(tmp_path / "w.zarr")
    noise = ds.assign(T=ds.T * 0 + np.random.default_rng(1).normal(0, 1, ds.T.shape).astype(np.float32))
    noise.gcdtc.to_zarr(tmp_path / "n.zarr", tol=0.5, chunks={"time": 12})
    assert "climatology" not in stored_codec(tmp_path / "n.zarr")  # white noise: it cannot pay for itself


def test_appends_use_the_stores_climatology(tmp_path):
    ds = monthly(240, trend=0.0)
    ds.isel(time=slice(0, 216)).gcdtc.to_zarr(tmp_path / "a.zarr", tol=0.5, chunks={"time": 12})
    before = stored_codec(tmp_path / "a.zarr")["climatology"]
    ds.isel(time=slice(216, 240)).gcdtc.to_zarr(tmp_path / "a.zarr", append_dim="time")
    assert stored_codec(tmp_path / "a.zarr")["climatology"] == before
    out = xr.open_zarr(tmp_path / "a.zarr").T.values
    assert_bounded(ds.T.values, out, 0.5)


def test_a_damaged_climatology_in_the_metadata_is_named(tmp_path):
    monthly(240, trend=0.0).gcdtc.to_zarr(tmp_path / "d.zarr", tol=0.5, chunks={"time": 12}, consolidated=False)
    path = tmp_path / "d.zarr" / "T" / "zarr.json"
    meta = json.loads(path.read_text())
    blob = bytearray(base64.b64decode(meta["codecs"][0]["configuration"]["climatology"]["blob"]))
    blob[-1] ^= 0xFF
    meta["codecs"][0]["configuration"]["climatology"]["blob"] = base64.b64encode(bytes(blob)).decode()
    path.write_text(json.dumps(meta))
    with pytest.raises(CorruptStreamError, match="sha256"):
        xr.open_zarr(tmp_path / "d.zarr", consolidated=False).T.values


def test_the_numcodecs_codec_carries_it_in_its_config():
    clim = climatology_of(seasonal(24), 12, 0.05)
    codec = GCDTCCodec(tol=0.05, climatology=clim.to_config())
    again = GCDTCCodec.from_config(json.loads(json.dumps(codec.get_config())))
    x = seasonal(24)[5:17]
    blob = codec.encode(x)
    assert_bounded(x, again.decode(blob), 0.05)
    with pytest.raises(ModelMismatchError, match="variable|climatology"):
        GCDTCCodec(tol=0.05).decode(blob)


def test_a_pickled_codec_carries_its_configuration_not_the_decoded_climatology():
    import pickle

    clim = climatology_of(seasonal(24, 32, 64), 12, 0.05)
    codec = GCDTCCodec(tol=0.05, climatology=clim.to_config(), variable="T")
    blob = pickle.dumps(codec)
    assert len(blob) < 2 * len(clim.blob) < clim.values.nbytes  # Dask ships codecs inside every task
    again = pickle.loads(blob)
    assert again.get_config() == codec.get_config()
    x = seasonal(24, 32, 64)[3:15]
    assert_bounded(x, again.decode(codec.encode(x)), 0.05)


def test_building_a_codec_decodes_no_climatology(monkeypatch):
    """Opening a store builds one codec per variable: the climatology is checked and decoded when a chunk needs it."""
    from xdiffc import archive_climatology
    from xdiffc.zarr_codec import GCDTCZarrCodec

    clim = climatology_of(seasonal(24), 12, 0.05)
    config = {"tol": 0.05, "climatology": clim.to_config(), "variable": "T"}
    damaged = {**config, "climatology": {**clim.to_config(), "sha256": "0" * 64}}
    archive_climatology._decoded.cache_clear()  # an earlier test may have decoded this very blob in this process
    calls = []
    real = archive_climatology.interp.decode
    monkeypatch.setattr(archive_climatology.interp, "decode", lambda *a: calls.append(1) or real(*a))
    codec, serializer, bad = GCDTCCodec(**config), GCDTCZarrCodec(**config), GCDTCCodec(**damaged)
    assert calls == []
    x = seasonal(24)[5:17]
    blob = codec.encode(x)
    assert calls == [1]
    assert_bounded(x, serializer.numcodec.decode(blob), 0.05)
    with pytest.raises(CorruptStreamError, match="variable 'T'.*sha256"):
        bad.decode(blob)


def test_the_serializer_is_identified_by_its_configuration():
    """Equal configurations make equal, equally hashed serializers; another climatology (by its sha256) does not;
    a pickled serializer comes back whole."""
    import pickle

    from xdiffc.zarr_codec import GCDTCZarrCodec

    one, other = (climatology_of(seasonal(24, seed=s), 12, 0.05).to_config() for s in (0, 1))
    a, b, c = (GCDTCZarrCodec(tol=0.05, climatology=clim) for clim in (one, one, other))
    assert a == b and hash(a) == hash(b) and a != c
    again = pickle.loads(pickle.dumps(a))
    assert again == a and again.to_dict() == a.to_dict() and again.to_dict()["configuration"]["climatology"] == one
