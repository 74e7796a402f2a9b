"""narrow: the cast to the output dtype in the float64 array's own memory gives astype's bits, in every layout it takes."""

import numpy as np
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from xdiffc.narrow import narrow

_FLOATS = hnp.arrays(np.float64, st.integers(0, 200_000), elements=st.floats(allow_nan=True, allow_infinity=True),
                     fill=st.sampled_from([0.0, -0.0, 1e300, -1e-310, 3.3, np.nan, np.inf]))


@settings(max_examples=30, deadline=None)
@given(_FLOATS)
def test_narrow_gives_astype_bits(a):
    with np.errstate(over="ignore"):  # past float32's range: inf, as astype gives (and warns of)
        want = a.astype(np.float32)
        got = narrow(a.copy(), np.float32)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


def test_narrow_works_through_reshapes_and_same_size_views():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 70_001)) * 1e20
    want = a.astype(np.float32)
    got = narrow(a.copy().reshape(-1).reshape(3, 70_001), np.float32)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32)) and got.shape == (3, 70_001)
    q = a.copy().view(np.int64)  # the wavelet coder's layout: float64 values in an int64 array's memory
    got = narrow(q.view(np.float64).reshape(-1), np.float32)
    del q
    assert np.array_equal(got.view(np.uint32), want.reshape(-1).view(np.uint32))


def test_narrow_leaves_what_it_cannot_own_alone():
    a = np.arange(10.0)
    part = a[2:8]  # a view of part of a: copied, a untouched
    got = narrow(part, np.float32)
    assert got.tolist() == list(range(2, 8)) and a.tolist() == list(range(10))
    t = a.reshape(2, 5).T  # not C-contiguous: copied
    assert np.array_equal(narrow(t, np.float32), t.astype(np.float32)) and a.shape == (10,)
    assert narrow(a, None) is a and narrow(a, np.float64) is a
    assert narrow(np.array(2.5), np.float32) == np.float32(2.5)
    ro = np.arange(4.0)
    ro.flags.writeable = False
    assert narrow(ro, np.float32).tolist() == [0, 1, 2, 3] and ro.tolist() == [0, 1, 2, 3]
