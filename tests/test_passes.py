"""The bar over the passes before a write: it names each pass, counts the steps, and stays out of files and logs."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xdiffc  # noqa: F401  (the accessor)


def monthly(nt: int = 24) -> xr.Dataset:
    """Two small monthly fields chunked by 6 along time: a range pass, then a climatology pass each."""
    rng = np.random.default_rng(0)
    season = np.sin(np.arange(nt) * 2 * np.pi / 12)[:, None, None]
    data = {n: (("time", "lat", "lon"), (280 + 10 * season + rng.normal(0, 0.1, (nt, 8, 16))).astype(np.float32))
            for n in ("T", "Q")}
    return xr.Dataset(data, coords={"time": pd.date_range("2000-01-01", periods=nt, freq="MS")})


def steps(err: str) -> list[str]:
    """The bar's states, in order (tqdm redraws one line with carriage returns)."""
    return [s.strip() for s in re.split(r"[\r\n]", err) if s.strip()]


def test_the_bar_names_each_pass_and_counts_the_steps(capsys):
    monthly().gcdtc.compress(chunks={"time": 6}, progress=True)
    shown = steps(capsys.readouterr().err)
    expected = ["xdiffc: value ranges: 0/3 steps", "xdiffc: T: climatology: 1/3 steps",
                "xdiffc: Q: climatology: 2/3 steps"]  # the pass under way, and the steps done before it
    at = [next((i for i, s in enumerate(shown) if s.startswith(state)), None) for state in expected]
    assert None not in at and at == sorted(at), shown


@pytest.mark.parametrize("progress", [False, None])  # None: only in a notebook or a terminal, and stderr is neither
def test_no_bar_when_turned_off_or_written_to_a_file(capsys, tmp_path, progress):
    monthly().gcdtc.to_zarr(tmp_path / "q.zarr", chunks={"time": 6}, progress=progress)
    assert capsys.readouterr().err == ""
    assert xr.open_zarr(tmp_path / "q.zarr").T.encoding["chunks"] == (6, 8, 16)
