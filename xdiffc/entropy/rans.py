"""rANS coding with ``constriction``: static histograms stored in the stream, or frozen integer tables.

Histogram bytes (sparse): ``uv`` number of nonzero bins, then per bin ``uv`` gap to the previous
symbol (the first: the symbol itself) and ``uv`` count.  A histogram with at most one used
symbol needs no model: its symbols cost no bits.  Probabilities are given to constriction as
the histogram's counts (``Categorical(perfect=False)``), or as exact dyadic fractions of a
frozen integer table, so encoder and decoder build the same model on every machine.
"""

from __future__ import annotations

from typing import NamedTuple

import constriction
import numpy as np

from ..byteio import Reader, put_varint, read_varint, uvarint
from ..errors import CorruptStreamError
from ..kernels import kernel


def histogram_bytes(nz: np.ndarray, counts: np.ndarray) -> bytes:
    """Sparse histogram of the used symbols ``nz`` (increasing) with their ``counts``."""
    return uvarint(len(nz)) + _pairs_bytes(np.asarray(nz, np.int64), np.asarray(counts, np.int64)).tobytes()


@kernel
def _pairs_bytes(nz, counts):
    out = np.empty(20 * nz.size, np.uint8)
    at, prev = np.int64(0), np.int64(0)  # int64, not the literal 0: one compilation of put_varint
    for i in range(nz.size):
        at = put_varint(out, at, nz[i] - prev)
        at = put_varint(out, at, counts[i])
        prev = nz[i]
    return out[:at]


@kernel
def _parse_pairs(buf, at, end, n, n_bins, max_count):
    """Symbols and counts of ``n`` (gap, count) pairs; position -1 when the bytes are malformed."""
    nz, counts = np.empty(n, np.int64), np.empty(n, np.int64)
    sym = 0
    for i in range(n):
        gap, at = read_varint(buf, at, end, n_bins)
        if at < 0:
            return nz, counts, -1
        count, at = read_varint(buf, at, end, max_count)
        sym += gap
        if at < 0 or sym >= n_bins or (i and not gap) or not count:
            return nz, counts, -1
        nz[i], counts[i] = sym, count
    return nz, counts, at


def read_histogram(r: Reader, n_bins: int, max_count: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse one sparse histogram over ``n_bins`` symbols, each count at most ``max_count``: (symbols, counts)."""
    n = r.uvarint(n_bins)
    buf = np.frombuffer(r.data, np.uint8)
    nz, counts, at = _parse_pairs(buf, r.pos, r.end, n, n_bins, max(max_count, 1))
    if at < 0:
        raise CorruptStreamError(f"{what} holds a malformed histogram")
    r.pos = at
    return nz, counts


class Model(NamedTuple):
    """A static model: lowest used symbol, constriction model (None: at most one symbol), count, entropy bits."""

    lo: int
    model: object
    count: int
    bits: float


def model_of(nz: np.ndarray, counts: np.ndarray) -> Model:
    """The categorical model over the used symbol range ``nz[0]..nz[-1]``."""
    c = np.asarray(counts, np.float64)
    total = float(c.sum())
    bits = float(np.sum(c * np.log2(total / c))) if c.size else 0.0
    if c.size <= 1:
        return Model(int(nz[0]) if c.size else -1, None, int(total), bits)
    lo, hi = int(nz[0]), int(nz[-1])
    probs = np.zeros(hi - lo + 1)
    probs[np.asarray(nz) - lo] = c
    return Model(lo, constriction.stream.model.Categorical(probs, perfect=False), int(total), bits)


def sparse(hist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(used symbols, counts) of a dense histogram."""
    nz = np.flatnonzero(hist)
    return nz, hist[nz]


def encode_segments(segments: list[tuple[int, np.ndarray]], models: list[Model]) -> np.ndarray:
    """rANS words (uint32) of the segments ``(model index, symbols)``, decodable in the given order."""
    coder = constriction.stream.stack.AnsCoder()
    for m, s in reversed(segments):
        lo, model = models[m].lo, models[m].model
        if model is not None and s.size:
            coder.encode_reverse(s.astype(np.int32) - lo, model)
    return coder.get_compressed()


def words_bytes(words: np.ndarray) -> bytes:
    """``uv`` word count, then the little-endian 32-bit words."""
    words = np.asarray(words).astype("<u4")
    return uvarint(words.size) + words.tobytes()


class Decoder:
    """Hands out symbols model by model from one rANS stream, never more than each histogram counts.

    Nothing is decoded before the counts add up: the histograms must count exactly ``n_symbols``
    symbols, in words that can hold their information content (no code beats the entropy of
    its own counts), so a damaged payload cannot make a decoder run past its shape.
    """

    def __init__(self, r: Reader, models: list[Model], n_symbols: int, what: str) -> None:
        self.what = what
        self.models = models
        self.left = [m.count for m in models]
        n_words = r.uvarint(len(r.data))
        bits = sum(m.bits for m in models)
        if sum(self.left) != n_symbols or bits > 32 * n_words + 64 + 1e-6 * bits:
            raise CorruptStreamError(f"{what}: histograms do not match the symbols of the shape or their words")
        words = np.frombuffer(r.take(4 * n_words), "<u4").astype(np.uint32)
        self.ans = constriction.stream.stack.AnsCoder(words)

    def take(self, m: int, n: int) -> np.ndarray:
        """Next ``n`` symbols of model ``m`` (int64)."""
        if n > self.left[m]:
            raise CorruptStreamError(f"{self.what}: a histogram counts fewer symbols than the shape needs")
        self.left[m] -= n
        lo, model = self.models[m].lo, self.models[m].model
        if model is None or n == 0:
            return np.full(n, lo, np.int64)
        try:
            return np.asarray(self.ans.decode(model, n), np.int64) + lo
        except Exception as exc:  # constriction reports damage with assorted exception types
            raise CorruptStreamError(f"{self.what}: the rANS stream is damaged") from exc

    def finish(self) -> None:
        """Check that every coded symbol was consumed."""
        if not (self.ans.is_empty() and not any(self.left)):
            raise CorruptStreamError(f"{self.what} holds more symbols than the shape needs")


# ----------------------------------------------------------------------------- frozen tables (model latents)

_CATEGORICAL = constriction.stream.model.Categorical(perfect=False)


def encode_rows(sym: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """rANS words of ``sym`` (int32), symbol ``i`` under the probability row ``probs[i]`` (exact dyadic)."""
    coder = constriction.stream.stack.AnsCoder()
    if sym.size:
        coder.encode_reverse(np.ascontiguousarray(sym, np.int32), _CATEGORICAL, probs)
    return coder.get_compressed()


def decode_rows(words: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, bool]:
    """Inverse of :func:`encode_rows`: (symbols, whether the words were used up exactly)."""
    coder = constriction.stream.stack.AnsCoder(np.ascontiguousarray(words, dtype=np.uint32))
    sym = coder.decode(_CATEGORICAL, probs) if len(probs) else np.zeros(0, np.int32)
    return np.asarray(sym, dtype=np.int64), coder.is_empty()
