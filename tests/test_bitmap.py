"""Bitmaps (masks of missing values, zeros, signs): exact round trips in both forms, the smaller form kept,
a coastline coded well below packed bits, and damage refused."""

from __future__ import annotations

import numpy as np
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from xdiffc import masking
from xdiffc.entropy import bitmap
from xdiffc.errors import CorruptStreamError


@st.composite
def bitmaps(draw):
    """Boolean arrays of 0 to 4 dimensions: random at some density, blobs, or one slice repeated with changes."""
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=17))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["random", "blobs", "repeated"]))
    if kind == "random":
        return rng.random(shape) < draw(st.sampled_from([0.0, 0.02, 0.5, 0.98, 1.0]))
    smooth = rng.normal(size=shape)
    for axis in range(len(shape)):
        smooth = np.cumsum(smooth, axis=axis)
    blobs = smooth > np.median(smooth) if smooth.size else smooth > 0
    if kind == "repeated" and len(shape) >= 3:
        blobs = np.broadcast_to(blobs[:1], shape) ^ (rng.random(shape) < 0.01)
    return np.ascontiguousarray(blobs)


@settings(deadline=None, max_examples=150)
@given(bitmaps())
def test_every_bitmap_round_trips_in_both_forms(bits):
    assert np.array_equal(bitmap.decode(bitmap.encode(bits), bits.shape, "test"), bits)
    payload = masking.encode_bits(bits)
    assert np.array_equal(masking.decode_bits(payload, bits.shape, "test"), bits)
    raw = np.packbits(bits.ravel()).tobytes()
    packed = zstandard.ZstdCompressor(level=masking._BITS_LEVEL).compress(raw)
    if len(packed) <= masking._BITS_STRONG_BELOW:  # a small frame: the strong level too, the smaller kept
        packed = min(packed, zstandard.ZstdCompressor(level=masking._ZSTD_LEVEL).compress(raw), key=len)
    assert len(payload) == min(len(packed), len(bitmap.encode(bits)))  # the smaller form is kept


def coastline(shape=(3, 96, 128)) -> np.ndarray:
    """Continents with wiggly coasts, the same at every step but for a few points (sea ice at the edge)."""
    t, y, x = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    land = np.sin(x / 9.0) + np.cos(y / 7.0) + 0.3 * np.sin((x + 2 * y) / 3.0) > 0.6
    return land ^ ((t > 0) & (np.abs(np.sin(x * 0.37 + y * 0.91)) < 0.01))


def test_a_coastline_costs_well_below_packed_bits():
    land = coastline()
    for bits, most in ((land[:1], 0.7), (land, 0.85)):
        raw = np.packbits(bits.ravel()).tobytes()
    packed = zstandard.ZstdCompressor(level=masking._BITS_LEVEL).compress(raw)
    if len(packed) <= masking._BITS_STRONG_BELOW:  # a small frame: the strong level too, the smaller kept
        packed = min(packed, zstandard.ZstdCompressor(level=masking._ZSTD_LEVEL).compress(raw), key=len)
        coded = masking.encode_bits(bits)
        assert coded[0] == bitmap.FORMAT and len(coded) < most * len(packed)
    # each later step costs less than half the first: its 87 changed points, not its coasts again
    assert len(masking.encode_bits(land)) < 2 * len(masking.encode_bits(land[:1]))


def test_a_damaged_bitmap_raises_or_keeps_its_shape():
    land = coastline()
    payload = bitmap.encode(land)
    for cut in (0, 1, 3, 5, len(payload) // 2, len(payload) - 1):
        with pytest.raises(CorruptStreamError):
            bitmap.decode(payload[:cut], land.shape, "the test mask")
    with pytest.raises(CorruptStreamError, match="trailing"):
        bitmap.decode(payload + b"\0", land.shape, "the test mask")
    with pytest.raises(CorruptStreamError, match="unknown bitmap format"):
        bitmap.decode(bytes([2]) + payload[1:], land.shape, "the test mask")
    with pytest.raises(CorruptStreamError):
        bitmap.decode(payload[:1] + bytes([1]) + payload[2:], land.shape, "the test mask")  # the first coder byte is 0
    rng = np.random.default_rng(1)
    raised = 0
    for _ in range(60):
        damaged = bytearray(payload)
        damaged[int(rng.integers(1, len(damaged)))] ^= 1 << int(rng.integers(0, 8))
        try:
            out = bitmap.decode(bytes(damaged), land.shape, "the test mask")
        except CorruptStreamError:
            raised += 1
        else:
            assert out.shape == land.shape and out.dtype == bool
    assert raised > 0


def test_a_coder_state_off_its_range_is_refused():
    """The four coder bytes after the leading 0 start ``code``, which must stay below the range (0xFFFFFFFF at
    first; each step keeps ``code < range`` once it holds): 0xFFFFFFFF is off the range, so the stream is damaged
    however many bytes follow; 0xFFFFFFFE is a state the encoder can leave, and decodes."""
    with pytest.raises(CorruptStreamError, match="off its range"):
        bitmap.decode(bytes([bitmap.FORMAT, 0, 255, 255, 255, 255]) + bytes(32), (1, 1, 8), "the test mask")
    with pytest.raises(CorruptStreamError, match="off its range"):
        bitmap.decode(bytes([bitmap.FORMAT, 0, 255, 255, 255, 255]) + bytes(32), (3, 2, 4), "the test mask")
    bits, ok, used = bitmap._decode(np.frombuffer(bytes([0, 255, 255, 255, 254]) + bytes(32), np.uint8), 1, 1, 8)
    assert ok and bits.shape == (1, 1, 8) and used <= 37  # in range; the zeros after it are more than it needs


@pytest.mark.parametrize("payload", [b"", b"\x28", bytes([bitmap.FORMAT])])
def test_an_empty_or_cut_bitmap_section_is_refused(payload):
    """A section cut to nothing (or to its first byte) raises CorruptStreamError in either form, never IndexError."""
    with pytest.raises(CorruptStreamError):
        masking.decode_bits(payload, (2, 3, 4), "the test mask")


@pytest.mark.parametrize("shape, view", [((), (1, 1, 1)), ((37,), (1, 1, 37)), ((9, 11), (1, 9, 11)),
                                         ((2, 3, 9, 11), (6, 9, 11)), ((2, 1, 3, 5, 7), (6, 5, 7))])
def test_a_bitmap_is_coded_as_slices_over_its_last_two_axes(shape, view):
    """The format reads any bitmap as (T, H, W) slices over its last two axes, a 1-D bitmap as one row: its
    payload is the one of that 3-D view (streams written with another reading would decode to other bits)."""
    rng = np.random.default_rng(7)
    bits = rng.random(shape) < 0.3
    assert bitmap.slices(shape) == view
    assert bitmap.encode(bits) == bitmap.encode(bits.reshape(view))
    assert np.array_equal(bitmap.decode(bitmap.encode(bits), shape, "test"), bits)
