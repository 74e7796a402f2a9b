"""``xdiffc convert`` / ``xdiffc verify``: multi-file archives on dask.distributed, resume after SIGKILL, GPU resources."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import xarray as xr
import zarr

from xdiffc.xarray.variables import ATTR_TOL
from xdiffc.cli import main
from xdiffc.conversion.lock import LOCK_FILE
from xdiffc.conversion.progress import COMPLETE_ATTR, PARTIAL_STORE, RECORD_ATTR, Progress, is_complete, partial_path
from xdiffc.conversion.run import DELAY_ENV, IN_PROCESS_BYTES, convert, in_process
from xdiffc.conversion.verify import verify
from xdiffc.datasets import open_sample
from xdiffc.errors import OutputLockedError, TruncatedFileError

BIN = Path(sys.executable).parent
CHUNKS = {"time": 4, "lat": 32, "lon": 64}


def split(ds: xr.Dataset, folder: Path, parts: int, stem: str) -> list[Path]:
    """Write ``ds`` as ``parts`` netCDF files, split along time."""
    folder.mkdir(parents=True, exist_ok=True)
    step = -(-ds.sizes["time"] // parts)
    paths = [folder / f"{stem}.{i}.nc" for i in range(parts)]
    for i, path in enumerate(paths):
        ds.isel(time=slice(i * step, (i + 1) * step)).to_netcdf(path)
    return paths


@pytest.fixture(scope="module")
def trefht() -> xr.Dataset:
    return open_sample("trefht").isel(time=slice(0, 16))


@pytest.fixture(scope="module")
def archive(tmp_path_factory, trefht) -> list[Path]:
    return split(trefht, tmp_path_factory.mktemp("archive"), 3, "TREFHT")


def decoded(store) -> xr.Dataset:
    return xr.open_zarr(store).load()


def test_multifile_archive_converts_and_verifies(tmp_path, archive, trefht, cluster):
    out = tmp_path / "a.zarr"
    summary = convert([str(archive[0].parent / "TREFHT.*.nc")], out, rel_tol=1e-3, chunks=CHUNKS,
                      scheduler=cluster, verify=True, progress=False)
    assert summary.units_done == 4 and summary.units_skipped == 0
    row = summary.table.loc["TREFHT"]
    assert row["ratio"] > 2 and 0 < row["max_err/bound"] <= 1 and row["seconds"] > 0
    assert is_complete(out) == (True, "") and not partial_path(out).exists()
    assert "consolidated_metadata" in (out / "zarr.json").read_text()
    y = xr.open_zarr(out, consolidated=True).load()
    assert y.attrs.pop(COMPLETE_ATTR) is True
    record = json.loads(y.attrs.pop(RECORD_ATTR))  # what a --resume or --append checks against
    assert record["inputs"] == [[str(p), p.stat().st_size] for p in archive] and record["rel_tol"] == 1e-3
    assert record["chunks"] == CHUNKS and y.attrs == trefht.attrs
    for name in ("time", "lat", "lon"):
        assert y[name].equals(trefht[name]) and y[name].attrs == trefht[name].attrs
    tol = y.TREFHT.attrs.pop(ATTR_TOL)
    assert tol == pytest.approx(1e-3 * float(trefht.TREFHT.max() - trefht.TREFHT.min()))
    assert {k: v for k, v in y.TREFHT.attrs.items() if not k.startswith("xdiffc")} == trefht.TREFHT.attrs
    assert float(abs(y.TREFHT - trefht.TREFHT).max()) <= tol
    assert y.TREFHT.encoding["chunks"] == (4, 32, 64)
    report = verify([str(p) for p in archive], out)
    assert report.ok, report.problems
    assert report.table.loc["TREFHT", "max_err_over_bound"] <= 1
    assert main(["verify", *map(str, archive), str(out)]) == 0


def test_e3sm_history_files_keep_grid_time_and_metadata_exact(tmp_path, cluster):
    ds = open_sample("camse_ts").isel(ncol=slice(0, 3000))
    files = split(ds, tmp_path / "h0", 3, "cam.h0")
    out = tmp_path / "e.zarr"
    with warnings.catch_warnings(record=True) as caught:  # string variables, consolidated metadata: no warning
        warnings.simplefilter("always")
        summary = convert(files, out, tol={"TS": 0.05}, rel_tol=1e-4, scheduler=cluster, progress=False,
                          chunks={"time": 4, "ncol": 1500})
        report = verify(files, out)
    assert not [str(w.message) for w in caught]
    assert report.ok, report.problems
    assert "TS" in summary.table.index
    y = xr.open_zarr(out).load()
    assert y.TS.attrs[ATTR_TOL] == 0.05 and float(abs(y.TS - ds.TS).max()) <= 0.05
    for name in ("lat", "lon", "area", "time_bnds", "time_written", "hyam", "P0", "date"):
        assert y[name].equals(ds[name]), name


def start_convert(archive: list[Path], out: Path, chunks: str, *options: str, delay: float = 1.5,
                  stderr=subprocess.DEVNULL) -> subprocess.Popen:
    """``xdiffc convert`` in a subprocess (in its own process group) on one worker, each unit ``delay`` s long."""
    cmd = [str(BIN / "xdiffc"), "convert", *map(str, archive), "-o", str(out), "--chunks", chunks,
           "--workers", "1", "--threads-per-worker", "1", "-q", *options]
    return subprocess.Popen(cmd, env={**os.environ, DELAY_ENV: str(delay)}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=stderr, text=True, preexec_fn=_as_a_terminal_job)


def _as_a_terminal_job() -> None:
    """In the child before it runs: SIGINT handled by default and not blocked, as for a terminal's foreground job,
    whatever the test process inherited or set (a signal's disposition and mask pass through fork and exec)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def wait_for_units(proc: subprocess.Popen, out: Path, units: int) -> None:
    """Until the progress log of the conversion ``proc`` into ``out`` records ``units`` units; it must still run."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        log = Progress.load(partial_path(out))
        if log is not None and len(log.done) >= units:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the conversion ended before it could be interrupted"


def convert_and_kill(archive: list[Path], out: Path, chunks: str, *options: str, units: int = 2) -> set[int]:
    """Run ``xdiffc convert`` in a subprocess, SIGKILL it (driver and workers) once ``units`` units are logged;
    returns the units the progress log records. While it runs, a plain reader cannot open ``out``'s new data."""
    proc = start_convert(archive, out, chunks, *options)
    try:
        wait_for_units(proc, out, units)
        if "--overwrite" not in options:
            with pytest.raises(FileNotFoundError):  # mid-run
                xr.open_zarr(out)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its worker processes, like a crash
        proc.wait()
    return Progress.load(partial_path(out)).done


def chunk_mtimes(store: Path) -> dict[Path, int]:
    """The modification time of every chunk file of TREFHT, by its path inside the store."""
    return {p.relative_to(store): p.stat().st_mtime_ns for p in (store / "TREFHT" / "c").rglob("*") if p.is_file()}


def test_sigkill_then_resume_gives_the_same_store(tmp_path, archive, cluster):
    killed, clean = tmp_path / "killed.zarr", tmp_path / "clean.zarr"
    chunks = "time=2,lat=32,lon=64"  # 8 units: unit i is time chunk i
    done = convert_and_kill(archive, killed, chunks)
    assert 2 <= len(done) < 8
    # a plain reader finds no store, never one with NaN where chunks are missing; the partial folder is no store either
    assert not killed.exists()
    for path in (killed, partial_path(killed)):
        with pytest.raises(FileNotFoundError):
            xr.open_zarr(path)
    work = partial_path(killed) / PARTIAL_STORE
    assert xr.open_zarr(work, consolidated=False).attrs[COMPLETE_ATTR] is False
    report = verify(archive, killed)
    assert not report.ok and "incomplete" in report.problems[0] and "--resume" in report.problems[0]
    assert main(["verify", *map(str, archive), str(killed)]) == 1
    assert main(["convert", *map(str, archive), "-o", str(killed), "--chunks", chunks, "-q"]) == 2  # unfinished

    chunk_map = {k: int(v) for k, v in (item.split("=") for item in chunks.split(","))}
    before = chunk_mtimes(work)
    resumed = convert(archive, killed, chunks=chunk_map, scheduler=cluster, resume=True, progress=False)
    assert resumed.units_skipped == len(done) and resumed.units_done == 8 - len(done)
    # the work really done: the chunks of the units not logged are (re)written, the others are not touched
    after = chunk_mtimes(killed)
    rewritten = {int(p.parts[2]) for p, t in after.items() if before.get(p) != t}
    assert rewritten == set(range(8)) - done
    assert not partial_path(killed).exists() and is_complete(killed)[0]
    convert(archive, clean, chunks=chunk_map, scheduler=cluster, progress=False)
    a, b = decoded(killed), decoded(clean)
    assert a.TREFHT.values.tobytes() == b.TREFHT.values.tobytes() and a.identical(b)
    chunk_files = sorted(p.relative_to(clean) for p in (clean / "TREFHT" / "c").rglob("*") if p.is_file())
    assert chunk_files and all((killed / p).read_bytes() == (clean / p).read_bytes() for p in chunk_files)
    assert verify(archive, killed).ok
    again = convert(archive, killed, chunks=chunk_map, scheduler=cluster, resume=True, progress=False)
    assert again.units_done == 0 and "already complete" in str(again)

    # --overwrite leaves the finished store as it was until the new one is complete; --resume finishes the new one
    convert_and_kill(archive, killed, "time=4,lat=32,lon=64", "--overwrite", units=1)
    assert decoded(killed).identical(a) and is_complete(killed)[0] and partial_path(killed).exists()
    convert(archive, killed, chunks={"time": 4, "lat": 32, "lon": 64}, scheduler=cluster, resume=True, progress=False)
    assert xr.open_zarr(killed).TREFHT.encoding["chunks"] == (4, 32, 64) and not partial_path(killed).exists()
    assert verify(archive, killed).ok


def test_ctrl_c_stops_the_run_in_one_line_and_resume_finishes_it(tmp_path, archive, cluster):
    """A terminal's Ctrl-C sends SIGINT to its whole foreground group: the workers too, which printed a traceback
    each before the one line."""
    out = tmp_path / "o.zarr"
    proc = start_convert(archive, out, "time=2,lat=32,lon=64", stderr=subprocess.PIPE)  # 8 units
    try:
        wait_for_units(proc, out, 1)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert err.splitlines() == [f"xdiffc: interrupted; {out} is not written (the work so far is in {partial_path(out)}): "
                                f"rerun the same command with --resume to finish it"]
    summary = convert(archive, out, chunks={"time": 2, "lat": 32, "lon": 64}, scheduler=cluster, resume=True,
                      progress=False)  # the lock was given back
    assert summary.units_skipped >= 1 and summary.units_done + summary.units_skipped == 8 and verify(archive, out).ok


def test_every_file_and_folder_is_on_disk_before_the_final_rename(tmp_path, archive, cluster, monkeypatch):
    """fsync, as databases do: a crash just after the rename must not find a store whose chunks were lost."""
    events, real_fsync, real_rename = [], os.fsync, os.rename

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def rename(source, target):
        events.append(("rename", str(source), str(target)))
        real_rename(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    out = tmp_path / "o.zarr"
    convert(archive, out, chunks=CHUNKS, scheduler=cluster, progress=False)
    work = str(partial_path(out) / PARTIAL_STORE)
    final = events.index(("rename", work, str(out)))
    synced = {path for kind, path, *_ in events[:final] if kind == "fsync"}
    entries = {work + str(p)[len(str(out)):] for p in [out, *out.rglob("*")]}
    assert len(entries) > 10 and entries <= synced, sorted(entries - synced)[:5]
    assert ("fsync", str(tmp_path)) in events[final:]  # the rename itself


def test_a_second_conversion_into_the_same_output_is_refused_at_once(tmp_path, archive, cluster, capsys):
    """Two runs on one output destroyed each other: now the second fails at once, naming the first, which finishes."""
    out = tmp_path / "o.zarr"
    first = start_convert(archive, out, "time=4,lat=32,lon=64", delay=2)  # 4 units
    try:
        wait_for_units(first, out, 1)
        running = (rf"another conversion into {re.escape(repr(str(out)))} is running: pid {first.pid} on host "
                   rf"{re.escape(socket.gethostname())}, since \d{{4}}-\d\d-\d\dT[0-9:]+[+-][0-9:]+ \(its lock is ")
        for options in (dict(overwrite=True), dict(resume=True), {}):
            with pytest.raises(OutputLockedError, match=running):
                convert(archive, out, chunks=CHUNKS, scheduler=cluster, progress=False, **options)
        assert main(["convert", *map(str, archive), "-o", str(out), "--resume", "-q"]) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and f"is running: pid {first.pid}" in err
    finally:
        code = first.wait(timeout=300)
    assert code == 0 and is_complete(out)[0] and not partial_path(out).exists()
    assert verify(archive, out).ok


def test_a_lock_left_by_a_killed_run_is_taken_over_and_one_from_another_host_refused(tmp_path, archive, cluster,
                                                                                     monkeypatch, capsys):
    import xdiffc.conversion.run

    out = tmp_path / "o.zarr"
    with monkeypatch.context() as m:  # an interrupted run: the partial folder holds its work
        m.setattr(xdiffc.conversion.run, "_run_units", lambda *args: (_ for _ in ()).throw(RuntimeError("killed")))
        with pytest.raises(RuntimeError, match="killed"):
            convert(archive, out, chunks=CHUNKS, scheduler=cluster, progress=False)
    lock, host = partial_path(out) / LOCK_FILE, socket.gethostname()
    assert not lock.exists()  # released on the way out
    since = "2026-01-02T03:04:05+00:00"

    lock.write_text(json.dumps({"pid": 4242, "host": "elsewhere.example", "since": since}))
    with pytest.raises(OutputLockedError, match=rf"is locked by a conversion on another host: pid 4242 on host "
                                                rf"elsewhere.example, since {re.escape(since)}; .* If it does not, "
                                                rf"delete {re.escape(repr(str(lock)))} and rerun with --resume"):
        convert(archive, out, chunks=CHUNKS, scheduler=cluster, progress=False, resume=True)
    assert json.loads(lock.read_text())["host"] == "elsewhere.example"

    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:  # a live process named by a lock that nobody flocks (a filesystem without flock): still refused
        lock.write_text(json.dumps({"pid": alive.pid, "host": host, "since": since}))
        with pytest.raises(OutputLockedError, match=f"is running: pid {alive.pid} on host"):
            convert(archive, out, chunks=CHUNKS, scheduler=cluster, progress=False, resume=True)
    finally:
        alive.kill()
        alive.wait()

    lock.write_text(json.dumps({"pid": alive.pid, "host": host, "since": since}))  # its process is gone
    summary = convert(archive, out, chunks=CHUNKS, scheduler=cluster, progress=False, resume=True)
    assert (f"was left by a conversion that no longer runs (pid {alive.pid} on host {host}, since {since}); taking "
            f"it over") in capsys.readouterr().err
    assert summary.units_done == 4 and is_complete(out)[0] and not partial_path(out).exists()


def test_resume_redoes_a_unit_missing_below_the_highest_one_logged(tmp_path, archive, cluster, monkeypatch):
    """Units finish out of order on several workers, so a kill can leave unit 1 logged and unit 0 not: --resume
    must redo unit 0, not skip every unit below the highest one logged."""
    import xdiffc.conversion.run

    out, clean = tmp_path / "o.zarr", tmp_path / "clean.zarr"
    chunks = {"time": 8, "lat": 32, "lon": 64}  # 2 units: unit i is time chunk i
    real = xdiffc.conversion.run._run_units

    def unit_1_then_killed(client, spec, store, units, log, *args):
        log.done.add(0)  # not run, as if a worker still held it
        real(client, spec, store, units, log, *args)
        raise RuntimeError("killed")

    with monkeypatch.context() as m:
        m.setattr(xdiffc.conversion.run, "_run_units", unit_1_then_killed)
        with pytest.raises(RuntimeError, match="killed"):
            convert(archive, out, chunks=chunks, scheduler=cluster, progress=False)
    work = partial_path(out) / PARTIAL_STORE
    assert Progress.load(partial_path(out)).done == {1} and not (work / "TREFHT" / "c" / "0").exists()
    resumed = convert(archive, out, chunks=chunks, scheduler=cluster, resume=True, progress=False)
    assert resumed.units_done == 1 and resumed.units_skipped == 1
    convert(archive, clean, chunks=chunks, scheduler=cluster, progress=False)
    chunk_files = sorted(p.relative_to(clean) for p in (clean / "TREFHT" / "c").rglob("*") if p.is_file())
    assert {p.parts[2] for p in chunk_files} == {"0", "1"}
    assert all((out / p).read_bytes() == (clean / p).read_bytes() for p in chunk_files)
    assert decoded(out).identical(decoded(clean))


def test_a_failed_verification_puts_nothing_in_place_and_keeps_the_work(tmp_path, archive, cluster, monkeypatch):
    """The final rename happens only once verification has passed: the output stays absent, or with --overwrite
    the old store stays as it was, and the partial folder keeps every unit written."""
    import pandas as pd

    import xdiffc.conversion.summary
    from xdiffc.conversion.verify import VerifyReport
    from xdiffc.errors import VerificationError

    new, old = tmp_path / "new.zarr", tmp_path / "old.zarr"
    convert(archive, old, chunks={"time": 8}, scheduler=cluster, progress=False)
    before = {p.relative_to(old): p.read_bytes() for p in old.rglob("*") if p.is_file()}

    def failing(spec, store, *, require_complete, since=0):
        return VerifyReport(str(store), pd.DataFrame(), ["'TREFHT': max error 2 exceeds the bound 1 (made up)"])

    monkeypatch.setattr(xdiffc.conversion.summary, "verify_store", failing)
    for out, options in ((new, {}), (old, {"overwrite": True})):
        with pytest.raises(VerificationError, match=r"(?s)fails verification; it stays unfinished in .*\(made up\)"):
            convert(archive, out, chunks=CHUNKS, scheduler=cluster, verify=True, progress=False, **options)
        work = partial_path(out) / PARTIAL_STORE
        assert Progress.load(partial_path(out)).done == set(range(4))
        assert xr.open_zarr(work, consolidated=False).attrs[COMPLETE_ATTR] is False
        assert len(list((work / "TREFHT" / "c").rglob("*/*/*"))) == 16  # every chunk
    assert not new.exists()
    assert {p.relative_to(old): p.read_bytes() for p in old.rglob("*") if p.is_file()} == before
    assert is_complete(old)[0] and xr.open_zarr(old).TREFHT.encoding["chunks"][0] == 8


@pytest.fixture
def dask_cli_cluster(tmp_path):
    """A ``dask scheduler`` and two ``dask worker`` processes on loopback: one advertises GPU=1, one does not."""
    scheduler_file = tmp_path / "scheduler.json"
    common = ["--scheduler-file", str(scheduler_file)]
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--no-dashboard", *common], stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        worker = [str(BIN / "dask"), "worker", "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1", *common]
        procs.append(subprocess.Popen([*worker, "--name", "gpu", "--resources", "GPU=1"], stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen([*worker, "--name", "cpu"], stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(scheduler_file=str(scheduler_file), timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
            gpu = [a for a, w in client.scheduler_info()["workers"].items() if w["resources"].get("GPU")]
            yield client.scheduler.address, gpu
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


def test_existing_scheduler_and_gpu_resource_workers(tmp_path, archive, trefht, dask_cli_cluster):
    address, gpu_workers = dask_cli_cluster
    assert len(gpu_workers) == 1
    out = tmp_path / "gpu.zarr"
    summary = convert(archive, out, chunks=CHUNKS, scheduler=address, gpus=1, progress=False)
    assert set(summary.workers) == set(gpu_workers) and sum(summary.workers.values()) == 4
    # no CUDA here: the codec ran on the CPU and kept the bound
    y = decoded(out)
    assert float(abs(y.TREFHT - trefht.TREFHT).max()) <= y.TREFHT.attrs[ATTR_TOL]
    assert main(["convert", *map(str, archive), "-o", str(tmp_path / "cli.zarr"), "--scheduler", address,
                 "--chunks", "time=8", "-q"]) == 0
    assert verify(archive, tmp_path / "cli.zarr").ok


def test_local_gpu_cluster_falls_back_to_cpu(tmp_path, archive, capfd):
    """No GPU here: one warning says so. The worker processes' INFO lines are silenced, and the cluster is
    announced in one line."""
    with pytest.warns(UserWarning) as caught:
        summary = convert(archive, tmp_path / "g.zarr", chunks={"time": 8}, gpus=1, threads_per_worker=1)
    assert [str(w.message) for w in caught] == ["gpus=1 (--gpus), but no CUDA GPU is visible: every GPU worker runs "
                                                "the codec on the CPU"]
    assert caught[0].filename == __file__
    assert len(summary.workers) == 1 and summary.units_done == 2 and next(iter(summary.workers)).startswith("tcp://")
    err = capfd.readouterr().err
    assert "INFO" not in err
    assert len(re.findall(r"xdiffc: started a local Dask cluster, 1 worker process with 1 thread in all; "
                          r"(dashboard: http://127\.0\.0\.1:\d+/status|pip install bokeh for its dashboard)\n", err)) == 1
    assert verify(archive, tmp_path / "g.zarr").ok


def test_small_inputs_are_converted_in_this_process(tmp_path, archive, capfd):
    """A local cluster of worker processes took 10-14 s to start, even for 3 MB: small inputs run on threads of this
    process, and start no cluster to announce."""
    summary = convert(archive, tmp_path / "s.zarr", chunks=CHUNKS, progress=False)
    assert summary.units_done == 4 and all(w.startswith("inproc://") for w in summary.workers)
    assert capfd.readouterr().err == ""
    assert verify(archive, tmp_path / "s.zarr").ok
    assert in_process(IN_PROCESS_BYTES, None, None, 0) and not in_process(IN_PROCESS_BYTES + 1, None, None, 0)
    assert not in_process(1, None, 2, 0) and not in_process(1, None, None, 1) and not in_process(1, "tcp://x:1", None, 0)


def test_one_step_files_share_time_chunks(tmp_path, trefht):
    """The default time chunk was sized on the first input alone, so monthly files of one step each gave one-step
    chunks (CR 17 against 26 with 12-step ones): it is sized on all the inputs' steps."""
    paths = split(trefht.isel(time=slice(0, 6)), tmp_path / "monthly", 6, "TREFHT")
    summary = convert(paths, tmp_path / "m.zarr", rel_tol=1e-3, progress=False)
    out = xr.open_zarr(tmp_path / "m.zarr")
    assert out.TREFHT.encoding["chunks"][0] == 6 and summary.units_done == 1
    assert verify(paths, tmp_path / "m.zarr").ok
    err = np.abs(out.TREFHT.values.astype(np.float64) - trefht.TREFHT.values[:6])
    assert err.max() <= out.TREFHT.attrs[ATTR_TOL]


def test_missing_file(tmp_path, archive, capsys):
    with pytest.raises(FileNotFoundError, match="nope.nc"):
        convert([archive[0], tmp_path / "nope.nc"], tmp_path / "o.zarr")
    assert main(["convert", str(tmp_path / "h*.nc"), "-o", str(tmp_path / "o.zarr")]) == 2
    assert "glob matches nothing" in capsys.readouterr().err
    assert not (tmp_path / "o.zarr").exists()


def test_files_on_different_grids(tmp_path, archive, trefht):
    other = trefht.isel(time=slice(16, 20), lat=slice(0, 32))
    other.to_netcdf(tmp_path / "coarse.nc")
    with pytest.raises(ValueError, match="different grids.*'lat'"):
        convert([*archive, tmp_path / "coarse.nc"], tmp_path / "o.zarr")
    assert not (tmp_path / "o.zarr").exists()


def test_no_float_variables(tmp_path, cluster):
    ds = xr.Dataset({"count": ("time", np.arange(6, dtype=np.int32))}, coords={"time": np.arange(6.0)})
    ds.time.attrs["axis"] = "T"
    ds.to_netcdf(tmp_path / "ints.nc")
    with pytest.raises(ValueError, match="nothing to compress"):
        convert([tmp_path / "ints.nc"], tmp_path / "o.zarr", scheduler=cluster, progress=False)
    assert not (tmp_path / "o.zarr").exists()


def test_unwritable_or_existing_output(tmp_path, archive):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(PermissionError, match="not a directory"):
        convert(archive, blocker / "o.zarr")
    (tmp_path / "taken.zarr").mkdir()
    with pytest.raises(FileExistsError, match="--overwrite"):
        convert(archive, tmp_path / "taken.zarr")
    partial_path(tmp_path / "new.zarr").mkdir()
    with pytest.raises(FileExistsError, match="--resume"):
        convert(archive, tmp_path / "new.zarr")


def test_no_write_permission(archive):
    """Checked as an unprivileged user: as root (where the suite runs), in a forked child that drops to ``nobody``."""
    shared = Path(tempfile.mkdtemp(prefix="xdiffc-perm-"))  # outside pytest's root-only folder: nobody can reach it
    try:
        shared.chmod(0o755)
        source = shared / "in.nc"
        shutil.copy(archive[0], source)
        source.chmod(0o644)
        (shared / "locked").mkdir(mode=0o555)
        assert run_unprivileged(lambda: convert(source, shared / "locked" / "o.zarr")) == (
            "PermissionError", f"cannot write {str(shared / 'locked' / 'o.zarr')!r}: no write permission in "
                               f"{str(shared / 'locked')!r}")
        assert not (shared / "locked" / "o.zarr").exists()
    finally:
        shutil.rmtree(shared)


def run_unprivileged(job) -> tuple[str, str]:
    """The type and message of the exception ``job`` raises, run as an unprivileged user: in this process
    if the suite is not run as root, else in a forked child that first switches to ``nobody``."""
    if os.geteuid() != 0:
        try:
            job()
        except Exception as err:
            return type(err).__name__, str(err)
        return "", ""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(read)
            os.setgid(65534)
            os.setuid(65534)
            job()
            result = ["", ""]
        except Exception as err:
            result = [type(err).__name__, str(err)]
        finally:
            os.write(write, json.dumps(result).encode())
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        result = json.loads(f.read())
    os.waitpid(pid, 0)
    return tuple(result)


def test_damaged_chunk_is_named_and_the_rest_checked(tmp_path, trefht, cluster, capsys):
    ds = trefht.assign(T2=trefht.TREFHT + 1.0)
    ds.to_netcdf(tmp_path / "two.nc")
    out = tmp_path / "two.zarr"
    convert([tmp_path / "two.nc"], out, chunks=CHUNKS, scheduler=cluster, progress=False)
    for key in ("1/0/1", "3/1/0"):  # time chunk 1 (values 4:8), lat chunk 0, lon chunk 1; and another
        chunk = out / "TREFHT" / "c" / key
        data = bytearray(chunk.read_bytes())
        data[len(data) // 2] ^= 0xFF
        chunk.write_bytes(bytes(data))
    report = verify([tmp_path / "two.nc"], out)
    damaged = [p for p in report.problems if "damaged" in p]
    assert len(damaged) == 2 and not report.ok
    assert damaged[0].startswith("'TREFHT': chunk (time=1, lat=0, lon=1) is damaged, values time 4:8, lat 0:32, "
                                 "lon 64:128")
    assert "(time=3, lat=1, lon=0)" in damaged[1]
    assert report.table.loc["T2", "max_err_over_bound"] <= 1  # the other variable is still checked
    assert main(["verify", str(tmp_path / "two.nc"), str(out)]) == 1
    assert "(time=1, lat=0, lon=1) is damaged" in capsys.readouterr().out


def test_inputs_that_cannot_be_opened_or_combined_are_named(tmp_path, archive, trefht):
    text = tmp_path / "notes.nc"
    text.write_text("not a netCDF file")
    with pytest.raises(ValueError, match=f"cannot open input {str(text)!r}"):
        convert([archive[0], text], tmp_path / "o.zarr")
    members = [tmp_path / "member1.nc", tmp_path / "member2.nc"]
    for path in members:
        trefht.isel(time=slice(0, 4)).to_netcdf(path)
    with pytest.raises(ValueError, match=r"member1.nc' and '.*member2.nc' share 4 time value.*--member-dim"):
        convert(members, tmp_path / "o.zarr")
    assert not (tmp_path / "o.zarr").exists() and not partial_path(tmp_path / "o.zarr").exists()


@pytest.mark.parametrize("order, says", [([0, 1, 1, 2], r"repeats the time 1891-07-11 22:00:00 along 'time' \(steps 1 "
                                                        r"and 2 of 4\)"),
                                         ([0, 2, 1, 3], r"has its times out of order along 'time' \(step 1: "
                                                        r"1892-07-10 22:00:00, step 2: 1891-07-11 22:00:00\)")],
                         ids=["repeated", "out-of-order"])
def test_times_repeated_or_out_of_order_inside_one_file_are_refused(tmp_path, trefht, capsys, order, says):
    """Within one file too, not only across files: a damaged file can read as repeated times."""
    bad = tmp_path / "bad.nc"
    trefht.isel(time=order).to_netcdf(bad)
    with pytest.raises(ValueError, match=f"input {re.escape(repr(str(bad)))} {says}"):
        convert([bad], tmp_path / "o.zarr")
    assert main(["convert", str(bad), "-o", str(tmp_path / "o.zarr")]) == 2
    assert "xdiffc: error: input" in capsys.readouterr().err
    assert not (tmp_path / "o.zarr").exists() and not partial_path(tmp_path / "o.zarr").exists()


def test_a_netcdf3_file_cut_short_is_named_not_converted_to_zeros(tmp_path, trefht, capsys):
    """``head -c 5000 file.nc > cut.nc``: netCDF reads the missing data and times as zeros without complaint."""
    whole, cut, header = tmp_path / "whole.nc", tmp_path / "cut.nc", tmp_path / "header.nc"
    trefht.to_netcdf(whole, format="NETCDF3_64BIT")
    cut.write_bytes(whole.read_bytes()[:5000])
    header.write_bytes(whole.read_bytes()[:100])
    with pytest.raises(TruncatedFileError, match=f"input {re.escape(repr(str(cut)))} is cut short: it has 5000 bytes, "
                                                 f"and its netCDF-3 header promises {whole.stat().st_size};"):
        convert([cut], tmp_path / "o.zarr")
    with pytest.raises(TruncatedFileError, match="it has 100 bytes, and its header itself is cut short"):
        convert([header], tmp_path / "o.zarr")
    assert main(["convert", str(whole), str(cut), "-o", str(tmp_path / "o.zarr")]) == 2
    assert "is cut short" in capsys.readouterr().err
    assert not (tmp_path / "o.zarr").exists() and not partial_path(tmp_path / "o.zarr").exists()


def test_use_cftime_combines_calendars_numpy_cannot(tmp_path, cluster):
    """Standard-calendar dates before 1582 decode to cftime, later ones to numpy: the files combine only as cftime.
    The error says so; xarray's SerializationWarning, once per file and read, is not repeated on top of it."""
    files = []
    for i, start in enumerate((0.0, 365.0 * 200)):  # 1500 and 1700
        t = xr.Variable("time", start + np.arange(3.0), {"units": "days since 1500-01-01", "calendar": "standard"})
        field = np.random.default_rng(i).random((3, 16, 16), dtype=np.float32)
        files.append(tmp_path / f"cal.{i}.nc")
        xr.Dataset({"T": (("time", "y", "x"), field)}, coords={"time": t}).to_netcdf(files[-1])
    with warnings.catch_warnings(record=True) as caught, pytest.raises(ValueError, match="--use-cftime"):
        warnings.simplefilter("always")
        convert(files, tmp_path / "o.zarr")
    assert not [str(w.message) for w in caught]
    out = tmp_path / "cal.zarr"
    convert(files, out, scheduler=cluster, progress=False, use_cftime=True)
    assert verify(files, out, use_cftime=True).ok
    years = xr.open_zarr(out, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True)).time.dt.year
    assert years.values.tolist() == [1500] * 3 + [1699] * 3


def test_noleap_dates_after_2262_convert_without_a_warning(tmp_path):
    """numpy's datetime64[ns] ends in 2262: xarray decodes later dates as cftime, and said so in a SerializationWarning
    at every open and read of every file (three to a dozen paragraphs per run)."""
    files = []
    for i in range(2):
        t = xr.Variable("time", 365.0 * (260 + 2 * i) + 30.0 * np.arange(4), {"units": "days since 2000-01-01",
                                                                                "calendar": "noleap"})
        bounds = xr.Variable(("time", "nbnd"), np.stack([t.values - 15, t.values + 15], 1), dict(t.attrs))
        field = np.random.default_rng(i).random((4, 8, 16), dtype=np.float32)
        files.append(tmp_path / f"nl.{i}.nc")
        ds = xr.Dataset({"T": (("time", "y", "x"), field), "time_bnds": bounds}, coords={"time": t})
        ds.time.attrs["bounds"] = "time_bnds"
        ds.to_netcdf(files[-1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        convert(files, tmp_path / "o.zarr", chunks={"time": 4}, progress=False)
        report = verify(files, tmp_path / "o.zarr")
    assert not [str(w.message) for w in caught]
    assert report.ok, report.problems
    years = xr.open_zarr(tmp_path / "o.zarr", decode_times=xr.coders.CFDatetimeCoder(use_cftime=True)).time.dt.year
    assert years.values.tolist() == [2260] * 4 + [2262] * 4


def months_since_files(folder: Path) -> list[Path]:
    """Two files of 6 steps whose times are 'months since' (NOAA's hgt.nc), which no calendar decodes."""
    files = []
    for i in range(2):
        t = xr.Variable("time", 6.0 * i + np.arange(6.0), {"units": "months since 1958-1-1 00:00:00"})
        field = np.random.default_rng(i).random((6, 16, 16), dtype=np.float32).cumsum(axis=2)
        files.append(folder / f"hgt.{i}.nc")
        xr.Dataset({"HGT": (("time", "y", "x"), field)}, coords={"time": t}).to_netcdf(files[-1])
    return files


def test_times_no_calendar_decodes_are_kept_as_numbers(tmp_path, cluster):
    """'months since' (NOAA's hgt.nc): xarray cannot decode it with any calendar; the error says what to pass, and
    --no-decode-times converts the files with their times stored exactly, as numbers with their units."""
    files = months_since_files(tmp_path)
    with pytest.raises(ValueError, match=r"months since.*decode_times=False \(--no-decode-times\)"):
        convert(files, tmp_path / "o.zarr")
    with pytest.raises(ValueError, match="give one of them"):
        convert(files, tmp_path / "o.zarr", use_cftime=True, decode_times=False)
    out = tmp_path / "hgt.zarr"
    convert(files, out, scheduler=cluster, progress=False, decode_times=False, chunks={"time": 6})
    assert verify(files, out, decode_times=False).ok
    stored = xr.open_zarr(out, decode_times=False)
    assert stored.time.values.tolist() == list(range(12)) and stored.time.attrs["units"].startswith("months since")


def test_no_decode_times_from_the_command_line(tmp_path, cluster):
    """--no-decode-times reaches convert and verify (verify without it cannot open the inputs), and --chunks time=-1
    counts the steps of every file with the times kept as numbers."""
    files, out = [str(f) for f in months_since_files(tmp_path)], tmp_path / "cli.zarr"
    assert main(["convert", *files, "-o", str(out), "--no-decode-times", "--chunks", "time=-1", "--scheduler", cluster,
                 "-q"]) == 0
    stored = xr.open_zarr(out, decode_times=False)
    assert stored.time.values.tolist() == list(range(12)) and stored.HGT.encoding["chunks"] == (12, 16, 16)
    assert main(["verify", *files, str(out), "--no-decode-times"]) == 0
    assert main(["verify", *files, str(out)]) == 2


def test_with_use_cftime_the_hint_is_to_keep_the_times_as_numbers(tmp_path):
    """Times that cftime cannot decode either: the error suggests --no-decode-times, not the --use-cftime given."""
    with pytest.raises(ValueError, match=r"months since.*; decode_times=False \(--no-decode-times\) keeps the times "
                                         r"as numbers$") as err:
        convert(months_since_files(tmp_path), tmp_path / "o.zarr", use_cftime=True)
    assert "try use_cftime" not in str(err.value)


@pytest.mark.parametrize("first", [dict(decode_times=False), dict(use_cftime=True)])
def test_resume_refuses_another_time_decoding(tmp_path, archive, cluster, monkeypatch, first):
    """The time decoding is part of what a resumed conversion must repeat: times decoded otherwise would not fit
    the partial store."""
    import xdiffc.conversion.run

    out = tmp_path / "o.zarr"

    def interrupted(*args, **kwargs):
        raise RuntimeError("interrupted")

    with monkeypatch.context() as m:
        m.setattr(xdiffc.conversion.run, "_run_units", interrupted)
        with pytest.raises(RuntimeError, match="interrupted"):
            convert(archive, out, scheduler=cluster, progress=False, **first)
    assert partial_path(out).exists() and not out.exists()
    with pytest.raises(ValueError, match="was started from other inputs or options"):
        convert(archive, out, scheduler=cluster, progress=False, resume=True)
    convert(archive, out, scheduler=cluster, progress=False, resume=True, **first)
    assert is_complete(out)[0] and verify(archive, out, **first).ok

def test_l2_mode_bounds_the_nrmse(tmp_path, archive, cluster):
    with pytest.raises(ValueError, match="takes no --tol"):
        convert(archive, tmp_path / "o.zarr", mode="l2", tol=0.1)
    summary = convert(archive, tmp_path / "l2.zarr", mode="l2", rel_tol=1e-3, chunks={"time": 8},
                      scheduler=cluster, verify=True, progress=False)
    assert summary.table.loc["TREFHT", "nrmse/bound"] <= 1
    assert verify(archive, tmp_path / "l2.zarr").ok


def test_units_tile_each_array_in_whole_chunks():
    from xdiffc.conversion.progress import plan_units

    group = zarr.open_group(zarr.storage.MemoryStore(), mode="w")
    group.create_array("x", shape=(10, 50, 70), chunks=(4, 16, 32), dtype="f4", dimension_names=("time", "y", "x"))
    group.create_array("s", shape=(), chunks=(), dtype="f8", dimension_names=())
    units = plan_units(group, ["x", "s"], "time")
    covered = np.zeros((10, 50, 70), int)
    for u in units:
        if u.name == "x":
            (t0, t1), (y0, y1), (x0, x1) = ((a, b) for _, a, b in u.region)
            assert t0 % 4 == 0 and y0 % 16 == 0 and x0 % 32 == 0
            covered[t0:t1, y0:y1, x0:x1] += 1
    assert (covered == 1).all() and [u.name for u in units].count("s") == 1


@settings(max_examples=60, deadline=None)
@given(t=st.integers(1, 300), ct=st.integers(1, 40), y=st.integers(1, 70), cy=st.integers(1, 70),
       since=st.integers(0, 300), dtype=st.sampled_from(["u1", "f4", "f8"]), lead_bytes=st.integers(1, 5000))
def test_units_group_time_chunks_and_start_at_the_first_new_step(t, ct, y, cy, since, dtype, lead_bytes):
    """Units tile the array from the chunk of step ``since`` on, exactly once, in whole chunks; along time they take
    several chunks where there are many, up to LEAD_BYTES, and leave at least MIN_UNITS units."""
    from unittest import mock

    from xdiffc.conversion import progress

    since, item = min(since, t - 1), np.dtype(dtype).itemsize
    group = zarr.open_group(zarr.storage.MemoryStore(), mode="w")
    group.create_array("x", shape=(t, y), chunks=(ct, cy), dtype=dtype, dimension_names=("time", "y"))
    with mock.patch.object(progress, "LEAD_BYTES", lead_bytes):
        units = progress.plan_units(group, ["x"], "time", since)
    first = since // ct * ct
    covered = np.zeros((t, y), int)
    for u in units:
        (t0, t1), (y0, y1) = ((a, b) for _, a, b in u.region)
        assert t0 % ct == 0 and y0 % cy == 0 and (t1 % ct == 0 or t1 == t) and (y1 % cy == 0 or y1 == y)
        assert u.nbytes == item * (t1 - t0) * (y1 - y0)
        if t1 - t0 > ct:  # several time chunks: no more than LEAD_BYTES' worth
            assert u.nbytes <= lead_bytes
        covered[t0:t1, y0:y1] += 1
    assert (covered[first:] == 1).all() and (covered[:first] == 0).all()
    assert [u.region[0][1] for u in units] == sorted(u.region[0][1] for u in units)  # in time order
    lead_chunks = -(-(t - first) // ct)
    per_row = len({u.region[1] for u in units})
    assert len(units) >= min(progress.MIN_UNITS, lead_chunks) * per_row
    one_chunk = item * ct * -(-(units[0].region[1][2] - units[0].region[1][1]) // cy) * cy  # per time chunk, whole chunks
    if lead_chunks >= 2 * progress.MIN_UNITS and 2 * one_chunk <= lead_bytes:  # room for two chunks: taken
        assert max(u.region[0][2] - u.region[0][1] for u in units) >= 2 * ct


def test_a_log_of_other_units_is_not_resumed(tmp_path):
    """A progress log whose units were cut by another plan (an older xdiffc) would map its unit numbers onto other
    chunks: it is refused, not resumed."""
    from xdiffc.conversion import progress
    from xdiffc.errors import ResumeMismatchError

    log = Progress.start(tmp_path, {"fingerprint": {}, "arrays": ["x"]})
    log.record(3)
    assert Progress.load(tmp_path).done == {3}
    (tmp_path / progress.PROGRESS_FILE).write_text(json.dumps({"fingerprint": {}, "arrays": ["x"]}) + "\n3\n")
    with pytest.raises(ResumeMismatchError, match="other units"):
        Progress.load(tmp_path)


def test_native_grid_is_converted_on_cube_faces(tmp_path, cluster):
    ds = open_sample("camse_ts").isel(time=slice(0, 6))[["TS", "lat", "lon"]]
    files = split(ds, tmp_path / "h0", 2, "cam.h0")
    cube, line = tmp_path / "cube.zarr", tmp_path / "line.zarr"
    ratios = []
    for out, layout in ((cube, "auto"), (line, "none")):
        summary = convert(files, out, rel_tol=1e-3, scheduler=cluster, progress=False, layout=layout)
        ratios.append(float(summary.table.loc["TS", "ratio"]))
    y = xr.open_zarr(cube)
    assert y.TS.dims == ("time", "ncol") and y.TS.attrs["xdiffc_layout"] == "cubed-sphere"
    assert "xdiffc_layout" not in xr.open_zarr(line).TS.attrs
    assert float(abs(y.TS.load() - ds.TS).max()) <= y.TS.attrs[ATTR_TOL]
    assert ratios[0] > 1.15 * ratios[1]
    assert verify(files, cube).ok
    for name in ("lat", "lon"):  # the same points in another column order: the map derived from them changes
        coord = zarr.open_array(cube / name, mode="r+")
        coord[:] = np.roll(coord[:], 1000)
    problems = verify(files, cube).problems
    assert any("'TS'" in p and "layout derived from this store's coordinates" in p for p in problems), problems


def test_tol_auto_picks_bounds_that_pass_the_criteria(tmp_path, archive, trefht, cluster):
    from xdiffc import metrics

    out = tmp_path / "auto.zarr"
    convert(archive, out, tol="auto", scheduler=cluster, progress=False, chunks=CHUNKS)
    y = xr.open_zarr(out)
    attrs = y.TREFHT.attrs  # TREFHT is decided by the spatial relative error: a pointwise-relative bound wins
    assert 0 < attrs["xdiffc_pw_rel_tol"] < 0.1 and (attrs.get(ATTR_TOL) is None or attrs[ATTR_TOL] > 0)
    table = metrics.assess(trefht, y.load())
    assert bool(table.loc["TREFHT", "passed"]), table.T
    with pytest.raises(ValueError, match="auto"):
        convert(archive, tmp_path / "bad.zarr", tol="sometimes", scheduler=cluster, progress=False)


def test_convert_at_a_level_writes_it_in_the_codec_and_keeps_the_bound(tmp_path, archive, trefht, cluster):
    out = tmp_path / "l1.zarr"
    convert(archive, out, rel_tol=1e-3, chunks=CHUNKS, scheduler=cluster, progress=False, level=1)
    assert zarr.open_array(out / "TREFHT").metadata.codecs[0].to_dict()["configuration"]["level"] == 1
    y = decoded(out)
    assert float(abs(y.TREFHT - trefht.TREFHT).max()) <= y.TREFHT.attrs[ATTR_TOL]
    with pytest.raises(ValueError, match="level must be an integer from 1"):
        convert(archive, tmp_path / "bad.zarr", level=10, scheduler=cluster, progress=False)


def test_the_workers_let_go_of_the_inputs_when_a_conversion_ends(tmp_path, trefht, cluster):
    """The worker processes close the files a conversion read once it ends: the files can then be rewritten in
    place (HDF5's file locking refuses while any process holds one open, and leaves it cut short) and converted
    again, to the new values."""
    files = split(trefht, tmp_path / "in", 2, "TREFHT")
    out = tmp_path / "a.zarr"
    convert(files, out, rel_tol=1e-3, chunks=CHUNKS, scheduler=cluster, progress=False)
    warmer = trefht.assign(TREFHT=(trefht.TREFHT + 10).assign_attrs(trefht.TREFHT.attrs))
    assert split(warmer, tmp_path / "in", 2, "TREFHT") == files  # the same paths, rewritten
    convert(files, out, rel_tol=1e-3, chunks=CHUNKS, scheduler=cluster, progress=False, overwrite=True)
    y = xr.open_zarr(out).load()
    assert float(abs(y.TREFHT - warmer.TREFHT).max()) <= y.TREFHT.attrs[ATTR_TOL]
