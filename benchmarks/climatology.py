"""The archive-level climatology on real time series: CR of short chunks with and without it, against whole-series chunks.

For each field and eps (bound = eps x the variable's range), the variable is written with
``ds.gcdtc.to_zarr`` into an in-memory store three ways: chunked by ``--chunk`` steps along time
without a climatology, the same with one (kept only where it pays, as the accessor decides), and
one chunk holding the whole series. CR counts everything the variable occupies in the store (its
chunks and its metadata document, where the climatology travels). Also the climatology's metadata
bytes on an ne30 grid (48,602 columns, ``ihesp14.TS.12mon.nc``) for a time mean and a 12-month
cycle.

    python benchmarks/climatology.py [--data ../shared/data] [--chunk 12]

Prints JSON and writes benchmarks/out/climatology.json and benchmarks/figures/climatology.png.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import xarray as xr
import zarr
from pandas.errors import OutOfBoundsDatetime

import xdiffc  # noqa: F401  (registers ds.gcdtc)
from xdiffc import grids
from xdiffc.archive_climatology import Climatology

HERE = Path(__file__).resolve().parent
FIELDS = [  # (file, variable): long series, annual, monthly and hourly
    ("TREFHT.B06.57.atm.1890-1999ANN.nc", "TREFHT"),
    ("TREFHT.B06.61.atm.1890-1999ANN.nc", "TREFHT"),
    ("b003_TS_200-299.nc", "TS"),
    ("E1_north_america.nc", "air_temperature"),
    ("ostia_monthly.nc", "surface_temperature"),
    ("ne4_mam4_optics_hourly.nc", "aodsw"),
    ("SMALL_total_column_co2.nc", "tcco2"),
]
EPS = (1e-2, 1e-3, 1e-4)


def open_field(path: Path, name: str) -> xr.Dataset:
    try:
        ds = xr.open_dataset(path, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))
    except (ValueError, OutOfBoundsDatetime):  # an undecodable calendar: the time axis stays numeric
        ds = xr.open_dataset(path, decode_times=False)
    return ds[[name]].load()


def stored(ds: xr.Dataset, name: str, tol: float, chunk: int, climatology: bool) -> tuple[int, float, bool]:
    """Bytes of ``name`` in a fresh store, seconds to write it, and whether its codec carries a climatology."""
    store = zarr.storage.MemoryStore()
    t0 = time.perf_counter()
    ds.gcdtc.to_zarr(store, tol={name: tol}, chunks={ds[name].dims[0]: chunk}, climatology=climatology)
    seconds = time.perf_counter() - t0
    array = zarr.open_group(store, mode="r")[name]
    has = "climatology" in json.dumps(array.metadata.to_dict())
    back = xr.open_zarr(store, decode_times=False)[name].values
    err = np.nanmax(np.abs(back.astype(np.float64) - ds[name].values))
    assert err <= tol, f"{name}: max error {err} > {tol}"
    return array.nbytes_stored(), seconds, has


def metadata_cost(data: Path) -> dict:
    """Bytes of the climatology in the codec configuration (base64 JSON) on an ne30 grid."""
    ds = xr.open_dataset(data / "ihesp14.TS.12mon.nc", decode_times=False)
    ts = ds["TS"].values.astype(np.float64)
    layout = grids.layout_for(ds, "ncol")  # the cube-face canvas the accessor codes these columns on
    span = float(ts.max() - ts.min())
    out = {"grid": f"ne30np4, {ts.shape[1]} columns on a {layout.shape2d} canvas",
           "raw_float32_bytes_per_field": ts.shape[1] * 4}
    for eps in EPS:
        for label, means in (("time mean", ts.mean(0, keepdims=True)), ("12-month cycle", ts)):
            clim = Climatology.build(layout.to_grid(means, 1), eps * span)
            out[f"{label}, eps {eps:g}"] = len(json.dumps(clim.to_config()))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    p.add_argument("--chunk", type=int, default=12)
    args = p.parse_args()
    rows = []
    for file, name in FIELDS:
        ds = open_field(args.data / file, name)
        v = ds[name].values
        span = float(np.nanmax(v) - np.nanmin(v))
        for eps in EPS:
            tol = eps * span
            plain, t_plain, _ = stored(ds, name, tol, args.chunk, False)
            clim, t_clim, has = stored(ds, name, tol, args.chunk, True)
            whole, _, _ = stored(ds, name, tol, v.shape[0], False)
            row = {"field": f"{file}:{name}", "shape": list(v.shape), "eps": eps, "cr_chunked": v.nbytes / plain,
                   "cr_chunked_climatology": v.nbytes / clim, "cr_whole": v.nbytes / whole, "climatology_kept": has,
                   "write_seconds_plain": round(t_plain, 2), "write_seconds_climatology": round(t_clim, 2)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    result = {"chunk": args.chunk, "rows": rows, "metadata": metadata_cost(args.data)}
    for eps in EPS:
        sel = [r for r in rows if r["eps"] == eps]
        gm = lambda key: float(np.exp(np.mean([np.log(r[key]) for r in sel])))  # noqa: E731
        result[f"geomean eps {eps:g}"] = {k: gm(k) for k in ("cr_chunked", "cr_chunked_climatology", "cr_whole")}
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    (out / "climatology.json").write_text(json.dumps(result, indent=1))
    plot(rows, args.chunk)
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=1))


def plot(rows: list[dict], chunk: int) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fields = list(dict.fromkeys(r["field"] for r in rows))
    fig, axes = plt.subplots(1, len(EPS), figsize=(5 * len(EPS), 4.5), sharey=True)
    for ax, eps in zip(axes, EPS):
        sel = {r["field"]: r for r in rows if r["eps"] == eps}
        x = np.arange(len(fields))
        for i, (key, label) in enumerate([("cr_chunked", f"chunks of {chunk}"),
                                          ("cr_chunked_climatology", f"chunks of {chunk} + climatology"),
                                          ("cr_whole", "one chunk")]):
            ax.bar(x + (i - 1) * 0.27, [sel[f][key] for f in fields], 0.27, label=label)
        ax.set_xticks(x, [f.split(":")[1] + "\n" + f.split(".")[0][:12] for f in fields], fontsize=7, rotation=45)
        ax.set(title=f"eps {eps:g}", yscale="log")
    axes[0].set_ylabel("compression ratio (store bytes, metadata included)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(HERE / "figures" / "climatology.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
