"""Writes into existing stores (appends, regions, re-runs) keep the bound or are refused; fresh stores add nothing."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from hypothesis import example, given, settings
from hypothesis import strategies as st

from xdiffc.xarray.variables import ATTR_TOL, stored_bound
from xdiffc.datasets import open_sample


def field(nt: int = 24, seed: int = 0) -> xr.Dataset:
    """A small smooth (time, lat, lon) float32 field with a time axis, as a climate file has."""
    rng = np.random.default_rng(seed)
    t = np.arange(nt)[:, None, None]
    y, x = np.meshgrid(np.linspace(0, 3, 12), np.linspace(0, 6, 16), indexing="ij")
    data = 280 + 10 * np.sin(x + 0.3 * t) * np.cos(y) + rng.normal(0, 0.5, (nt, 12, 16))
    time = xr.date_range("2000-01-01", periods=nt, freq="D", use_cftime=False)
    ds = xr.Dataset({"T": (("time", "lat", "lon"), data.astype(np.float32), {"units": "K"})},
                    coords={"time": time, "lat": np.linspace(-60, 60, 12), "lon": np.arange(16.0) * 20})
    ds.lat.attrs.update(units="degrees_north", standard_name="latitude")
    ds.lon.attrs.update(units="degrees_east", standard_name="longitude")
    return ds


def max_err_over_bound(ds: xr.Dataset, store) -> float:
    out = xr.open_zarr(store)
    n = out.sizes["time"]
    err = np.abs(out["T"].values.astype(np.float64) - ds["T"].values[:n].astype(np.float64))
    return float(err.max() / out["T"].attrs[ATTR_TOL])


def chunk_modes(store, name: str) -> list[str]:
    """The stream mode of each stored chunk of ``name`` along its first axis (its first chunk along the others)."""
    from xdiffc.bitstream import Stream

    array = zarr.open_group(store, mode="r")[name]
    key = lambda i: array.metadata.encode_chunk_key((i,) + (0,) * (array.ndim - 1))  # noqa: E731
    return [Stream.from_bytes((Path(store) / name / key(i)).read_bytes()).header.mode
            for i in range(array.cdata_shape[0])]


def test_append_after_a_partial_chunk_completes_it_within_the_bound(tmp_path):
    """The partial last chunk is stored exactly; the append decodes it, completes it and encodes it once, lossily."""
    ds, store = field(30), tmp_path / "a.zarr"
    ds.isel(time=slice(0, 15)).gcdtc.to_zarr(store, tol=0.2, chunks={"time": 10})
    assert chunk_modes(store, "T") == ["pointwise", "lossless"]
    ds.isel(time=slice(15, 27)).chunk({"time": 4}).gcdtc.to_zarr(store, tol=0.2, append_dim="time")
    assert chunk_modes(store, "T") == ["pointwise", "pointwise", "lossless"]
    out = xr.open_zarr(store)
    np.testing.assert_array_equal(out.time.values, ds.time.values[:27])
    assert out["T"].encoding["chunks"] == (10, 12, 16) and max_err_over_bound(ds, store) <= 1


def test_append_onto_a_partial_chunk_stored_lossily_is_refused_and_the_store_is_untouched(tmp_path):
    """Along any axis but the first, a partial chunk is stored lossily: completing it could double its error."""
    ds, store = field(6), tmp_path / "a.zarr"
    ds.isel(lon=slice(0, 10)).gcdtc.to_zarr(store, tol=0.2, chunks={"lon": 4})
    before = xr.open_zarr(store)["T"].values
    with pytest.raises(ValueError, match=r"'T'.*along 'lon'.*partial \(10 values in chunks of 4\) and stored lossily "
                                         r"\(chunk \(time=0, lat=0, lon=2\)\).*divide 10"):
        ds.isel(lon=slice(10, None)).gcdtc.to_zarr(store, tol=0.2, append_dim="lon")
    after = xr.open_zarr(store)
    assert after.sizes["lon"] == 10 and np.array_equal(after["T"].values, before)


def test_append_in_whole_chunks_keeps_the_bound_chunks_and_attrs(tmp_path):
    ds, store = field(30), tmp_path / "a.zarr"
    ds.isel(time=slice(0, 10)).gcdtc.to_zarr(store, rel_tol=1e-2, chunks={"time": 5})
    tol = xr.open_zarr(store)["T"].attrs[ATTR_TOL]
    ds.isel(time=slice(10, 20)).gcdtc.to_zarr(store, rel_tol=1e-2, append_dim="time", chunks={"time": 10})
    ds.isel(time=slice(20, 23)).gcdtc.to_zarr(store, rel_tol=1e-2, append_dim="time")  # the last part may be partial
    out = xr.open_zarr(store)
    assert out["T"].attrs[ATTR_TOL] == tol, "the bound of the first write is the variable's bound"
    assert out["T"].encoding["chunks"] == (5, 12, 16), "the store's chunks win over chunks="
    np.testing.assert_array_equal(out.time.values, ds.time.values[:23])
    assert max_err_over_bound(ds, store) <= 1


def test_append_with_another_named_bound_is_refused(tmp_path):
    ds, store = field(20), tmp_path / "a.zarr"
    ds.isel(time=slice(0, 10)).gcdtc.to_zarr(store, tol={"T": 0.2}, chunks={"time": 5})
    with pytest.raises(ValueError, match=r"tol=0\.5 for 'T'.*already holds it with xdiffc_tol=0\.2"):
        ds.isel(time=slice(10, 20)).gcdtc.to_zarr(store, tol={"T": 0.5}, append_dim="time")


@pytest.mark.parametrize("bounds", [dict(tol=0.5), dict(rel_tol=1e-2), dict(pw_rel_tol=0.01)])
def test_append_with_another_bound_for_every_variable_is_refused(tmp_path, bounds):
    """A scalar bound (or a rel_tol other than the default) that differs from the store's is refused, not ignored;
    the store's own bound and the default rel_tol are accepted."""
    ds, store = field(20), tmp_path / "a.zarr"
    ds.isel(time=slice(0, 10)).gcdtc.to_zarr(store, tol=0.2, chunks={"time": 5})
    option = next(iter(bounds))
    with pytest.raises(ValueError, match=rf"{option}=.* for 'T'.*already holds it"):
        ds.isel(time=slice(10, 15)).gcdtc.to_zarr(store, append_dim="time", **bounds)
    ds.isel(time=slice(10, 15)).gcdtc.to_zarr(store, tol=0.2, append_dim="time")
    ds.isel(time=slice(15, 20)).gcdtc.to_zarr(store, append_dim="time")  # rel_tol at its default: the store's bounds
    assert xr.open_zarr(store).sizes["time"] == 20 and max_err_over_bound(ds, store) <= 1


def test_append_repeating_the_first_writes_bounds_is_accepted(tmp_path):
    """The same call for every part: a variable named in tol is not bound by rel_tol, which covers the others."""
    ds, store = field(20), tmp_path / "a.zarr"
    ds["U"] = ds["T"] * 0.1
    bounds = dict(tol={"T": 0.2}, rel_tol=1e-2, chunks={"time": 5})
    ds.isel(time=slice(0, 10)).gcdtc.to_zarr(store, **bounds)
    ds.isel(time=slice(10, 20)).gcdtc.to_zarr(store, append_dim="time", **bounds)
    out = xr.open_zarr(store)
    assert out.sizes["time"] == 20 and out["T"].attrs[ATTR_TOL] == 0.2 and out["U"].attrs["xdiffc_rel_tol"] == 1e-2


def test_append_of_times_already_in_the_store_is_refused(tmp_path):
    ds, store = field(20), tmp_path / "a.zarr"
    ds.isel(time=slice(0, 10)).gcdtc.to_zarr(store, tol=0.2, chunks={"time": 5})
    with pytest.raises(ValueError, match=r"along 'time': 5 of the 10 appended 'time' values are already in the store"):
        ds.isel(time=slice(5, 15)).gcdtc.to_zarr(store, tol=0.2, append_dim="time")
    assert xr.open_zarr(store).sizes["time"] == 10


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt("Ctrl-C")])
def test_a_failed_write_leaves_no_store_at_a_new_path(tmp_path, monkeypatch, error):
    """xarray creates the group before it writes the arrays: a write that fails (or is interrupted) must not leave
    a store that opens as an empty Dataset."""
    ds, store = field(10), tmp_path / "new.zarr"

    def broken(self, *args, **kwargs):
        zarr.open_group(args[0], mode="w")  # as xarray does first
        raise error

    monkeypatch.setattr(xr.Dataset, "to_zarr", broken)
    with pytest.raises(type(error), match=str(error)):
        ds.gcdtc.to_zarr(store, tol=0.2)
    assert not store.exists()


@pytest.mark.parametrize("store_type", [str, Path])
def test_a_failed_append_leaves_the_existing_store_as_it_was(tmp_path, monkeypatch, store_type):
    """Only a store that the failed write itself created is removed: an append that fails keeps the store there."""
    ds, store = field(20), store_type(tmp_path / "a.zarr")
    ds.isel(time=slice(0, 10)).gcdtc.to_zarr(store, tol=0.2, chunks={"time": 5})
    before = xr.open_zarr(store).load()

    def broken(self, *args, **kwargs):
        raise OSError("disk full")

    with monkeypatch.context() as m:
        m.setattr(xr.Dataset, "to_zarr", broken)
        with pytest.raises(OSError, match="disk full"):
            ds.isel(time=slice(10, 20)).gcdtc.to_zarr(store, tol=0.2, append_dim="time")
    assert xr.open_zarr(store).load().identical(before)


def test_fill_value_and_another_missing_value_are_written(tmp_path):
    """NCEP-style variables with _FillValue 1e36 and missing_value -999 (both read as NaN): xarray alone cannot
    write them; the store keeps the _FillValue, with a warning naming the variable, and every NaN comes back."""
    ds = field(10)
    ds["T"][0, 0, :3] = np.nan
    ds["T"].encoding.update(_FillValue=np.float32(1e36), missing_value=np.float32(-999.0))
    with pytest.warns(UserWarning, match=r"T \(_FillValue 1e\+36, missing_value -999\)"):
        ds.gcdtc.to_zarr(tmp_path / "f.zarr", tol=0.2)
    out = xr.open_zarr(tmp_path / "f.zarr")
    assert out["T"].encoding["_FillValue"] == np.float32(1e36) and "missing_value" not in out["T"].encoding
    assert np.array_equal(np.isnan(out["T"].values), np.isnan(ds["T"].values))
    assert np.nanmax(np.abs(out["T"].values - ds["T"].values)) <= out["T"].attrs[ATTR_TOL]


@pytest.mark.parametrize("region", [{"time": slice(3, 10)}, {"time": slice(5, 8)}, "auto"])
def test_region_covering_part_of_a_lossy_chunk_is_refused(tmp_path, region):
    ds, store = field(20), tmp_path / "r.zarr"
    ds.gcdtc.to_zarr(store, tol=0.2, chunks={"time": 5})
    part = ds.isel(time=slice(3, 10) if region == "auto" or region["time"].start == 3 else slice(5, 8))
    with pytest.raises(ValueError, match=r"region time=\d+:\d+ of 'T'.*only in part.*multiples of 5"):
        part.gcdtc.to_zarr(store, tol=0.2, region=region)


def test_region_of_whole_chunks_keeps_the_bound(tmp_path):
    ds, store = field(20), tmp_path / "r.zarr"
    ds.gcdtc.to_zarr(store, tol=0.2, chunks={"time": 5})
    shifted = ds.copy(deep=True)
    shifted["T"] = ds["T"] + 1
    shifted.isel(time=slice(5, 10)).drop_vars(["lat", "lon"]).gcdtc.to_zarr(store, tol=0.2,
                                                                            region={"time": slice(5, 10)})
    shifted.isel(time=slice(15, 20)).gcdtc.to_zarr(store, tol=0.2, region="auto")
    want = xr.concat([ds.isel(time=slice(0, 5)), shifted.isel(time=slice(5, 10)), ds.isel(time=slice(10, 15)),
                      shifted.isel(time=slice(15, 20))], "time")
    assert max_err_over_bound(want, store) <= 1


@settings(max_examples=12, deadline=None)
@given(chunk=st.integers(1, 7), parts=st.lists(st.integers(1, 9), min_size=2, max_size=4),
       dask=st.sampled_from([None, 1, 3]), bound=st.sampled_from([{"tol": 0.2}, {"rel_tol": 1e-3},
                                                                  {"pw_rel_tol": 1e-3}]))
@example(chunk=7, parts=[2, 5, 1], dask=None, bound={"tol": 0.2})  # a first write shorter than its chunk, then filling it
@example(chunk=4, parts=[3, 1, 6], dask=3, bound={"tol": 0.2})  # Dask chunks that straddle the store's
def test_any_sequence_of_appends_keeps_the_bound(tmp_path_factory, chunk, parts, dask, bound):
    """Property: whatever the sizes of the writes, the chunking of the store and of the appended Dask arrays,
    every value the store holds is within its bound (each append completes the partial last chunk, stored
    exactly, and encodes it once)."""
    ds, store = field(sum(parts), seed=chunk), tmp_path_factory.mktemp("seq") / "s.zarr"
    ds.isel(time=slice(0, parts[0])).gcdtc.to_zarr(store, chunks={"time": chunk}, **bound)
    start = parts[0]
    for n in parts[1:]:
        part = ds.isel(time=slice(start, start + n))
        (part if dask is None else part.chunk({"time": dask})).gcdtc.to_zarr(store, append_dim="time")
        start += n
    out = xr.open_zarr(store)
    assert out.sizes["time"] == sum(parts) and out["T"].encoding["chunks"][0] == chunk
    x = ds["T"].values.astype(np.float64)
    err = np.abs(out["T"].values.astype(np.float64) - x)
    assert np.all(err <= stored_bound(out["T"].attrs).bound_at(x))
    if sum(parts) % chunk:
        assert chunk_modes(store, "T")[-1] == "lossless", "a partial last chunk is stored exactly"


def test_rerunning_the_readme_cell_names_the_store(tmp_path):
    ds, store = field(10), tmp_path / "cam.zarr"
    ds.gcdtc.to_zarr(store, tol=0.2)
    with pytest.raises(FileExistsError, match=f"'{store}' already holds a Zarr store.*mode='w'"):
        ds.gcdtc.to_zarr(store, tol=0.2)
    ds.gcdtc.to_zarr(store, tol=0.1, mode="w")  # what the README cell does: it can run again
    assert xr.open_zarr(store)["T"].attrs[ATTR_TOL] == 0.1


def test_existing_in_memory_store_is_named_too():
    store = zarr.storage.MemoryStore()
    field(10).gcdtc.to_zarr(store, tol=0.2)
    with pytest.raises(FileExistsError, match="MemoryStore"):
        field(10).gcdtc.to_zarr(store, tol=0.2)


@pytest.mark.parametrize("chunks, match", [({"tim": 5}, r"dimension 'tim'.*lacks.*'time'"),
                                           ({"time": 0}, "positive"), ({"time": -2}, "positive"),
                                           ({"time": 2.5}, "positive"), ({"time": True}, "positive")])
def test_bad_chunks_raise_value_error(chunks, match):
    with pytest.raises(ValueError, match=match):
        field(10).gcdtc.compress(tol=0.2, chunks=chunks)


def test_minus_one_is_the_whole_dimension():
    out = field(10).chunk({"time": 2}).gcdtc.compress(tol=0.2, chunks={"time": -1, "lat": 4})
    assert out["T"].encoding["chunks"] == (10, 4, 16)


def test_a_fresh_store_adds_no_fill_value_or_calendar(tmp_path):
    ds = open_sample("trefht").isel(time=slice(0, 12))  # a netCDF file: no _FillValue, no calendar
    assert "calendar" not in ds.time.encoding and "_FillValue" not in ds.lat.encoding
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds.gcdtc.to_zarr(tmp_path / "f.zarr", rel_tol=1e-3)
        raw = xr.open_dataset(tmp_path / "f.zarr", engine="zarr", decode_cf=False)
        out = xr.open_zarr(tmp_path / "f.zarr")
    for name in ("time", "lat", "lon"):
        assert "_FillValue" not in raw[name].attrs, name
    assert "calendar" not in raw.time.attrs
    np.testing.assert_array_equal(out.time.values, ds.time.values)
    assert "_FillValue" in raw.TREFHT.attrs, "lossy variables keep NaN: a chunk never written reads as NaN"


@pytest.mark.parametrize("calendar", ["noleap", "standard", "360_day"])
def test_a_time_with_a_calendar_gains_no_fill_value(tmp_path, calendar):
    """xarray gave dates it encodes as floats ``_FillValue = NaN`` (in 14 of 23 real files): a time, and its bounds,
    has no missing value, and the store must not say it may."""
    ds = field(6)
    days = xr.Variable("time", np.arange(6) + 0.5, {"units": "days since 2300-01-01", "calendar": calendar})
    bounds = xr.Variable(("time", "nbnd"), np.stack([np.arange(6.0), np.arange(1.0, 7.0)], 1),
                         {"units": "days since 2300-01-01", "calendar": calendar})
    ds = xr.decode_cf(ds.assign_coords(time=days).assign(time_bnds=bounds),
                     decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))
    ds.time.attrs["bounds"] = "time_bnds"
    assert ds.time.dtype == object and "_FillValue" not in ds.time.encoding  # cftime dates, as the file gave them
    ds.gcdtc.to_zarr(tmp_path / "t.zarr", tol=0.5)
    raw = xr.open_dataset(tmp_path / "t.zarr", engine="zarr", decode_cf=False)
    for name in ("time", "time_bnds"):
        assert "_FillValue" not in raw[name].attrs, name
        assert raw[name].attrs["calendar"] == calendar
    out = xr.open_zarr(tmp_path / "t.zarr", decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))
    assert (out.time.values == ds.time.values).all() and (out.time_bnds.values == ds.time_bnds.values).all()


def test_compress_then_a_plain_to_zarr_emits_no_warning(tmp_path):
    """Zarr warns at every write of consolidated metadata into a v3 store, as xarray does by default: "may not be
    supported by other zarr implementations", which no reader of an xdiffc store uses. compress() silences it."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        field(8).gcdtc.compress(tol=0.5).to_zarr(tmp_path / "p.zarr")
        field(8).to_zarr(tmp_path / "plain.zarr")  # and so any later v3 write in this process
    assert xr.open_zarr(tmp_path / "p.zarr", consolidated=True).T.attrs[ATTR_TOL] == 0.5


def test_normal_writes_and_reads_emit_no_warning(tmp_path):
    ds = open_sample("camse_ts").isel(time=slice(0, 2))  # has |S8 string variables
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds.gcdtc.to_zarr(tmp_path / "q.zarr", rel_tol=1e-2)
        ds.gcdtc.roundtrip(rel_tol=1e-2)


@pytest.mark.parametrize("model", ["/no/such/model.pt", "no-such-model"])
def test_a_missing_model_is_the_same_error_everywhere(model):
    import xdiffc

    x = np.zeros((32, 32), np.float32)
    for call in (lambda: xdiffc.compress(x, tol=0.1, model=model),
                 lambda: field(4).gcdtc.compress(tol=0.1, model=model)):
        with pytest.raises(xdiffc.ModelNotFoundError, match=f"no model '{model}'"):
            call()


def test_a_damaged_chunk_names_its_variable(tmp_path):
    import xdiffc

    field(10).gcdtc.to_zarr(tmp_path / "d.zarr", tol=0.2, chunks={"time": 5})
    chunk = tmp_path / "d.zarr" / "T" / "c" / "1" / "0" / "0"
    blob = bytearray(chunk.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    chunk.write_bytes(bytes(blob))
    with pytest.raises(xdiffc.CorruptStreamError, match=r"variable 'T', chunk of shape \(5, 12, 16\)"):
        xr.open_zarr(tmp_path / "d.zarr")["T"].values


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_a_damaged_exact_chunk_raises_instead_of_decoding_to_wrong_values(tmp_path, zarr_format):
    """Every one-bit flip in a coordinate's chunk either raises on reading or changes nothing."""
    store = tmp_path / "e.zarr"
    field(10).gcdtc.to_zarr(store, tol=0.2, zarr_format=zarr_format)
    chunk = store / "lon" / ("c/0" if zarr_format == 3 else "0")
    good = chunk.read_bytes()
    want = zarr.open_array(store / "lon", mode="r")[:]
    raised = 0
    for i in range(len(good)):
        damaged = bytearray(good)
        damaged[i] ^= 0x01
        chunk.write_bytes(bytes(damaged))
        try:
            got = zarr.open_array(store / "lon", mode="r")[:]
        except Exception:  # numcodecs reports zstd damage as RuntimeError
            raised += 1
            continue
        np.testing.assert_array_equal(got, want, err_msg=f"a flip at byte {i} decoded silently to other values")
    assert raised > len(good) // 2


@settings(max_examples=8, deadline=None)
@given(chunk=st.integers(1, 8), parts=st.lists(st.integers(1, 9), min_size=2, max_size=5),
       bound=st.sampled_from([{"tol": 0.2}, {"rel_tol": 1e-3}, {"tol": 0.05}]))
@example(chunk=8, parts=[3, 1, 1, 1, 1], bound={"tol": 0.2})  # one step at a time into a chunk of 8: 2.68x before
def test_plain_xarray_appends_keep_the_bound(tmp_path_factory, chunk, parts, bound):
    """Property: a store written by the accessor, then grown by plain ``ds.to_zarr(append_dim="time")`` (as most
    xarray users do), holds every value within its bound, whatever the sizes of the writes and the chunking.
    The partial last chunk is stored exactly, so Zarr's decode-merge-encode of it adds no error."""
    ds, store = field(sum(parts), seed=chunk), tmp_path_factory.mktemp("plain") / "p.zarr"
    ds.isel(time=slice(0, parts[0])).gcdtc.to_zarr(store, chunks={"time": chunk}, **bound)
    start = parts[0]
    for n in parts[1:]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zarr's consolidated-metadata notice
            ds.isel(time=slice(start, start + n)).to_zarr(store, append_dim="time")
        start += n
    assert xr.open_zarr(store).sizes["time"] == sum(parts)
    assert max_err_over_bound(ds, store) <= 1


def cesm_like(nt: int) -> xr.Dataset:
    """``field`` with what a CESM history file has along time: bounds, and a per-step number as a coordinate."""
    ds = field(nt)
    start = ds.time.values
    ds["time_bnds"] = (("time", "nbnd"), np.stack([start, start + np.timedelta64(1, "D")], 1))
    ds.time.attrs["bounds"] = "time_bnds"
    ds.time.encoding["units"] = "days since 2000-01-01"
    return ds.assign_coords(date=("time", np.arange(nt, dtype="i4") + 20000101))


@pytest.mark.parametrize("date_chunk", [None, 12])
def test_verify_reads_a_store_grown_by_the_documented_accessor_append(tmp_path, date_chunk):
    """The README's append, then ``xdiffc verify``: exact variables along time are chunked as the data are, and
    verify reads a store whose coordinate along time is chunked otherwise (as one written before was)."""
    from xdiffc.conversion.verify import verify

    ds, store = cesm_like(20), tmp_path / "a.zarr"
    ds.to_netcdf(tmp_path / "in.nc")
    encoding = {} if date_chunk is None else {"encoding": {"date": {"chunks": (date_chunk,)}}}
    ds.isel(time=slice(0, 12)).gcdtc.to_zarr(store, tol=0.2, chunks={"time": 4}, **encoding)
    ds.isel(time=slice(12, None)).gcdtc.to_zarr(store, append_dim="time")
    out = xr.open_zarr(store)
    assert out["time_bnds"].encoding["chunks"] == (4, 2)
    assert out["date"].encoding["chunks"] == (date_chunk or 4,)
    if date_chunk is None:
        assert dict(out.chunks)["time"] == (4,) * 5, "one chunking along time for every variable"
    report = verify(tmp_path / "in.nc", store)
    assert report.ok, report.problems
    assert report.table.loc["T", "max_err_over_bound"] <= 1
