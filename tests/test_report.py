"""xdiffc report / assess / tune: the page builds from the embedded samples, every figure it links decodes."""

from __future__ import annotations

import html
import re

import matplotlib.image
import numpy as np

from xdiffc import report
from xdiffc.cli import main
from xdiffc.datasets import open_sample


SMALL = {"trefht": dict(time=slice(0, 2)), "tos": dict(nlat=slice(100, 228), nlon=slice(0, 160)),
         "camse_ts": dict(time=slice(0, 1))}


def small(name: str):
    ds = open_sample(name).isel(SMALL[name])
    return ds[["TS", "lat", "lon"]] if name == "camse_ts" else ds


#: The verdict line on TREFHT coded too loosely: each failed criterion, its value and its threshold.
_CRITERION = r"(?:(?:pcc|ks_p|dssim) [-+\d.e]+ < [-+\d.e]+|spre_pct [-+\d.e]+ > [-+\d.e]+)"
FAILED_TREFHT = rf"FAIL: TREFHT \({_CRITERION}(?:, {_CRITERION})*\)"


def headline(index) -> str:
    """The verdict at the top of the page: PASS or FAIL."""
    found = re.findall(r'<p class="verdict (pass|fail)">(PASS|FAIL):', index.read_text(encoding="utf-8"))
    assert len(found) == 1 and found[0][0] == found[0][1].lower(), found
    return found[0][1]


def linked_images(index) -> list[str]:
    page = index.read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page and "<script" not in page  # opens offline
    return re.findall(r'<img src="([^"]+)"', page)


def test_report_builds_from_the_samples(tmp_path):
    for name in SMALL:
        ds = small(name)
        out = ds.gcdtc.roundtrip(rel_tol=1e-3)
        compressors = ("xdiffc", "sz3") if name == "trefht" else ("xdiffc",)
        page = report.build(ds, out, tmp_path / name, compressors=compressors, sample=2**13)
        index = page.index
        assert headline(index) == ("PASS" if page.passed else "FAIL")
        images = linked_images(index)
        assert len(images) == 3 * len(report.metrics.lossy_names(out))
        for src in images:
            img = matplotlib.image.imread(tmp_path / name / src)
            assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100, src
            assert np.ptp(img) > 0, f"{src} is blank"


def test_report_verdict_follows_the_criteria(tmp_path):
    ds = small("trefht")
    good = report.build(ds, ds.gcdtc.roundtrip(rel_tol=1e-6), tmp_path / "good", compressors=("xdiffc",), sample=4096)
    bad = report.build(ds, ds.gcdtc.roundtrip(rel_tol=1e-2), tmp_path / "bad", compressors=("xdiffc",), sample=4096)
    assert good.passed and headline(good.index) == "PASS"
    assert bad.failed == ["TREFHT"] and headline(bad.index) == "FAIL"
    assert re.fullmatch(FAILED_TREFHT, bad.verdict)  # the failing criteria are named, with values and thresholds
    assert html.escape(bad.verdict.removeprefix("FAIL: ")) in bad.index.read_text(encoding="utf-8")


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
    assert re.fullmatch(FAILED_TREFHT, capsys.readouterr().out.splitlines()[-1])
    assert main(["assess", str(original), str(bad), "--spre-max", "100", "--dssim-min", "0.5",
                 "--pcc-min", "0.99", "--ks-p-min", "0"]) == 0
    capsys.readouterr()
    assert main(["report", str(original), str(bad), "-o", str(tmp_path / "rep"), "--sample", "4096"]) == 1
    assert re.fullmatch(FAILED_TREFHT, capsys.readouterr().out.splitlines()[-1])
    index = tmp_path / "rep" / "index.html"
    assert headline(index) == "FAIL"
    assert all((tmp_path / "rep" / src).is_file() for src in linked_images(index))
    assert "ratio" in index.read_text(encoding="utf-8")
    assert main(["report", str(original), str(good), "-o", str(tmp_path / "ok"), "--sample", "4096"]) == 0
    assert headline(tmp_path / "ok" / "index.html") == "PASS"
    capsys.readouterr()
    assert main(["tune", str(original), "--iterations", "3", "--sample", "8192"]) == 0
    assert re.search(r"--(tol|pw-rel-tol) TREFHT=\d", capsys.readouterr().out)  # either kind may win
