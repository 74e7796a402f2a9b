"""layout="auto" keeps a native-grid layout only where the store is smaller with it, its own metadata included."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
import zarr

import xdiffc  # noqa: F401  (registers ds.gcdtc)
from xdiffc import grids
from xdiffc.xarray.climatology_choice import metadata_bytes

from helpers import assert_bounded

pytestmark = pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning")


def ne4np4(nt: int = 3, nlev: int = 8) -> xr.Dataset:
    """A small ne4np4 file (866 columns in a model's own shuffled order), two kinds of fields.

    ``cloud`` is a cloud fraction: zeros over most of the domain, so the store keeps zeros
    (preserve_zero) and codes it unlike a plain bound; coded at 1e-3 of its range without that
    option (the rule before) the layout looked smaller, at its own configuration it is larger.
    ``smooth`` is smooth on the sphere, the layout's best case, but 866 columns code in a few
    hundred bytes less than its permutation costs in the metadata.
    """
    lat, lon = grids.cube_points(4, "np4")
    order = np.random.default_rng(0).permutation(lat.size)
    lat, lon = lat[order], lon[order]
    phi, lam = np.deg2rad(lat), np.deg2rad(lon)
    rng = np.random.default_rng(0)
    field = (np.sin(3 * phi + 1.3) * np.cos(2 * lam + 4.1))[None, :, None]
    cloud = np.clip(field + 0.3 * rng.standard_normal((nt, lat.size, nlev)) - 0.5, 0, 1)
    smooth = 280 + 20 * np.cos(phi)[None, :, None] + 5 * np.sin(2 * lam)[None, :, None] * np.linspace(0, 1, nlev)
    smooth = smooth + 0.01 * rng.standard_normal((nt, lat.size, nlev))
    dims = ("time", "ncol", "lev")
    return xr.Dataset({"cloud": (dims, cloud.astype(np.float32)), "smooth": (dims, smooth.astype(np.float32))},
                      coords={"lat": ("ncol", lat), "lon": ("ncol", lon)})


def store_bytes(ds: xr.Dataset, layout: str, **kwargs) -> tuple[dict[str, int], zarr.storage.MemoryStore]:
    """Bytes of each variable in a fresh store: its chunks, its zarr.json and its entry in the consolidated copy."""
    store = zarr.storage.MemoryStore()
    ds.gcdtc.to_zarr(store, layout=layout, **kwargs)
    consolidated = zarr.open_group(store, mode="r").metadata.consolidated_metadata.metadata
    indent = zarr.config.get("json_indent")
    return {name: sum(len(value.to_bytes()) for key, value in store._store_dict.items() if key.startswith(f"{name}/"))
            + len(json.dumps(consolidated[name].to_dict(), indent=indent)) for name in ds.data_vars}, store


@pytest.mark.parametrize("rel_tol", [1e-3, 1e-2])
def test_auto_keeps_whichever_store_is_smaller_metadata_included(rel_tol):
    ds = ne4np4()
    sizes = {layout: store_bytes(ds, layout, rel_tol=rel_tol) for layout in ("auto", "none", "cubed-sphere")}
    auto, store = sizes["auto"]
    for name in ds.data_vars:
        assert auto[name] == min(sizes["none"][0][name], sizes["cubed-sphere"][0][name]), name
    back = xr.open_zarr(store)
    for name in ds.data_vars:
        assert "xdiffc_layout" not in back[name].attrs  # both cost more on the canvas here
        assert_bounded(ds[name].values, back[name].values, back[name].attrs["xdiffc_tol"])


def test_a_layout_that_pays_for_its_metadata_is_kept():
    """Waves of their own wavelength on each level: only the sphere's neighbours predict them, and on 24 fields
    the canvas saves more than the permutation costs."""
    ds = ne4np4(nt=6, nlev=4)
    phi, lam = (np.deg2rad(ds[c].values)[None, :, None] for c in ("lat", "lon"))
    rng = np.random.default_rng(1)
    c, d, k = rng.uniform(0, 6, (6, 1, 4)), rng.uniform(0, 6, (6, 1, 4)), rng.integers(1, 4, (6, 1, 4))
    ds = ds.assign(wave=(("time", "ncol", "lev"), (np.sin(k * phi + c) * np.cos(k * lam + d)).astype(np.float32)))
    sizes = {layout: store_bytes(ds[["wave"]], layout, rel_tol=1e-3)[0]["wave"]
             for layout in ("auto", "none", "cubed-sphere")}
    assert sizes["auto"] == sizes["cubed-sphere"] < sizes["none"]


def test_metadata_bytes_are_those_zarr_writes():
    """The layout's cost as counted (its codec entry and attributes, in both metadata copies) is what the
    store's metadata documents grow by."""
    ds = ne4np4(nt=1, nlev=2)[["smooth"]]
    documents = {}
    for layout in ("none", "cubed-sphere"):
        _, store = store_bytes(ds, layout, tol=1.0)
        documents[layout] = sum(len(store._store_dict[key].to_bytes()) for key in ("zarr.json", "smooth/zarr.json"))
    found = grids.layout_for(ds, "ncol")
    counted = metadata_bytes({"layout": found.to_config(1)}, found.attrs()) - metadata_bytes({"layout": None})
    assert abs(counted - (documents["cubed-sphere"] - documents["none"])) <= 16
    assert counted > 2 * len(found.to_config(1)["permutation"])  # the permutation, twice, and more
