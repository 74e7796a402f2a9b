"""A growing monthly archive: ten years converted, then twelve appends of one month each (``convert --append``),
against one conversion of all eleven years.

The data are CESM-like monthly history files, one per month (``run.cam.h0.YYYY-MM.nc``, noleap calendar,
``time_bnds``, ``date``), built from the shipped TREFHT sample (110 annual means on a 64 x 128 grid): each
month is a year's field plus a seasonal cycle that grows with latitude and smooth weather noise, for
``TS`` and for ``PSL``. Every store is checked with ``xdiffc verify`` against every file (the bound on
every point), and its bytes on disk are counted (chunks and metadata).

    python benchmarks/monthly_appends.py [--years 10] [--chunks 12] [--rel-tol 1e-3] [--out /tmp/monthly]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import xarray as xr


def history_files(folder: Path, years: int) -> list[str]:
    """``years`` years of monthly files in ``folder``, one per month."""
    from scipy.ndimage import gaussian_filter

    from xdiffc.datasets import open_sample

    base = open_sample("trefht").TREFHT.values[:years].astype(np.float64)
    lat = np.linspace(-1, 1, base.shape[1])[:, None]
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for y in range(years):
        for m in range(12):
            season = 15 * lat * np.cos(2 * np.pi * (m - 0.5) / 12)
            weather = gaussian_filter(rng.normal(0, 3, base.shape[1:]), 3, mode="wrap")
            ts = base[y] + season + weather
            psl = 101325 + 800 * np.cos(3 * lat * np.pi) + 150 * season + 300 * weather
            start = xr.date_range(f"{y + 1:04d}-{m + 1:02d}-01", periods=2, freq="MS", calendar="noleap",
                                  use_cftime=True)
            ds = xr.Dataset({"TS": (("time", "lat", "lon"), ts[None].astype(np.float32), {"units": "K"}),
                             "PSL": (("time", "lat", "lon"), psl[None].astype(np.float32), {"units": "Pa"}),
                             "time_bnds": (("time", "nbnd"), np.array([[start[0], start[1]]])),
                             "date": ("time", np.array([(y + 1) * 10000 + (m + 1) * 100 + 1], dtype="i4"))},
                            coords={"time": ("time", start[:1], {"bounds": "time_bnds"}),
                                    "lat": np.linspace(-87.86, 87.86, base.shape[1]),
                                    "lon": np.arange(base.shape[2]) * 360 / base.shape[2]})
            ds.time.encoding.update(units="days since 0001-01-01 00:00:00", calendar="noleap")
            paths.append(str(folder / f"run.cam.h0.{y + 1:04d}-{m + 1:02d}.nc"))
            ds.to_netcdf(paths[-1])
    return paths


def stored_bytes(store: Path) -> int:
    return sum(p.stat().st_size for p in store.rglob("*") if p.is_file())


def main() -> None:
    import xdiffc
    from distributed import LocalCluster

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--years", type=int, default=10, help="years converted before the twelve appends")
    parser.add_argument("--chunks", type=int, default=12, help="time steps per chunk (0: convert's default)")
    parser.add_argument("--rel-tol", type=float, default=1e-3, help="bound, a fraction of each variable's range")
    parser.add_argument("--out", default="/tmp/xdiffc-monthly", help="working folder (emptied)")
    args = parser.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    paths = history_files(out / "h0", args.years + 1)
    first, later = paths[:12 * args.years], paths[12 * args.years:]
    chunks = {"time": args.chunks} if args.chunks else None
    raw = sum(xr.open_dataset(p)[v].nbytes for p in paths[:1] for v in ("TS", "PSL")) * len(paths)
    result = {"years": args.years, "chunks": args.chunks, "rel_tol": args.rel_tol, "files": len(paths),
              "raw_MB": raw / 2**20}
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        run = dict(scheduler=cluster.scheduler_address, progress=False, rel_tol=args.rel_tol)
        xdiffc.convert(paths[:12], out / "warm.zarr", **run)  # the workers load their kernels once
        start = time.perf_counter()
        xdiffc.convert(first, out / "appended.zarr", chunks=chunks, **run)
        result["first_s"] = time.perf_counter() - start
        result["append_s"] = []
        for path in later:
            start = time.perf_counter()
            xdiffc.convert([path], out / "appended.zarr", append=True, **run)
            result["append_s"].append(time.perf_counter() - start)
        start = time.perf_counter()
        xdiffc.convert(paths, out / "whole.zarr", chunks=chunks, **run)
        result["whole_s"] = time.perf_counter() - start
    for name in ("appended", "whole"):
        store = out / f"{name}.zarr"
        report = xdiffc.verify(paths, store)
        result[name] = {"ok": report.ok, "problems": report.problems,
                        "max_err_over_bound": report.table["max_err_over_bound"].to_dict(),
                        "MB": stored_bytes(store) / 2**20, "CR": raw / stored_bytes(store),
                        "climatology": [v for v in ("TS", "PSL") if "climatology" in json.loads(
                            (store / v / "zarr.json").read_text())["codecs"][0]["configuration"]]}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
