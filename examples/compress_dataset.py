"""Compress a Dataset to Zarr in one line, open it with plain xarray, and look at the error.

    python examples/compress_dataset.py [OUT.zarr]

Uses the embedded CESM2 sea-surface temperature sample (land is _FillValue 1e20) and ends with
the per-variable error report: max error / bound (<= 1), NRMSE, and compression ratio.
"""

import sys
import tempfile
from pathlib import Path

import xarray as xr

import xdiffc  # noqa: F401  (registers ds.gcdtc; reading needs only xarray)
from xdiffc.datasets import open_sample

ds = open_sample("tos")
store = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()) / "tos.zarr"
ds.gcdtc.to_zarr(store, rel_tol=1e-3, mode="w")  # bound: 0.1% of the range of each variable
out = xr.open_zarr(store)
print(f"wrote {store}; lossy variables and their bounds:")
for name, var in out.data_vars.items():
    if "xdiffc_tol" in var.attrs:
        print(f"  {name}: |error| <= {var.attrs['xdiffc_tol']:.4g} {var.attrs.get('units', '')}")
print(ds.gcdtc.error_report(out).to_string(float_format=lambda v: f"{v:.4g}"))
