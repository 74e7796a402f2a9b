"""One validation for every entry point: the same error, in the same words, wherever an argument is given."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import xdiffc
from xdiffc.codec import GCDTCCodec
from xdiffc.conversion.run import convert
from xdiffc.datasets import sample_path
from xdiffc.zarr_codec import GCDTCZarrCodec


def field() -> xr.Dataset:
    rng = np.random.default_rng(0)
    data = np.abs(rng.normal(size=(6, 8, 16))).astype(np.float32)
    data[:, :2] = 0.0  # a field >= 0 with exact zeros: preserve_zero's default rule turns on for it
    return xr.Dataset({"P": (("time", "y", "x"), data)}, coords={"time": np.arange(6)})


ENTRY_POINTS = {
    "compress": lambda **kw: xdiffc.compress(np.zeros((4, 4), np.float32), **kw),
    "numcodecs codec": lambda **kw: GCDTCCodec(**kw),
    "zarr codec": lambda **kw: GCDTCZarrCodec(**kw),
    "accessor": lambda **kw: field().gcdtc.compress(**kw),
}


@pytest.mark.parametrize("call", ENTRY_POINTS.values(), ids=ENTRY_POINTS.keys())
@pytest.mark.parametrize("kwargs, says", [
    (dict(tol=0.1, mode="L2"), r"mode must be one of \('pointwise', 'l2'\), got 'L2'"),
    (dict(tol=0.1, nrmse=1e-3), "nrmse= is the bound of mode='l2'"),
    (dict(tol=0.1, mode="l2", nrmse=1e-3), "mode='l2' takes nrmse="),
    (dict(tol=-1.0), "tol must be finite and >= 0, got -1.0"),
    (dict(tol=float("nan")), "tol must be finite and >= 0"),
    (dict(nrmse=1e-3, mode="l2", pw_rel_tol=1e-2), "pw_rel_tol and preserve_zero are pointwise guarantees"),
    (dict(pw_rel_tol=2.0), r"pw_rel_tol must be below 1: it is a fraction of \|x\| \(0\.01 allows 1%\)"),
])
def test_the_same_error_from_every_entry_point(call, kwargs, says):
    with pytest.raises(ValueError, match=says):
        call(**kwargs)



@pytest.mark.parametrize("bound", [1.0, 1.5])
def test_a_pointwise_relative_bound_of_1_or_more_for_one_variable_is_refused_by_name(bound):
    """``pw_rel_tol={name: r}`` is checked where it is given, and the message names the variable."""
    with pytest.raises(ValueError, match=r"pw_rel_tol\['P'\] must be below 1: it is a fraction of \|x\|"):
        field().gcdtc.compress(pw_rel_tol={"P": bound})
    assert field().gcdtc.compress(pw_rel_tol={"P": 0.5})["P"].attrs["xdiffc_pw_rel_tol"] == 0.5

def test_convert_refuses_a_pointwise_relative_bound_of_1_or_more(tmp_path):
    with pytest.raises(ValueError, match=r"pw_rel_tol \(--pw-rel-tol\) must be below 1"):
        convert([str(sample_path("trefht"))], tmp_path / "o.zarr", pw_rel_tol=1.0, progress=False)


def test_convert_refuses_an_unknown_mode_in_the_same_words(tmp_path):
    with pytest.raises(ValueError, match=r"mode must be one of \('pointwise', 'l2'\)"):
        convert([str(sample_path("trefht"))], tmp_path / "o.zarr", mode="L2", progress=False)


def test_l2_mode_on_a_field_with_zeros_needs_no_preserve_zero():
    """preserve_zero's default rule must not switch on in l2 mode, where it has no meaning."""
    ds = field()
    out = ds.gcdtc.roundtrip(nrmse=1e-2)  # to_zarr: nrmse= selects the l2 mode (mode= is xarray's)
    assert out["P"].attrs["xdiffc_nrmse"] == 1e-2
    err = out["P"].values.astype(np.float64) - ds["P"].values
    assert np.sqrt(np.mean(err**2)) / float(ds["P"].max() - ds["P"].min()) <= 1e-2
