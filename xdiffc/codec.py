"""``GCDTCCodec``: xdiffc as a numcodecs codec, for Zarr format 2 arrays and anything else numcodecs drives.

The codec holds plain, JSON-serialisable configuration only (bound, model id and hash, decoder
steps, fill values), never a model object: codecs are pickled into Dask graphs and written into
Zarr metadata. It is registered through the ``numcodecs.codecs`` entry point, so
``numcodecs.get_codec({"id": "xdiffc.gcdtc", ...})`` works without importing xdiffc.

With ``zarr_format=2`` give it as the array's compressor: zarr then hands it each chunk as an
N-D array, padded at the array's edges with the array's fill value.

Decoding errors name where they happened: the configured ``variable`` and the chunk's shape, as
far as the codec knows them (zarr never tells a codec which chunk it is decoding). A chunk whose
stream declares another shape or dtype than the chunk it is read into is refused before it is
decoded, so a damaged store cannot make a reader allocate more than a chunk.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
from numcodecs.abc import Codec
from numcodecs.compat import ensure_contiguous_ndarray, ensure_ndarray_like, ndarray_copy

from .bitstream import Header, Stream
from .core import DEFAULT_STEPS, decompress, encode
from .errors import CorruptStreamError, ModelMismatchError
from .grids import Layout
from .masking import special_mask
from .options import DEFAULT_LEVEL, NAMES, Options
from .archive_climatology import Climatology


def _finite_fills(values: Iterable[float]) -> tuple[float, ...]:
    """Finite fill values as sorted unique floats: NaN and +-inf are always kept exactly anyway."""
    out = {float(v) for v in np.ravel(np.asarray(list(values), dtype=np.float64))}
    return tuple(sorted(v for v in out if math.isfinite(v)))


#: The options of a chunk stored exactly.
EXACT = Options(tol=0.0)


def is_partial(chunk: np.ndarray, fill_values: Sequence[float]) -> bool:
    """Whether ``chunk`` looks like the edge chunk of a growing array: its last step along the first axis
    (of two or more) holds nothing but NaN and fill values, as Zarr's padding does."""
    return chunk.ndim >= 1 and chunk.shape[0] > 1 and bool(special_mask(chunk[-1], fill_values).all())


class Chunk(NamedTuple):
    """What a caller knows of the chunk a stream is read into: its shape, dtype, or byte count."""

    shape: tuple[int, ...] | None = None
    dtype: np.dtype | None = None
    nbytes: int | None = None


def _carried_model(text: str, sha256: str) -> bytes:
    """The bytes of a model carried in a codec configuration, checked against the configuration's sha256."""
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except ValueError as err:
        raise CorruptStreamError(f"the model carried in the codec configuration is not base64 ({err})") from None
    if hashlib.sha256(data).hexdigest() != sha256.lower():
        raise CorruptStreamError(f"the model carried in the codec configuration does not match its sha256 "
                                 f"{sha256}: the store's metadata is damaged")
    return data


def _model_label(model_id: str, sha256: str) -> str:
    return f"model {model_id!r} (sha256 {sha256})" if model_id else "the model-free predictor"


class GCDTCCodec(Codec):
    """Error-bounded lossy codec: every finite, non-fill value comes back within the bound.

    Parameters
    ----------
    tol : float
        Absolute bound. Give exactly one of ``tol`` and ``rel_tol``.
    rel_tol : float
        Bound as a fraction of the value range *of each chunk*; chunks then get different
        absolute bounds. ``ds.gcdtc`` therefore always passes an absolute ``tol``.
    model_id, model_sha256 : str
        The model the chunks are encoded with; empty for the model-free predictor. Decoding a
        chunk written with another model raises :class:`~xdiffc.errors.ModelMismatchError`.
    steps : int
        Deterministic denoising steps of the neural decoder; the model-free predictor ignores it.
    fill_values : sequence of float
        ``_FillValue``/``missing_value`` and the like; those points come back bit-exactly.
    mode : str
        "pointwise" (``tol``/``rel_tol``) or "l2": every 8x8 patch meets the per-block L2 bound of
        ``nrmse`` (:mod:`xdiffc.l2`), normalised by the range of each chunk, which is never more
        than the variable's range, so the variable's NRMSE is at most ``nrmse``.
    nrmse : float
        The bound of ``mode="l2"``.
    layout : dict, optional
        A native-grid layout (:meth:`xdiffc.grids.Layout.to_config`): each chunk's column axis,
        which must hold every column, is laid out on the layout's 2-D canvas before coding, and
        put back after decoding. The permutation is part of this configuration.
    variable : str
        The name of the variable the chunks belong to, for error messages only ("" for none).
    pw_rel_tol : float, optional
        Pointwise-relative bound r: ``|y - x| <= r |x|`` (zeros and signs kept); with ``tol`` or
        ``rel_tol`` too, the stricter holds at each point.
    preserve_zero : bool
        Exact zeros come back exactly zero and every other valid value keeps its sign.
    valid_range : (float, float), optional
        A CF valid range in the chunk's (unpacked) units: outputs are clamped into it, as well as
        into each chunk's own range (which they always are).
    climatology : dict, optional
        An archive-level climatology (:meth:`xdiffc.archive_climatology.Climatology.to_config`: its sha256 and
        its coded values), computed over the whole variable by ``ds.gcdtc`` and ``convert``. Chunks
        of shape ``(time,) + its spatial shape`` (on the layout's canvas) may code their anomalies
        from it; it travels here so that a reader needs nothing but the store.
    model_file : str, optional
        The model file itself, base64: a model that readers cannot be expected to have (one
        trained on the archive, or any model that is not shipped with xdiffc) travels in the
        configuration, checked against ``model_sha256``.
    level : int
        1 (fastest) to 9 (smallest; default 8): how hard the encoder searches. Decoding never needs it.

    The bound arguments become one :class:`~xdiffc.options.Options`, ``codec.options``; they read
    as attributes too (``codec.tol``).
    """

    codec_id = "xdiffc.gcdtc"

    def __init__(
        self,
        tol: float | None = None,
        rel_tol: float | None = None,
        model_id: str = "",
        model_sha256: str = "",
        steps: int = DEFAULT_STEPS,
        fill_values: Sequence[float] = (),
        layout: dict | None = None,
        mode: str = "pointwise",
        nrmse: float | None = None,
        variable: str = "",
        pw_rel_tol: float | None = None,
        preserve_zero: bool = False,
        valid_range: Sequence[float] | None = None,
        climatology: dict | None = None,
        model_file: str | None = None,
        level: int = DEFAULT_LEVEL,
    ):
        self.options = Options(tol=tol, rel_tol=rel_tol, pw_rel_tol=pw_rel_tol, nrmse=nrmse, mode=mode,
                               preserve_zero=preserve_zero, valid_range=valid_range, level=level).check_array()
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
        self.model_id = str(model_id)
        self.model_sha256 = str(model_sha256)
        self.steps = int(steps)
        self.fill_values = _finite_fills(fill_values)
        self.layout = None if layout is None else dict(layout)
        self._layout = None if layout is None else Layout.from_config(self.layout)
        self.variable = str(variable)
        self.climatology = None if climatology is None else dict(climatology)
        self.model_file = None if model_file is None else str(model_file)
        self._model_bytes = None if model_file is None else _carried_model(self.model_file, self.model_sha256)

    @functools.cached_property
    def _reference(self) -> Climatology | None:
        """The climatology, checked against its sha256 and decoded when a chunk first needs it (once per process):
        opening a store decodes none of its variables' climatologies."""
        return None if self.climatology is None else Climatology.from_config(self.climatology)

    def get_config(self) -> dict:
        """The JSON configuration; the keys added since the first release (``variable``, ``climatology``,
        ``model_file`` and the options' optional keys, :meth:`~xdiffc.options.Options.to_config`) only when set, so
        that configurations without them stay as they were."""
        bounds = self.options.to_config()
        config = {"id": self.codec_id, "tol": bounds.pop("tol"), "rel_tol": bounds.pop("rel_tol"),
                  "model_id": self.model_id, "model_sha256": self.model_sha256, "steps": self.steps,
                  "fill_values": list(self.fill_values), "layout": self.layout, "mode": bounds.pop("mode"),
                  "nrmse": bounds.pop("nrmse")}
        if self.variable:
            config["variable"] = self.variable
        config.update(bounds)
        if self.climatology is not None:
            config["climatology"] = self.climatology
        if self.model_file is not None:
            config["model_file"] = self.model_file
        return config

    def __getattr__(self, name: str):
        """The options' fields read as the codec's own (``codec.tol``)."""
        if name in NAMES and "options" in self.__dict__:
            return getattr(self.options, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @classmethod
    def from_config(cls, config: dict) -> GCDTCCodec:
        """Inverse of :meth:`get_config`; the ``id`` key may be present (numcodecs strips it first)."""
        config = dict(config)
        if config.pop("id", cls.codec_id) != cls.codec_id:
            raise ValueError(f"not an {cls.codec_id} config: {config!r}")
        return cls(**config)

    def __reduce__(self):
        """Pickled (into Dask graphs) as its configuration: the decoded climatology and model bytes are rebuilt,
        once per process, where it is unpickled."""
        return type(self).from_config, (self.get_config(),)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "id")
        return f"GCDTCCodec({args})"

    def encode_chunk(self, array: np.ndarray, extra_fill_values: Iterable[float] = (),
                     exact_floor: bool = True) -> bytes:
        """Encode one chunk. ``extra_fill_values`` (such as the Zarr array's ``fill_value``, which pads
        edge chunks) are kept exactly like ``fill_values``. A configured model is loaded once per
        process and runs once per chunk. ``exact_floor`` as for :func:`xdiffc.compress`.

        A chunk whose last step along its first axis is missing everywhere is stored exactly: it is
        the partial chunk at the end of an array that Zarr pads with the fill value, which a later
        append decodes, completes and encodes again. Exact, it can be re-encoded once without adding
        error to the bound (see docs/zarr-xarray.md, "Appends").
        """
        fills = self.fill_values + _finite_fills(extra_fill_values)
        options = EXACT if is_partial(array, fills) else self.options
        if self._layout is not None:
            layout, axis = self._layout
            array = layout.to_grid(array, axis)
        model = self._predictor() if self.model_id else None
        return encode(array, options, fills, model=model, steps=self.steps, reference=self._reference,
                      exact_floor=exact_floor)

    def _predictor(self):
        """The configured model, loaded once per process and device (never pickled with the codec)."""
        from .core import default_device
        from .neural import load_model

        try:
            return load_model(self.model_id, sha256=self.model_sha256, device=default_device(), data=self._model_bytes)
        except FileNotFoundError as err:
            raise ModelMismatchError(f"this codec encodes with {_model_label(self.model_id, self.model_sha256)}, "
                                     f"which cannot be loaded here ({err}); install it, or give its path") from None

    def decode_chunk(self, blob: bytes, chunk: Chunk = Chunk()) -> np.ndarray:
        """Decode one chunk, parsed once and checked against ``chunk`` before anything of its size exists.

        Raises CorruptStreamError for a damaged chunk or one that cannot fill ``chunk``, and
        ModelMismatchError for a chunk written with another model, each naming the variable and the
        chunk's shape.
        """
        stream, shape = self._checked(blob, chunk)
        try:
            # the core loads the model (cached per process) only for chunks that carry a model section
            carried = self._model_bytes is not None and "model" in stream.sections
            y = decompress(stream, model=self._predictor() if carried else self.model_id or None,
                           reference=self._reference)
        except (CorruptStreamError, ModelMismatchError) as err:
            raise type(err)(f"{self._where(shape)}: {err}") from None
        return y if self._layout is None else self._layout[0].from_grid(y, self._layout[1])

    def _checked(self, blob: bytes, chunk: Chunk) -> tuple[Stream, tuple[int, ...]]:
        """``blob`` parsed, and the shape it decodes to, once its container, ``chunk`` and model are checked."""
        where = self._where(chunk.shape)
        try:
            stream = Stream.from_bytes(blob)
            header = stream.header
            shape = self._native_shape(header.shape)
            where = self._where(chunk.shape or shape)
            self._check_chunk(header, shape, chunk)
            self._check_model(header)
        except (CorruptStreamError, ModelMismatchError) as err:
            raise type(err)(f"{where}: {err}") from None
        return stream, shape

    def _where(self, shape: tuple[int, ...] | None) -> str:
        """"variable 'T', chunk of shape (10, 64)", as far as the codec knows them."""
        chunk = "a chunk" if shape is None else f"chunk of shape {tuple(shape)}"
        return f"variable {self.variable!r}, {chunk}" if self.variable else chunk

    def _native_shape(self, coded: tuple[int, ...]) -> tuple[int, ...]:
        """The shape of the chunk a stream of shape ``coded`` decodes to (the layout's canvas axes folded back)."""
        if self._layout is None:
            return coded
        layout, axis = self._layout
        k = len(layout.shape2d)
        start = axis % (len(coded) - k + 1) if len(coded) >= k else 0
        if coded[start : start + k] != layout.shape2d:
            raise CorruptStreamError(f"the stream's shape {coded} lacks the layout's canvas {layout.shape2d}")
        return coded[:start] + (layout.ncol,) + coded[start + k :]

    def _check_chunk(self, header: Header, shape: tuple[int, ...], chunk: Chunk) -> None:
        """Refuse a stream that cannot fill ``chunk``, before anything of its declared size is allocated."""
        dtype = np.dtype(header.dtype)
        nbytes = math.prod(shape) * dtype.itemsize
        wrong = (
            (chunk.shape is not None and tuple(chunk.shape) != shape)
            or (chunk.dtype is not None and np.dtype(chunk.dtype).newbyteorder("=") != dtype.newbyteorder("="))
            or (chunk.nbytes is not None and chunk.nbytes != nbytes)
        )
        if wrong:
            raise CorruptStreamError(f"the stream declares shape {shape} and dtype {dtype} ({nbytes} bytes), "
                                     f"which do not fit the chunk: the store is damaged or mixed up")

    def _check_model(self, header: Header) -> None:
        if header.model_sha256 and header.model_sha256 != self.model_sha256:
            raise ModelMismatchError(
                f"this chunk was encoded with {_model_label(header.model_id, header.model_sha256)}, "
                f"but the codec is configured for {_model_label(self.model_id, self.model_sha256)}; "
                f"install that model and open the data with a codec that names it"
            )

    def encode(self, buf) -> bytes:
        """Compress one chunk (an N-D float array keeps its shape in the stream)."""
        return self.encode_chunk(np.asarray(ensure_ndarray_like(buf)))

    def decode(self, buf, out=None) -> np.ndarray:
        """Decompress one chunk to its original shape and dtype (or into ``out``, whose size it must fit)."""
        blob = ensure_contiguous_ndarray(buf).tobytes()
        y = self.decode_chunk(blob, Chunk() if out is None else Chunk(nbytes=ensure_ndarray_like(out).nbytes))
        return y if out is None else ndarray_copy(y, out)
