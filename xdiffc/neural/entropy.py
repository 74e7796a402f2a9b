"""Factorized entropy model of the quantised latents, frozen to integer tables for coding.

Training: each latent channel has a logistic density (learned location and scale); a latent y
with additive uniform noise costs -log2(F(y + 1/2) - F(y - 1/2)) bits (Balle et al. 2017).

Export: the densities are frozen into INTEGER frequency tables, one row per channel over the
symbols -R..R plus one escape symbol, summing to 2**PRECISION. Coding uses the shared rANS coder
(:func:`xdiffc.entropy.rans.encode_rows`) fed the exact dyadic floats ``freq / 2**PRECISION``,
so the probabilities (and hence the bits) are identical on every machine, whatever arithmetic
the network that made the latents used. A value outside -R..R is coded as the escape symbol and
its raw value is stored in a separate list of int32.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..entropy import rans

PRECISION = 16
TOTAL = 1 << PRECISION


class LogisticPrior(nn.Module):
    """Per-channel logistic density of the (noisy) latents; gives bits per element."""

    def __init__(self, channels: int):
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(channels))
        self.log_scale = nn.Parameter(torch.zeros(channels))

    def _cdf(self, v: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (v.ndim - 2)
        return torch.sigmoid((v - self.loc.view(shape)) / self.log_scale.exp().view(shape))

    def bits(self, y: torch.Tensor) -> torch.Tensor:
        """-log2 p of each element of ``y`` (shape (N, C, ...)); differentiable."""
        p = self._cdf(y + 0.5) - self._cdf(y - 0.5)
        return -torch.log2(p.clamp_min(1e-9))

    @torch.no_grad()
    def freeze(self, radius: int) -> np.ndarray:
        """int32 tables (C, 2 * radius + 2): frequencies of -radius..radius, then the escape symbol."""
        support = torch.arange(-radius, radius + 1, dtype=torch.float64)
        loc, scale = self.loc.double()[:, None], self.log_scale.double().exp()[:, None]
        cdf = lambda v: torch.sigmoid((v - loc) / scale)  # noqa: E731
        mass = cdf(support + 0.5) - cdf(support - 0.5)
        escape = (1.0 - mass.sum(1, keepdim=True)).clamp_min(0.0)
        probs = torch.cat([mass, escape], 1).numpy()
        k = probs.shape[1]
        freq = 1 + np.floor(probs * (TOTAL - k)).astype(np.int64)  # every symbol stays codable
        freq[np.arange(len(freq)), freq.argmax(1)] += TOTAL - freq.sum(1)
        return freq.astype(np.int32)


class FrozenCoder:
    """Codes integer latents (C, ...) with frozen tables; bit-exact and machine independent."""

    def __init__(self, tables: np.ndarray):
        tables = np.asarray(tables, dtype=np.int64)
        if tables.ndim != 2 or tables.shape[1] < 3 or (tables.sum(1) != TOTAL).any() or (tables <= 0).any():
            raise ValueError("entropy tables must be positive integers with rows summing to 2**16")
        self.tables = tables
        self.radius = (tables.shape[1] - 2) // 2
        self.escape = tables.shape[1] - 1
        self.probs = tables.astype(np.float64) / TOTAL  # exact: dyadic rationals
        self.bits_table = -np.log2(self.probs)

    def symbols(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Symbols (same shape as ``q``) and the raw values of escaped entries, in C order."""
        q = np.asarray(q, dtype=np.int64)
        out = np.abs(q) > self.radius
        sym = np.where(out, self.escape, q + self.radius).astype(np.int32)
        return sym, q[out].astype(np.int32)

    def _rows(self, shape: tuple[int, ...]) -> np.ndarray:
        """Channel index of each element of an array (n, C, ...) flattened in C order."""
        return np.broadcast_to(np.arange(shape[1]).reshape((1, -1) + (1,) * (len(shape) - 2)), shape).ravel()

    def estimate_bits(self, q: np.ndarray) -> float:
        """Information content of latents ``q`` (1, C, ...) in bits, escapes at 32 raw bits each."""
        sym, raw = self.symbols(q)
        return float(self.bits_table[self._rows(sym.shape), sym.ravel()].sum()) + 32.0 * raw.size

    def encode(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """ANS words (uint32) and escaped raw values (int32) of latents ``q`` (n, C, ...)."""
        sym, raw = self.symbols(q)
        probs = self.probs[self._rows(sym.shape)] if sym.size else self.probs[:0]
        return rans.encode_rows(sym.ravel(), probs), raw

    def decode(self, words: np.ndarray, raw: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """Inverse of :meth:`encode`; raises ValueError when the words or escapes do not fit."""
        n = math.prod(shape)
        sym, used_up = rans.decode_rows(words, self.probs[self._rows(shape)] if n else self.probs[:0])
        escaped = sym == self.escape
        if int(escaped.sum()) != raw.size or not used_up:
            raise ValueError("latent stream and escape list disagree")
        q = sym - self.radius
        q[escaped] = raw
        return q.reshape(shape)
