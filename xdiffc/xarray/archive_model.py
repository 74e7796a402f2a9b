"""A model trained on the Dataset being written (``ds.gcdtc.to_zarr(..., train_model=STEPS)``), for its store to carry.

The Dataset's float variables with time first are written to a temporary netCDF file and
trained on with :func:`xdiffc.training.train` (each variable's last 15% of time steps held out
for validation). The model file lives only while the store is written: the codec configuration
of every lossy variable carries its bytes (:func:`xdiffc.model_files.store_model`).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

import xarray as xr


@contextlib.contextmanager
def trained_model(ds: xr.Dataset, model: str | None, steps: int, progress: bool = True) -> Iterator[str | None]:
    """``model`` unchanged when ``steps`` is 0, else the path of a model trained ``steps`` steps on ``ds``."""
    if not steps:
        yield model
        return
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"train_model must be a number of training steps >= 1, got {steps!r}")
    if model is not None:
        raise ValueError("give either model= or train_model=, not both")
    from ..core import default_device
    from ..training import train

    names = [n for n, v in ds.data_vars.items() if v.dtype.kind == "f" and v.ndim >= 2]
    with tempfile.TemporaryDirectory(prefix="xdiffc-train-") as tmp:
        data = Path(tmp) / "data.nc"
        ds[names].to_netcdf(data)
        yield str(train([data], Path(tmp) / "archive.pt", steps=steps, device=default_device(),
                        eval_every=max(10, min(250, steps // 10)), progress=progress))
