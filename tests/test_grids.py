"""Native-grid layouts: exact round trips, detection, the guarantee through the layout, clear errors."""

import numpy as np
import pytest
import xarray as xr

import xdiffc
from xdiffc import grids
from xdiffc.datasets import open_sample

from helpers import assert_bounded


def _shuffled(lat, lon, seed=0):
    order = np.random.default_rng(seed).permutation(lat.size)
    return lat[order], lon[order]


def _roundtrip(layout: grids.Layout, shape_before=(3,), shape_after=(2,)) -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape_before + (layout.ncol,) + shape_after).astype(np.float32)
    axis = len(shape_before)
    g = layout.to_grid(x, axis)
    assert g.shape == shape_before + layout.shape2d + shape_after
    np.testing.assert_array_equal(layout.from_grid(g, axis), x)
    # padding repeats real columns only: the canvas holds no new values
    assert np.isin(g, x).all()


@pytest.mark.parametrize("ne", [2, 4, 8])
@pytest.mark.parametrize("kind", ["pg2", "np4"])
def test_synthetic_cubes_are_detected_and_round_trip(ne, kind):
    lat, lon = _shuffled(*grids.cube_points(ne, kind))
    ncol = 6 * (2 * ne) ** 2 if kind == "pg2" else 6 * (3 * ne) ** 2 + 2
    assert lat.size == ncol
    layout = grids.detect(lat, lon)
    n = 2 * ne if kind == "pg2" else 3 * ne
    assert layout.kind == "cubed-sphere"
    assert layout.shape2d == ((2 * n, 3 * n) if kind == "pg2" else (2 * n, 3 * n + 1))
    assert layout.padding == (0 if kind == "pg2" else 2 * n - 2)
    _roundtrip(layout)


@pytest.mark.parametrize("kind", ["pg2", "np4"])
def test_cube_canvas_keeps_neighbours_together(kind):
    """Within each face and across the seams inside a canvas row, adjacent slots are adjacent columns.

    The largest gap between GLL lines is 1/sqrt(5) of an element; at np4 seams the two faces' slot
    rows can be one GLL line apart, which the factor 1.5 covers.
    """
    lat, lon = _shuffled(*grids.cube_points(4, kind))
    layout = grids.detect(lat, lon)
    n = 8 if kind == "pg2" else 12
    p = grids.unit_vectors(lat, lon)[layout.permutation.reshape(layout.shape2d)[:, :3 * n]]
    step = np.linalg.norm(np.diff(p, axis=1), axis=-1)
    spacing = np.pi / 2 / n if kind == "pg2" else np.pi / 2 / 4 / np.sqrt(5)
    assert step.max() < 1.5 * spacing
    rows = np.linalg.norm(np.diff(p, axis=0), axis=-1)
    within = np.delete(rows, n - 1, axis=0)  # the seam between the two canvas rows is not a neighbour
    assert within.max() < 1.5 * spacing


def test_the_two_np4_corners_not_owned_by_a_face_sit_in_the_side_column():
    lat, lon = grids.cube_points(2, "np4")
    layout = grids.detect(lat, lon)
    side = layout.permutation.reshape(layout.shape2d)[:, -1]
    corners = side[side >= 0]
    np.testing.assert_allclose(np.abs(lat[corners]), np.degrees(np.arctan(1 / np.sqrt(2))))
    assert side[:2].tolist() == corners.tolist() and np.all(side[2:] < 0)


@pytest.mark.parametrize("ncol", [1, 7, 384, 1000, 5000])
def test_random_points_get_a_hilbert_layout(ncol):
    rng = np.random.default_rng(ncol)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, ncol)))
    lon = rng.uniform(-180, 180, ncol)
    layout = grids.detect(lat, lon)
    assert layout.kind == "hilbert" and layout.shape2d == (ncol,)
    _roundtrip(layout)
    # determinism: the same points give the same map
    assert grids.detect(lat, lon).digest == layout.digest


def test_a_cube_sized_grid_that_is_not_a_cube_falls_back_to_hilbert():
    rng = np.random.default_rng(3)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, 384)))
    lon = rng.uniform(0, 360, 384)
    assert grids.detect(lat, lon).kind == "hilbert"
    with pytest.raises(ValueError, match="cube faces"):
        grids.detect(lat, lon, layout="cubed-sphere")


def test_detection_on_the_e3sm_grids():
    rad = open_sample("e3sm_rad")
    assert rad.sizes["ncol"] == 384
    layout = grids.layout_for(rad)
    assert (layout.kind, layout.shape2d, layout.padding) == ("cubed-sphere", (16, 24), 0)  # ne4pg2
    ts = open_sample("camse_ts")
    layout = grids.layout_for(ts)
    assert (layout.kind, layout.shape2d) == ("cubed-sphere", (180, 271))  # ne30np4: 6 * 90^2 + 2
    lat, lon = grids.cube_points(8, "np4")
    assert lat.size == 3458 and grids.detect(lat, lon).shape2d == (48, 73)  # ne8np4, as homme26x3458


def test_the_embedded_ncol_fields_round_trip_exactly():
    ts = open_sample("camse_ts")
    layout = grids.layout_for(ts)
    x = ts["TS"].values
    np.testing.assert_array_equal(layout.from_grid(layout.to_grid(x, 1), 1), x)
    rad = open_sample("e3sm_rad")
    layout = grids.layout_for(rad)
    for name, var in rad.data_vars.items():
        if "ncol" in var.dims and var.ndim > 1 and var.dtype.kind == "f":
            axis = var.dims.index("ncol")
            np.testing.assert_array_equal(layout.from_grid(layout.to_grid(var.values, axis), axis), var.values)


def test_the_guarantee_holds_through_the_layout():
    ts = open_sample("camse_ts")
    x = ts["TS"].values
    layout = grids.layout_for(ts)
    tol = 1e-3 * float(x.max() - x.min())
    blob = grids.compress_native(x, layout, axis=1, tol=tol)
    y = grids.decompress_native(blob, layout, axis=1)
    assert_bounded(x, y, tol)
    rad = open_sample("e3sm_rad")
    lwp = rad["lwp"].values  # (time, ncol, lev)
    layout = grids.layout_for(rad)
    y = layout.from_grid(xdiffc.decompress(xdiffc.compress(layout.to_grid(lwp, 1), rel_tol=1e-2)), 1)
    assert_bounded(lwp, y, 1e-2 * float(lwp.max() - lwp.min()))


def test_fill_values_stay_exact_through_the_np4_padding():
    lat, lon = grids.cube_points(4, "np4")
    layout = grids.detect(lat, lon)
    x = np.sin(np.radians(lat))[None, :].repeat(4, 0).astype(np.float32) * 30 + 280
    x[1, ::7] = 1e20
    blob = grids.compress_native(x, layout, tol=0.05, fill_values=[1e20])
    assert_bounded(x, grids.decompress_native(blob, layout), 0.05, fill_values=[1e20])


def test_missing_coordinates_warn_once_per_dataset_at_the_users_line(recwarn):
    """assess looked the layout up per variable, and every catch_warnings block in between (Zarr's, xdiffc's) made
    Python show the warning again: 15 times for an ne4 file of 15 variables."""
    from xdiffc.metrics import assess

    ds = xr.Dataset({f"v{i}": (("time", "ncol"), np.random.default_rng(i).random((4, 384), np.float32))
                     for i in range(3)})
    out = ds.gcdtc.roundtrip(rel_tol=1e-2)
    table = assess(ds, out)
    assert len(table) == 3
    grids.layout_for(ds)
    again = xr.Dataset(ds.data_vars)  # another Dataset: warned about again
    grids.layout_for(again)
    messages = [w for w in recwarn if "no lat/lon for dimension 'ncol'" in str(w.message)]
    assert len(messages) == 2, [str(w.message) for w in recwarn]
    assert {w.filename for w in messages} == {__file__}  # the user's line, not xdiffc's


def test_missing_coordinates_warn_or_raise_clearly():
    ds = xr.Dataset({"aodsw": (("time", "ncol"), np.zeros((2, 384), np.float32))})
    with pytest.warns(UserWarning, match="no lat/lon for dimension 'ncol'.*grid="):
        assert grids.layout_for(ds) is None
    with pytest.raises(ValueError, match="no lat/lon for dimension 'ncol'"):
        grids.layout_for(ds, layout="cubed-sphere")
    rad = open_sample("e3sm_rad")
    layout = grids.layout_for(ds, grid=rad[["lat", "lon"]])
    assert layout.kind == "cubed-sphere"
    with pytest.raises(ValueError, match="384"):
        grids.layout_for(ds, grid=open_sample("camse_ts"))
    assert grids.layout_for(ds, layout="none") is None


def test_latlon_are_found_by_units_and_mpas_radians():
    lat, lon = _shuffled(*grids.cube_points(2, "pg2"))
    by_units = xr.Dataset(coords={"y": ("nCells", lat, {"units": "degrees_north"}),
                                  "x": ("nCells", lon, {"units": "degrees_east"})})
    mpas = xr.Dataset({"latCell": ("nCells", np.radians(lat)), "lonCell": ("nCells", np.radians(lon))})
    a = grids.layout_for(by_units, dim="nCells")
    b = grids.layout_for(mpas, dim="nCells")
    assert a.kind == "cubed-sphere" and a.digest == b.digest


def test_the_digest_catches_changed_coordinates():
    ts = open_sample("camse_ts")
    layout = grids.layout_for(ts)
    attrs = layout.attrs()
    assert attrs["xdiffc_layout"] == "cubed-sphere" and len(attrs["xdiffc_layout_sha256"]) == 64
    lat, lon = grids.find_latlon(ts)
    assert grids.restore(attrs, lat, lon).digest == layout.digest
    swapped = np.arange(lat.size)
    swapped[[10, 20]] = [20, 10]
    with pytest.raises(ValueError, match="not the one the data was written with"):
        grids.restore(attrs, lat[swapped], lon[swapped])
    assert grids.restore({}, lat, lon) is None


@pytest.mark.parametrize("ne, kind", [(4, "pg2"), (4, "np4"), (8, "pg2")])
def test_face_halo_continues_each_face_across_its_edges(ne, kind):
    """Each face's block holds its own columns, each column on exactly one face (np4: but the two corners of
    the side column); the halo around it takes the neighbouring faces' columns: across a face edge, adjacent
    slots are columns about as far apart as inside a face (neither repeated nor far away), and a smooth
    global field steps there as it does inside, while on the flat canvas the seam between the rows jumps."""
    lat, lon = _shuffled(*grids.cube_points(ne, kind))
    layout = grids.detect(lat, lon)
    width = 5
    halo = grids.face_halo(layout, width)
    n = layout.shape2d[0] // 2
    assert halo.shape == (6, n + 2 * width, n + 2 * width)
    inner = halo[:, width:-width, width:-width]
    perm = layout.permutation.reshape(layout.shape2d)
    for face, (row, col) in enumerate(((0, 0), (0, 1), (0, 2), (1, 1), (1, 0), (1, 2))):
        np.testing.assert_array_equal(inner[face], perm[row * n:(row + 1) * n, col * n:(col + 1) * n])
    counts = np.bincount(inner.ravel(), minlength=layout.ncol)
    corners = perm[:2, -1] if kind == "np4" else np.array([], int)
    assert (np.delete(counts, corners) == 1).all() and (counts[corners] == 0).all()

    edge = np.r_[:width, n + width:n + 2 * width]  # halo rows / columns
    corner = np.zeros(halo.shape[1:], bool)
    corner[np.ix_(edge, edge)] = True  # three faces meet at a cube corner, not four: those slots repeat columns
    points = np.where(corner[..., None], np.nan, grids.unit_vectors(lat, lon)[halo])

    def steps(v: np.ndarray) -> np.ndarray:
        """Distances between adjacent slots along both canvas axes, halo corners left out."""
        d = [np.linalg.norm(np.diff(v, axis=a), axis=-1) if v.ndim == 4 else np.abs(np.diff(v, axis=a))
             for a in (1, 2)]
        return np.concatenate([x[~np.isnan(x)] for x in d])

    inside, everywhere = steps(points[:, width:-width, width:-width]), steps(points)
    assert 0.99 * inside.min() < everywhere.min() and everywhere.max() < 1.01 * inside.max()
    field = points @ np.array([0.3, -0.5, 0.8])  # smooth on the sphere
    assert steps(field).max() < 1.01 * steps(field[:, width:-width, width:-width]).max()
    flat = (grids.unit_vectors(lat, lon) @ np.array([0.3, -0.5, 0.8]))[perm[:, :3 * n]]
    assert np.abs(np.diff(flat, axis=0)).max() > 2 * steps(field).max()  # the seam between the canvas rows


def test_face_halo_needs_a_cubed_sphere():
    lat, lon = grids.cube_points(2, "pg2")
    with pytest.raises(ValueError, match="needs a cubed-sphere layout, not 'hilbert'"):
        grids.face_halo(grids.detect(lat, lon, "hilbert"), 5)
