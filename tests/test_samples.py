"""The bound on every float variable of the embedded samples, at the three bounds of the benchmarks."""

import numpy as np
import pytest

import xdiffc
from xdiffc import datasets
from xdiffc.masking import special_mask
from tests.helpers import assert_bounded

#: Large variables are cut in time/levels to keep the suite fast; every variable is still covered.
_MAX_VALUES = 400_000


def _float_variables():
    for sample in sorted(datasets.SAMPLES):
        ds = datasets.open_sample(sample, mask_and_scale=False, decode_times=False)
        for name, var in ds.variables.items():
            if var.dtype.kind == "f" and var.size > 1:
                x = np.asarray(var.values)
                while x.size > _MAX_VALUES and x.ndim > 1:
                    x = x[: max(1, x.shape[0] // 4)] if x.shape[0] > 1 else x[0]
                fills = [v for v in (var.attrs.get("_FillValue"), var.attrs.get("missing_value")) if v is not None]
                yield pytest.param(x, fills, id=f"{sample}:{name}")


@pytest.mark.parametrize("x,fills", list(_float_variables()))
def test_sample_variable_bounded(x, fills):
    missing = special_mask(x, fills)
    valid = x[~missing].astype(np.float64)
    value_range = float(valid.max() - valid.min()) if valid.size else 0.0
    for eps in (1e-2, 1e-3, 1e-4):
        blob = xdiffc.compress(x, rel_tol=eps, fill_values=fills)
        y = xdiffc.decompress(blob)
        assert_bounded(x, y, eps * value_range, fills)


def test_sample_with_fill_values_restores_them():
    ds = datasets.open_sample("tos", mask_and_scale=False)
    x = ds.tos.values
    assert (x == 1e20).mean() > 0.2  # the land fill value is really there
    y = xdiffc.decompress(xdiffc.compress(x, rel_tol=1e-3, fill_values=[ds.tos.attrs["_FillValue"]]))
    assert np.array_equal(y == np.float32(1e20), x == np.float32(1e20))


def test_open_sample_unknown_name():
    with pytest.raises(ValueError, match="trefht"):
        datasets.open_sample("nope")
