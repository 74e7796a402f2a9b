"""The seam with the core: load a model once per process, analyse a chunk, pack and reconstruct.

    pred = load_model("default")                  # cached per (model id, sha256, device)
    a = pred.analyse(x, missing, steps=4)         # x_hat, block_bytes, block_ranges
    payload = pred.pack(a, use)                   # only the used blocks' latents + normalisation
    x_hat = pred.reconstruct(payload, x.shape)    # bit-identical to a.x_hat on used blocks, 0 elsewhere
    used = pred.used_blocks(payload, x.shape)     # which blocks those are (block order)

Every block is decoded on its own (batch of one block), in analyse and in reconstruct alike,
so a block's x_hat never depends on which other blocks are present or used.

Payload (little-endian)::

    u8   format (1)
    u8   flags (bit 0: tensor correction on)
    8B   first 8 bytes of the model's sha256
    u16  steps; u16 x3 block shape; u32 number of blocks
    use flags, one bit per block (numpy packbits order)
    f32 x used: means; f32 x used: ranges
    u32  escapes; i32 x escapes: raw escaped latent values
    u32  words; u32 x words: ANS stream of the used blocks' latents (block order)
"""

from __future__ import annotations

import hashlib
import struct
import threading
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import CorruptStreamError, ModelMismatchError
from ..model_files import resolve
from . import layout, modelfile
from .entropy import FrozenCoder

FORMAT = 1
#: bytes of side information per block: float32 mean and range
SIDE_BYTES = 8
_HEAD = struct.Struct("<BB8sHHHHI")
_CACHE: dict[tuple[str, str, str], "ModelPredictor"] = {}
#: (resolved path, mtime_ns, size) -> sha256: a changed file is hashed again
_DIGESTS: dict[tuple[str, int, int], str] = {}
_LOCK = threading.Lock()


def load_model(name_or_path: str = "default", sha256: str | None = None, device: str = "cpu", *,
               data: bytes | None = None) -> "ModelPredictor":
    """The predictor of a model file of any family, loaded once per (model id, sha256, device) in this process.

    ``data``: the model file's bytes themselves (a model a store carries), with ``name_or_path``
    as its id; no file is read then. Raises :class:`~xdiffc.ModelMismatchError` when ``sha256`` is
    given and the model's differs.
    """
    if data is not None:
        model_id, where, digest = str(name_or_path), "carried by the store", hashlib.sha256(data).hexdigest()
    else:
        path = resolve(str(name_or_path))
        stat = path.stat()
        seen = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
        with _LOCK:
            digest = _DIGESTS.get(seen)
        if digest is None:  # hash a file once per process, not on every chunk that names it
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            with _LOCK:
                _DIGESTS[seen] = digest
        model_id, where = path.stem, f"at {path}"
    if sha256 is not None and sha256.lower() != digest:
        raise ModelMismatchError(f"model {model_id!r} {where} has sha256 {digest}, but the data was encoded "
                                 f"with model {model_id!r} sha256 {sha256.lower()}; supply that exact model file")
    key = (model_id, digest, str(torch.device(device)))
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = ModelPredictor(modelfile.read(path.read_bytes() if data is None else data), model_id, device)
        return _CACHE[key]


@dataclass
class Analysis:
    """What :meth:`ModelPredictor.analyse` found; :meth:`ModelPredictor.pack` codes from it."""

    shape: tuple[int, ...]
    steps: int
    correction: bool
    x_hat: np.ndarray  # float64, shape
    block_bytes: list[int]  # estimated coded size of each block's latents + side info
    block_means: np.ndarray  # float32 (n,)
    block_ranges: np.ndarray  # float32 (n,): multiply max_abs_deviation by these for the margin
    latents: np.ndarray = field(repr=False)  # int64 (n, C, t, h, w)


class ModelPredictor:
    """A loaded model of any family: float32, eval mode, TF32 off. Thread-safe (one inference at a time).

    The family's ``seam_network`` gives a module with ``encode(blocks) -> latents`` and
    ``decode(latents, steps, correction) -> blocks`` on normalised (N, 1, *block) tensors, and the
    block shape: GCDTC's 3-D blocks (:mod:`xdiffc.neural.network`), DiffCoder's (1, R, R) tiles
    (:mod:`xdiffc.diffcoder.model`). Layout, normalisation, latent coding and the payload are shared.
    """

    def __init__(self, mf: modelfile.ModelFile, model_id: str, device: str = "cpu"):
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        self.model_id, self.sha256, self.device = model_id, mf.sha256, torch.device(device)
        self.config = mf.config
        net, self.block_shape = mf.family.seam_network(mf.config, mf.state_dict)
        self.net = net.to(device=self.device, dtype=torch.float32).eval()
        self.coder = FrozenCoder(mf.cdf)
        #: bound on |x_hat(device A) - x_hat(device B)| in normalised units (range 1); see the model card
        self.max_abs_deviation: float = mf.max_abs_deviation
        self.meta = mf.meta
        self._lock = threading.Lock()

    def block_slices(self, shape: tuple[int, ...]) -> list[tuple[slice, ...]]:
        """The N-D index regions of the (unpadded) chunk covered by each block, in block order."""
        return layout.BlockGrid(tuple(shape), self.block_shape).slices()

    def _decode_block(self, q: np.ndarray, steps: int, correction: bool) -> np.ndarray:
        z = torch.from_numpy(q[None].astype(np.float32)).to(self.device)
        with torch.no_grad():
            return self.net.decode(z, steps, correction)[0].cpu().numpy()

    def analyse(self, x: np.ndarray, missing: np.ndarray, steps: int, *, correction: bool = True) -> Analysis:
        """Encode, quantise and decode every block of ``x`` (float64, 1-5 dims); see the module docstring."""
        x = np.asarray(x, dtype=np.float64)
        missing = np.asarray(missing, dtype=bool)
        if missing.shape != x.shape or not np.isfinite(x[~missing]).all():
            raise ValueError("missing must have x's shape and cover every non-finite value of x")
        steps = self._check_steps(steps)
        blocks = layout.fold(x, missing, self.block_shape)
        n = len(blocks.data)
        latents = np.zeros((n, *self.config.latent_shape), np.int64)
        decoded = np.zeros_like(blocks.data)
        sizes = []
        with self._lock:
            for i in range(n):
                with torch.no_grad():
                    y = self.net.encode(torch.from_numpy(blocks.data[i : i + 1]).to(self.device))
                latents[i] = torch.round(y)[0].cpu().numpy().astype(np.int64)
                decoded[i] = self._decode_block(latents[i], steps, correction)
                sizes.append(int(np.ceil(self.coder.estimate_bits(latents[i : i + 1]) / 8)) + SIDE_BYTES)
        x_hat = layout.unfold(decoded, blocks.means, blocks.ranges, x.shape, self.block_shape)
        return Analysis(tuple(x.shape), steps, correction, x_hat, sizes, blocks.means, blocks.ranges, latents)

    def pack(self, analysis: Analysis, use: np.ndarray) -> bytes:
        """The payload of the used blocks (format in the module docstring)."""
        use = np.asarray(use, dtype=bool).ravel()
        n = len(analysis.block_bytes)
        if use.size != n:
            raise ValueError(f"use has {use.size} flags for {n} blocks")
        words, raw = self.coder.encode(analysis.latents[use])
        bs = self.block_shape
        parts = [_HEAD.pack(FORMAT, int(analysis.correction), bytes.fromhex(self.sha256[:16]), analysis.steps,
                            *bs, n),
                 np.packbits(use).tobytes(),
                 analysis.block_means[use].astype("<f4").tobytes(), analysis.block_ranges[use].astype("<f4").tobytes(),
                 struct.pack("<I", raw.size), raw.astype("<i4").tobytes(),
                 struct.pack("<I", words.size), words.astype("<u4").tobytes()]
        return b"".join(parts)

    def reconstruct(self, payload: bytes, shape: tuple[int, ...]) -> np.ndarray:
        """x_hat (float64, ``shape``): the used blocks exactly as analysed, 0.0 elsewhere.

        Raises CorruptStreamError for a malformed payload and ModelMismatchError when the payload
        was made by another model.
        """
        shape = tuple(int(s) for s in shape)
        use, means, ranges, latents, steps, correction = self._unpack(bytes(payload), shape)
        decoded = np.zeros((len(use), *self.block_shape), np.float32)
        with self._lock:
            for i, q in zip(np.flatnonzero(use), latents):
                decoded[i] = self._decode_block(q, steps, correction)
        full_means = np.zeros(len(use), np.float32)
        full_ranges = np.zeros(len(use), np.float32)
        full_means[use], full_ranges[use] = means, ranges
        return layout.unfold(decoded, full_means, full_ranges, shape, self.block_shape, use)

    def used_blocks(self, payload: bytes, shape: tuple[int, ...]) -> np.ndarray:
        """Whether the payload carries each block (bool, block order): where :meth:`reconstruct` is the model's.

        Raises as :meth:`reconstruct` does.
        """
        return self._unpack(bytes(payload), tuple(int(s) for s in shape))[0]

    def _check_steps(self, steps: int) -> int:
        steps = int(steps)
        if not 1 <= steps <= self.config.train_steps:
            raise ValueError(f"steps must be in 1..{self.config.train_steps}, got {steps}")
        return steps

    def _unpack(self, payload: bytes, shape: tuple[int, ...]):
        try:
            fmt, flags, fp, steps, *rest = _HEAD.unpack_from(payload, 0)
        except struct.error:
            raise CorruptStreamError("model payload is shorter than its header") from None
        bt, bh, bw, n = rest
        if fmt != FORMAT or flags > 1:
            raise CorruptStreamError(f"unknown model payload format {fmt} (flags {flags}); this xdiffc reads format {FORMAT}")
        if fp != bytes.fromhex(self.sha256[:16]):
            raise ModelMismatchError(f"the payload was encoded with a model whose sha256 starts {fp.hex()}, "
                                     f"not with {self.model_id!r} (sha256 {self.sha256}); load that model")
        if (bt, bh, bw) != self.block_shape or not 1 <= steps <= self.config.train_steps:
            raise CorruptStreamError(f"payload block shape {(bt, bh, bw)} / steps {steps} do not fit model "
                                     f"{self.model_id!r} (block {self.block_shape})")
        try:
            expected = len(layout.BlockGrid(shape, self.block_shape))
        except ValueError as err:
            raise CorruptStreamError(str(err)) from None
        if n != expected:
            raise CorruptStreamError(f"payload has {n} blocks, shape {shape} has {expected}")
        try:
            off = _HEAD.size
            nb = (n + 7) // 8
            use = np.unpackbits(np.frombuffer(payload, np.uint8, nb, off), count=n).astype(bool)
            off += nb
            k = int(use.sum())
            means = np.frombuffer(payload, "<f4", k, off).astype(np.float32)
            ranges = np.frombuffer(payload, "<f4", k, off + 4 * k).astype(np.float32)
            off += 8 * k
            (n_raw,) = struct.unpack_from("<I", payload, off)
            raw = np.frombuffer(payload, "<i4", n_raw, off + 4).astype(np.int64)
            off += 4 + 4 * n_raw
            (n_words,) = struct.unpack_from("<I", payload, off)
            words = np.frombuffer(payload, "<u4", n_words, off + 4).astype(np.uint32)
            off += 4 + 4 * n_words
            if off != len(payload):
                raise ValueError(f"{len(payload) - off} trailing bytes")
            if not (np.isfinite(means).all() and np.isfinite(ranges).all() and (ranges >= 0).all()):
                raise ValueError("non-finite or negative block normalisation")
            latents = self.coder.decode(words, raw, (k, *self.config.latent_shape))
        except (ValueError, struct.error, RuntimeError, OverflowError) as err:
            raise CorruptStreamError(f"malformed model payload: {err}") from None
        return use, means, ranges, latents, steps, bool(flags & 1)
