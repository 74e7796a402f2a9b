"""Ensembles: four members converted into one store (``member_dim``) against four single stores.

Two ensembles of four members, 110 years each:

- ``annual``: the real CCSM ensemble in the shared data, TREFHT.B06.57/59/60/61 (110 annual means,
  64 x 128 each, 1890-1999).
- ``monthly``: built from real fields, 110 x 12 months per member. Member m's month k of year y is
  its real annual-mean TREFHT of year y (its own interannual variability), plus a seasonal cycle
  (ihesp14's 12 monthly TS fields, nearest column on the 64 x 128 grid, their annual mean removed),
  plus monthly weather: 2.5 times the difference of two annual fields of other members and years
  (real spatial structure; 2.7 K standard deviation).

Each is converted with an absolute bound ``tol`` (K) and chunks along time of ``--chunks`` steps
(annual: xdiffc's own choice, and 10 years; monthly: 10 years), three ways: one store with ``member_dim`` (one member
per chunk, the default), the same with the four members stacked in each chunk, and four single
stores. CR = float32 bytes of the variable / bytes on disk of the whole store(s) (every array and
metadata document); ``variable_cr`` counts the variable's own folder only (its chunks and its
``zarr.json``, where the climatology travels). Wall time of each ``convert`` on one warm local cluster (2 workers x 1 thread),
cluster start excluded. Every store is verified.

    python benchmarks/ensemble.py [--data ../shared/data] [--work /tmp/xdiffc-ensemble] [--years 110]

Prints one JSON line per conversion and writes benchmarks/out/ensemble.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

import xdiffc

HERE = Path(__file__).resolve().parent
MEMBERS = ("57", "59", "60", "61")


def annual(data: Path) -> list[Path]:
    return [data / f"TREFHT.B06.{m}.atm.1890-1999ANN.nc" for m in MEMBERS]


def seasonal_cycle(data: Path, grid: xr.Dataset) -> np.ndarray:
    """(12, lat, lon) monthly TS anomalies from their annual mean, from the nearest ne120 column of ihesp14."""
    from scipy.spatial import cKDTree

    src = xr.open_dataset(data / "ihesp14.TS.12mon.nc", decode_times=False)

    def xyz(lat, lon):
        lat, lon = np.radians(lat), np.radians(lon)
        return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], -1)

    lat2, lon2 = np.meshgrid(grid.lat.values, grid.lon.values, indexing="ij")
    _, nearest = cKDTree(xyz(src.lat.values, src.lon.values)).query(xyz(lat2.ravel(), lon2.ravel()))
    ts = src.TS.values[:, nearest].reshape(12, *lat2.shape)
    return ts - ts.mean(0)


def monthly(data: Path, work: Path, years: int) -> list[Path]:
    """Four monthly members built from the real annual members (see the module docstring)."""
    members = [xr.open_dataset(p, decode_times=False).TREFHT.values[:years].astype(np.float64) for p in annual(data)]
    grid = xr.open_dataset(annual(data)[0], decode_times=False)
    cycle = seasonal_cycle(data, grid)
    rng = np.random.default_rng(0)
    times = pd.date_range("1890-01-01", periods=12 * years, freq="MS")
    paths = []
    for m, field in enumerate(members):
        others = [x for i, x in enumerate(members) if i != m]
        a, b = rng.integers(0, len(others), (2, 12 * years))
        ya, yb = rng.integers(0, years, (2, 12 * years))
        weather = 2.5 * np.stack([others[i][j] - others[k][l] for i, j, k, l in zip(a, ya, b, yb)])
        values = np.repeat(field, 12, axis=0) + np.tile(cycle, (years, 1, 1)) + weather
        ds = xr.Dataset({"TS": (("time", "lat", "lon"), values.astype(np.float32), {"units": "K"})},
                        coords={"time": times, "lat": grid.lat, "lon": grid.lon},
                        attrs={"case": f"monthly.B06.{MEMBERS[m]}"})
        path = work / f"TS.monthly.B06.{MEMBERS[m]}.nc"
        ds.to_netcdf(path)
        paths.append(path)
    print(json.dumps({"monthly weather sd (K)": float(np.std(weather))}), flush=True)
    return paths


def disk_bytes(store: Path) -> int:
    return sum(f.stat().st_size for f in store.rglob("*") if f.is_file())


def run(files: list[Path], work: Path, label: str, tol: float, chunks: dict, cluster: str) -> dict:
    """The three ways of storing ``files``: their CR, bytes and seconds."""
    var = next(iter(xr.open_dataset(files[0], decode_times=False).data_vars))
    raw = sum(xr.open_dataset(f, decode_times=False)[var].size * 4 for f in files)
    common = dict(tol={var: tol}, rel_tol=None, scheduler=cluster, progress=False, overwrite=True)
    out = {"ensemble": label, "tol": tol, "chunks": chunks, "raw_MB": raw / 2**20}
    for way, member_chunk in (("member_dim", 1), ("stacked", len(files))):
        store = work / f"{label}.{way}.zarr"
        t0 = time.perf_counter()
        xdiffc.convert([str(f) for f in files], store, member_dim="member",
                       chunks={**chunks, "member": member_chunk}, **common)
        seconds = time.perf_counter() - t0
        report = xdiffc.verify([str(f) for f in files], store)
        assert report.ok, report.problems
        config = json.loads((store / var / "zarr.json").read_text())["codecs"][0]["configuration"]
        out[way] = {"cr": raw / disk_bytes(store), "MB": disk_bytes(store) / 2**20, "seconds": round(seconds, 1),
                    "variable_cr": raw / disk_bytes(store / var),
                    "climatology": "climatology" in config,
                    "time_chunk": xr.open_zarr(store)[var].encoding["chunks"][0]}
    total, in_variable, seconds, kept = 0, 0, 0.0, []
    for f in files:
        store = work / f"{label}.single.{f.stem}.zarr"
        t0 = time.perf_counter()
        xdiffc.convert(str(f), store, chunks=chunks, **common)
        seconds += time.perf_counter() - t0
        assert xdiffc.verify(str(f), store).ok
        total += disk_bytes(store)
        in_variable += disk_bytes(store / var)
        kept.append("climatology" in (store / var / "zarr.json").read_text())
    out["singles"] = {"cr": raw / total, "MB": total / 2**20, "seconds": round(seconds, 1),
                      "variable_cr": raw / in_variable, "climatology": kept}
    print(json.dumps(out), flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    p.add_argument("--work", type=Path, default=Path("/tmp/xdiffc-ensemble"))
    p.add_argument("--years", type=int, default=110)
    p.add_argument("--only", choices=["annual", "monthly"])
    args = p.parse_args()
    from distributed import LocalCluster

    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    rows = []
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None) as cluster:
        address = cluster.scheduler_address
        if args.only != "monthly":
            for tol in (0.9, 0.09):  # about 1e-2 and 1e-3 of TREFHT's range
                for chunks in ({}, {"time": 10}):
                    rows.append(run(annual(args.data), args.work, "annual", tol, chunks, address))
        if args.only != "annual":
            files = monthly(args.data, args.work, args.years)
            for tol in (0.9, 0.09):  # chunks of 10 years (xdiffc's own choice would be one chunk of 512 steps)
                rows.append(run(files, args.work, "monthly", tol, {"time": 120}, address))
    (HERE / "out").mkdir(exist_ok=True)
    (HERE / "out" / "ensemble.json").write_text(json.dumps({"rows": rows, "cpus": os.cpu_count()}, indent=1))


if __name__ == "__main__":
    main()
