"""ds.gcdtc: every embedded sample through to_zarr/open_zarr, CF metadata, per-variable bounds, Dask, errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cftime
import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr
from xarray.coding.times import _unpack_netcdf_time_units

import xdiffc
from xdiffc.xarray.variables import ATTR_REL_TOL, ATTR_TOL, exact_by_default, never_lossy
from xdiffc.codec import GCDTCCodec
from xdiffc.datasets import SAMPLES, open_sample
from xdiffc.zarr_codec import GCDTCZarrCodec

from test_codec import OTHER_MODEL, claim_model

pytestmark = pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning")


def special(a: np.ndarray) -> np.ndarray:
    return ~np.isfinite(a) | (np.abs(a) >= 1e30)


def time_units(units: str) -> tuple[str, pd.Timestamp]:
    unit, ref = _unpack_netcdf_time_units(units)
    return unit, pd.Timestamp(ref)


def assert_attrs_equal(got: dict, want: dict, what: str) -> None:
    assert set(got) == set(want), what
    for key, value in want.items():
        assert np.array_equal(np.asarray(got[key]), np.asarray(value)), f"{what}: attribute {key!r}"


def check_round_trip(ds: xr.Dataset, out: xr.Dataset) -> list:
    """Metadata equal, exact variables exact, lossy variables within their bound; returns the lossy names."""
    assert_attrs_equal(out.attrs, ds.attrs, "global attributes")
    assert set(out.coords) == set(ds.coords) and set(out.data_vars) == set(ds.data_vars)
    lossy = []
    for name, x in ds.variables.items():
        y = out[name].variable
        assert y.dims == x.dims and y.dtype == x.dtype, name
        assert_attrs_equal({k: v for k, v in y.attrs.items() if not k.startswith("xdiffc_")}, x.attrs, name)
        for key in ("_FillValue", "missing_value", "calendar"):
            if key in x.encoding:
                assert y.encoding[key] == x.encoding[key] or np.isnan(x.encoding[key]) and np.isnan(y.encoding[key])
        if "units" in x.encoding:
            assert time_units(y.encoding["units"]) == time_units(x.encoding["units"]), name
        xv, yv = x.values, y.values
        if ATTR_TOL not in y.attrs:
            assert np.array_equal(xv, yv, equal_nan=xv.dtype.kind == "f"), f"{name} must be exact"
            continue
        lossy.append(name)
        assert name not in ds.coords
        bad = special(xv)
        assert np.array_equal(special(yv), bad), f"{name}: NaN/fill moved"
        assert np.array_equal(yv[bad].tobytes(), xv[bad].tobytes()) or np.isnan(xv[bad]).all()
        err = np.abs(yv[~bad].astype(np.float64) - xv[~bad])
        assert err.size == 0 or err.max() <= y.attrs[ATTR_TOL], name
    return lossy


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_sample_round_trips_through_zarr(name, tmp_path):
    ds = open_sample(name)
    store = ds.gcdtc.to_zarr(tmp_path / "s.zarr", rel_tol=1e-3)
    assert store == tmp_path / "s.zarr" and (tmp_path / "s.zarr" / "zarr.json").exists()
    out = xr.open_zarr(store)
    lossy = check_round_trip(ds, out)
    assert lossy and all(out[n].encoding["serializer"].tol == out[n].attrs[ATTR_TOL] for n in lossy)
    for n in lossy:
        x = ds[n].values[~special(ds[n].values)]
        if x.size:
            assert out[n].attrs[ATTR_TOL] == pytest.approx(1e-3 * (float(x.max()) - float(x.min())))
            assert out[n].attrs[ATTR_REL_TOL] == 1e-3


def test_cf_detection_on_e3sm_columns():
    ds = open_sample("camse_ts")
    fixed = never_lossy(ds)
    assert {"lat", "lon", "time", "time_bnds", "hyam", "hybi", "P0", "cosp_ht_bnds", "date", "date_written"} <= fixed
    assert "TS" not in fixed and "area" in exact_by_default(ds) and "TS" not in exact_by_default(ds)
    out = ds.gcdtc.compress()
    assert ATTR_TOL in out.TS.attrs and ATTR_TOL not in out.area.attrs and ATTR_TOL not in out.lat.attrs
    assert ATTR_TOL in ds.gcdtc.compress(tol={"area": 1.0}).area.attrs  # a static field can be named


def test_weights_and_per_step_series_stay_exact_without_cf_time():
    """A time without units or ``axis`` (NCEP's climatology file) still marks ``gw(lat)`` as grid metadata, and a
    series along time alone (``co2vmr(time)``, one number a step) is kept exact too, unless a bound names it."""
    ds = open_sample("trefht").isel(time=slice(0, 6))
    ds = ds.assign_coords(time=np.arange(6.0))  # plain numbers, no units: cf-xarray finds no T axis
    ds["gw"] = ("lat", np.cos(np.deg2rad(ds.lat.values)).astype(np.float64))
    ds["co2vmr"] = ("time", np.linspace(3.6e-4, 3.7e-4, 6))
    assert not ds.cf.axes.get("T") and {"gw", "co2vmr"} <= exact_by_default(ds)
    out = ds.gcdtc.compress()
    assert ATTR_TOL in out.TREFHT.attrs and ATTR_TOL not in out.gw.attrs and ATTR_TOL not in out.co2vmr.attrs
    assert ATTR_TOL in ds.gcdtc.compress(tol={"co2vmr": 1e-6}).co2vmr.attrs


def test_naming_time_in_a_bound_says_it_is_never_lossy():
    ds = open_sample("trefht").isel(time=slice(0, 4))
    with pytest.raises(ValueError, match="'time', which is a coordinate, bound, cell measure or time: never lossy"):
        ds.gcdtc.compress(tol={"time": 1.0})


def test_fill_values_and_nan_come_back_exactly(tmp_path):
    ds = open_sample("tos")
    land = np.isnan(ds.tos.values)
    assert land.any() and ds.tos.encoding["_FillValue"] == np.float32(1e20)
    ds.gcdtc.to_zarr(tmp_path / "t.zarr", tol=0.01)
    raw = xr.open_zarr(tmp_path / "t.zarr", mask_and_scale=False).tos.values
    assert np.array_equal(raw == np.float32(1e20), land)  # stored as the fill value, bit for bit
    assert np.array_equal(np.isnan(xr.open_zarr(tmp_path / "t.zarr").tos.values), land)


def test_compress_keeps_values_and_sets_encoding():
    ds = open_sample("tos")
    out = ds.gcdtc.compress(tol={"tos": 0.05}, rel_tol=None, chunks={"nlat": 100})
    assert out.tos.values is ds.tos.values or np.array_equal(out.tos.values, ds.tos.values, equal_nan=True)
    assert out.tos.attrs == {**ds.tos.attrs, ATTR_TOL: 0.05} and ds.tos.attrs.get(ATTR_TOL) is None
    enc = out.tos.encoding
    assert isinstance(enc["serializer"], GCDTCZarrCodec) and enc["compressors"] is None
    assert enc["serializer"].fill_values == (float(np.float32(1e20)),) and enc["chunks"] == (1, 100, 320)
    assert "dtype" not in enc and enc["_FillValue"] == np.float32(1e20)
    assert out.lat.encoding == ds.lat.encoding and ATTR_TOL not in out.lat.attrs


def test_packed_input_is_unpacked_and_bounded_in_physical_units(tmp_path):
    rng = np.random.default_rng(1)
    t = 280 + rng.standard_normal((6, 30, 40)).cumsum(1)
    t[0, :3, :3] = np.nan
    ds = xr.Dataset({"T": (("time", "y", "x"), t, {"units": "K"})})
    enc = {"T": {"dtype": "int16", "scale_factor": 0.01, "add_offset": 280.0, "_FillValue": -32767}}
    ds.to_netcdf(tmp_path / "p.nc", encoding=enc)
    packed = xr.load_dataset(tmp_path / "p.nc")
    assert packed.T.dtype.kind == "f" and packed.T.encoding["scale_factor"] == 0.01
    ds_out = packed.gcdtc.compress(tol=0.002)
    assert not {"scale_factor", "add_offset", "dtype"} & set(ds_out.T.encoding)
    ds_out.to_zarr(tmp_path / "p.zarr")
    out = xr.open_zarr(tmp_path / "p.zarr")
    assert out.T.dtype == packed.T.dtype and "scale_factor" not in out.T.encoding
    check_round_trip(packed, out)


@pytest.mark.parametrize("calendar", ["noleap", "360_day", "standard"])
def test_time_encodings_survive(calendar, tmp_path):
    times = cftime.num2date(np.arange(0, 48, 12.0), "hours since 2001-02-03 04:00:00", calendar)
    ds = xr.Dataset({"T": (("time", "x"), np.random.default_rng(0).random((4, 50)).astype("f4"))},
                    coords={"time": times})
    ds.time.encoding.update(units="hours since 2001-02-03 04:00:00", calendar=calendar)
    ds.to_netcdf(tmp_path / "t.nc")
    coder = xr.coders.CFDatetimeCoder(use_cftime=calendar != "standard")
    ds = xr.load_dataset(tmp_path / "t.nc", decode_times=coder)
    ds.gcdtc.to_zarr(tmp_path / "t.zarr", tol=0.01)
    out = xr.open_zarr(tmp_path / "t.zarr", decode_times=coder)
    assert out.time.encoding["calendar"] == calendar
    check_round_trip(ds, out)


def test_opens_in_a_process_that_imports_only_xarray(tmp_path):
    ds = open_sample("trefht").isel(time=slice(0, 12))
    ds.gcdtc.to_zarr(tmp_path / "a.zarr", rel_tol=1e-2)
    code = ("import sys, xarray as xr\n"
            f"ds = xr.open_zarr({str(tmp_path / 'a.zarr')!r})\n"
            "sys.stdout.buffer.write(ds.TREFHT.values.tobytes())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout
    y = np.frombuffer(out, np.float32).reshape(ds.TREFHT.shape)
    assert np.array_equal(y, xr.open_zarr(tmp_path / "a.zarr").TREFHT.values)
    tol = xr.open_zarr(tmp_path / "a.zarr").TREFHT.attrs[ATTR_TOL]
    assert 0 < np.abs(y.astype(np.float64) - ds.TREFHT.values).max() <= tol


def test_zarr_format_2(tmp_path):
    ds = open_sample("tos")
    ds.gcdtc.to_zarr(tmp_path / "v2.zarr", tol=0.02, zarr_format=2)
    assert (tmp_path / "v2.zarr" / ".zmetadata").exists()
    out = xr.open_zarr(tmp_path / "v2.zarr")
    assert isinstance(out.tos.encoding["compressors"][0], GCDTCCodec)
    check_round_trip(ds, out)


def test_dask_compute_false_then_compute_with_rechunking_and_no_read_modify_write(tmp_path, monkeypatch):
    ds = open_sample("trefht").isel(time=slice(0, 40)).chunk({"time": 7})
    decoded = []
    real = GCDTCCodec.decode_chunk
    monkeypatch.setattr(GCDTCCodec, "decode_chunk", lambda self, *a: decoded.append(1) or real(self, *a))
    assert ds.gcdtc.compress(chunks={"time": 10}).TREFHT.chunks[0] == (10, 10, 10, 10)
    delayed = ds.gcdtc.to_zarr(tmp_path / "d.zarr", chunks={"time": 10}, compute=False)
    assert not (tmp_path / "d.zarr" / "TREFHT" / "c").exists()
    delayed.compute()
    assert decoded == []  # every chunk was written whole: nothing decoded and re-encoded
    out = xr.open_zarr(tmp_path / "d.zarr")
    assert out.TREFHT.encoding["chunks"] == (10, 64, 128)
    check_round_trip(ds.compute(), out)


def test_per_variable_bounds(tmp_path):
    ds = open_sample("trefht").isel(time=slice(0, 10))
    ds["PS"] = (ds.TREFHT * 350).assign_attrs(units="Pa")
    out = ds.gcdtc.roundtrip(tol={"PS": 50.0}, rel_tol=1e-3)
    assert out.PS.attrs[ATTR_TOL] == 50.0 and ATTR_REL_TOL not in out.PS.attrs
    span = float(ds.TREFHT.max() - ds.TREFHT.min())
    assert out.TREFHT.attrs[ATTR_TOL] == pytest.approx(1e-3 * span) and out.TREFHT.attrs[ATTR_REL_TOL] == 1e-3
    check_round_trip(ds, out)
    only = ds.gcdtc.compress(tol={"PS": 50.0}, rel_tol=None)
    assert ATTR_TOL not in only.TREFHT.attrs and "serializer" not in only.TREFHT.encoding


def test_unknown_name_in_tol_lists_the_variables():
    ds = open_sample("trefht")
    with pytest.raises(ValueError, match=r"'T'.*TREFHT"):
        ds.gcdtc.compress(tol={"T": 0.1})
    with pytest.raises(ValueError, match="never lossy"):
        ds.gcdtc.compress(tol={"lat": 0.1})
    with pytest.raises(ValueError, match="excluded"):
        ds.gcdtc.compress(tol={"TREFHT": 0.1}, exclude=["TREFHT"])
    with pytest.raises(ValueError, match="encoding= names lossy variables"):
        ds.gcdtc.to_zarr(zarr.storage.MemoryStore(), encoding={"TREFHT": {"chunks": (1, 64, 128)}})


@pytest.mark.parametrize("bad", [dict(tol=-1.0), dict(tol=float("nan")), dict(tol={"TREFHT": float("inf")}),
                                 dict(rel_tol=-1e-3), dict(tol=0.1, model="no-such-model")])
def test_bad_bounds_raise_value_error(bad):
    with pytest.raises(ValueError):
        open_sample("trefht").gcdtc.compress(**bad)


def test_unsupported_dtypes(tmp_path):
    ds = open_sample("trefht").isel(time=slice(0, 4))
    ds["H"] = ds.TREFHT.astype(np.float16)
    ds["N"] = (ds.TREFHT * 10).astype(np.int32)
    with pytest.raises(TypeError, match="'N'.*int32"):
        ds.gcdtc.compress(tol={"N": 1.0})
    with pytest.raises(TypeError, match="'H'.*float16"):
        ds.gcdtc.compress(tol={"H": 1.0})
    with pytest.warns(UserWarning, match="'H'.*float16.*losslessly"):
        ds.gcdtc.to_zarr(tmp_path / "h.zarr")
    out = xr.open_zarr(tmp_path / "h.zarr")
    assert ATTR_TOL in out.TREFHT.attrs and ATTR_TOL not in out.H.attrs and ATTR_TOL not in out.N.attrs
    check_round_trip(ds, out)


def test_store_written_with_another_model_raises_on_read(tmp_path):
    ds = open_sample("trefht").isel(time=slice(0, 4))
    ds.gcdtc.to_zarr(tmp_path / "m.zarr", tol=0.1)
    chunk = [p for p in (tmp_path / "m.zarr" / "TREFHT" / "c").rglob("*") if p.is_file()][0]
    chunk.write_bytes(claim_model(chunk.read_bytes(), *OTHER_MODEL))
    with pytest.raises(xdiffc.ModelMismatchError, match=f"{OTHER_MODEL[0]}.*{OTHER_MODEL[1]}"):
        xr.open_zarr(tmp_path / "m.zarr").TREFHT.values


def test_error_report_measures_and_catches_violations():
    ds = open_sample("tos")
    out = ds.gcdtc.roundtrip(tol=0.05)
    report = ds.gcdtc.error_report(out)
    assert list(report.index) == ["tos"]
    row = report.loc["tos"]
    assert 0.5 < row.max_err_over_bound <= 1 and row.specials_moved == 0 and row.tol == 0.05
    assert 0 < row.nrmse < 0.05 / float(ds.tos.max() - ds.tos.min()) and row.ratio > 4
    stored = zarr.open_group(out.encoding["source"])["tos"].nbytes_stored()
    assert row.ratio == pytest.approx(ds.tos.nbytes / stored)
    bad = out.copy(deep=True)
    bad.encoding = {}
    assert np.isnan(bad.tos[0, 0, 0]) and np.isfinite(bad.tos[0, 200, 100])
    bad.tos[0, 200, 100] += 0.2
    bad.tos[0, 0, 0] = 1.0
    row = ds.gcdtc.error_report(bad).loc["tos"]
    assert row.max_err_over_bound == pytest.approx(0.2 / 0.05, rel=0.3) and row.specials_moved == 1
    assert np.isnan(row.ratio)


def test_example_script_ends_with_the_error_report(tmp_path):
    script = Path(__file__).parents[1] / "examples" / "compress_dataset.py"
    out = subprocess.run([sys.executable, "-W", "ignore", str(script), str(tmp_path / "e.zarr")],
                         capture_output=True, text=True, check=True).stdout
    header, row = out.strip().splitlines()[-2:]
    assert header.split() == ["tol", "max_abs_err", "max_err_over_bound", "nrmse", "specials_moved", "ratio"]
    assert row.split()[0] == "tos" and float(row.split()[3]) <= 1 and row.split()[5] == "0"


def test_native_grid_is_laid_out_on_cube_faces_and_keeps_ncol(tmp_path):
    ds = open_sample("camse_ts").isel(time=slice(0, 4))
    store = ds.gcdtc.to_zarr(tmp_path / "cube.zarr", rel_tol=1e-3)
    code = ("import sys, xarray as xr\n"  # a reader that only has xarray: the layout travels with the codec
            f"ds = xr.open_zarr({str(store)!r})\n"
            "sys.stdout.buffer.write(ds.TS.values.tobytes())\n")
    raw = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout
    y = np.frombuffer(raw, np.float32).reshape(ds.TS.shape)
    out = xr.open_zarr(store)
    assert out.TS.dims == ("time", "ncol") and out.TS.attrs["xdiffc_layout"] == "cubed-sphere"
    assert out.TS.encoding["serializer"].numcodec.layout["shape"] == [180, 271]
    assert np.abs(y.astype(np.float64) - ds.TS.values).max() <= out.TS.attrs[ATTR_TOL]
    line = ds.gcdtc.roundtrip(rel_tol=1e-3, layout="none")
    ratios = ds.gcdtc.error_report(out)["ratio"]["TS"], ds.gcdtc.error_report(line)["ratio"]["TS"]
    assert ratios[0] > 1.15 * ratios[1]  # neighbours on the faces pay


def test_a_variable_keeps_the_file_order_where_it_codes_smaller(tmp_path):
    """Smooth along the column index, rough on the sphere: "auto" keeps the line, and an append keeps the
    store's codec without weighing the layout again; a named layout is obeyed."""
    k = np.arange(open_sample("camse_ts").sizes["ncol"])

    def steps(start: int) -> xr.Dataset:
        ds = open_sample("camse_ts").isel(time=slice(start, start + 4))
        t = np.arange(start, start + 4)[:, None]
        return ds.assign(TS=ds.TS.copy(data=(280 + 10 * np.sin(k / 40.0) + 0.1 * t).astype(np.float32)))

    ds = steps(0)
    auto = ds.gcdtc.to_zarr(tmp_path / "auto.zarr", rel_tol=1e-3, climatology=False)
    forced = ds.gcdtc.to_zarr(tmp_path / "cube.zarr", rel_tol=1e-3, layout="cubed-sphere", climatology=False)
    a, f = xr.open_zarr(auto), xr.open_zarr(forced)
    assert a.TS.encoding["serializer"].numcodec.layout is None and "xdiffc_layout" not in a.TS.attrs
    assert f.TS.attrs["xdiffc_layout"] == "cubed-sphere"
    sizes = ds.gcdtc.error_report(a)["ratio"]["TS"], ds.gcdtc.error_report(f)["ratio"]["TS"]
    assert sizes[0] > sizes[1]
    tol = a.TS.attrs[ATTR_TOL]
    assert np.abs(a.TS.values.astype(np.float64) - ds.TS.values).max() <= tol
    later = steps(4)
    later.gcdtc.to_zarr(auto, append_dim="time", climatology=False)
    both = xr.open_zarr(auto)
    assert both.sizes["time"] == 8 and "xdiffc_layout" not in both.TS.attrs
    assert both.TS.encoding["serializer"].numcodec.layout is None
    assert np.abs(both.TS.values[4:].astype(np.float64) - later.TS.values).max() <= tol


def test_altered_layout_configuration_is_refused():
    from xdiffc import grids

    ds = open_sample("e3sm_rad")
    lat, lon = grids.find_latlon(ds, "ncol")
    config = grids.detect(lat, lon).to_config(axis=1)
    config["permutation"] = grids.detect(lat, lon, layout="hilbert").to_config(axis=1)["permutation"]
    with pytest.raises(ValueError, match="layout"):
        GCDTCCodec(tol=0.1, layout=config)


def test_layout_option_is_checked():
    with pytest.raises(ValueError, match="layout must be"):
        open_sample("camse_ts").gcdtc.compress(rel_tol=1e-3, layout="hexagons")


def test_l2_mode_through_the_accessor(tmp_path):
    ds = open_sample("trefht").isel(time=slice(0, 24))
    out = xr.open_zarr(ds.gcdtc.to_zarr(tmp_path / "l2.zarr", nrmse=1e-3, mode="w"))  # mode: xarray's
    assert out.TREFHT.attrs["xdiffc_nrmse"] == 1e-3 and ATTR_TOL not in out.TREFHT.attrs
    assert out.TREFHT.encoding["serializer"].mode == "l2"
    report = ds.gcdtc.error_report(out)
    assert 0.3 < report.loc["TREFHT", "nrmse_over_bound"] <= 1.0
    assert report.loc["TREFHT", "ratio"] > 5
    with pytest.raises(ValueError, match="nrmse"):
        ds.gcdtc.compress(mode="l2")
    with pytest.raises(ValueError, match="nrmse"):
        ds.gcdtc.to_zarr(tmp_path / "both.zarr", tol=0.1, nrmse=1e-3)
