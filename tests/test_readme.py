"""The README's two commands, as a new user runs them."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.strip().splitlines()]


def test_readme_starts_with_the_two_commands():
    assert _readme_commands() == ["make demo", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_demo_command_runs_and_checks_the_bound():
    """`xdiffc demo` as installed (the README's first command runs exactly this after setup)."""
    exe = Path(sys.executable).with_name("xdiffc")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "xdiffc.cli"]
    out = subprocess.run(cmd + ["demo"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "every value within its bound" in out.stdout
    rows = [line for line in out.stdout.splitlines() if line.startswith(("trefht:", "tos:"))]
    assert len(rows) >= 6
    for row in rows:
        cr, cr_sz3 = (float(v) for v in row.split()[2:4])
        assert cr > 1 and cr_sz3 > 0


@pytest.mark.skipif(shutil.which("git") is None or shutil.which("make") is None, reason="needs git and make")
def test_make_demo_on_a_fresh_clone_sets_up_as_make_test_then_runs_the_demo(tmp_path):
    """The first README command on a fresh clone of the committed tree: the same setup recipe as ``make test`` (which
    CI runs on a fresh clone, so the setup itself is proven there), then ``xdiffc demo`` from that venv, which
    :func:`test_demo_command_runs_and_checks_the_bound` runs. (Running it here in full took 130 s of the suite's
    10 minutes: 75 s of pip and 55 s of first compilation.)"""
    clone = tmp_path / "xdiffc"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)

    def recipe(target: str) -> list[str]:
        out = subprocess.run(["make", "--no-print-directory", "-n", target], cwd=clone, capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        return [line for line in out.stdout.splitlines() if line.strip()]

    demo, test = recipe("demo"), recipe("test")
    setup = demo[: demo.index("touch .venv/.installed") + 1]
    assert test[: len(setup)] == setup
    assert demo[len(setup):] == [".venv/bin/xdiffc demo"]
    assert any("pip install" in line and ".[test,bench,models]" in line for line in setup)


def test_notebook_cell_runs_twice(tmp_path, monkeypatch):
    """The README's notebook cell, run twice in a row as notebook users do, on a file with T and PS."""
    import numpy as np
    import xarray as xr

    cell = re.search(r"## In a notebook\n\n```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    rng = np.random.default_rng(0)
    time = xr.date_range("2000-01-01", periods=4, freq="MS")
    xr.Dataset({"T": (("time", "lev", "lat", "lon"), 250 + rng.random((4, 3, 8, 16), np.float32)),
                "PS": (("time", "lat", "lon"), 1e5 + 100 * rng.random((4, 8, 16), np.float32))},
               coords={"time": time, "lat": np.linspace(-80, 80, 8), "lon": np.arange(16.0) * 22.5}
               ).to_netcdf(tmp_path / "cam.h0.nc")
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        scope: dict = {}
        exec(cell, scope)
    report = scope["ds"].gcdtc.error_report(xr.open_zarr("cam.zarr"))
    assert (report["max_err_over_bound"] <= 1).all() and set(report.index) == {"T", "PS"}
