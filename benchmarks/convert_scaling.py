"""Scaling of ``xdiffc convert``: MB/s and peak memory per worker with 1 and 2 workers, against the bare codec.

The archive: the four TREFHT ensemble members of ``../shared/data`` (110 annual means each, 64x128)
laid end to end along time, repeated until it holds ``--size-mb`` of float32, written as netCDF
files of 440 steps (about 14 MB each). Every run converts it at rel_tol 1e-3 with the same chunks.

- **direct**: ``xdiffc.compress`` on every chunk in turn in this process, data already in memory
  (the codec alone; the bound is the global one the conversion uses).
- **convert**: ``xdiffc.convert`` on a fresh local cluster of N workers x 1 thread (reading the
  files, encoding, writing the store). MB/s is uncompressed MB over the wall time of the unit phase.
  Overhead = direct MB/s / (convert MB/s per worker) - 1: what reading, scheduling and writing add
  to the codec's own time.
- **peak RSS per worker**: the peak resident memory (VmHWM) of each worker process after the run,
  the largest over the workers.
  The 1-worker run at half the size shows whether it grows with the archive.

    python benchmarks/convert_scaling.py --size-mb 200 [--gpus 1] [--write-results]
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import xarray as xr

import xdiffc
from results_md import write_section

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
MEMBERS = [f"TREFHT.B06.{m}.atm.1890-1999ANN.nc" for m in (57, 59, 60, 61)]
STEPS_PER_FILE = 440
CHUNKS = {"time": 32, "lat": 64, "lon": 128}
REL_TOL = 1e-3


def build_archive(folder: Path, size_mb: float) -> tuple[list[Path], np.ndarray]:
    """netCDF files holding about ``size_mb`` MB of TREFHT along a daily time axis; also the values, in memory."""
    base = np.concatenate([xr.open_dataset(DATA / m).TREFHT.values for m in MEMBERS])
    template = xr.open_dataset(DATA / MEMBERS[0])
    steps = max(CHUNKS["time"], int(size_mb * 2**20 // base[0].nbytes))
    values = np.resize(base, (steps, *base.shape[1:]))
    time_axis = np.arange(steps, dtype="f8")
    paths = []
    for i, start in enumerate(range(0, steps, STEPS_PER_FILE)):
        part = slice(start, start + STEPS_PER_FILE)
        ds = xr.Dataset({"TREFHT": (("time", "lat", "lon"), values[part], template.TREFHT.attrs)},
                        coords={"time": ("time", time_axis[part], {"units": "days since 1890-01-01", "axis": "T"}),
                                "lat": template.lat, "lon": template.lon})
        paths.append(folder / f"trefht.{i:03d}.nc")
        ds.to_netcdf(paths[-1])
    return paths, values


def direct(values: np.ndarray) -> float:
    """Seconds for ``xdiffc.compress`` over every chunk of ``values``, in this process."""
    valid = values[np.isfinite(values)]
    tol = REL_TOL * (float(valid.max()) - float(valid.min()))
    start = time.perf_counter()
    for t in range(0, values.shape[0], CHUNKS["time"]):
        xdiffc.compress(values[t:t + CHUNKS["time"]], tol=tol)
    return time.perf_counter() - start


def _peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM). Not ru_maxrss: that survives exec, so a spawned
    worker would report the peak of the process that started it."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status: this benchmark measures memory on Linux only")


def run_convert(paths: list[Path], out: Path, workers: int, gpus: int) -> dict:
    """One conversion on a fresh local cluster; returns seconds, MB/s and the peak RSS of its workers."""
    from distributed import Client, LocalCluster

    resources = {"GPU": 1} if gpus else None
    with LocalCluster(n_workers=workers, threads_per_worker=1, host="127.0.0.1", dashboard_address=None,
                      resources=resources) as cluster, Client(cluster) as client:
        summary = xdiffc.convert(paths, out, rel_tol=REL_TOL, chunks=CHUNKS, scheduler=cluster.scheduler_address,
                                 gpus=gpus, overwrite=True, progress=False)
        rss = client.run(_peak_rss_mb)
    return {"seconds": summary.seconds, "mb_per_s": summary.mb_per_s, "ratio": float(summary.table["ratio"].iloc[0]),
            "peak_rss_mb": max(rss.values()), "mb": summary.written_bytes / 2**20}


def table(rows: list[dict], direct_mb_per_s: float) -> str:
    lines = ["| run | workers | MB | seconds | MB/s | overhead vs direct | peak RSS per worker (MB) | ratio |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        workers = r.get("workers")
        overhead = f"{direct_mb_per_s * workers / r['mb_per_s'] - 1:+.0%}" if workers else "-"
        rss = f"{r['peak_rss_mb']:.0f}" if workers else "-"
        ratio = f"{r['ratio']:.2f}" if workers else "-"
        lines.append(f"| {r['name']} | {workers or '-'} | {r['mb']:.0f} | {r['seconds']:.1f} | "
                     f"{r['mb_per_s']:.2f} | {overhead} | {rss} | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=float, default=200, help="archive size (default 200)")
    parser.add_argument("--gpus", type=int, default=0, help="also run 1 worker with resource GPU=1 (on a GPU machine)")
    parser.add_argument("--write-results", action="store_true", help="rewrite this script's section of RESULTS.md")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="xdiffc-convert-bench-") as tmp:
        folder = Path(tmp)
        paths, values = build_archive(folder, args.size_mb)
        (folder / "half").mkdir()
        half, _ = build_archive(folder / "half", args.size_mb / 2)
        direct_s = direct(values)
        direct_mb_per_s = values.nbytes / 2**20 / direct_s
        rows = [{"name": "direct xdiffc.compress", "mb": values.nbytes / 2**20, "seconds": direct_s,
                 "mb_per_s": direct_mb_per_s}]
        configs = [("convert, half the archive", half, 1, 0), ("convert", paths, 1, 0), ("convert", paths, 2, 0)]
        if args.gpus:
            configs.append(("convert --gpus 1", paths, 1, 1))
        for name, inputs, workers, gpus in configs:
            rows.append({"name": name, "workers": workers, **run_convert(inputs, folder / "out.zarr", workers, gpus)})
            print(rows[-1], file=sys.stderr)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    text = (f"Run {stamp} on {platform.machine()}, {os.cpu_count()} cores (load average {load} at the end), "
            f"Python {platform.python_version()}, xdiffc {xdiffc.__version__}.\n\n"
            f"Command: `{shlex.join(['.venv/bin/python', 'benchmarks/convert_scaling.py', *(argv or sys.argv[1:])])}`\n\n"
            f"Archive: {len(paths)} netCDF files, TREFHT float32, chunks {CHUNKS}, rel_tol {REL_TOL}.\n\n"
            + table(rows, direct_mb_per_s))
    print(text)
    if args.write_results:
        write_section("convert_scaling", text, "## Archive conversion scaling")
    return 0


if __name__ == "__main__":
    sys.exit(main())
