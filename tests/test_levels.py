"""The ``level`` knob: checked once, carried by every entry point, never needed to decode.

The bound at every level is tested by the guarantee tests, which draw the level.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
import zarr

import xdiffc
from xdiffc.bitstream import Stream
from xdiffc.coders import REGISTRY
from xdiffc.options import DEFAULT_LEVEL, Options
from xdiffc.zarr_codec import GCDTCZarrCodec
from tests.helpers import assert_bounded, spy_on_coders


def cycle_field(shape=(48, 24, 32), seed=0) -> np.ndarray:
    """A pattern repeating every 12 steps plus small anomalies: the decomposition's field."""
    rng = np.random.default_rng(seed)
    pattern = rng.normal(size=(12,) + shape[1:]).cumsum(-1)
    return (pattern[np.arange(shape[0]) % 12] + rng.normal(size=shape) * 0.01).astype(np.float32)


@pytest.mark.parametrize("bad", [0, 10, -1, 1.5, True, "3", None])
def test_a_bad_level_is_refused_everywhere(bad):
    x = np.zeros((8, 8), np.float32)
    for build in (lambda: xdiffc.compress(x, rel_tol=1e-3, level=bad), lambda: xdiffc.GCDTCCodec(tol=1, level=bad),
                  lambda: GCDTCZarrCodec(tol=1, level=bad), lambda: Options(tol=1, level=bad)):
        with pytest.raises(ValueError, match="level must be an integer from 1"):
            build()


def test_compress_at_level_1_as_the_checks_call_it():
    x = cycle_field()
    r = 1e-3
    blob = xdiffc.compress(x, rel_tol=r, level=1)
    assert_bounded(x, xdiffc.decompress(blob), r * float(x.max() - x.min()))


def test_level_1_tries_interp_alone_and_level_9_the_full_search(monkeypatch):
    x = cycle_field()
    tried = spy_on_coders(monkeypatch)
    one = xdiffc.compress(x, rel_tol=1e-3, level=1)
    assert tried == ["interp"] and set(Stream.from_bytes(one).sections) >= {"interp"}
    tried.clear()
    nine = xdiffc.compress(x, rel_tol=1e-3, level=9)
    assert tried[0] == "anomaly" and "anomaly" in Stream.from_bytes(nine).sections
    assert len(nine) < len(one)  # the search pays on a field with a cycle


@pytest.mark.parametrize("level", [1, 2, 3, 4, 6, 7, 9])
def test_each_level_tries_exactly_the_coders_it_enables(monkeypatch, level):
    x = cycle_field((16, 24, 24), seed=level)
    tried = spy_on_coders(monkeypatch)
    xdiffc.compress(x, rel_tol=1e-2, level=level)
    assert set(tried) <= {n for n, c in REGISTRY.items() if c.min_level <= level}


def test_the_stream_does_not_record_the_level():
    """A stream's header and sections are those of any stream: level 1 and level 9 streams of a field the search
    cannot improve on are the same bytes where the choices agree, and each decodes alone."""
    x = np.random.default_rng(1).normal(size=(6, 40, 50)).astype(np.float32)
    for level in (1, 5, 9):
        blob = xdiffc.compress(x, tol=0.1, level=level)
        assert "level" not in Stream.from_bytes(blob).sections
        assert_bounded(x, xdiffc.decompress(blob), 0.1)


def test_codecs_carry_the_level_in_their_configuration_only_when_set():
    assert "level" not in xdiffc.GCDTCCodec(tol=1).get_config()
    codec = xdiffc.GCDTCCodec(tol=1, level=2)
    assert codec.get_config()["level"] == 2 and codec.level == 2
    assert xdiffc.GCDTCCodec.from_config(codec.get_config()).options == codec.options
    zcodec = GCDTCZarrCodec(tol=1, level=3)
    assert zcodec.to_dict()["configuration"]["level"] == 3
    assert GCDTCZarrCodec.from_dict(zcodec.to_dict()) == zcodec
    assert DEFAULT_LEVEL in range(1, 10)


def test_the_accessor_writes_at_the_level_asked_for(tmp_path):
    x = cycle_field((24, 16, 20))
    ds = xr.Dataset({"T": (("time", "lat", "lon"), x)}, coords={"time": np.arange(24)})
    store = tmp_path / "t.zarr"
    ds.gcdtc.to_zarr(store, tol={"T": 0.01}, level=1, chunks={"time": 12})
    assert zarr.open_array(store / "T").metadata.codecs[0].to_dict()["configuration"]["level"] == 1
    out = xr.open_zarr(store).load()
    assert_bounded(x, out["T"].values, 0.01)
    enc = ds.gcdtc.compress(tol={"T": 0.01}, level=4)
    assert enc["T"].encoding["serializer"].level == 4
