"""Fold any N-D chunk into normalised spatiotemporal blocks (time x y x x) and back.

Convention: axis 0 is time, the last two axes are (y, x), axes in between (level, member)
fold into the batch. A 2-D array is (y, x) with T = 1; a 1-D array is (1, 1, W).
Blocks tile the chunk without overlap; edge blocks are padded (reflect, or edge where reflect
is impossible) so that every block has the full block shape. Unfolding crops the padding away,
so fold/unfold is exactly invertible.

Each block is normalised by (x - mean) / (max - min) over its valid points, with mean and
range rounded to float32 first: the payload stores them as float32, and the decoder must
de-normalise with exactly the values the encoder used.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

MAX_NDIM = 5


def canonical_shape(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """(batch, T, H, W) of an N-D chunk under the layout convention."""
    ndim = len(shape)
    if not 1 <= ndim <= MAX_NDIM:
        raise ValueError(f"the model handles arrays of 1 to {MAX_NDIM} dimensions, got shape {shape}")
    if ndim == 1:
        return 1, 1, 1, shape[0]
    if ndim == 2:
        return 1, 1, shape[0], shape[1]
    return int(np.prod(shape[1:-2], dtype=np.int64)), shape[0], shape[-2], shape[-1]


def to_canonical(x: np.ndarray) -> np.ndarray:
    """View ``x`` as (batch, T, H, W): middle axes move in front of time and fold into the batch."""
    b, t, h, w = canonical_shape(x.shape)
    if x.ndim <= 2:
        return x.reshape(b, t, h, w)
    return np.moveaxis(x, 0, -3).reshape(b, t, h, w)


def from_canonical(y: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`to_canonical`."""
    if len(shape) <= 2:
        return y.reshape(shape)
    middle = tuple(shape[1:-2])
    return np.moveaxis(y.reshape(*middle, shape[0], shape[-2], shape[-1]), -3, 0)


@dataclass(frozen=True)
class BlockGrid:
    """The blocks of one chunk: canonical shape, block shape and each block's canonical origin."""

    shape: tuple[int, ...]
    block: tuple[int, int, int]

    @property
    def canonical(self) -> tuple[int, int, int, int]:
        return canonical_shape(self.shape)

    def origins(self) -> list[tuple[int, int, int, int]]:
        """(batch index, t0, y0, x0) of every block, in block order (batch, then t, y, x)."""
        b, t, h, w = self.canonical
        bt, bh, bw = self.block
        return list(itertools.product(range(b), range(0, t, bt), range(0, h, bh), range(0, w, bw)))

    def __len__(self) -> int:
        b, t, h, w = self.canonical
        bt, bh, bw = self.block
        return b * -(-t // bt) * -(-h // bh) * -(-w // bw)

    def canonical_region(self, origin: tuple[int, int, int, int]) -> tuple[int | slice, ...]:
        """Index of one block's (unpadded) region in the canonical array."""
        b, t0, y0, x0 = origin
        return (b, *(slice(o, o + n) for o, n in zip((t0, y0, x0), self.block)))

    def slices(self) -> list[tuple[slice, ...]]:
        """The N-D index region of the original chunk covered by each block, in block order."""
        ndim = len(self.shape)
        middle = tuple(self.shape[1:-2]) if ndim > 2 else ()
        out = []
        for origin in self.origins():
            _, ts, ys, xs = self.canonical_region(origin)
            ts, ys, xs = (slice(s.start, min(s.stop, n)) for s, n in zip((ts, ys, xs), self.canonical[1:]))
            if ndim == 1:
                out.append((xs,))
            elif ndim == 2:
                out.append((ys, xs))
            else:
                idx = np.unravel_index(origin[0], middle) if middle else ()
                out.append((ts, *(slice(int(i), int(i) + 1) for i in idx), ys, xs))
        return out


def pad_to(block: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Pad an array at its far edges up to ``shape``: reflect where possible, else edge."""
    for axis, (have, want) in enumerate(zip(block.shape, shape)):
        extra = want - have
        if extra <= 0:
            continue
        widths = [(0, 0)] * block.ndim
        widths[axis] = (0, extra)
        # reflect needs at least 2 points and cannot reach further than have - 1 per pass
        mode = "reflect" if have >= 2 and extra <= have - 1 else ("symmetric" if extra <= have else "edge")
        block = np.pad(block, widths, mode=mode)
    return block


def cut(x: np.ndarray, block: tuple[int, int, int]) -> np.ndarray:
    """Raw padded blocks (n, *block) of an N-D array, in block order; any dtype."""
    grid = BlockGrid(tuple(x.shape), block)
    cx = to_canonical(x)
    out = np.empty((len(grid), *block), x.dtype)
    for i, origin in enumerate(grid.origins()):
        out[i] = pad_to(cx[grid.canonical_region(origin)], block)
    return out


def paste(blocks: np.ndarray, shape: tuple[int, ...], block: tuple[int, int, int],
          use: np.ndarray | None = None) -> np.ndarray:
    """Crop blocks back into an array of ``shape`` (inverse of :func:`cut`); unused blocks stay 0."""
    grid = BlockGrid(tuple(shape), block)
    out = np.zeros(grid.canonical, blocks.dtype)
    for i, origin in enumerate(grid.origins()):
        if use is None or use[i]:
            region = grid.canonical_region(origin)
            t, h, w = out[region].shape
            out[region] = blocks[i][:t, :h, :w]
    return from_canonical(out, tuple(shape))


def inside(shape: tuple[int, ...], block: tuple[int, int, int]) -> np.ndarray:
    """bool (n, *block): True on the points of each block that lie in the chunk (not padding)."""
    grid = BlockGrid(tuple(shape), block)
    out = np.zeros((len(grid), *block), bool)
    for i, origin in enumerate(grid.origins()):
        _, ts, ys, xs = grid.canonical_region(origin)
        t, h, w = (min(s.stop, n) - s.start for s, n in zip((ts, ys, xs), grid.canonical[1:]))
        out[i, :t, :h, :w] = True
    return out


@dataclass
class Blocks:
    """Normalised blocks ready for the network, with what is needed to undo the normalisation."""

    data: np.ndarray  # float32 (n, T, H, W), normalised, missing points filled with the block mean
    valid: np.ndarray  # bool (n, T, H, W): real, non-missing points (False on padding)
    means: np.ndarray  # float32 (n,)
    ranges: np.ndarray  # float32 (n,)


def divisor(ranges: np.ndarray) -> np.ndarray:
    """The float64 divisor of each block: its range, or 1 where the range is 0."""
    r = np.asarray(ranges, dtype=np.float64)
    return np.where(r > 0, r, 1.0)


def fold(x: np.ndarray, missing: np.ndarray, block: tuple[int, int, int]) -> Blocks:
    """Cut ``x`` into padded, normalised blocks (see module docstring)."""
    if missing.shape != x.shape:
        raise ValueError(f"missing has shape {missing.shape}, x has {x.shape}")
    raw = cut(np.asarray(x, dtype=np.float64), block)
    miss = cut(np.asarray(missing, dtype=bool), block)
    valid = ~miss & inside(x.shape, block)
    n = raw.shape[0]
    means, ranges = np.zeros(n, np.float32), np.zeros(n, np.float32)
    data = np.zeros(raw.shape, np.float32)
    for i in range(n):
        good = raw[i][valid[i]]
        if good.size:
            with np.errstate(over="ignore", invalid="ignore"):
                m32, r32 = np.float32(good.mean()), np.float32(float(good.max()) - float(good.min()))
            if np.isfinite(m32) and np.isfinite(r32):
                means[i], ranges[i] = m32, r32
        # padding copies chunk points, so a padded copy of a missing point is filled too
        filled = np.where(miss[i], np.float64(means[i]), raw[i])
        data[i] = np.clip((filled - np.float64(means[i])) / divisor(ranges[i]), -2.0, 2.0)
    return Blocks(data, valid, means, ranges)


def unfold(blocks: np.ndarray, means: np.ndarray, ranges: np.ndarray, shape: tuple[int, ...],
           block: tuple[int, int, int], use: np.ndarray | None = None) -> np.ndarray:
    """De-normalise blocks to float64 and crop them back into an array of ``shape``; unused blocks are 0."""
    scaled = blocks.astype(np.float64) * divisor(ranges)[:, None, None, None]
    scaled += np.asarray(means, np.float64)[:, None, None, None]
    return paste(scaled, shape, block, use)
