"""Small real climate files shipped with xdiffc, for the demo, the tests and first experiments.

Their sources and licences are listed in ``DATA_SOURCES.md`` at the top of the repository.
:func:`kolmogorov` generates 2-D Kolmogorov-flow vorticity snapshots (the DiffCoder experiment's data).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import xarray as xr

from .kolmogorov import kolmogorov

#: name -> (file, what it is)
SAMPLES: dict[str, tuple[str, str]] = {
    "trefht": ("TREFHT.B06.57.atm.1890-1999ANN.nc",
               "CCSM annual-mean 2 m temperature, 110 years on a 64x128 lat/lon grid (gridded time series)"),
    "prect": ("orig.PRECT.10days.nc",
              "CAM-FV daily precipitation, 10 days on a 192x288 grid (spiky, many near-zero values)"),
    "tos": ("tos_Omon_CESM2-FV2_historical_r1i1p1f1_gn_200001.nc",
            "CESM2 monthly sea-surface temperature on the ocean grid (land _FillValue 1e20)"),
    "camse_ts": ("ihesp14.TS.12mon.nc",
                 "CAM-SE monthly surface temperature, 12 months on 48602 ne30np4 columns (unstructured)"),
    "e3sm_rad": ("rad_standalone_ne4_pg2.nc",
                 "E3SM (EAMxx) radiation inputs on the ne4pg2 grid: 384 columns x 72 levels"),
}


__all__ = ["SAMPLES", "kolmogorov", "open_sample", "sample_path"]


def sample_path(name: str) -> Path:
    """Path of the file behind sample ``name``."""
    try:
        filename = SAMPLES[name][0]
    except KeyError:
        raise ValueError(f"no sample named {name!r}; choose one of {sorted(SAMPLES)}") from None
    return Path(str(resources.files(__name__).joinpath("data", filename)))


def open_sample(name: str, **kwargs) -> xr.Dataset:
    """Load sample ``name`` into memory as an xarray Dataset (keyword arguments go to ``xr.load_dataset``)."""
    return xr.load_dataset(sample_path(name), **kwargs)
