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
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Self

import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.array_spec import ArraySpec
from zarr.core.buffer import Buffer, NDBuffer
from zarr.core.common import parse_named_configuration

from .api import is_float
from .codec import Chunk, GCDTCCodec
from .core import DEFAULT_STEPS

CODEC_NAME = "xdiffc.gcdtc"
_DTYPE_KINDS = "fiub"


@dataclass(frozen=True)
class GCDTCZarrCodec(ArrayBytesCodec):
    """Zarr v3 serializer with a hard pointwise bound; takes the same arguments as :class:`GCDTCCodec`."""

    is_fixed_size = False

    tol: float | None
    rel_tol: float | None
    model_id: str
    model_sha256: str
    steps: int
    fill_values: tuple[float, ...]
    layout: str | None  # canonical JSON of the layout configuration: dataclass fields must be hashable
    mode: str
    nrmse: float | None
    variable: str
    pw_rel_tol: float | None
    preserve_zero: bool
    valid_range: tuple[float, float] | None
    climatology: str | None  # canonical JSON, like layout
    model_file: str | None

    def __init__(
        self,
        *,
        tol: float | None = None,
        rel_tol: float | None = None,
        model_id: str = "",
        model_sha256: str = "",
        steps: int = DEFAULT_STEPS,
        fill_values: Iterable[float] = (),
        layout: dict | None = None,
        mode: str = "pointwise",
        nrmse: float | None = None,
        variable: str = "",
        pw_rel_tol: float | None = None,
        preserve_zero: bool = False,
        valid_range: Iterable[float] | None = None,
        climatology: dict | None = None,
        model_file: str | None = None,
    ) -> None:
        checked = GCDTCCodec(tol, rel_tol, model_id, model_sha256, steps, tuple(fill_values), layout, mode, nrmse,
                             variable, pw_rel_tol, preserve_zero, valid_range, climatology, model_file)
        for key in ("variable", "pw_rel_tol", "preserve_zero", "valid_range"):  # config keys only when set
            object.__setattr__(self, key, getattr(checked, key))
        object.__setattr__(self, "climatology", None if climatology is None else json.dumps(climatology, sort_keys=True))
        object.__setattr__(self, "model_file", checked.model_file)
        for key, value in checked.get_config().items():
            if key == "fill_values":
                value = tuple(value)
            elif key == "layout" and value is not None:
                value = json.dumps(value, sort_keys=True)
            if key not in ("id", "valid_range", "climatology", "model_file"):
                object.__setattr__(self, key, value)
        self.__dict__["numcodec"] = checked

    @cached_property
    def numcodec(self) -> GCDTCCodec:
        """The equivalent numcodecs codec (for Zarr format 2 arrays, or direct use)."""
        layout = None if self.layout is None else json.loads(self.layout)
        return GCDTCCodec(self.tol, self.rel_tol, self.model_id, self.model_sha256, self.steps, self.fill_values,
                          layout, self.mode, self.nrmse, self.variable, self.pw_rel_tol, self.preserve_zero,
                          self.valid_range, None if self.climatology is None else json.loads(self.climatology),
                          self.model_file)

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
