"""``xdiffc report``: a static HTML page that shows the error, with a verdict against the criteria.

    xdiffc.report.build(original, decompressed, "report/")    # writes report/index.html and PNGs

Per variable: maps of the original, the reconstruction and the error (the slice with the largest
error), the error histogram against the bound, the compression ratio against the bound for
xdiffc, SZ3 and ZFP on a sample of chunks (filled markers pass the criteria, open ones fail),
and every metric of :mod:`xdiffc.metrics` with pass or fail. The page uses inline CSS and
relative PNG paths only, so it opens from disk with no network. Needs matplotlib
(``pip install 'xdiffc[bench]'``).
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from . import __version__, grids, metrics, tuning
from .xarray.variables import ATTR_TOL, valid

#: Bounds of the ratio figure, as fractions of the value range (the store's own bound is added).
RATIO_EPS = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
#: Values per variable sampled for the ratio figure.
RATIO_SAMPLE = 2**18
#: Compressors of the ratio figure: xdiffc and the baselines of :mod:`xdiffc.baselines`.
RATIO_COMPRESSORS = ("xdiffc", "sz3", "zfp")
TITLES = {"xdiffc": "xdiffc", "sz3": "SZ3", "zfp": "ZFP", "bitround_zstd": "BitRound+zstd"}
#: Metric columns of the table, with their headings and the criterion each is checked against.
COLUMNS = {"tol": "bound", "max_err_over_bound": "max err / bound", "pcc": "Pearson r", "ks_p": "KS p-value",
           "spre_pct": "spatial rel. error %", "dssim": "DSSIM", "nrmse": "NRMSE", "psnr": "PSNR dB",
           "ratio": "ratio"}

_CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
.pass{background:#e3f5e1}.fail{background:#fbe0e0}.na{color:#888}
.verdict{font-size:1.3em;padding:.6em 1em;border-radius:6px;display:inline-block}
img{max-width:100%;border:1px solid #eee;margin:.3em 0}figure{margin:1em 0}figcaption{color:#555}"""


@dataclass(frozen=True)
class Page:
    """A written report: its ``index.html``, the variables that fail the criteria, and its verdict in one line
    (:func:`xdiffc.metrics.verdict`: each failing variable with the criteria it fails)."""

    index: Path
    failed: list[str]
    verdict: str

    @property
    def passed(self) -> bool:
        return not self.failed


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("xdiffc report needs matplotlib: pip install 'xdiffc[bench]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _slug(name: Hashable) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", str(name))


def _columns(ds: xr.Dataset, name: Hashable) -> tuple[Hashable, np.ndarray, np.ndarray] | None:
    """(column dimension, lat, lon) of a variable on an unstructured grid with known lat/lon, else None."""
    native = metrics.native_layout(ds, name)
    if native is None:
        return None
    dim = ds[name].dims[native[0]]
    found = grids.find_latlon(ds, str(dim))
    return None if found is None else (dim, *found)


def _worst_slice(err: xr.DataArray, spatial: Sequence[Hashable]) -> dict[Hashable, int]:
    """Index of the slice (over the non-spatial dimensions) holding the largest error."""
    rest = [d for d in err.dims if d not in spatial]
    if not rest:
        return {}
    peak = err.max(dim=list(spatial)).fillna(-1)
    return {d: int(i) for d, i in peak.argmax(dim=rest).items()}


def plot_maps(ds: xr.Dataset, name: Hashable, y: xr.DataArray, valid: xr.DataArray, tol: float,
              path: Path) -> str:
    """Original, reconstruction and error of the slice with the largest error; returns its caption.

    Gridded data is drawn on its last two dimensions; columns of an unstructured grid as a scatter
    at their lat/lon; 1-D data as a line.
    """
    plt = _pyplot()
    x = ds[name]
    columns = _columns(ds, name)
    spatial = [columns[0]] if columns is not None else list(x.dims[-2:])
    err = abs(y.astype(np.float64) - x).where(valid)
    where = _worst_slice(err, spatial)
    xs, ys, ok = (a.isel(where) for a in (x.where(valid), y.where(valid), valid))
    diff = (ys.astype(np.float64) - xs).values
    lo, hi = float(np.nanmin(xs.values)), float(np.nanmax(xs.values))
    bound = tol if tol > 0 else float(np.nanmax(np.abs(diff))) or 1.0
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), squeeze=False)
    panels = [(xs.values, "original", "viridis", lo, hi), (ys.values, "reconstruction", "viridis", lo, hi),
              (diff, "error (reconstruction - original)", "RdBu_r", -bound, bound)]
    if columns is not None:
        import matplotlib.tri as mtri

        _, lat, lon = columns
        tri = mtri.Triangulation(lon, lat)
        tri.set_mask(~ok.values[tri.triangles].all(axis=1))
    for ax, (data, title, cmap, vmin, vmax) in zip(axes[0], panels):
        if columns is not None:
            im = ax.tripcolor(tri, np.nan_to_num(np.ravel(data)), cmap=cmap, vmin=vmin, vmax=vmax, shading="gouraud")
            ax.set(xlabel="lon", ylabel="lat")
        elif data.ndim == 2:
            ydim, xdim = xs.dims
            gx, gy = (xs[d].values if d in xs.coords and xs[d].ndim == 1 and xs[d].dtype.kind in "iuf"
                      else np.arange(xs.sizes[d]) for d in (xdim, ydim))
            im = ax.pcolormesh(gx, gy, data, cmap=cmap, vmin=vmin, vmax=vmax, shading="auto")
            ax.set(xlabel=str(xdim), ylabel=str(ydim))
        else:
            ax.plot(np.ravel(data), lw=0.8)
            im = None
        ax.set_title(title, fontsize=10)
        if im is not None:
            fig.colorbar(im, ax=ax, shrink=0.85)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    at = ", ".join(f"{d}={i}" for d, i in where.items()) or "the whole field"
    return f"Slice with the largest error ({at}). Error colours span ± the bound ({bound:.4g})."


def plot_histogram(x: np.ndarray, y: np.ndarray, tol: float, path: Path) -> None:
    """Histogram of the error y - x over the valid points, with the bound marked."""
    plt = _pyplot()
    diff = np.asarray(y, np.float64) - x
    fig, ax = plt.subplots(figsize=(6, 3.5))
    span = max(tol, float(np.max(np.abs(diff), initial=0.0))) or 1.0
    ax.hist(diff, bins=101, range=(-1.05 * span, 1.05 * span), color="#4477aa")
    for s in (-tol, tol):
        ax.axvline(s, color="#cc3311", ls="--", lw=1)
    ax.set_yscale("log")
    ax.set_ylim(bottom=0.8)
    ax.set(xlabel="error (reconstruction - original)", ylabel="points",
           title=f"error against the bound ± {tol:.4g} (dashed)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def ratio_curve(ds: xr.Dataset, name: Hashable, tol: float, criteria: metrics.Criteria,
                compressors: Sequence[str] = RATIO_COMPRESSORS, sample: int = RATIO_SAMPLE,
                model: str | None = None) -> pd.DataFrame:
    """Ratio and pass/fail of each compressor at RATIO_EPS times the range and at ``tol``, on a sample.

    Baselines are judged on the criteria alone, xdiffc on its bound too (see :func:`tuning.evaluate`).
    """
    vs = tuning.sample_variable(ds, name, sample)
    span = tuning.value_range(vs.blocks)
    bounds = sorted({e * span for e in RATIO_EPS} | ({tol} if tol > 0 else set()))
    rows = []
    for cname, run in vs.compressors(compressors, model).items():
        for b in bounds:
            t = tuning.evaluate(vs.blocks, run, b, criteria, vs.native, check_bound=cname == "xdiffc")
            rows.append({"compressor": cname, "tol": b, "ratio": t.ratio, "passed": t.passed})
    return pd.DataFrame(rows)


def plot_ratio(curve: pd.DataFrame, tol: float, path: Path) -> None:
    """Ratio against the bound per compressor; filled markers pass the criteria, open ones fail."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for i, (cname, part) in enumerate(curve.groupby("compressor", sort=False)):
        color = f"C{i}"
        ax.plot(part.tol, part.ratio, color=color, lw=1, label=TITLES.get(cname, cname))
        for passed, face in ((True, color), (False, "white")):
            sel = part[part.passed == passed]
            ax.scatter(sel.tol, sel.ratio, color=color, facecolors=face, zorder=3, s=30)
    ax.axvline(tol, color="k", ls=":", lw=1, label="this store's bound")
    ax.set(xscale="log", yscale="log", xlabel="absolute bound", ylabel="compression ratio",
           title="ratio on a sample of chunks (filled: passes the criteria)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _cell(value: float, ok: bool | None, checked: bool) -> str:
    """A table cell: green with a tick (pass), red with a cross (fail), grey (criterion not applicable)."""
    text = "n/a" if isinstance(value, float) and math.isnan(value) else f"{value:.6g}"
    if not checked:
        return f"<td>{html.escape(text)}</td>"
    cls, mark = {True: ("pass", " ✓"), False: ("fail", " ✗"), None: ("na", "")}[ok]
    return f'<td class="{cls}">{html.escape(text)}{mark}</td>'


def table_html(df: pd.DataFrame) -> str:
    """The metrics table, one row per variable, each checked metric coloured pass or fail."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ("variable", *COLUMNS.values(), "verdict"))
    rows = []
    for name, r in df.iterrows():
        cells = "".join(_cell(float(r[c]), r.get(f"ok_{c}"), f"ok_{c}" in r) for c in COLUMNS)
        verdict = '<td class="pass">pass</td>' if r["passed"] else '<td class="fail">FAIL</td>'
        rows.append(f"<tr><td>{html.escape(str(name))}</td>{cells}{verdict}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _criteria_html(crit: metrics.Criteria) -> str:
    return (f"<ul><li>Pearson correlation ≥ {crit.pcc_min}</li><li>KS-test p-value ≥ {crit.ks_p_min}</li>"
            f"<li>spatial relative error (share of points with relative error &gt; {crit.spre_rel_tol:g}) "
            f"≤ {crit.spre_max_pct:g} %</li><li>DSSIM ≥ {crit.dssim_min} (where defined: 2-D slices)</li>"
            f"<li>max error / bound ≤ 1</li></ul>")


def build(original: xr.Dataset, other: xr.Dataset, out_dir: str | Path,
          criteria: str | metrics.Criteria | Mapping | None = None, variables: Sequence[Hashable] | None = None,
          compressors: Sequence[str] = RATIO_COMPRESSORS, sample: int = RATIO_SAMPLE,
          title: str = "xdiffc report") -> Page:
    """Write ``out_dir/index.html`` and its PNGs comparing ``other`` (decompressed) with ``original``.

    Returns the :class:`Page`: where it is, and the variables that fail (its verdict).
    """
    crit = metrics.resolve_criteria(criteria)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    df = metrics.assess(original, other, crit, variables)
    sections = []
    for name in df.index:
        x, y = original[name].load(), other[name].load()
        ok_x = valid(x)
        tol = float(other[name].attrs.get(ATTR_TOL, df.loc[name, "max_abs_err"]))
        slug = _slug(name)
        caption = plot_maps(original, name, y, ok_x, tol, out / f"{slug}_maps.png")
        ok = ok_x.values
        plot_histogram(x.values[ok].astype(np.float64), y.values[ok], tol, out / f"{slug}_hist.png")
        plot_ratio(ratio_curve(original, name, tol, crit, compressors, sample), tol, out / f"{slug}_ratio.png")
        verdict = "passes" if df.loc[name, "passed"] else "FAILS"
        long_name = html.escape(str(x.attrs.get("long_name", "")))
        sections.append(
            f'<h2 id="{slug}">{html.escape(str(name))} <small>{long_name}</small> — {verdict}</h2>'
            f"{table_html(df.loc[[name]])}"
            f'<figure><img src="{slug}_maps.png" alt="maps of {slug}"><figcaption>{html.escape(caption)}'
            f"</figcaption></figure>"
            f'<figure><img src="{slug}_hist.png" alt="error histogram of {slug}">'
            f'<img src="{slug}_ratio.png" alt="ratio against bound of {slug}"><figcaption>Left: error '
            f"histogram (log scale) against the bound. Right: compression ratio against the bound on a sample "
            f"of chunks (at most {sample} values), for {', '.join(TITLES.get(c, c) for c in compressors)}."
            f"</figcaption></figure>")
    failed = [str(n) for n in df.index if not df.loc[n, "passed"]]
    line = metrics.verdict(df)
    verdict = (f'<p class="verdict pass">{html.escape(line)}.</p>' if not failed else
               f'<p class="verdict fail">FAIL: {len(failed)} of {len(df)} variables fail: '
               f'{html.escape(line.removeprefix("FAIL: "))}.</p>')
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>{verdict}"
            f"<p>Criteria (Baker et al., as in NCAR's ldcpy):</p>{_criteria_html(crit)}"
            f"{table_html(df)}{''.join(sections)}"
            f"<p><small>xdiffc {__version__}, {when}. Metrics over the valid points (not NaN or fill); "
            f"ratio = bytes in memory / bytes stored (n/a without a store).</small></p></body></html>")
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return Page(index, failed, line)


def open_dataset(paths: str | Path | Sequence[str | Path]) -> xr.Dataset:
    """A Zarr store (a directory), one netCDF file, or several netCDF files combined by their coordinates.

    A path that is missing, or that xarray cannot open as a dataset, raises an error naming it.
    """
    from .conversion.progress import is_complete
    from .errors import first_sentence

    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    for path in paths:
        if not Path(path).exists():
            raise FileNotFoundError(is_complete(path)[1])  # "does not exist", or: a conversion into it is unfinished
    try:
        if len(paths) == 1 and Path(paths[0]).is_dir():
            ds = xr.open_zarr(paths[0])
            ds.encoding["source"] = str(paths[0])
            return ds
        return xr.open_dataset(paths[0]) if len(paths) == 1 else xr.open_mfdataset(paths, combine="by_coords")
    except (OSError, ValueError) as err:  # not a dataset (no backend, no Zarr group), or files that do not combine
        what = repr(str(paths[0])) if len(paths) == 1 else f"the {len(paths)} files {str(paths[0])!r} ..."
        raise ValueError(f"cannot open {what} as a netCDF file or Zarr store: {first_sentence(err)}") from err
