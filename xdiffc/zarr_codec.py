"""``GCDTCZarrCodec``: xdiffc as a Zarr v3 array-to-bytes codec (a *serializer*).

    zarr.create_array(store, shape=..., chunks=..., dtype="float32",
                      serializer=GCDTCZarrCodec(tol=0.05), compressors=None)

It is shape-aware, so it is the array's serializer, never one of its ``compressors``. It is
registered under the name ``"xdiffc.gcdtc"`` through the ``zarr.codecs`` entry point, so a process
that only imports xarray or zarr opens the store.

- Edge chunks arrive padded to the full chunk shape with the array's ``fill_value``: that value
  is treated as a fill value (kept exactly), so padding never widens the range or costs bits.
- Chunks equal to ``fill_value`` everywhere are skipped by zarr (``write_empty_chunks=False``)
  and read back as ``fill_value``; an all-NaN chunk with a NaN ``fill_value`` reads back as NaN.
- Zarr calls codecs concurrently. The codec holds only immutable configuration, and each chunk
  is coded in a worker thread (``_encode_single``/``_decode_single``), so concurrent calls share
  no state and, the kernels releasing the GIL, chunks are coded in parallel.
- A chunk whose stream declares another shape or dtype than the array's chunk is refused before it
  is decoded; every decoding error names the configured ``variable`` and the chunk's shape.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.array_spec import ArraySpec
from zarr.core.buffer import Buffer, NDBuffer
from zarr.core.common import parse_named_configuration

from .api import is_float
from .codec import Chunk, GCDTCCodec

CODEC_NAME = "xdiffc.gcdtc"
_DTYPE_KINDS = "fiub"


def _identity(config: dict) -> dict:
    """``config`` with its large entries replaced by the sha256 they are checked against (cheap to hash and compare:
    opening a wide store builds one codec per variable)."""
    out = dict(config)
    if out.get("climatology") is not None:
        out["climatology"] = {"sha256": out["climatology"].get("sha256")}
    if out.get("layout") is not None:
        out["layout"] = {k: v for k, v in out["layout"].items() if k != "permutation"}
    if out.get("model_file") is not None:
        out["model_file"] = out["model_sha256"]
    return out


def _from_config(config: dict) -> GCDTCZarrCodec:
    config = dict(config)
    config.pop("id", None)
    return GCDTCZarrCodec(**config)


@dataclass(frozen=True)
class GCDTCZarrCodec(ArrayBytesCodec):
    """Zarr v3 serializer with a hard pointwise bound; takes the keyword arguments of :class:`GCDTCCodec`,
    whose configuration it is (``to_dict`` writes it, ``from_dict`` reads it)."""

    is_fixed_size = False

    #: the codec's identity, for equality and hashing (dataclass fields must be hashable): the canonical JSON of its
    #: configuration, with the large entries (climatology, permutation, carried model) stood for by their sha256
    identity: str

    def __init__(self, **config: Any) -> None:
        codec = GCDTCCodec.from_config(config)  # parses and checks every argument, once
        object.__setattr__(self, "identity", json.dumps(_identity(codec.get_config()), sort_keys=True))
        self.__dict__["numcodec"] = codec

    def __reduce__(self):
        """Pickled (into Dask graphs) as its configuration."""
        return _from_config, (self.numcodec.get_config(),)

    @property
    def numcodec(self) -> GCDTCCodec:
        """The equivalent numcodecs codec (for Zarr format 2 arrays, or direct use)."""
        return self.__dict__["numcodec"]

    def __getattr__(self, name: str):
        """The configuration's keys read as attributes (``serializer.tol``)."""
        if name == "numcodec" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.numcodec, name)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        _, configuration = parse_named_configuration(data, CODEC_NAME, require_configuration=False)
        return cls(**(configuration or {}))

    def to_dict(self) -> dict[str, Any]:
        config = self.numcodec.get_config()
        del config["id"]
        return {"name": CODEC_NAME, "configuration": config}

    def validate(self, *, shape, dtype, chunk_grid) -> None:
        native = dtype.to_native_dtype()
        if not isinstance(native, np.dtype) or native.kind not in _DTYPE_KINDS or (
            native.kind == "f" and not is_float(native)
        ):
            raise TypeError(
                f"the xdiffc.gcdtc serializer handles float32 and float64 (integers and booleans "
                f"losslessly); this array has dtype {native}. Cast it, or use the default serializer."
            )

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: ArraySpec) -> int:
        raise NotImplementedError("xdiffc.gcdtc output size depends on the data")

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        """One chunk, coded in a worker thread (the kernels release the GIL, so chunks code in parallel)."""
        fills = () if chunk_spec.fill_value is None else (chunk_spec.fill_value,)
        blob = await asyncio.to_thread(self.numcodec.encode_chunk, chunk_array.as_numpy_array(), fills)
        return chunk_spec.prototype.buffer.from_bytes(blob)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        """One chunk, checked against the array's chunk shape and dtype before it is decoded, in a worker thread."""
        dtype = chunk_spec.dtype.to_native_dtype()
        y = await asyncio.to_thread(self.numcodec.decode_chunk, chunk_bytes.to_bytes(),
                                    Chunk(tuple(chunk_spec.shape), dtype))
        return chunk_spec.prototype.nd_buffer.from_numpy_array(y.astype(dtype, copy=False))
