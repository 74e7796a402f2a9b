"""xdiffc report / assess / tune: the page builds from the embedded samples, every figure it links decodes."""

from __future__ import annotations

import re

import matplotlib.image
import numpy as np
import pytest

from xdiffc import report
from xdiffc.cli import main
from xdiffc.datasets import open_sample

pytestmark = pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning",
                                        "ignore:no lat/lon for dimension")

SMALL = {"trefht": dict(time=slice(0, 2)), "tos": dict(nlat=slice(100, 228), nlon=slice(0, 160)),
         "camse_ts": dict(time=slice(0, 1))}


def small(name: str):
    ds = open_sample(name).isel(SMALL[name])
    return ds[["TS", "lat", "lon"]] if name == "camse_ts" else ds


def linked_images(index) -> list[str]:
    page = index.read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page and "<script" not in page  # opens offline
    return re.findall(r'<img src="([^"]+)"', page)


def test_report_builds_from_the_samples(tmp_path):
    for name in SMALL:
        ds = small(name)
        out = ds.gcdtc.roundtrip(rel_tol=1e-3)
        compressors = ("xdiffc", "sz3") if name == "trefht" else ("xdiffc",)
        index = report.build(ds, out, tmp_path / name, compressors=compressors, sample=2**13)
        page = index.read_text(encoding="utf-8")
        assert "PASS" in page or "FAIL" in page
        images = linked_images(index)
        assert len(images) == 3 * len(report.metrics.lossy_names(out))
        for src in images:
            img = matplotlib.image.imread(tmp_path / name / src)
            assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100, src
            assert np.ptp(img) > 0, f"{src} is blank"


def test_cli_assess_report_tune(tmp_path, capsys):
    ds = small("trefht")
    original = tmp_path / "trefht.nc"
    ds.to_netcdf(original)
    good, bad = tmp_path / "good.zarr", tmp_path / "bad.zarr"
    ds.gcdtc.to_zarr(good, rel_tol=1e-6)
    ds.gcdtc.to_zarr(bad, rel_tol=1e-2)
    assert main(["assess", str(original), str(good)]) == 0
    assert "PASS" in capsys.readouterr().out
    assert main(["assess", str(original), str(bad)]) == 1
    assert "FAIL: TREFHT" in capsys.readouterr().out
    assert main(["assess", str(original), str(bad), "--spre-max", "100", "--dssim-min", "0.5",
                 "--pcc-min", "0.99", "--ks-p-min", "0"]) == 0
    capsys.readouterr()
    assert main(["report", str(original), str(bad), "-o", str(tmp_path / "rep"), "--sample", "4096"]) == 0
    index = tmp_path / "rep" / "index.html"
    assert "FAIL" in index.read_text(encoding="utf-8")
    assert all((tmp_path / "rep" / src).is_file() for src in linked_images(index))
    assert "ratio" in index.read_text(encoding="utf-8")
    capsys.readouterr()
    assert main(["tune", str(original), "--iterations", "3", "--sample", "8192"]) == 0
    assert re.search(r"--tol TREFHT=\d", capsys.readouterr().out)
