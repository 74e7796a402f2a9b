"""Property-based tests of the pointwise guarantee of xdiffc.compress / decompress.

The strategies reach every path a user's data can take: both lossy coders, the repair path
(values that the final cast pushes past the bound, stored in an ``exc`` section), float32 and
float64, C and Fortran order, real subnormals, NaNs with either sign and with payloads. Each
recipe is a plain function of a seed, so that explicit examples pin every path down, and the
run asserts that each path was really taken, so that no path is skipped silently.
"""

import collections

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import xdiffc
from xdiffc import core
from xdiffc.bitstream import Stream
from xdiffc.options import DEFAULT_LEVEL
from tests.helpers import assert_bounded

FILL = 1e20
#: Paths every run of test_the_bound_holds_on_every_path must take (labels of :func:`paths`).
PATHS = {"interp", "sz3", "exc", "lossy float32", "lossy float64", "lossy fortran", "lossy subnormal",
         "-nan", "nan payload", "mask", "lossless"}

lossy_shapes = st.one_of(hnp.array_shapes(min_dims=2, max_dims=3, min_side=4, max_side=12),
                         hnp.array_shapes(min_dims=4, max_dims=4, min_side=2, max_side=5))
edge_shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3)
shapes = st.one_of(lossy_shapes, lossy_shapes, lossy_shapes, edge_shapes)
#: The encoder's levels: every guarantee holds at each (the stream never records it).
levels = st.sampled_from([1, 2, 3, 5, DEFAULT_LEVEL, 9])
tolerances = st.one_of(st.just(0.0), st.floats(1e-12, 1e-6), st.floats(1e-6, 10.0), st.floats(10.0, 1e12))


def nans(dtype) -> np.ndarray:
    """NaNs with either sign, with payloads, quiet and signalling."""
    if np.dtype(dtype) == np.float32:
        bits = np.array([0x7FC00000, 0xFFC00000, 0x7FC00123, 0xFFA00001, 0x7F800001], np.uint32)
    else:
        bits = np.array([0x7FF8000000000000, 0xFFF8000000000000, 0x7FF80000000ABCDE, 0xFFF4000000000001,
                         0x7FF0000000000001], np.uint64)
    return bits.view(dtype)


def subnormals(rng, n: int, dtype) -> np.ndarray:
    """``n`` non-zero subnormal values of ``dtype`` (below np.finfo(dtype).smallest_normal)."""
    tiny = np.finfo(dtype).smallest_normal
    out = (rng.uniform(0.01, 0.99, n) * tiny * rng.choice([-1, 1], n)).astype(dtype)
    assert np.all((out != 0) & (np.abs(out) < tiny))
    return out


def sprinkle(x: np.ndarray, rng, specials: bool, tiny: bool) -> np.ndarray:
    """``x`` with some NaN (signed, with payloads), inf and fill values, and some subnormals."""
    x = x.copy()
    flat = x.reshape(-1)
    if specials and x.size:
        pool = np.concatenate([nans(x.dtype), np.array([np.inf, -np.inf, FILL, -9.96921e36], x.dtype)])
        at = rng.choice(x.size, size=min(x.size, len(pool)), replace=False)
        flat[at] = pool[: at.size]
    if tiny and x.size >= 8:
        at = rng.choice(x.size, size=x.size // 8, replace=False)
        flat[at] = subnormals(rng, at.size, x.dtype)
    return x


def base_field(kind: str, shape: tuple[int, ...], dtype, rng) -> np.ndarray:
    """Smooth, noisy, constant, huge or subnormal values."""
    if kind == "smooth":
        x = rng.normal(size=shape).cumsum(axis=-1) if len(shape) else rng.normal(size=shape)
    elif kind == "noise":
        x = rng.normal(size=shape) * 10.0 ** rng.integers(-3, 4)
    elif kind == "constant":
        x = np.full(shape, rng.uniform(-1e6, 1e6))
    elif kind == "huge":
        x = rng.uniform(-1, 1, size=shape) * 1e29
    else:
        x = subnormals(rng, int(np.prod(shape)), dtype).reshape(shape)
    return np.asarray(x).astype(dtype)


def case(recipe: str, seed: int, shape=(5, 9, 12), dtype=np.float32, kind: str = "smooth", tol: float = 0.05,
         fortran: bool = False, specials: bool = False, tiny: bool = False) -> tuple[np.ndarray, float]:
    """(array, absolute bound) of one recipe; "sz3" and "repair" fix their own shape, dtype and bound.

    - "any": a field of ``kind`` at the bound ``tol``;
    - "sz3": a sinusoid wrapped over a 4-D block of short axes with a little noise, on which SZ3 wins (on
      axes of 16 and more the wavelet coder takes such fields since its steps are all tried);
    - "repair": float32 values near a power of two with a bound of 1.5 float32 spacings: the cast
      of the float64 reconstruction pushes some values past the bound, which must be repaired.
    """
    rng = np.random.default_rng(seed)
    if recipe == "sz3":
        shape, dtype = (5, 7, 7, 7), np.float64
        n = int(np.prod(shape))
        x = (np.sin(np.linspace(0, rng.uniform(10, 30), n)) * 100).reshape(shape) + rng.normal(size=shape) * 0.01
        tol = 1e-3
    elif recipe == "repair":
        shape, dtype = (4, 12, 16), np.float32
        offset = float(2 ** rng.integers(4, 12))
        tol = 1.5 * float(np.spacing(np.float32(offset)))
        x = offset + rng.normal(size=shape).cumsum(-1) * 2 * tol
    else:
        x = base_field(kind, shape, dtype, rng)
    x = sprinkle(np.asarray(x).astype(dtype), rng, specials, tiny)
    return (np.asfortranarray(x) if fortran else x), tol


@st.composite
def cases(draw) -> tuple[np.ndarray, float]:
    """Arrays (mostly large enough for the lossy coders) and bounds, by recipe."""
    recipe = draw(st.sampled_from(["any", "any", "sz3", "repair"]))
    return case(recipe, draw(st.integers(0, 2**32 - 1)), shape=draw(shapes),
                dtype=draw(st.sampled_from([np.float32, np.float64])),
                kind=draw(st.sampled_from(["smooth", "noise", "constant", "huge", "subnormal"])),
                tol=draw(tolerances), fortran=draw(st.booleans()), specials=draw(st.booleans()),
                tiny=draw(st.booleans()))


@st.composite
def fields(draw) -> np.ndarray:
    """The arrays of :func:`cases` without their bounds."""
    return draw(cases())[0]


def paths(x: np.ndarray, blob: bytes) -> set[str]:
    """Labels of the paths that compressing ``x`` (native byte order) into ``blob`` took."""
    stream = Stream.from_bytes(blob)
    assert set(stream.sections) <= core.written_sections()  # docs/format.md documents each of them
    out = set(stream.sections) | {stream.header.mode}
    bits = x.view(f"u{x.itemsize}")[np.isnan(x)]
    sign = bits.dtype.type(1 << (8 * x.itemsize - 1))
    if np.any(bits & sign):
        out.add("-nan")
    if np.any((bits & ~sign) != np.array(np.nan, x.dtype).view(bits.dtype)):
        out.add("nan payload")
    if stream.header.mode == "pointwise":
        out.add(f"lossy {x.dtype}")
        if stream.header.order == "F":
            out.add("lossy fortran")
        if np.any(np.isfinite(x) & (x != 0) & (np.abs(x) < np.finfo(x.dtype).smallest_normal)):
            out.add("lossy subnormal")
    return out


def check(x: np.ndarray, tol: float, level: int = DEFAULT_LEVEL) -> set[str]:
    """Compress, decompress, assert the contract; the paths taken."""
    blob = xdiffc.compress(x, tol=tol, fill_values=[FILL], level=level)
    y = xdiffc.decompress(blob)
    assert_bounded(x, y, tol, fill_values=[FILL])
    if x.ndim > 1 and not x.flags.c_contiguous:
        assert y.flags.f_contiguous
    return paths(x, blob)


#: One example per path, so that every path is taken whatever the generated examples do.
EXAMPLES = [case("sz3", 0), case("repair", 1), case("any", 2, fortran=True, specials=True, tiny=True),
            case("any", 3, dtype=np.float64, specials=True, tiny=True), case("any", 4, tol=0.0, specials=True)]


def test_the_bound_holds_on_every_path():
    seen = collections.Counter()

    @given(cases(), levels)
    def run(c, level):
        seen.update(check(*c, level))

    for c in EXAMPLES:
        run = example(c, 9)(run)
    run()
    assert PATHS <= seen.keys(), f"paths never taken: {PATHS - seen.keys()} (taken: {dict(seen)})"
    print(f"\npaths taken: {dict(sorted(seen.items()))}", end="")


@given(fields(), st.sampled_from([1e-2, 1e-3, 1e-4, 0.0]), levels)
def test_relative_bound_holds(x, rel_tol, level):
    missing = xdiffc.masking.special_mask(x)
    valid = x[~missing].astype(np.float64)
    tol = rel_tol * (valid.max() - valid.min()) if valid.size else 0.0
    y = xdiffc.decompress(xdiffc.compress(x, rel_tol=rel_tol, level=level))
    assert_bounded(x, y, tol)


@given(fields(), st.floats(1e-6, 1.0), st.sampled_from(["big", "fortran", "strided"]), levels)
def test_any_layout(x, tol, layout, level):
    if layout == "big":
        x = x.astype(x.dtype.newbyteorder(">"))
    elif layout == "fortran":
        x = np.asfortranarray(x)
    elif x.ndim:
        x = x[..., ::2]
    y = xdiffc.decompress(xdiffc.compress(x, tol=tol, level=level))
    assert_bounded(x, y, tol)
    if layout == "fortran" and x.ndim > 1:
        assert y.flags.f_contiguous


def test_tol_zero_is_bit_exact():
    x = np.random.default_rng(1).normal(size=(7, 50, 60)).astype(np.float32)
    x[0, 0, :5] = [np.nan, np.inf, -np.inf, -0.0, 1e-45]
    y = xdiffc.decompress(xdiffc.compress(x, tol=0))
    assert np.array_equal(y.view(np.uint32), x.view(np.uint32))


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint16, np.bool_])
def test_integers_are_lossless(dtype):
    x = (np.random.default_rng(2).integers(0, 100, size=(4, 33, 17)) % 2 if dtype == np.bool_
         else np.random.default_rng(2).integers(np.iinfo(dtype).min, np.iinfo(dtype).max, size=(4, 33, 17)))
    x = x.astype(dtype)
    y = xdiffc.decompress(xdiffc.compress(x, tol=5))
    assert y.dtype == x.dtype
    np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "abc"])
def test_bad_tolerance_raises(bad):
    x = np.zeros((10, 10), np.float32)
    with pytest.raises(ValueError):
        xdiffc.compress(x, tol=bad)
    with pytest.raises(ValueError):
        xdiffc.compress(x, rel_tol=bad)


def test_tol_and_rel_tol_are_exclusive():
    x = np.zeros((10, 10), np.float32)
    with pytest.raises(ValueError, match="exactly one"):
        xdiffc.compress(x, tol=0.1, rel_tol=0.1)
    with pytest.raises(ValueError, match="exactly one"):
        xdiffc.compress(x)


@pytest.mark.parametrize("dtype", [np.float16, np.complex64, object, "U3", "datetime64[s]"])
def test_unsupported_dtype_raises_type_error(dtype):
    with pytest.raises(TypeError, match="float32 and float64"):
        xdiffc.compress(np.zeros(20, dtype=dtype), tol=0.1)


def test_encoding_is_deterministic():
    x = np.random.default_rng(3).normal(size=(16, 40, 40)).cumsum(1).astype(np.float32)
    assert xdiffc.compress(x, rel_tol=1e-3) == xdiffc.compress(x, rel_tol=1e-3)


def test_smooth_field_compresses_well():
    t, yy, xx = np.meshgrid(np.linspace(0, 1, 16), np.linspace(0, 3, 64), np.linspace(0, 6, 128), indexing="ij")
    x = (280 + 20 * np.sin(yy) * np.cos(xx + t)).astype(np.float32)
    blob = xdiffc.compress(x, rel_tol=1e-2)
    assert x.nbytes / len(blob) > 50
