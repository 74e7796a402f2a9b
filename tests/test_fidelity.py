"""Physically faithful output: the input's range kept, exact zeros and signs, pointwise-relative bounds.

Each guarantee is a hypothesis test over the arrays of tests/test_guarantee.py (NaN with payloads,
inf and fill values, float32 and float64, subnormals, huge and tiny values, mixed signs, Fortran
order), with zeros added in regions and scattered; then the bound types through numcodecs, Zarr v3,
the accessor and the CLI.
"""

from __future__ import annotations

import hashlib
import json

import numcodecs
import numpy as np
import pytest
import xarray as xr
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

import xdiffc
from xdiffc import logdomain
from xdiffc.bitstream import Stream
from xdiffc.fidelity import read_guarantee
from xdiffc.masking import special_mask
from xdiffc.zarr_codec import GCDTCZarrCodec
from tests.helpers import assert_bounded
from tests.test_guarantee import cases, levels

rel_tols = st.sampled_from([1e-6, 1e-4, 1e-3, 1e-2, 0.3, 0.99])


def with_zeros(x: np.ndarray, seed: int) -> np.ndarray:
    """``x`` with a block of zeros (either sign) and a few scattered ones, as in dry areas or open water."""
    x = x.copy()
    if x.ndim == 0 or x.size < 4:
        return x
    rng = np.random.default_rng(seed)
    flat = x.reshape(-1)
    start = int(rng.integers(0, x.size // 2))
    flat[start : start + x.size // 4] = 0.0
    flat[rng.choice(x.size, size=max(1, x.size // 16), replace=False)] = -0.0
    return x


def valid_of(x: np.ndarray) -> np.ndarray:
    return ~special_mask(x.astype(x.dtype.newbyteorder("=")))


def assert_range_kept(x: np.ndarray, y: np.ndarray, lo: float | None = None, hi: float | None = None) -> None:
    ok = valid_of(x)
    if ok.any():
        vals = x[ok].astype(np.float64)
        lo = vals.min() if lo is None else lo
        hi = vals.max() if hi is None else hi
        out = y[ok].astype(np.float64)
        assert out.min() >= lo and out.max() <= hi, f"output [{out.min()}, {out.max()}] leaves [{lo}, {hi}]"


def assert_zeros_and_signs(x: np.ndarray, y: np.ndarray) -> None:
    ok = valid_of(x)
    a, b = x[ok].astype(np.float64), y[ok].astype(np.float64)
    assert np.all(b[a == 0] == 0), "a zero came back non-zero"
    nz = a != 0
    assert np.all(np.sign(b[nz]) == np.sign(a[nz])), "a value changed sign or became zero"


def assert_pw_rel(x: np.ndarray, y: np.ndarray, r: float, tol: float = np.inf) -> None:
    ok = valid_of(x)
    a, b = x[ok].astype(np.float64), y[ok].astype(np.float64)
    bound = np.minimum(tol, r * np.abs(a))
    assert np.all(np.abs(b - a) <= bound), f"pointwise-relative bound {r} broken"
    assert_zeros_and_signs(x, y)


@settings(max_examples=60, deadline=None)
@given(cases(), st.integers(0, 2**32 - 1), st.booleans(), levels)
def test_range_is_kept_by_default(case, seed, zeros, level):
    x, tol = case
    x = with_zeros(x, seed) if zeros else x
    y = xdiffc.decompress(xdiffc.compress(x, tol, level=level))
    assert_bounded(x, y, tol)
    assert_range_kept(x, y)


@settings(max_examples=60, deadline=None)
@given(cases(), st.integers(0, 2**32 - 1), levels)
def test_preserve_zero_keeps_zeros_and_signs(case, seed, level):
    x, tol = case
    x = with_zeros(x, seed)
    y = xdiffc.decompress(xdiffc.compress(x, tol, preserve_zero=True, level=level))
    assert_bounded(x, y, tol)
    assert_range_kept(x, y)
    assert_zeros_and_signs(x, y)


@settings(max_examples=60, deadline=None)
@given(cases(), rel_tols, st.integers(0, 2**32 - 1), st.booleans(), levels)
def test_pointwise_relative_bound_holds(case, r, seed, with_tol, level):
    x, tol = case
    x = with_zeros(x, seed)
    y = xdiffc.decompress(xdiffc.compress(x, tol if with_tol else None, pw_rel_tol=r, level=level))
    assert y.shape == x.shape and y.dtype == x.dtype
    assert_pw_rel(x, y, r, tol if with_tol else np.inf)
    assert_range_kept(x, y)
    missing = ~valid_of(x)
    assert np.array_equal(y[missing].view(np.uint8), x[missing].view(np.uint8))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pointwise_relative_over_many_decades_compresses(dtype):
    """Precipitation-like values over 12 decades, both signs and dry regions: the bound holds and pays."""
    rng = np.random.default_rng(3)
    t = rng.normal(size=(32, 64)).cumsum(axis=1) * 0.5 - 20
    x = (np.exp2(t) * np.where(rng.random((32, 64)) < 0.1, -1, 1)).astype(dtype)
    x[:, :10] = 0
    x[0, 12] = np.finfo(dtype).smallest_subnormal * 3
    x[1, 12] = np.finfo(dtype).max / 2
    blob = xdiffc.compress(x, pw_rel_tol=1e-2)
    y = xdiffc.decompress(blob)
    assert_pw_rel(x, y, 1e-2)
    assert len(blob) < x.nbytes / 2
    assert logdomain.SECTION in Stream.from_bytes(blob).sections


def test_exp2_is_accurate_and_pinned():
    """Our exp2 agrees with libm to 4 ulp, and gives the same bits everywhere (sha256 pinned)."""
    t = np.linspace(-1080, 1030, 200_001)
    with np.errstate(over="ignore"):
        ours, ref = logdomain.exp2(t), np.exp2(t)
    normal = (ref > np.finfo(np.float64).smallest_normal) & np.isfinite(ref)
    assert np.all(np.abs(ours[normal] - ref[normal]) <= 4 * np.spacing(ref[normal]))
    assert np.array_equal(np.isinf(ours), np.isinf(ref))
    assert np.array_equal(logdomain.exp2(np.arange(-1074, 1024.0)), 2.0 ** np.arange(-1074, 1024.0))
    digest = hashlib.sha256(logdomain.exp2(np.linspace(-40, 40, 10_007)).tobytes()).hexdigest()
    assert digest == EXP2_SHA256


#: sha256 of exp2(linspace(-40, 40, 10007)) as this implementation computes it on every machine.
EXP2_SHA256 = "f2a31a1269f5d55f9168032c623c5fe0e280d13814be1467f080758339eff159"


def test_field_with_minimum_zero_stays_nonnegative_and_within_cf_range():
    """Sea-ice concentration: 0 over open water, 1 in the pack, the CF valid_range in packed units."""
    rng = np.random.default_rng(0)
    conc = np.clip(rng.normal(size=(6, 48, 64)).cumsum(axis=2) * 0.2, 0, 1).astype(np.float32)
    conc[:, :, :20] = 0
    var = xr.Variable(("time", "lat", "lon"), conc, {"valid_range": np.array([0, 10000], np.int16)},
                      {"scale_factor": 1e-4, "add_offset": 0.0, "dtype": np.dtype(np.int16)})
    ds = xr.Dataset({"sic": var}, coords={"time": np.arange(6)})
    y = ds.gcdtc.roundtrip(rel_tol=1e-2)
    assert y.sic.attrs["xdiffc_preserve_zero"] == 1  # its minimum is 0: on by default
    out = y.sic.values
    assert out.min() >= 0 and out.max() <= 1
    assert np.all(out[conc == 0] == 0) and np.all(out[conc > 0] > 0)
    assert np.abs(out - conc).max() <= 1e-2 * (conc.max() - conc.min())
    assert ds.gcdtc.roundtrip(rel_tol=1e-2, preserve_zero=False).sic.attrs.get("xdiffc_preserve_zero") is None


def test_cf_valid_range_narrows_the_clamp():
    """Values outside the CF valid range are clamped into it where the bound allows, kept exactly where not."""
    x = np.linspace(-0.001, 1.001, 4096).reshape(64, 64).astype(np.float32)
    y = xdiffc.decompress(xdiffc.compress(x, 0.01, valid_range=(0.0, 1.0)))
    assert_bounded(x, y, 0.01)
    assert y.min() >= 0 and y.max() <= 1


def test_bound_types_round_trip_through_numcodecs_and_zarr_v3(tmp_path):
    x = np.exp2(np.random.default_rng(1).normal(size=(40, 50)).cumsum(axis=1)).astype(np.float32)
    x[:, :5] = 0
    config = {"id": "xdiffc.gcdtc", "tol": None, "pw_rel_tol": 1e-3, "valid_range": [0.0, 1e30]}
    codec = numcodecs.get_codec(config)
    assert codec.get_config()["pw_rel_tol"] == 1e-3 and "preserve_zero" not in codec.get_config()
    assert numcodecs.get_codec(json.loads(json.dumps(codec.get_config()))).get_config() == codec.get_config()
    blob = codec.encode(x)
    assert read_guarantee(Stream.from_bytes(blob).sections) == (1e-3, True)
    assert_pw_rel(x, codec.decode(blob).reshape(x.shape), 1e-3)
    serializer = GCDTCZarrCodec(tol=0.5, pw_rel_tol=1e-2, preserve_zero=True)
    assert GCDTCZarrCodec.from_dict(serializer.to_dict()) == serializer
    arr = zarr.create_array(str(tmp_path / "a.zarr"), shape=x.shape, chunks=(20, 50), dtype="float32",
                            serializer=serializer, compressors=None)
    arr[:] = x
    again = zarr.open_array(str(tmp_path / "a.zarr"))
    assert again.metadata.codecs[0].to_dict()["configuration"]["pw_rel_tol"] == 1e-2
    assert_pw_rel(x, again[:], 1e-2, 0.5)


def test_accessor_records_bound_types_and_checks_them(tmp_path):
    rng = np.random.default_rng(2)
    rain = np.exp2(rng.normal(size=(4, 32, 48)).cumsum(axis=2) * 0.3 - 25).astype(np.float32)
    rain[:, :8] = 0
    ds = xr.Dataset({"pr": (("time", "lat", "lon"), rain), "ts": (("time", "lat", "lon"), rain * 1e9 + 250)},
                    coords={"time": np.arange(4)})
    ds.gcdtc.to_zarr(tmp_path / "s.zarr", pw_rel_tol={"pr": 1e-3})
    out = xr.open_zarr(tmp_path / "s.zarr")
    assert out.pr.attrs["xdiffc_pw_rel_tol"] == 1e-3 and "xdiffc_tol" not in out.pr.attrs
    assert out.pr.attrs["xdiffc_preserve_zero"] == 1 and out.ts.attrs["xdiffc_rel_tol"] == 1e-3
    assert_pw_rel(rain, out.pr.values, 1e-3)
    report = ds.gcdtc.error_report(out)
    assert report.loc["pr", "pw_rel_tol"] == 1e-3 and (report["max_err_over_bound"] <= 1).all()
    assert ds.gcdtc.assess(out).loc["pr", "ok_max_err_over_bound"]


def test_convert_takes_pw_rel_tol_and_preserve_zero(tmp_path):
    from xdiffc.cli import main

    rain = np.exp2(np.random.default_rng(4).normal(size=(4, 16, 24)).cumsum(axis=2) * 0.3 - 25).astype(np.float32)
    rain[:, :4] = 0
    xr.Dataset({"pr": (("time", "lat", "lon"), rain)}, coords={"time": np.arange(4)}).to_netcdf(tmp_path / "in.nc")
    assert main(["convert", str(tmp_path / "in.nc"), "-o", str(tmp_path / "o.zarr"), "--pw-rel-tol", "1e-2",
                 "--no-preserve-zero", "--verify", "--quiet", "--workers", "1"]) == 0
    out = xr.open_zarr(tmp_path / "o.zarr")
    assert out.pr.attrs["xdiffc_pw_rel_tol"] == 1e-2
    assert_pw_rel(rain, out.pr.values, 1e-2)


def test_l2_mode_refuses_pointwise_guarantees():
    with pytest.raises(ValueError, match="pointwise guarantees"):
        xdiffc.compress(np.zeros((32, 32), np.float32), mode="l2", nrmse=1e-3, pw_rel_tol=1e-3)
    with pytest.raises(ValueError, match="pw_rel_tol"):
        xdiffc.compress(np.zeros((32, 32), np.float32), pw_rel_tol=-1)
