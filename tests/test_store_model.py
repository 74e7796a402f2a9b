"""Stores that carry their own model: written with a model file, or trained on the archive itself, and opened
by a process that has no model file at all."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import zarr

from tests.helpers import assert_bounded
from tests.test_model import TINY
from tests.test_model_guarantee import model_stream
from xdiffc.codec import GCDTCCodec
from xdiffc.conversion.prepare import ARCHIVE_MODEL
from xdiffc.conversion.progress import partial_path
from xdiffc.conversion.run import convert
from xdiffc.conversion.verify import verify
from xdiffc.datasets import open_sample
from xdiffc.errors import CorruptStreamError, ModelMismatchError
from xdiffc.neural import load_model, modelfile
from xdiffc.neural.network import GCDTCNet

TOL = 0.5
#: A corner of the TREFHT sample: enough for chunks, blocks and training, small enough to be quick.
CORNER = dict(lat=slice(0, 16), lon=slice(0, 32))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    torch.manual_seed(3)
    path = tmp_path_factory.mktemp("models") / "mine.pt"
    modelfile.save(path, GCDTCNet(TINY), max_abs_deviation=1e-5)
    return path


def codec_config(store: Path, name: str = "TREFHT") -> dict:
    return json.loads((store / name / "zarr.json").read_text())["codecs"][0]["configuration"]


def read_in_fresh_process(store: Path, name: str = "TREFHT") -> np.ndarray:
    """The variable as a process that imports only xarray (and has no model file anywhere) reads it."""
    code = f"import sys, xarray as xr\nsys.stdout.buffer.write(xr.open_zarr({str(store)!r})[{name!r}].values.tobytes())\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, cwd="/").stdout
    return np.frombuffer(out, np.float32)


def test_a_store_carries_a_model_that_is_not_shipped(tmp_path, model_path, carry_any_model):
    ds = open_sample("trefht").isel(time=slice(0, 8), **CORNER)
    store = tmp_path / "s.zarr"
    ds.gcdtc.to_zarr(store, tol=TOL, chunks={"time": 8}, model=str(model_path), climatology=False)
    config = codec_config(store)
    assert config["model_id"] == "mine"
    assert base64.b64decode(config["model_file"]) == model_path.read_bytes()
    # one chunk coded by the model path (the tiny model never pays on its own), written in the store's place
    pred = load_model(str(model_path))
    x = ds.TREFHT.values
    chunk = model_stream(x, TOL, pred)
    (store / "TREFHT" / "c" / "0" / "0" / "0").write_bytes(chunk)
    model_path.rename(tmp_path / "gone.pt")  # no model file anywhere now
    try:
        y = read_in_fresh_process(store).reshape(x.shape)
    finally:
        (tmp_path / "gone.pt").rename(model_path)
    assert_bounded(x, y, TOL)


def test_a_shipped_model_is_named_not_carried(tmp_path):
    ds = open_sample("trefht").isel(time=slice(0, 4))
    ds.gcdtc.to_zarr(tmp_path / "d.zarr", tol=TOL, model="default")
    config = codec_config(tmp_path / "d.zarr")
    assert config["model_id"] == "default" and "model_file" not in config


def test_a_damaged_or_wrong_carried_model_is_refused(tmp_path, model_path):
    data = model_path.read_bytes()
    sha = load_model(str(model_path)).sha256
    damaged = bytearray(data)
    damaged[len(damaged) // 2] ^= 1
    with pytest.raises(CorruptStreamError, match="sha256"):
        GCDTCCodec(tol=TOL, model_id="mine", model_sha256=sha, model_file=base64.b64encode(bytes(damaged)).decode())
    with pytest.raises(CorruptStreamError, match="base64"):
        GCDTCCodec(tol=TOL, model_id="mine", model_sha256=sha, model_file="not base64!")
    # a chunk written with another model than the one the store carries
    x = open_sample("trefht").isel(time=slice(0, 8), **CORNER).TREFHT.values
    torch.manual_seed(4)
    other_path = tmp_path / "other.pt"
    modelfile.save(other_path, GCDTCNet(TINY), max_abs_deviation=1e-5)
    chunk = model_stream(x, TOL, load_model(str(other_path)))
    codec = GCDTCCodec(tol=TOL, model_id="mine", model_sha256=sha, model_file=base64.b64encode(data).decode())
    with pytest.raises(ModelMismatchError, match="other"):
        codec.decode(chunk)
    assert_bounded(x, codec.decode(model_stream(x, TOL, load_model(str(model_path)))), TOL)


TINY_TRAINING = textwrap.dedent("""
    import sys
    import torch
    import xdiffc.training
    from tests.test_model import TINY
    from xdiffc.conversion.run import convert
    from xdiffc.xarray import climatology_choice as climatology

    if __name__ == "__main__":
        torch.set_num_threads(1)
        real = xdiffc.training.train  # a tiny network, so that the test trains in seconds
        xdiffc.training.train = lambda *a, **k: real(*a, config=TINY, **k)
        pays = climatology.pays_for_itself  # carried whether it pays or not: the mechanism is under test
        climatology.pays_for_itself = lambda da, config, extra, chunks: "model_file" in extra or pays(
            da, config, extra, chunks)
        args = [a for a in sys.argv[1:] if a != "--resume"]
        convert(args[:-1], args[-1], tol={"TREFHT": 0.5}, chunks={"time": 8}, train_model=40,  # in-process (small)
                progress=False, resume="--resume" in sys.argv)
""")


def test_convert_trains_resumes_after_a_kill_and_the_store_carries_the_model(tmp_path):
    ds = open_sample("trefht").isel(time=slice(0, 24), **CORNER)
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"in{i}.nc")
        ds.isel(time=slice(12 * i, 12 * (i + 1))).to_netcdf(paths[-1])
    out = tmp_path / "out.zarr"
    script = tmp_path / "run.py"
    script.write_text(TINY_TRAINING)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    ckpt = partial_path(out) / (ARCHIVE_MODEL + ".ckpt")
    proc = subprocess.Popen([sys.executable, str(script), *map(str, paths), str(out)], env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None and not ckpt.exists():
            time.sleep(0.05)
        assert proc.poll() is None, "the conversion ended before it could be killed"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    killed_at = torch.load(ckpt, weights_only=True)["step"]
    assert 0 < killed_at < 40 and not out.exists()
    subprocess.run([sys.executable, str(script), *map(str, paths), str(out), "--resume"], env=env, check=True,
                   capture_output=True)
    config = codec_config(out)
    assert config["model_id"] == "archive" and "model_file" in config
    carried = modelfile.read(base64.b64decode(config["model_file"]))
    assert carried.meta["steps"] == 40
    assert_bounded(ds.TREFHT.values, read_in_fresh_process(out).reshape(ds.TREFHT.shape), 0.5)
    assert verify(paths, out).ok
    with pytest.raises(ValueError, match="not both"):
        convert(paths, tmp_path / "x.zarr", train_model=5, model="default")


def test_to_zarr_trains_on_the_dataset(tmp_path, monkeypatch, carry_any_model):
    import xdiffc.training

    real = xdiffc.training.train
    monkeypatch.setattr(xdiffc.training, "train", lambda *a, **k: real(*a, config=TINY, **k))
    ds = open_sample("trefht").isel(time=slice(0, 16), **CORNER)
    ds.gcdtc.to_zarr(tmp_path / "t.zarr", tol=TOL, chunks={"time": 8}, train_model=12)
    config = codec_config(tmp_path / "t.zarr")
    assert config["model_id"] == "archive"
    assert modelfile.read(base64.b64decode(config["model_file"])).meta["steps"] == 12
    assert_bounded(ds.TREFHT.values, xr.open_zarr(tmp_path / "t.zarr").TREFHT.values, TOL)
    with pytest.raises(ValueError, match="train_model"):
        ds.gcdtc.to_zarr(zarr.storage.MemoryStore(), tol=TOL, train_model=-1)


def test_a_model_that_does_not_pay_is_not_carried(tmp_path, model_path):
    ds = open_sample("trefht").isel(time=slice(0, 16), **CORNER)
    with pytest.warns(UserWarning, match="does not pay"):
        ds.gcdtc.to_zarr(tmp_path / "n.zarr", tol=TOL, chunks={"time": 8}, model=str(model_path))
    config = codec_config(tmp_path / "n.zarr")
    assert config["model_id"] == "" and "model_file" not in config
    assert_bounded(ds.TREFHT.values, xr.open_zarr(tmp_path / "n.zarr").TREFHT.values, TOL)
