"""Native-grid layouts: put the columns of an unstructured field on a 2-D canvas that keeps neighbours together.

E3SM history files hold (time, [lev,] ncol) on the cubed sphere's pg2 physics grid (v2/v3) or its np4
GLL points (v1); MPAS and ICON hold (time, nCells). Seen as a 1-D line, a column's spatial neighbours
are far away in memory and a 2-D predictor has nothing to work with. A :class:`Layout` is an exact,
invertible gather that turns the column axis into a (ny, nx) canvas:

    g = layout.to_grid(x, axis)      # (..., ncol, ...) -> (..., ny, nx, ...)
    x = layout.from_grid(g, axis)    # exact inverse on the columns

The map is derived deterministically from the columns' lat/lon only. Its permutation travels with the
data, zstd-compressed in the codec's configuration (:meth:`Layout.to_config`; about 3 KB for ne30np4),
so a store decodes with nothing more and changed coordinates can never scramble it. Its sha256
(:attr:`Layout.digest`) also goes into the variable's attributes (:meth:`Layout.attrs`), so
:func:`restore` can tell whether a store's coordinates still give the same map.

Cubed sphere (``kind="cubed-sphere"``)
    Detected from ``ncol`` together with lat/lon: ``6 n^2`` columns are cell centres (pg2: n = 2 ne,
    pgN: n = N ne), ``6 (3 ne)^2 + 2`` are np4 GLL points. Each column goes to the face of its unit
    vector's largest component and to the (i, j) slot given by its gnomonic equiangular angles on that
    face. The map is accepted only if every slot is filled exactly once; otherwise (a rotated cube, a
    non-equiangular grid) detection falls back to Hilbert and logs why.

    Faces and orientation (x = lon 0, y = lon 90E on the equator, z = north pole). Face f has centre c,
    column axis u and row axis v, right-handed (u x v = c), seen from outside the sphere:

    ====  ========  ======  ======  =====================
    face  centre c  u (i)   v (j)   canvas block (row, col)
    ====  ========  ======  ======  =====================
    0     +x (0E)   +y      +z      (0, 0)
    1     +y (90E)  -x      +z      (0, 1)
    2     -x (180)  -y      +z      (0, 2)
    3     -y (90W)  -z      +x      (1, 1)
    4     +z (N)    -y      +x      (1, 0)
    5     -z (S)    +y      +x      (1, 2)
    ====  ========  ======  ======  =====================

    The canvas is a 2 x 3 net of n x n faces, shape (2n, 3n), row index j then i. Its top row is
    faces 0, 1, 2 eastward, with north up; its bottom row is faces 4, 3, 5, the band
    north pole -> 90W -> south pole. Every seam inside a row joins faces that touch on the sphere
    (4 of the 7 seams); the 3 seams between the rows do not.

    np4 edges and corners. GLL points on a face's edges are shared with the neighbouring face, so a face
    has (3 ne + 1)^2 points but only (3 ne)^2 slots: it keeps GLL lines 0..3ne-1 or 1..3ne in each
    direction (:data:`_NP4_KEEP`), so it owns two adjacent edges, each without its far end, and the
    other two belong to its neighbours. Faces 0, 1, 3 and 5 own their i = 0 and j = 0 edges, faces 2
    and 4 their i = 0 and j = 3ne edges: every cube edge is owned exactly once and six of the eight
    cube corners are owned (of the 4^6 choices, 8 have this property; this is the first); the two
    corners left over (at (lat, lon) = (35.26N, 45W) and (35.26S, 135E)) go into one extra column on the
    right of the canvas, rows 0 and 1, so np4 canvases are (2n, 3n + 1). The rest of that column is
    padding.

    Metrics that slide a 2-D window (DSSIM) must not see the 3 false seams: :func:`face_halo` gives
    each face on its own, surrounded by a halo of its neighbouring faces' columns.

Hilbert (``kind="hilbert"``), for any other unstructured grid (MPAS, ICON, np4 that does not fit)
    Columns are ordered along a Hilbert curve over the cylindrical equal-area plane (lon, sin lat),
    split into two squares of 180 degrees of longitude at 2^16 x 2^16 resolution (ties by lat, lon,
    then index); the canvas is that ordered line, shape (ncol,). Folding it into 2-D was measured and
    lost (benchmarks/RESULTS.md, native grids): with ihesp14.TS treated as unstructured, eps 1e-3,
    xdiffc CR was 9.55 on the Hilbert line, 9.34 on the file's own order, 8.86-8.69 on boustrophedon
    rows of 64-256, 7.66 on 128 x 128 Hilbert tiles filled by consecutive runs, and at best 7.79 on an
    equal-area image of the curve's cells (collisions pushed along the curve); SZ3 ranked them the
    same way. Consecutive runs do not fill the curve's own sub-squares, so a fold puts columns from
    far apart side by side, and an image of the sphere needs padding that costs more than it gains.

Padding slots (the np4 side column) hold no column. ``to_grid`` fills
them with the value of a nearby column (flood fill from the 4 neighbours on the canvas), so predictors
see a smooth field and the value range does not change; ``from_grid`` ignores them.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import math
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import zstandard

from .errors import warn

if TYPE_CHECKING:
    import xarray as xr

log = logging.getLogger(__name__)

KINDS = ("cubed-sphere", "hilbert", "none")
#: Bits per axis of the Hilbert key over (lon, sin lat).
HILBERT_BITS = 16
#: GLL nodes of np4 elements on [-1, 1].
GLL4 = np.array([-1.0, -1.0 / math.sqrt(5.0), 1.0 / math.sqrt(5.0), 1.0])
#: A point is on a face if its gnomonic coordinates are within 1 + this (shared edges sit at exactly 1).
_EDGE_TOL = 1e-9
#: Largest distance, in element units on [-1, 1], between a point and the GLL node it is snapped to.
_GLL_SNAP = 0.1

#: Face frames (centre c, column axis u, row axis v) as signed axis vectors, and canvas block (row, col).
_FACES = np.array([
    [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
    [[0, 1, 0], [-1, 0, 0], [0, 0, 1]],
    [[-1, 0, 0], [0, -1, 0], [0, 0, 1]],
    [[0, -1, 0], [0, 0, -1], [1, 0, 0]],
    [[0, 0, 1], [0, -1, 0], [1, 0, 0]],
    [[0, 0, -1], [0, 1, 0], [1, 0, 0]],
], dtype=np.float64)
_BLOCKS = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 0), (1, 2))
#: np4 ownership: per face, the first kept GLL index along (i, j); 0 keeps [0, 3ne), 1 keeps [1, 3ne].
_NP4_KEEP = ((0, 0), (0, 0), (0, 1), (0, 0), (0, 1), (0, 0))

_LAT_NAMES = ("lat", "latitude", "latCell", "lat_cell", "clat", "grid_center_lat", "yc")
_LON_NAMES = ("lon", "longitude", "lonCell", "lon_cell", "clon", "grid_center_lon", "xc")


@dataclass(frozen=True, eq=False)
class Layout:
    """An exact map between ``ncol`` columns and a canvas of shape ``shape2d``.

    ``permutation`` has one entry per canvas slot in C order: the column stored there, or -1 for a
    padding slot. Every column appears exactly once. ``kind="none"`` is the identity on the 1-D line,
    with ``shape2d = (ncol,)``.
    """

    kind: str
    ncol: int
    shape2d: tuple[int, ...]
    permutation: np.ndarray
    digest: str = field(init=False)
    _source: np.ndarray = field(init=False, repr=False)
    _slot_of: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        perm = np.asarray(self.permutation, dtype=np.int64)
        if perm.shape != (math.prod(self.shape2d),):
            raise ValueError(f"permutation has {perm.size} slots, shape {self.shape2d} needs {math.prod(self.shape2d)}")
        slot_of = np.full(self.ncol, -1, dtype=np.int64)
        real = np.flatnonzero(perm >= 0)
        slot_of[perm[real]] = real
        if real.size != self.ncol or np.any(slot_of < 0):
            raise ValueError(f"a {self.kind} layout must hold each of the {self.ncol} columns exactly once")
        perm.flags.writeable = False
        object.__setattr__(self, "permutation", perm)
        object.__setattr__(self, "digest", _digest(self.kind, self.shape2d, perm))
        object.__setattr__(self, "_source", _flood_fill(perm.reshape(self.shape2d)).ravel())
        object.__setattr__(self, "_slot_of", slot_of)

    @property
    def padding(self) -> int:
        """Number of canvas slots that hold no column."""
        return self.permutation.size - self.ncol

    def to_grid(self, x: np.ndarray, axis: int = -1) -> np.ndarray:
        """Replace the column axis ``axis`` of ``x`` by the canvas axes; padding repeats a nearby column."""
        x = np.asarray(x)
        axis = _normalise_axis(axis, x.ndim, x.shape, self.ncol)
        g = np.take(x, self._source, axis=axis)
        return g.reshape(x.shape[:axis] + self.shape2d + x.shape[axis + 1:])

    def from_grid(self, g: np.ndarray, axis: int = -1) -> np.ndarray:
        """Exact inverse of :meth:`to_grid`; ``axis`` is the column axis of the native array, as given there."""
        g = np.asarray(g)
        k = len(self.shape2d)
        axis = _normalise_axis(axis, g.ndim - k + 1, None, None)
        if g.shape[axis:axis + k] != self.shape2d:
            raise ValueError(f"expected canvas axes {self.shape2d} at axis {axis}, got shape {g.shape}")
        flat = g.reshape(g.shape[:axis] + (-1,) + g.shape[axis + k:])
        return np.take(flat, self._slot_of, axis=axis)

    def to_config(self, axis: int) -> dict[str, object]:
        """JSON-serialisable form for a codec's configuration, with the column ``axis`` of the chunks it codes."""
        deltas = np.diff(self.permutation, prepend=0).astype("<i8")
        packed = zstandard.ZstdCompressor(level=19).compress(deltas.tobytes())
        return {"kind": self.kind, "ncol": self.ncol, "shape": list(self.shape2d), "axis": int(axis),
                "permutation": base64.b64encode(packed).decode("ascii"), "sha256": self.digest}

    @classmethod
    def from_config(cls, config: dict) -> tuple["Layout", int]:
        """Inverse of :meth:`to_config`: the layout and the column axis; ValueError if it does not check out.

        Layouts are decoded once per process: every variable of a store on one grid shares its layout.
        """
        try:
            layout = _layout_of(str(config["kind"]), int(config["ncol"]), tuple(int(n) for n in config["shape"]),
                                str(config["permutation"]), str(config.get("sha256")))
            axis = int(config["axis"])
        except (KeyError, TypeError, ValueError, zstandard.ZstdError) as err:
            raise ValueError(f"malformed layout configuration ({err})") from None
        if layout is None:
            raise ValueError("the layout configuration does not match its sha256: it was altered")
        return layout, axis

    def attrs(self) -> dict[str, object]:
        """Metadata to store with a variable coded through this layout (read back by :func:`restore`)."""
        return {"xdiffc_layout": self.kind, "xdiffc_layout_shape": list(self.shape2d),
                "xdiffc_layout_sha256": self.digest}


@functools.lru_cache(maxsize=16)
def _layout_of(kind: str, ncol: int, shape2d: tuple[int, ...], permutation: str, sha256: str) -> Layout | None:
    """The layout a configuration describes, or None where it does not match its ``sha256``."""
    raw = zstandard.ZstdDecompressor().decompress(base64.b64decode(permutation, validate=True))
    layout = Layout(kind, ncol, shape2d, np.cumsum(np.frombuffer(raw, "<i8")))
    return layout if layout.digest == sha256 else None


def _normalise_axis(axis: int, ndim: int, shape, ncol) -> int:
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for {ndim} native dimensions")
    axis %= ndim
    if shape is not None and shape[axis] != ncol:
        raise ValueError(f"axis {axis} has length {shape[axis]}, the layout is for {ncol} columns")
    return axis


def _digest(kind: str, shape2d: tuple[int, ...], perm: np.ndarray) -> str:
    h = hashlib.sha256(f"xdiffc-layout-v1|{kind}|{','.join(map(str, shape2d))}|".encode())
    h.update(perm.astype("<i8").tobytes())
    return h.hexdigest()


def _flood_fill(perm2d: np.ndarray) -> np.ndarray:
    """Each padding slot (-1) takes the column of a filled 4-neighbour (up, left, down, right), repeatedly."""
    src = perm2d.copy()
    if src.ndim == 1:
        src = src[None, :]
    while np.any(src < 0):
        before = src.copy()
        padded = np.pad(before, 1, constant_values=-1)
        for dy, dx in ((-1, 0), (0, -1), (1, 0), (0, 1)):
            neighbour = padded[1 + dy:padded.shape[0] - 1 + dy, 1 + dx:padded.shape[1] - 1 + dx]
            take = (src < 0) & (neighbour >= 0)
            src[take] = neighbour[take]
        if np.array_equal(src, before):
            raise ValueError("a layout canvas without any column cannot be filled")
    return src.reshape(perm2d.shape)


def unit_vectors(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """(ncol, 3) unit vectors of points given in degrees."""
    phi, lam = np.deg2rad(np.asarray(lat, np.float64)), np.deg2rad(np.asarray(lon, np.float64))
    return np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)], axis=-1)


def _to_latlon(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = p / np.linalg.norm(p, axis=-1, keepdims=True)
    return np.rad2deg(np.arcsin(np.clip(p[:, 2], -1, 1))), np.rad2deg(np.arctan2(p[:, 1], p[:, 0])) % 360.0


def cube_size(ncol: int) -> tuple[str, int] | None:
    """("cells", n) when ncol = 6 n^2, ("np4", ne) when ncol = 6 (3 ne)^2 + 2, else None."""
    n = math.isqrt(ncol // 6)
    if ncol > 0 and ncol == 6 * n * n:
        return "cells", n
    m = math.isqrt((ncol - 2) // 6) if ncol >= 8 else 0
    if m and m % 3 == 0 and ncol == 6 * m * m + 2:
        return "np4", m // 3
    return None


def cube_points(ne: int, kind: str = "pg2") -> tuple[np.ndarray, np.ndarray]:
    """Synthetic (lat, lon) in degrees of an equiangular cubed sphere, for tests and examples.

    ``kind="pg2"``: the centres of 2 x 2 equal-angle cells per element (6 (2 ne)^2 columns).
    ``kind="np4"``: the unique GLL points of np4 elements (6 (3 ne)^2 + 2 columns).
    Columns come face by face in row-major order, the unique np4 points in sorted order of their
    rounded unit vectors; callers shuffle them to mimic a model's own ordering.
    """
    if kind == "pg2":
        t = (np.arange(2 * ne) + 0.5) / (2 * ne)
    elif kind == "np4":
        t = np.concatenate([(e + (1 + GLL4[:3]) / 2) / ne for e in range(ne)] + [np.ones(1)])
    else:
        raise ValueError(f"kind must be 'pg2' or 'np4', got {kind!r}")
    a = np.tan((t - 0.5) * np.pi / 2)
    b, a = np.meshgrid(a, a, indexing="ij")
    pts = np.concatenate([c + a.ravel()[:, None] * u + b.ravel()[:, None] * v for c, u, v in _FACES])
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)
    if kind == "np4":
        pts = np.unique(np.round(pts, 12) + 0.0, axis=0)
    return _to_latlon(pts)


def _face_coordinates(p: np.ndarray, face: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gnomonic angles, as fractions of the face in [0, 1], and whether each point lies on the face."""
    c, u, v = _FACES[face]
    pc = p @ c
    with np.errstate(divide="ignore", invalid="ignore"):
        a, b = (p @ u) / pc, (p @ v) / pc
    on = (pc > 0) & (np.abs(a) <= 1 + _EDGE_TOL) & (np.abs(b) <= 1 + _EDGE_TOL)
    to_frac = lambda t: np.arctan(np.clip(np.where(on, t, 0.0), -1, 1)) / (np.pi / 2) + 0.5  # noqa: E731
    return to_frac(a), to_frac(b), on


def _gll_index(frac: np.ndarray, ne: int) -> tuple[np.ndarray, np.ndarray]:
    """Index 0..3 ne of the GLL line nearest each fraction, and the snapping distance in element units."""
    r = frac * ne
    e = np.clip(np.floor(r), 0, ne - 1)
    t = 2 * (r - e) - 1
    q = np.argmin(np.abs(t[:, None] - GLL4[None, :]), axis=1)
    return (3 * e + q).astype(np.int64), np.abs(t - GLL4[q])


def _cube_layout(lat: np.ndarray, lon: np.ndarray) -> Layout:
    """The cubed-sphere layout, or ValueError saying why these columns are not an equiangular cube."""
    ncol = lat.size
    size = cube_size(ncol)
    if size is None:
        raise ValueError(f"ncol={ncol} is neither 6 n^2 (cell centres) nor 6 (3 ne)^2 + 2 (np4 GLL points)")
    kind, k = size
    n = k if kind == "cells" else 3 * k
    p = unit_vectors(lat, lon)
    width = 3 * n + (kind == "np4")
    perm = np.full((2 * n, width), -1, dtype=np.int64)
    placed = np.zeros(ncol, dtype=np.int64)
    for face in range(6):
        fa, fb, on = _face_coordinates(p, face)
        if kind == "cells":
            home = on & (np.argmax(np.abs(p), axis=1) == np.argmax(np.abs(_FACES[face, 0])))
            i = np.clip(np.floor(fa * n), 0, n - 1).astype(np.int64)
            j = np.clip(np.floor(fb * n), 0, n - 1).astype(np.int64)
        else:
            i, di = _gll_index(fa, k)
            j, dj = _gll_index(fb, k)
            if np.any(on & ((di > _GLL_SNAP) | (dj > _GLL_SNAP))):
                raise ValueError("the columns are not at the GLL points of an equiangular np4 cube")
            ki, kj = _NP4_KEEP[face]
            i, j = i - ki, j - kj
            home = on & (i >= 0) & (i < n) & (j >= 0) & (j < n)
        cols = np.flatnonzero(home)
        rows, offs = _BLOCKS[face][0] * n + j[cols], _BLOCKS[face][1] * n + i[cols]
        if np.any(perm[rows, offs] >= 0) or np.unique(rows * width + offs).size != cols.size:
            raise ValueError(f"two columns fall into the same slot of cube face {face}")
        perm[rows, offs] = cols
        placed[cols] += 1
    left = np.flatnonzero(placed == 0)
    if np.any(placed > 1) or left.size != (2 if kind == "np4" else 0):
        raise ValueError(f"{left.size} columns found no slot on the cube faces")
    if left.size:
        perm[:2, -1] = left[np.lexsort((lon[left], lat[left]))][::-1]
    return Layout("cubed-sphere", ncol, perm.shape, perm.ravel())


def _slot_fractions(slots: np.ndarray, n: int, np4: bool) -> np.ndarray:
    """Fractions of a face (0 to 1 on it, continued past its edges) at canvas slot indices ``slots``.

    Cell centres: (s + 0.5) / n. np4: GLL line s of the face's 3 ne lines (``slots`` already
    shifted by :data:`_NP4_KEEP`), at its element's GLL node.
    """
    if not np4:
        return (slots + 0.5) / n
    ne = n // 3
    e, q = np.divmod(slots, 3)
    return (e + (1 + GLL4[q]) / 2) / ne


def _face_points(face: int, fa: np.ndarray, fb: np.ndarray) -> np.ndarray:
    """(len(fb), len(fa), 3) unit vectors at equiangular fractions ``fa`` (along u) and ``fb`` (along v) of
    ``face``, continued past its edges onto the neighbouring faces.

    On the face, with angles a, b = (fraction - 1/2) pi/2: c + tan(a) u + tan(b) v. Past an edge,
    |a| > pi/4, the point is the neighbouring face's (centre sign(a) u), at the same angle b along the
    shared edge and |a| - pi/4 into it: sign(a) u + cot|a| c + tan(b) v, scaled by sin|a| here (the two
    agree on the edge, where both faces' angles along it are b). So a halo continues the grid of the
    next face, not a gnomonic plane that squeezes it. Past a corner, where both angles are beyond,
    c + tan(a) u + tan(b) v with the angles kept below pi/2.
    """
    c, u, v = _FACES[face]
    a = ((np.asarray(fa) - 0.5) * np.pi / 2)[None, :, None]
    b = ((np.asarray(fb) - 0.5) * np.pi / 2)[:, None, None]
    top = np.pi / 2 - 1e-6
    ta, tb = np.tan(np.clip(a, -top, top)), np.tan(np.clip(b, -top, top))
    edge = np.pi / 4 + 1e-12
    past_a, past_b = np.abs(a) > edge, np.abs(b) > edge
    p = np.where(past_a & ~past_b, np.cos(a) * c + np.sin(a) * u + np.abs(np.sin(a)) * tb * v,
                 np.where(past_b & ~past_a, np.cos(b) * c + np.sin(b) * v + np.abs(np.sin(b)) * ta * u,
                          c + ta * u + tb * v))
    return p / np.linalg.norm(p, axis=-1, keepdims=True)


def face_halo(layout: Layout, width: int) -> np.ndarray:
    """The columns of each cube face with a halo of ``width`` slots: (6, n + 2 width, n + 2 width) column indices.

    Entry (f, j, i) is the column at slot (j - width, i - width) of face f's n x n block of the canvas
    (rows along v, columns along u, as in the table above). A halo slot, past an edge, takes the column
    nearest to the point of the neighbouring face's grid there (:func:`_face_points`): the column itself
    on a pg grid and on np4 GLL lines, so a 2-D window sees the neighbouring faces as they touch on the
    sphere, not the canvas's seams. Past cube corners, where three faces meet and not four, halo slots
    repeat nearby columns.
    The two np4 corner columns of the side column are no face's, and appear only in halos.
    ValueError unless ``layout`` is a cubed-sphere layout.
    """
    from scipy.spatial import cKDTree

    if layout.kind != "cubed-sphere":
        raise ValueError(f"a face halo needs a cubed-sphere layout, not {layout.kind!r}")
    perm = layout.permutation.reshape(layout.shape2d)
    n = layout.shape2d[0] // 2
    np4 = layout.shape2d[1] == 3 * n + 1
    span = np.arange(-width, n + width)
    points, own = [], []
    for face in range(6):
        ki, kj = _NP4_KEEP[face] if np4 else (0, 0)
        points.append(_face_points(face, _slot_fractions(span + ki, n, np4), _slot_fractions(span + kj, n, np4)))
        row, col = _BLOCKS[face][0] * n, _BLOCKS[face][1] * n
        own.append(perm[row:row + n, col:col + n])
    pts = np.stack(points)
    home = pts[:, width:width + n, width:width + n].reshape(-1, 3)
    columns = np.stack(own).ravel()
    if np4:  # the two cube corners no face owns: in the side column, the northern one first
        corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) / math.sqrt(3.0)
        unowned = corners[cKDTree(home).query(corners)[0] > 1e-9]
        home = np.concatenate([home, unowned[np.argsort(-unowned[:, 2])]])
        columns = np.concatenate([columns, perm[:2, -1]])
    nearest = cKDTree(home).query(pts.reshape(-1, 3))[1]
    return columns[nearest].reshape(pts.shape[:3])


def _hilbert_d(x: np.ndarray, y: np.ndarray, bits: int) -> np.ndarray:
    """Distance along the Hilbert curve of order ``bits`` (from (0, 0) to (2^bits - 1, 0)) of integer (x, y)."""
    x, y = x.astype(np.int64), y.astype(np.int64)
    n = 1 << bits
    d = np.zeros_like(x)
    s = n >> 1
    while s:
        rx, ry = (x & s) > 0, (y & s) > 0
        d += s * s * ((3 * rx.astype(np.int64)) ^ ry.astype(np.int64))
        flip = ~ry & rx
        x, y = np.where(flip, n - 1 - x, x), np.where(flip, n - 1 - y, y)
        x, y = np.where(~ry, y, x), np.where(~ry, x, y)
        s >>= 1
    return d


def hilbert_order(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Column indices in Hilbert order over (lon, sin lat): two 180-degree squares, west half first."""
    n = 1 << HILBERT_BITS
    lon = np.asarray(lon, np.float64) % 360.0
    half = (lon >= 180.0).astype(np.int64)
    x = np.clip(np.floor((lon - 180.0 * half) / 180.0 * n), 0, n - 1)
    y = np.clip(np.floor((np.sin(np.deg2rad(lat)) + 1) / 2 * n), 0, n - 1)
    key = half * n * n + _hilbert_d(x, y, HILBERT_BITS)
    return np.lexsort((np.arange(lat.size), lon, lat, key))


def _hilbert_layout(lat: np.ndarray, lon: np.ndarray) -> Layout:
    return Layout("hilbert", lat.size, (lat.size,), hilbert_order(lat, lon))


def _identity(ncol: int) -> Layout:
    return Layout("none", ncol, (ncol,), np.arange(ncol, dtype=np.int64))


def detect(lat: np.ndarray, lon: np.ndarray, layout: str = "auto") -> Layout:
    """The layout of columns at ``lat``/``lon`` (degrees).

    ``layout="auto"`` tries the cubed sphere when ``ncol`` fits one and falls back to Hilbert (logging
    why); ``"cubed-sphere"`` raises ValueError when the columns are not an equiangular cube;
    ``"hilbert"`` and ``"none"`` (the 1-D line) are taken as asked.
    """
    if layout not in ("auto", *KINDS):
        raise ValueError(f"layout must be 'auto' or one of {KINDS}, got {layout!r}")
    lat, lon = np.asarray(lat, np.float64).ravel(), np.asarray(lon, np.float64).ravel()
    if lat.shape != lon.shape or lat.size == 0:
        raise ValueError(f"lat and lon must be non-empty and of the same length, got {lat.size} and {lon.size}")
    if not (np.all(np.isfinite(lat)) and np.all(np.isfinite(lon)) and np.all(np.abs(lat) <= 90)):
        raise ValueError("lat/lon must be finite, in degrees, with |lat| <= 90")
    if layout == "none":
        return _identity(lat.size)
    if layout == "hilbert":
        return _hilbert_layout(lat, lon)
    try:
        return _cube_layout(lat, lon)
    except ValueError as err:
        if layout == "cubed-sphere":
            raise ValueError(f"cannot lay these {lat.size} columns on cube faces: {err}") from None
        if cube_size(lat.size) is not None:
            log.info("ncol=%d fits a cubed sphere but the columns do not (%s); using the Hilbert layout", lat.size, err)
        return _hilbert_layout(lat, lon)


def verify(layout: Layout, digest: str) -> None:
    """Raise ValueError unless ``layout`` is the one whose sha256 was recorded as ``digest``."""
    if layout.digest != digest:
        raise ValueError(
            f"the {layout.kind} layout derived from this store's coordinates (sha256 {layout.digest[:12]}...) is "
            f"not the one the data was written with ({str(digest)[:12]}...): lat/lon or the column order changed "
            "since. Decode with the original coordinates (grid=...), or the columns would come back scrambled."
        )


def restore(attrs: dict, lat: np.ndarray, lon: np.ndarray) -> Layout | None:
    """The layout recorded in ``attrs`` (see :meth:`Layout.attrs`), re-derived from lat/lon and checked."""
    kind = attrs.get("xdiffc_layout")
    if kind is None:
        return None
    layout = detect(lat, lon, layout=str(kind))
    verify(layout, str(attrs.get("xdiffc_layout_sha256", "")))
    return layout


def _find_coord(ds: xr.Dataset, dim: str, axis: str) -> xr.DataArray | None:
    """lat or lon along ``dim``: by standard_name / units first, then by common names."""
    names, std, unit = ((_LAT_NAMES, "latitude", "degrees_north") if axis == "lat"
                        else (_LON_NAMES, "longitude", "degrees_east"))
    candidates = [v for v in ds.variables.values() if v.dims == (dim,)]
    for v in candidates:
        if v.attrs.get("standard_name") == std or v.attrs.get("units") == unit:
            import xarray as xr  # only Dataset inputs get here: the codec path never imports xarray

            return xr.DataArray(v)
    for name in names:
        if name in ds.variables and ds[name].dims == (dim,):
            return ds[name]
    return None


def _degrees(coord: xr.DataArray) -> np.ndarray:
    """Values in degrees; radians when the units say so, or for MPAS's latCell/lonCell without units."""
    units = str(coord.attrs.get("units", "")).lower()
    radians = "rad" in units or (not units and str(coord.name).endswith("Cell"))
    values = np.asarray(coord.values, np.float64)
    return np.rad2deg(values) if radians else values


def _latlon_in(ds: xr.Dataset, dim: str, size: int) -> tuple[np.ndarray, np.ndarray] | None:
    lat, lon = _find_coord(ds, dim, "lat"), _find_coord(ds, dim, "lon")
    if lat is None or lon is None:
        return None
    if lat.size != size:
        raise ValueError(f"the grid's lat/lon have {lat.size} columns, the data has {dim}={size}")
    return _degrees(lat), _degrees(lon)


def find_latlon(obj, dim: str = "ncol", grid=None) -> tuple[np.ndarray, np.ndarray] | None:
    """lat/lon in degrees of the columns along ``dim``, from ``obj`` or else from ``grid`` (path or Dataset)."""
    import xarray as xr  # only Dataset inputs get here: the codec path never imports xarray

    size = obj.sizes[dim]
    found = _latlon_in(obj.coords.to_dataset() if isinstance(obj, xr.DataArray) else obj, dim, size)
    if found is not None or grid is None:
        return found
    if isinstance(grid, (str, Path)):
        with xr.open_dataset(grid, decode_times=False) as ds:
            return _latlon_in(ds, dim, size)
    return _latlon_in(grid, dim, size)


#: (object, column dimension) pairs already warned about, by weak reference to the Dataset or DataArray.
_WARNED: list[tuple[weakref.ref, str]] = []


def _warn_once(obj, dim: str, message: str) -> None:
    """``message`` as a UserWarning once per Dataset and dimension: the accessor, ``assess``, ``tune`` and
    ``report`` look the layout up for each variable, and every ``warnings.catch_warnings`` block in between
    (Zarr's, xdiffc's own) clears Python's memory of the warnings it has shown."""
    _WARNED[:] = [(ref, d) for ref, d in _WARNED if ref() is not None]
    if any(ref() is obj and d == dim for ref, d in _WARNED):
        return
    _WARNED.append((weakref.ref(obj), dim))
    warn(message)


def layout_for(obj, dim: str = "ncol", grid=None, layout: str = "auto") -> Layout | None:
    """The layout for the ``dim`` columns of a Dataset or DataArray; None means "code the 1-D line".

    lat/lon are looked up on ``obj`` (coordinates or data variables along ``dim``: standard_name,
    units, or names such as lat/lon, latCell/lonCell in radians), then in ``grid``, a path or Dataset
    holding the same columns' lat/lon (``--grid FILE``). Without them, ``layout="auto"`` warns and
    returns None; a forced layout raises ValueError. ``layout="none"`` returns None, and so does an
    ``obj`` without ``dim``.
    """
    if layout not in ("auto", *KINDS):
        raise ValueError(f"layout must be 'auto' or one of {KINDS}, got {layout!r}")
    if layout == "none" or dim not in obj.dims:
        return None
    found = find_latlon(obj, dim, grid)
    if found is None:
        where = "in the data" + ("" if grid is None else f" or in grid {grid if isinstance(grid, (str, Path)) else 'Dataset'}")
        msg = (f"no lat/lon for dimension {dim!r} {where}; pass grid=FILE (xdiffc convert --grid FILE) naming "
               f"a file or Dataset with lat({dim}) and lon({dim})")
        if layout != "auto":
            raise ValueError(msg)
        _warn_once(obj, dim, msg + "; coding the columns as a 1-D line")
        return None
    return detect(*found, layout=layout)


def compress_native(x: np.ndarray, layout: Layout, axis: int = -1, **compress_kwargs) -> bytes:
    """``xdiffc.compress`` of ``x`` with its column axis laid out on the canvas (decode with :func:`decompress_native`)."""
    from .core import compress

    return compress(layout.to_grid(x, axis), **compress_kwargs)


def decompress_native(blob: bytes, layout: Layout, axis: int = -1) -> np.ndarray:
    """The native (..., ncol, ...) array of a blob written by :func:`compress_native` with the same layout."""
    from .core import decompress

    return layout.from_grid(decompress(blob), axis)
