"""Without PyTorch (``pip install xdiffc``, no ``[models]`` extra) every model-free path works, and a model path
says which extra it needs."""

from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCK_TORCH = """
import importlib.abc, sys
class _NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("No module named 'torch'")
sys.meta_path.insert(0, _NoTorch())
"""


def run_without_torch(code: str, tmp_path) -> subprocess.CompletedProcess:
    script = tmp_path / "run.py"
    script.write_text(BLOCK_TORCH + textwrap.dedent(code))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=600)


def test_model_free_use_never_imports_torch(tmp_path):
    out = run_without_torch("""
        import numpy as np, xarray as xr, xdiffc
        from xdiffc.conversion import verify
        x = np.random.default_rng(0).normal(size=(12, 20, 30)).cumsum(-1).astype("float32")
        y = xdiffc.decompress(xdiffc.compress(x, rel_tol=1e-3, level=1))
        assert np.abs(y - x).max() <= 1e-3 * float(x.max() - x.min())
        ds = xr.Dataset({"T": (("time", "lat", "lon"), x)}, coords={"time": np.arange(12)})
        ds.to_netcdf("t.nc")
        ds.gcdtc.to_zarr("s.zarr", rel_tol=1e-3, chunks={"time": 5})
        back = xr.open_zarr("s.zarr").load()
        assert float(abs(back["T"] - ds["T"]).max()) <= back["T"].attrs["xdiffc_tol"]
        report = ds.gcdtc.error_report(back)
        assert (report["max_err_over_bound"] <= 1).all()
        assert "torch" not in sys.modules
        print("ok")
    """, tmp_path)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]


def test_a_model_path_names_the_extra(tmp_path):
    out = run_without_torch("""
        import numpy as np, xdiffc
        try:
            xdiffc.compress(np.zeros((8, 64, 64), "float32") + np.arange(64), rel_tol=1e-3, model="default")
        except ImportError as err:
            print(err)
    """, tmp_path)
    assert out.returncode == 0 and "pip install 'xdiffc[models]'" in out.stdout, out.stderr[-3000:]
