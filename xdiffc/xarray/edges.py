"""The edge chunk of a lossy array that grows: whether a write may complete it.

Zarr completes a partial last chunk by decoding it, merging the new values and encoding it again.
That is safe only where the chunk was stored exactly: the codec stores a chunk exactly when its
last step along its first axis is missing everywhere (:func:`xdiffc.codec.is_partial`), which is
what Zarr's padding of a partial edge chunk along that axis looks like. A partial chunk along
another axis, or one written by an xdiffc that predates that rule, is lossy: completing it would
re-quantise values that were already moved by up to the bound. The streams say which: an exact
chunk's header has mode ``lossless``.
"""

from __future__ import annotations

from itertools import product

import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from ..bitstream import Stream
from ..errors import CorruptStreamError


def lossy_edge_chunks(store, name: str, axis: int) -> list[tuple[int, ...]]:
    """The chunks of array ``name`` in ``store`` in the last row along ``axis`` that hold lossy values (an absent
    chunk holds none; one that is not an xdiffc stream counts as lossy)."""
    array = zarr.open_group(store, mode="r")[name]
    rows = [range(n) for n in array.cdata_shape]
    rows[axis] = range(array.cdata_shape[axis] - 1, array.cdata_shape[axis])
    lossy = []
    for index in product(*rows):
        blob = sync((array.store_path / array.metadata.encode_chunk_key(index)).get(
            prototype=default_buffer_prototype()))
        if blob is None:
            continue
        try:
            exact = Stream.from_bytes(blob.to_bytes()).header.mode == "lossless"
        except CorruptStreamError:
            exact = False
        if not exact:
            lossy.append(index)
    return lossy

