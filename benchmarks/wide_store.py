"""Metadata of a wide native-grid store: bytes, and how long a reader waits in ``xr.open_zarr``.

Builds an ne30np4 store (48,602 columns, from ``ihesp14.TS.12mon.nc``) of ``--variables`` monthly
variables of 24 steps, written with ``ds.gcdtc.to_zarr(rel_tol=1e-3, chunks={"time": 12})``: each
variable is ``a * TS[t mod 12] + b`` plus noise, with its own ``a``, ``b``. On the cube-face
layout, with a 12-month archive climatology in each codec configuration. 24 steps are too few for
a climatology to pay (the rule drops it below some 50 years of monthly data), so the rule is
overridden to keep it: the metadata is then that of a long archive, which is what is measured;
the chunks are not written (``compute=False``), as opening never reads them.

Then, in a fresh process (xarray and xdiffc imported, one small store opened first so that
xarray's own first-call costs are not counted): ``xr.open_zarr`` wall and CPU seconds (CPU
counts every thread of the process; on a shared machine it is the steadier figure).

    python benchmarks/wide_store.py STORE [--variables 200] [--data ../shared/data] [--open-only]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

HERE = Path(__file__).resolve().parent
READER = """
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import xarray as xr, xdiffc.zarr_codec
xr.open_zarr(sys.argv[2])
w, c = time.perf_counter(), time.process_time()
ds = xr.open_zarr(sys.argv[1])
print(json.dumps({"open_wall_s": time.perf_counter() - w, "open_cpu_s": time.process_time() - c}))
"""


def dataset(data: Path, variables: int, steps: int = 24, seed: int = 0) -> xr.Dataset:
    src = xr.open_dataset(data / "ihesp14.TS.12mon.nc")
    ts = src["TS"].values.astype(np.float64)
    rng = np.random.default_rng(seed)
    out = {}
    for k in range(variables):
        a, b = rng.uniform(0.5, 2), rng.uniform(-100, 100)
        x = a * ts[np.arange(steps) % 12] + b + 0.05 * rng.standard_normal((steps, ts.shape[1]))
        out[f"v{k:03d}"] = (("time", "ncol"), x.astype(np.float32))
    times = pd.date_range("2000-01-01", periods=steps, freq="MS")
    return xr.Dataset(out, coords={"time": times, "lat": ("ncol", src["lat"].values), "lon": ("ncol", src["lon"].values)})


def build(store: Path, data: Path, variables: int) -> float:
    import xdiffc  # noqa: F401  (registers ds.gcdtc)
    from xdiffc.xarray import climatology_choice

    climatology_choice.pays_for_itself = lambda *args: True  # a long archive's metadata, on 24 steps
    ds = dataset(data, variables)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.gcdtc.to_zarr(store, rel_tol=1e-3, chunks={"time": 12}, mode="w", compute=False)
    return time.perf_counter() - start


def metadata_bytes(store: Path) -> dict:
    names = ("zarr.json", ".zmetadata", ".zarray", ".zattrs", ".zgroup")
    sizes = {os.path.relpath(Path(root) / f, store): (Path(root) / f).stat().st_size
             for root, _, files in os.walk(store) for f in files if f in names}
    return {"root_zarr_json": sizes.get("zarr.json", 0), "all_metadata": sum(sizes.values())}


def open_times(store: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        small = Path(tmp) / "small.zarr"
        xr.Dataset({"a": (("t",), np.zeros(3, "f4"))}).to_zarr(small)
        import xdiffc

        here = str(Path(xdiffc.__file__).parents[1])  # the reader imports the same xdiffc as this process
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))}
        out = subprocess.run([sys.executable, "-c", READER, str(store.resolve()), str(small)], capture_output=True,
                             text=True, check=True, cwd=tmp, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("store", type=Path)
    p.add_argument("--variables", type=int, default=200)
    p.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    p.add_argument("--open-only", action="store_true", help="measure an existing store")
    args = p.parse_args()
    result = {"variables": args.variables}
    if not args.open_only:
        result["build_s"] = build(args.store, args.data, args.variables)
    result |= metadata_bytes(args.store)
    result |= open_times(args.store)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
