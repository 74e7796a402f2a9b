"""``xdiffc convert NEW... -o OUT --append``: new times continue a finished store within its bounds, and an interrupted
append never leaves a store that looks complete and is not; ``--resume`` on a finished store checks what it holds."""

from __future__ import annotations

import json
import os
import shutil
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

import xdiffc.conversion.run
from xdiffc.cli import main
from xdiffc.conversion.progress import COMPLETE_ATTR, PARTIAL_STORE, RECORD_ATTR, is_complete, partial_path
from xdiffc.conversion.run import convert
from xdiffc.conversion.verify import verify
from xdiffc.errors import AppendError, ResumeMismatchError
from xdiffc.xarray.variables import ATTR_TOL

#: Months in each file: a first file of a year and two months, then appends of one, ten and five months
MONTHS = (14, 1, 10, 5)


def monthly(n: int = sum(MONTHS), calendar: str = "noleap", units: str = "days since 2000-01-01") -> xr.Dataset:
    """Monthly (time, lat, lon) float32 with a seasonal cycle, time bounds and a per-step integer, as CESM writes."""
    rng = np.random.default_rng(0)
    starts = xr.date_range("2000-01-01", periods=n + 1, freq="MS", calendar=calendar, use_cftime=True)
    season = 10 * np.sin(2 * np.pi * np.arange(n) / 12)[:, None, None]
    data = 280 + season + rng.normal(0, 1, (n, 12, 20)).cumsum(2) * 0.3
    ds = xr.Dataset({"TS": (("time", "lat", "lon"), data.astype(np.float32), {"units": "K"}),
                     "time_bnds": (("time", "nbnd"), np.stack([starts[:-1], starts[1:]], 1)),
                     "date": ("time", np.arange(n, dtype="i4"))},
                    coords={"time": ("time", starts[:-1], {"bounds": "time_bnds"}),
                            "lat": np.linspace(-80, 80, 12), "lon": np.arange(20.0) * 18})
    ds.time.encoding.update(units=units, calendar=calendar)
    return ds


def files(ds: xr.Dataset, folder: Path, months=MONTHS) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    out, start = [], 0
    for i, n in enumerate(months):
        out.append(str(folder / f"h0.{i}.nc"))
        ds.isel(time=slice(start, start + n)).to_netcdf(out[-1])
        start += n
    return out


@pytest.fixture(scope="module")
def h0(tmp_path_factory) -> list[str]:
    return files(monthly(), tmp_path_factory.mktemp("h0"))


def store_files(store: Path) -> dict[Path, bytes]:
    return {p.relative_to(store): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}


def codec_config(store: Path, name: str) -> dict:
    return json.loads((store / name / "zarr.json").read_text())["codecs"]


def test_appends_continue_the_store_with_its_codec_within_the_bound(tmp_path, h0, cluster, monkeypatch):
    """A year and two months, then one month (into the partial chunk, stored exactly), ten (completing it) and five:
    after each the store is complete, verifies against every file so far, and keeps its codec, climatology and
    bound (the climatology is kept whether or not it pays: the mechanism is under test)."""
    from xdiffc.xarray import climatology_choice

    out, ds = tmp_path / "a.zarr", monthly()
    with monkeypatch.context() as m:
        m.setattr(climatology_choice, "pays_for_itself", lambda *args: True)
        convert(h0[:1], out, chunks={"time": 12}, scheduler=cluster, progress=False)
    codec, tol = codec_config(out, "TS"), xr.open_zarr(out).TS.attrs[ATTR_TOL]
    assert codec[0]["configuration"]["climatology"]["sha256"]
    for i in range(1, len(h0)):
        summary = convert(h0[i:i + 1], out, append=True, scheduler=cluster, progress=False, verify=True)
        assert summary.table.loc["TS", "max_err/bound"] <= 1
        assert is_complete(out) == (True, "") and not partial_path(out).exists()
        n = sum(MONTHS[:i + 1])
        report = verify(h0[:i + 1], out)
        assert report.ok, report.problems
        stored = xr.open_zarr(out)
        assert stored.sizes["time"] == n and stored.TS.attrs[ATTR_TOL] == tol
        assert codec_config(out, "TS") == codec, "the store's codec (bound, climatology) encodes the new chunks"
        for name in ("time", "time_bnds", "date"):
            assert stored[name].equals(ds[name].isel(time=slice(0, n))), name
    stored = xr.open_zarr(out).load()
    assert float(abs(stored.TS - ds.TS).max()) <= tol
    assert stored.TS.encoding["chunks"] == (12, 12, 20) and stored.time_bnds.encoding["chunks"] == (12, 2)
    record = json.loads(zarr.open_group(out, mode="r").attrs[RECORD_ATTR])
    assert [p for p, _ in record["inputs"]] == h0 and record["chunks"]["time"] == 12


def test_an_interrupted_append_leaves_the_store_as_it_was_and_resume_finishes_it(tmp_path, h0, cluster, monkeypatch):
    """Killed after one unit: OUT is the store before the append, untouched to the byte (its files are linked into
    the new store, never written through); --append alone refuses to start; --append --resume finishes, and the
    store is byte-identical to an uninterrupted append."""
    out, clean = tmp_path / "o.zarr", tmp_path / "clean.zarr"
    for store in (out, clean):
        convert(h0[:1], store, chunks={"time": 12}, scheduler=cluster, progress=False)
    before = store_files(out)
    real = xdiffc.conversion.run._run_units

    def one_unit_then_killed(client, spec, store, units, log, *args, **kwargs):
        log.done.update(range(1, len(units)))  # as if only unit 0 were run before the kill
        real(client, spec, store, units, log, *args, **kwargs)
        raise RuntimeError("killed")

    with monkeypatch.context() as m:
        m.setattr(xdiffc.conversion.run, "_run_units", one_unit_then_killed)
        with pytest.raises(RuntimeError, match="killed"):
            convert(h0[1:3], out, append=True, scheduler=cluster, progress=False)
    assert store_files(out) == before and is_complete(out)[0]
    assert xr.open_zarr(out).sizes["time"] == MONTHS[0], "a reader sees the store as it was, whole"
    work = partial_path(out) / PARTIAL_STORE
    assert zarr.open_group(work, mode="r", use_consolidated=False).attrs[COMPLETE_ATTR] is False
    with pytest.raises(AppendError, match=r"interrupted run .* left .*; pass --resume"):
        convert(h0[1:3], out, append=True, scheduler=cluster, progress=False)
    with pytest.raises(ResumeMismatchError, match=r"other inputs or options.*1 input\(s\) no longer given"):
        convert(h0[1:2], out, append=True, resume=True, scheduler=cluster, progress=False)
    resumed = convert(h0[1:3], out, append=True, resume=True, scheduler=cluster, progress=False)
    assert resumed.units_skipped == 1 and resumed.units_done > 0
    convert(h0[1:3], clean, append=True, scheduler=cluster, progress=False)
    assert store_files(out) == store_files(clean)
    again = convert(h0[1:3], out, append=True, resume=True, scheduler=cluster, progress=False)
    assert "already complete" in str(again)


def test_a_crash_between_the_final_renames_shows_no_store_and_resume_finishes(tmp_path, h0, cluster, monkeypatch):
    """The riskiest moment: OUT moved aside, the new store not yet in its place. A reader finds no store (never a
    store that looks complete and is not), and --append --resume puts the new one in place."""
    out = tmp_path / "o.zarr"
    convert(h0[:1], out, chunks={"time": 12}, scheduler=cluster, progress=False)
    real = os.rename

    def crash_on_the_second(source, target):
        if Path(source).name == PARTIAL_STORE:
            raise OSError("power cut")
        real(source, target)

    with monkeypatch.context() as m:
        m.setattr(xdiffc.conversion.run.os, "rename", crash_on_the_second)
        with pytest.raises(OSError, match="power cut"):
            convert(h0[1:2], out, append=True, scheduler=cluster, progress=False)
    assert not out.exists() and not is_complete(out)[0]
    with pytest.raises(FileNotFoundError):
        xr.open_zarr(out)
    convert(h0[1:2], out, append=True, resume=True, scheduler=cluster, progress=False)
    assert is_complete(out)[0] and not partial_path(out).exists()
    assert verify(h0[:2], out).ok


def test_appended_inputs_must_continue_the_store(tmp_path, h0, cluster):
    """Each refusal is an AppendError naming what differs, raised before any work: the store stays as it was."""
    out = tmp_path / "a.zarr"
    convert(h0[:1], out, chunks={"time": 12}, scheduler=cluster, progress=False)
    before = store_files(out)
    ds = monthly()
    later = ds.isel(time=slice(14, 16))
    at_noon = later.assign_coords(time=later.time + timedelta(hours=12))
    at_noon.time.encoding.update(units="days since 2000-01-01", calendar="noleap")
    cases = {
        r"its first time, 2000-01-01 00:00:00, is not after the store's last, 2001-02-01 00:00:00": h0[:1],
        r"the inputs hold \['SST'\], which the store does not; select": later.assign(SST=later.TS + 1),
        r"the inputs lack \['date'\]": later.drop_vars("date"),
        r"'(TS|lat)' has dims \{.*'lat': 6.*\} in the inputs": later.isel(lat=slice(0, 6)),
        r"'lat' differs from the store's": later.assign_coords(lat=later.lat + 1),
        r"'TS' is float64 in the inputs, float32 in the store": later.assign(TS=later.TS.astype("f8")),
        r"the time calendar is '360_day' in the inputs, 'noleap' in the store":
            monthly(calendar="360_day").isel(time=slice(14, 16)),
        r"the time units is 'days since 1850-01-01' in the inputs, 'days since 2000-01-01' in the store":
            monthly(units="days since 1850-01-01").isel(time=slice(14, 16)),
        r"the new times, in the store's units \('days since 2000-01-01'\), are not all whole numbers, and its "
        r"times are stored as int64": at_noon,
    }
    for i, (match, new) in enumerate(cases.items()):
        if isinstance(new, xr.Dataset):
            new.to_netcdf(tmp_path / f"new{i}.nc")
            new = [str(tmp_path / f"new{i}.nc")]
        with pytest.raises(AppendError, match=f"cannot append .* to '{out}': {match}"):
            convert(new, out, append=True, scheduler=cluster, progress=False)
    with pytest.raises(AppendError, match=r"rel_tol=0\.01, but .* was converted with rel_tol=0\.001; --append takes"):
        convert(h0[1:2], out, append=True, rel_tol=1e-2, scheduler=cluster, progress=False)
    with pytest.raises(AppendError, match=r"missing\.zarr': it does not exist; convert the first inputs without"):
        convert(h0[1:2], tmp_path / "missing.zarr", append=True, scheduler=cluster, progress=False)
    with pytest.raises(ValueError, match="give one of them"):
        convert(h0[1:2], out, append=True, overwrite=True, scheduler=cluster, progress=False)
    assert store_files(out) == before and not partial_path(out).exists()


def test_resume_on_a_finished_store_checks_its_inputs_and_options(tmp_path, h0, cluster, capsys):
    """--resume of the very conversion the store records has nothing to do (exit 0); of other inputs or options,
    or on a store that records none, it is refused with what differs (exit 2), instead of "already complete"."""
    out = tmp_path / "a.zarr"
    convert(h0[:2], out, chunks={"time": 12}, scheduler=cluster, progress=False)
    same = convert(h0[:2], out, chunks={"time": 12}, scheduler=cluster, progress=False, resume=True)
    assert "already complete" in str(same)
    with pytest.raises(ResumeMismatchError, match=r"finished conversion of other inputs or options.*rel_tol 0\.001 "
                                                  r"then, 0\.01 now.*--overwrite.*--append"):
        convert(h0[:2], out, chunks={"time": 12}, rel_tol=1e-2, scheduler=cluster, progress=False, resume=True)
    with pytest.raises(ResumeMismatchError, match=r"1 input\(s\) not among them before \(the first: '.*h0\.2\.nc'\)"):
        convert(h0[:3], out, chunks={"time": 12}, scheduler=cluster, progress=False, resume=True)
    assert main(["convert", *h0[:1], "-o", str(out), "--chunks", "time=12", "--resume", "--scheduler", cluster,
                 "-q"]) == 2
    assert "1 input(s) no longer given" in capsys.readouterr().err
    group = zarr.open_group(out, mode="r+", use_consolidated=False)
    del group.attrs[RECORD_ATTR]
    with pytest.raises(ResumeMismatchError, match="records no inputs or options.*xdiffc verify"):
        convert(h0[:2], out, chunks={"time": 12}, scheduler=cluster, progress=False, resume=True)


def test_append_from_the_command_line(tmp_path, h0, cluster, capsys):
    out = tmp_path / "a.zarr"
    assert main(["convert", h0[0], "-o", str(out), "--chunks", "time=12", "--scheduler", cluster, "-q"]) == 0
    assert main(["convert", h0[1], h0[2], "-o", str(out), "--append", "--scheduler", cluster, "-q"]) == 0
    assert main(["verify", *h0[:3], str(out)]) == 0
    capsys.readouterr()
    assert main(["convert", h0[2], "-o", str(out), "--append", "--scheduler", cluster, "-q"]) == 2
    assert "is not after the store's last" in capsys.readouterr().err
    shutil.rmtree(out)


def test_append_to_a_store_the_accessor_wrote_in_zarr_v2(tmp_path, h0, cluster):
    """A store written by ``ds.gcdtc.to_zarr`` (no record of a conversion; Zarr v2, whose consolidated metadata
    sit in a file of their own, left out of the new store until it is consolidated again) takes appends too."""
    out = tmp_path / "a.zarr"
    xr.open_dataset(h0[0]).gcdtc.to_zarr(out, chunks={"time": 12}, zarr_format=2)
    convert(h0[1:3], out, append=True, scheduler=cluster, progress=False, verify=True)
    assert zarr.open_group(out, mode="r").metadata.zarr_format == 2
    assert xr.open_zarr(out, consolidated=True).sizes["time"] == sum(MONTHS[:3])
    report = verify(h0[:3], out)
    assert report.ok, report.problems


def test_an_append_of_many_chunks_groups_them_from_its_first_new_step(tmp_path, cluster):
    """An append of many time chunks runs them several to a task (``progress.MIN_UNITS``), the first unit starting
    at the chunk that holds the first new step: the store's earlier chunks are not written again, the result is
    within the bound and verifies."""
    from xdiffc.conversion import progress

    ds = monthly(117)
    paths = files(ds, tmp_path / "h0", months=(17, 100))
    out = tmp_path / "a.zarr"
    convert(paths[:1], out, chunks={"time": 3}, scheduler=cluster, progress=False)
    before = {p: b for p, b in store_files(out).items() if p.parts[:2] == ("TS", "c")}  # TS/c/time/lat/lon
    summary = convert(paths[1:], out, append=True, scheduler=cluster, progress=False, verify=True)
    # chunks 5 (steps 15-17: the partial one) to 38 are planned: 34 time chunks, two to a unit, for TS and for the
    # per-step integer ``date`` (one time chunk a unit would make 68); units counted from step 0 would start at 12 and
    # write chunk 4 again, from its decoded values
    assert 34 // progress.MIN_UNITS == 2 and summary.units_done == 2 * 17
    units = progress.plan_units(zarr.open_group(str(out), mode="r"), ["TS"], "time", 17)
    assert [u.slices["time"] for u in units] == [slice(a, min(a + 6, 117)) for a in range(15, 117, 6)]
    after = store_files(out)
    untouched = [p for p in before if int(p.parts[2]) < 5]
    assert untouched and all(after[p] == before[p] for p in untouched)
    assert verify(paths, out).ok
    stored = xr.open_zarr(out).load()
    assert float(abs(stored.TS - ds.TS).max()) <= stored.TS.attrs[ATTR_TOL]


def test_an_append_lets_go_of_its_inputs(tmp_path, cluster):
    """After an append, neither the workers nor this process hold the appended file open: it can be rewritten in
    place (HDF5's file locking refuses while any process holds it open) and appended again, to the new values."""
    ds = monthly()
    paths = files(ds, tmp_path / "h0", MONTHS[:2])
    out = tmp_path / "a.zarr"
    convert(paths[:1], out, tol={"TS": 0.05}, scheduler=cluster, progress=False)
    convert(paths[1:], out, append=True, scheduler=cluster, progress=False)
    warmer = ds.assign(TS=(ds.TS + 5).assign_attrs(ds.TS.attrs))
    assert files(warmer, tmp_path / "h0", MONTHS[:2]) == paths  # both rewritten at the same paths
    shutil.rmtree(out)
    convert(paths[:1], out, tol={"TS": 0.05}, scheduler=cluster, progress=False)
    convert(paths[1:], out, append=True, scheduler=cluster, progress=False)
    y = xr.open_zarr(out).load()
    assert float(abs(y.TS - warmer.TS.isel(time=slice(0, sum(MONTHS[:2])))).max()) <= 0.05
