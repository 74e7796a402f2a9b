"""Ensembles: ``convert --member-dim`` stacks one member per argument along a new dimension."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xdiffc.conversion.run
from xdiffc.archive_climatology import Climatology
from xdiffc.cli import main
from xdiffc.conversion.members import MEMBER_ATTR, member_labels, resolve_members, scan_members
from xdiffc.conversion.progress import is_complete, partial_path
from xdiffc.conversion.run import convert
from xdiffc.conversion.verify import verify
from xdiffc.errors import MemberMismatchError
from xdiffc.xarray.variables import ATTR_TOL

TOL = 0.05
MEMBERS = 3


def member(i: int, months: int = 96) -> xr.Dataset:
    """A small monthly ensemble member: a shared seasonal cycle plus the member's own weather."""
    rng = np.random.default_rng(i)
    t = np.arange(months)
    lat, lon = np.linspace(-80, 80, 16), np.linspace(0, 350, 24)
    base = 280 - 30 * np.abs(np.sin(np.radians(lat)))[:, None] + np.cos(np.radians(lon))[None, :]
    cycle = 10 * np.sin(2 * np.pi * t / 12)[:, None, None] * np.sin(np.radians(lat))[None, :, None]
    weather = np.cumsum(rng.normal(0, 0.05, (months, 16, 24)), axis=2)
    times = pd.date_range("2000-01-01", periods=months, freq="MS")
    bounds = np.stack([times, times + pd.offsets.MonthBegin(1)], axis=1)
    ds = xr.Dataset(
        {"TS": (("time", "lat", "lon"), (base + cycle + weather).astype(np.float32), {"units": "K"}),
         "time_bnds": (("time", "nbnd"), bounds),
         "area": (("lat", "lon"), np.ones((16, 24), np.float32) * np.cos(np.radians(lat))[:, None].astype(np.float32))},
        coords={"time": times, "lat": lat, "lon": lon},
        attrs={"variant_label": f"r{i + 1}i1p1f1", "source": "synthetic", "creation_date": f"day {i}"})
    ds.time.attrs["bounds"] = "time_bnds"
    ds.time.encoding["units"] = "days since 2000-01-01"
    return ds


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory) -> list:
    """Member 0 as two files along time (a list: one argument), the others one file each."""
    folder = tmp_path_factory.mktemp("ensemble")
    out: list = []
    for i in range(MEMBERS):
        ds = member(i)
        if i == 0:
            parts = [folder / "m0.a.nc", folder / "m0.b.nc"]
            ds.isel(time=slice(0, 48)).to_netcdf(parts[0])
            ds.isel(time=slice(48, None)).to_netcdf(parts[1])
            out.append([str(p) for p in parts])
        else:
            ds.to_netcdf(folder / f"m{i}.nc")
            out.append(str(folder / f"m{i}.nc"))
    return out


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes of one thread, on loopback."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None) as c:
        yield c.scheduler_address


def test_an_ensemble_is_stacked_verified_resumed_and_shares_one_climatology(tmp_path, ensemble, cluster, monkeypatch):
    out = tmp_path / "e.zarr"
    options = dict(tol={"TS": TOL}, chunks={"time": 12}, scheduler=cluster, progress=False, member_dim="member")

    def interrupted(*args, **kwargs):
        raise RuntimeError("interrupted")

    with monkeypatch.context() as m:
        m.setattr(xdiffc.conversion.run, "_run_units", interrupted)
        with pytest.raises(RuntimeError, match="interrupted"):
            convert(ensemble, out, **options)
    assert partial_path(out).exists() and not out.exists()
    with pytest.raises(ValueError, match="was started from other inputs or options"):
        convert(ensemble[::-1], out, resume=True, **options)  # the members in another order
    summary = convert(ensemble, out, resume=True, **options)
    assert summary.units_done > 0 and is_complete(out)[0]
    report = verify(ensemble, out)
    assert report.ok, report.problems

    y = xr.open_zarr(out).load()
    x = xr.concat([member(i) for i in range(MEMBERS)], dim="member")
    labels = [f"r{i + 1}i1p1f1" for i in range(MEMBERS)]
    assert list(y.member.values) == labels and y.attrs[MEMBER_ATTR] == "member"
    assert y.TS.dims == ("time", "member", "lat", "lon") and y.TS.encoding["chunks"] == (12, 1, 16, 24)
    assert y.TS.attrs[ATTR_TOL] == TOL
    err = abs(y.TS - x.TS.transpose("time", "member", ...)).max()
    assert 0 < float(err) <= TOL
    # stored once: the grid's static field and the time bounds; the attributes members disagree on are dropped
    assert y.area.dims == ("lat", "lon") and y.area.equals(member(0).area)
    assert y.time_bnds.dims == ("time", "nbnd") and y.time_bnds.equals(member(0).time_bnds)
    assert y.attrs["source"] == "synthetic" and "variant_label" not in y.attrs and "creation_date" not in y.attrs

    config = json.loads((out / "TS" / "zarr.json").read_text())["codecs"][0]["configuration"]
    clim = Climatology.from_config(config["climatology"])
    assert clim.period == 12 and clim.spatial == (1, 16, 24)  # one reference for every member's chunks
    shared = x.TS.groupby("time.month").mean(["time", "member"]).values[:, None]
    assert float(np.abs(clim.values - shared).max()) <= TOL  # the means over all members (coded at TOL / 4)


def test_the_command_line_stacks_members_and_verify_finds_the_member_dimension(tmp_path, ensemble, cluster, capsys):
    out = tmp_path / "c.zarr"
    files = [ensemble[1], ensemble[2]]
    assert main(["convert", *files, "-o", str(out), "--member-dim", "run", "--tol", f"TS={TOL}", "--scheduler",
                 cluster, "-q"]) == 0
    assert main(["verify", *files, str(out)]) == 0
    assert "OK" in capsys.readouterr().out
    y = xr.open_zarr(out)
    assert y.TS.dims == ("time", "run", "lat", "lon") and list(y.run.values) == ["r2i1p1f1", "r3i1p1f1"]


def write(ds: xr.Dataset, path: Path) -> str:
    ds.to_netcdf(path)
    return str(path)


@pytest.mark.parametrize("change, says", [
    (lambda ds: ds.assign_coords(time=pd.date_range("2001-01-01", periods=96, freq="MS")),
     "times differ from step 0 on (2000-01-01"),
    (lambda ds: ds.isel(time=slice(0, 36)), "'TS' has sizes {'time': 96"),
    (lambda ds: ds.drop_vars("area"), "variables ['area'] are only in the first, [] only in the second"),
    (lambda ds: ds.assign(TS=ds.TS.astype(np.float64)), "'TS' has dtype float32 and float64"),
    (lambda ds: ds.assign_coords(lat=ds.lat + 1), "coordinate 'lat' differs"),
    (lambda ds: ds.assign(area=ds.area * 2), "'area', which is stored once for all members, differs"),
])
def test_members_that_differ_are_refused_naming_both_files_and_the_difference(tmp_path, change, says):
    a, b = write(member(0), tmp_path / "a.nc"), write(change(member(1)), tmp_path / "b.nc")
    with pytest.raises(MemberMismatchError) as err:
        convert([a, b], tmp_path / "o.zarr", member_dim="member")
    message = str(err.value)
    assert says in message and a in message and b in message and "'r1i1p1f1'" in message
    assert "quote a glob" in message  # every member one file: perhaps a shell expanded a glob
    assert not (tmp_path / "o.zarr").exists() and not partial_path(tmp_path / "o.zarr").exists()


def test_members_in_other_calendars_are_refused(tmp_path):
    a, b = member(0), member(1)
    a.time.encoding["calendar"], b.time.encoding["calendar"] = "standard", "proleptic_gregorian"
    files = [write(a, tmp_path / "a.nc"), write(b, tmp_path / "b.nc")]
    with pytest.raises(MemberMismatchError, match="calendars 'standard' and 'proleptic_gregorian'"):
        scan_members(*resolve_members(files), "auto", "member")


def test_bad_member_arguments(tmp_path):
    a, b = write(member(0), tmp_path / "a.nc"), write(member(1), tmp_path / "b.nc")
    with pytest.raises(ValueError, match="already have a dimension or variable named 'lat'"):
        scan_members(*resolve_members([a, b]), "auto", "lat")
    with pytest.raises(ValueError, match=r"is named by member 0 and by member 1"):
        resolve_members([[a, b], b])
    with pytest.raises(FileNotFoundError, match="the glob matches nothing"):
        resolve_members([a, str(tmp_path / "none*.nc")])
    with pytest.raises(ValueError, match="must be a dimension name"):
        scan_members(*resolve_members([a, b]), "auto", "")


def test_member_labels_come_from_attributes_else_file_names_else_folders_else_indexes():
    ds = [xr.Dataset(attrs={"realization_index": i, "case": "same"}) for i in (3, 1)]
    assert member_labels(ds, [["/x/a.nc"], ["/x/b.nc"]]) == [3, 1]
    plain = [xr.Dataset(), xr.Dataset()]
    assert member_labels(plain, [["/x/tas_r1.1850.nc", "/x/tas_r1.1900.nc"], ["/x/tas_r2.nc"]]) == ["tas_r1", "tas_r2"]
    assert member_labels(plain, [["/r1/tas.nc"], ["/r2/tas.nc"]]) == ["r1", "r2"]
    assert member_labels(plain, [["/r/tas.nc"], ["/s/r/tas.nc"]]) == [0, 1]
