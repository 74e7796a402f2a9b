"""A damaged stream raises CorruptStreamError, or decodes to an array that still meets the bound."""

import numpy as np
import pytest

import xdiffc
from xdiffc.bitstream import FORMAT_VERSION
from tests.helpers import assert_bounded


def _small_case():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(6, 10, 12)).cumsum(axis=2).astype(np.float32)
    x[0, 0, :3] = [np.nan, 1e20, -np.inf]
    return x, 0.05


def _decode_or_corrupt(blob, x, tol):
    try:
        y = xdiffc.decompress(blob)
    except xdiffc.CorruptStreamError:
        return
    assert_bounded(x, y, tol, fill_values=[1e20])


def test_every_truncation():
    x, tol = _small_case()
    blob = xdiffc.compress(x, tol=tol, fill_values=[1e20])
    for n in range(len(blob)):
        _decode_or_corrupt(blob[:n], x, tol)


def test_every_byte_flip():
    x, tol = _small_case()
    blob = bytearray(xdiffc.compress(x, tol=tol, fill_values=[1e20]))
    for i in range(len(blob)):
        for flip in (0x01, 0xFF):
            damaged = bytearray(blob)
            damaged[i] ^= flip
            _decode_or_corrupt(bytes(damaged), x, tol)


@pytest.mark.parametrize("blob", [b"", b"XDFC", b"\x89HDF\r\n\x1a\n" + bytes(100), bytes(1000)])
def test_foreign_bytes(blob):
    with pytest.raises(xdiffc.CorruptStreamError):
        xdiffc.decompress(blob)


def test_unknown_version_says_so():
    x, tol = _small_case()
    blob = bytearray(xdiffc.compress(x, tol=tol))
    blob[4] = FORMAT_VERSION + 1
    with pytest.raises(xdiffc.CorruptStreamError, match="format version"):
        xdiffc.decompress(bytes(blob))


def test_corrupt_error_is_a_value_error():
    assert issubclass(xdiffc.CorruptStreamError, ValueError)
