"""The paper's guarantee: every block's L2 error within tau, by a PCA correction of its residual.

GCDTC (arXiv 2502.12951) bounds the error per block, not per point.  With ``R = max - min``
over the valid points and ``eps`` the NRMSE target, every block ``b`` of the reconstruction
``y`` (in the output dtype) meets

    ||x_b - y_b||_2 <= eps * sqrt(n_b) * R,        n_b = valid points of the block,

so the global NRMSE = RMSE / R is at most ``eps``.  A block is an ``ph x pw`` patch (8 x 8 by
default) of each slice, the slice being the last two axes (a 1-D array is one row, cut into runs
of ``ph * pw`` values).  Patches at the edges are padded; padding and missing points count
neither in the norm nor in ``n_b``.  ``eps * sqrt(n_b)`` is the stricter of the two possible
bounds of a partial patch (``sqrt(D)`` would let its points err more): it is the one under
which the global NRMSE bound still holds.

Pipeline (encoder; the decoder replays the two reconstruction steps):

1. Base: the values are coded by the interpolation coder :mod:`xdiffc.coders.interp` under the
   pointwise bound ``base_c * eps * R``.  A uniform error of width ``2 tol`` has RMS
   ``tol / sqrt(3)``, so with ``base_c`` near ``sqrt(3)`` most patches already meet tau;
   ``base_c`` is recorded.  The paper's base is a neural reconstruction: with a
   :class:`ModelBase`, the points it covers take the model's ``x_hat`` as their base instead, and
   the interpolation coder skips them like missing points (the decoder needs the same
   ``ModelBase``; :mod:`xdiffc.l2model` chooses the points block by block).
2. Correction: patches whose error (checked on the output-dtype values) exceeds tau get a PCA
   correction.  The basis is the eigenvectors of the uncentred second moment of those patches'
   normalised residuals (they have ~zero mean, and the decoder then needs no mean), computed in
   float64, stored as integers in units of ``2**-bits`` (coarse: see :data:`BASIS_EXTRA_BITS`),
   and used *as stored* by the encoder too.  Each patch is
   projected, its coefficients sorted by magnitude and quantised with bin ``2 eps`` (normalised
   units; ``step = 2 eps R`` in data units), and the fewest are kept that bring the patch within
   tau, quantisation error included, as checked on the decoder's exact arithmetic.
3. A patch that no number of coefficients brings within tau (partial patches, rounding) is stored
   exactly.  So the bound holds by construction, with a relative margin :data:`MARGIN` on the
   squared norm that absorbs a checker's different summation order.

Cross-device margin: a model's ``x_hat`` computed on another device differs by up to ``m`` per
point (``ModelBase.margin``: the model's documented deviation times its block's range, plus
rounding, :func:`xdiffc.model_path.margin`).  Every other step adds the same numbers to it, so a
patch's decoded error moves by at most ``m_p * sqrt(n)``, ``m_p`` the largest margin in the
patch.  The encoder therefore holds each patch to ``(eps * R - m_p) * sqrt(n)`` instead of tau.

The corrected patch is ``y = cast(((hat + t_0) + t_1) + ...)`` with ``t_j = (q_j * step) *
basis[:, idx_j]``, accumulated coefficient by coefficient in ascending index order with numpy
elementwise operations only (no BLAS), so encoder and decoder compute bit-identical values
everywhere; the stored basis entries are exact float64 values (integers times a power of two).
The patch arithmetic is a numba kernel (:mod:`xdiffc.kernels`) with the same operations in the same order.

A constant field (``R == 0``) gets the bound 0: it comes back exactly (its patches are stored
exactly, which zstd reduces to almost nothing).

Sections returned by :func:`encode`:

``l2base``: the :mod:`~xdiffc.coders.interp` payload of the base.

``pca`` (little-endian; ``uv`` = unsigned LEB128 varint; a *block* is a coded array of
non-negative integers (:mod:`xdiffc.entropy.ints`): ``u8`` 0 then a frame of its low and high
byte planes, or ``u8`` 1 then a sparse histogram (``uv`` bins, then ``uv`` gap and ``uv`` count
per bin) and ``uv`` number of 32-bit rANS words and the words, whichever is smaller; a *frame*
is ``uv`` length + zstd frame (:mod:`xdiffc.entropy.zstd`); zigzag codes are those of
:mod:`xdiffc.entropy.codes`):

================  ==============================================================
``u8``            format version (2; version 1 also ends with the CRC32 below)
``uv``, ``uv``    patch rows ``ph``, columns ``pw`` as given (1-D arrays use runs of ph*pw)
``f64`` x 4       eps, R, step, base_c
``uv`` x 3        patches in all, corrected patches C, exactly stored patches E
``u8``            bits of the basis entries (this and the next five iff C > 0)
block             basis codes ``rint(v * 2**bits)``, zigzag-coded, ``D x D`` in C order,
                  column ``j`` = component ``j`` by decreasing variance
frame             packed bits over all patches: corrected
block             ``count - 1`` per corrected patch, in patch order
block             kept coefficient indices, ascending within a patch
block             their quantised values ``q``, zigzag-coded
frame             packed bits over all patches: stored exactly (iff E > 0)
frame             the exact values (output dtype) of the valid points of those patches
``u32``           version 1 only: CRC32 of the ``l2base`` section followed by all of the
                  above (version 2 relies on the container's CRC, which covers every section)
================  ==============================================================
"""

from __future__ import annotations

import math
import struct
import zlib
from typing import NamedTuple

import numpy as np

from .api import FLOAT_DTYPES
from .byteio import Reader, uvarint
from .coders import interp
from .entropy import ints, zstd
from .entropy.codes import unzigzag as _unzigzag
from .entropy.codes import zigzag as _zigzag
from .errors import CorruptStreamError
from .kernels import kernel

#: Version 2 dropped the section's own CRC32 (the container's covers it); version 1 is still read.
VERSION = 2
_READS = (1, 2)
#: Pointwise bound of the base, in units of eps * R.  Measured on the 5 fields x 3 eps of
#: benchmarks/l2_mode.py, geometric-mean CR for c = 1.5, 1.7, 1.9, 2.1: 19.8, 20.3, 20.2, 19.1.
BASE_C = math.sqrt(3.0)
#: The encoder enforces err^2 <= (1 - MARGIN) * tau^2, so a checker that sums in another order agrees.
MARGIN = 1e-9
_MAX_D = 4096
#: Basis entries are stored as integers in units of 2**-bits with bits = log2(sqrt(D)) + BASIS_EXTRA_BITS:
#: a step of half a typical entry (1/sqrt(D)).  Measured on the benchmark fields (D=64): 3 to 12 bits
#: give the same coefficient counts, and each bit costs ~0.07 byte per entry, so coarse is best.
BASIS_EXTRA_BITS = 1
_MAX_BITS = 14
_WHAT = "the L2 guarantee section"


# ----------------------------------------------------------------------------- geometry


class _Grid(NamedTuple):
    """The field viewed as ``lead`` slices of ``rows x cols``, cut into ``ph x pw`` patches."""

    lead: int
    rows: int
    cols: int
    ph: int
    pw: int

    @classmethod
    def of(cls, shape: tuple[int, ...], patch: tuple[int, int]) -> "_Grid":
        """Grid of an array of ``shape`` (ndim >= 1); a 1-D array is one row cut into runs of ph*pw."""
        ph, pw = (int(p) for p in patch)
        if not (1 <= ph and 1 <= pw and ph * pw <= _MAX_D):
            raise ValueError(f"patch must be two positive sizes with at most {_MAX_D} values, got {patch!r}")
        if len(shape) == 0:
            raise ValueError("the L2 mode needs an array of at least one dimension")
        if len(shape) == 1:
            return cls(1, 1, int(shape[0]), 1, ph * pw)
        return cls(math.prod(shape[:-2]), int(shape[-2]), int(shape[-1]), ph, pw)

    @property
    def d(self) -> int:
        return self.ph * self.pw

    @property
    def blocks(self) -> tuple[int, int]:
        return -(-self.rows // self.ph), -(-self.cols // self.pw)

    @property
    def n_patches(self) -> int:
        nr, nc = self.blocks
        return self.lead * nr * nc

    def patches(self, a: np.ndarray) -> np.ndarray:
        """``a`` (any array of the grid's size) as (n_patches, D), padded with zeros (False)."""
        nr, nc = self.blocks
        padded = np.zeros((self.lead, nr * self.ph, nc * self.pw), a.dtype)
        padded[:, : self.rows, : self.cols] = a.reshape(self.lead, self.rows, self.cols)
        return padded.reshape(self.lead, nr, self.ph, nc, self.pw).transpose(0, 1, 3, 2, 4).reshape(-1, self.d)

    def unpatch(self, p: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """Inverse of :meth:`patches`, cropped and reshaped to ``shape``."""
        nr, nc = self.blocks
        full = p.reshape(self.lead, nr, nc, self.ph, self.pw).transpose(0, 1, 3, 2, 4)
        full = full.reshape(self.lead, nr * self.ph, nc * self.pw)
        return np.ascontiguousarray(full[:, : self.rows, : self.cols]).reshape(shape)


# ----------------------------------------------------------------------------- byte helpers


def _frame_of(r: Reader, size: int) -> bytes:
    """The next zstd frame of ``r``, which must decompress to exactly ``size`` bytes."""
    return zstd.read_frame(r, size, "a frame of the L2 guarantee section")


def _frame(raw: bytes) -> bytes:
    """Length-prefixed zstd frame."""
    return zstd.frame(raw)


def _pack_ints(sym: np.ndarray) -> bytes:
    return ints.pack(sym)


def _unpack_ints(r: Reader, n: int, limit: int) -> np.ndarray:
    return ints.unpack(r, n, limit, _WHAT)


# ----------------------------------------------------------------------------- reconstruction (encoder and decoder)


class ModelBase(NamedTuple):
    """A model's reconstruction as the base of the points it covers (:mod:`xdiffc.l2model` builds it).

    ``x_hat`` (float64) is the base where ``used`` (bool); elsewhere the interpolation base holds.
    ``margin`` (per point, or one number) bounds how far another device's ``x_hat`` may be from
    this one; only the encoder reads it.
    """

    x_hat: np.ndarray
    used: np.ndarray
    margin: np.ndarray | float = 0.0

    def checked(self, shape: tuple[int, ...]) -> "ModelBase":
        x_hat, used = np.asarray(self.x_hat, np.float64), np.asarray(self.used, bool)
        if x_hat.shape != tuple(shape) or used.shape != tuple(shape):
            raise ValueError(f"the model base has shapes {x_hat.shape} and {used.shape}, the field {tuple(shape)}")
        return ModelBase(x_hat, used, np.broadcast_to(np.asarray(self.margin, np.float64), shape))


def _skipped(missing: np.ndarray, model: ModelBase | None) -> np.ndarray | None:
    """The points the interpolation coder skips: missing ones and those the model covers (None: none)."""
    skip = missing if model is None else missing | model.used
    return skip if skip.any() else None


def _base(payload: bytes, shape: tuple[int, ...], missing: np.ndarray, model: ModelBase | None) -> np.ndarray:
    """The base reconstruction in float64: the model's ``x_hat`` where it is used, the decoded interpolation elsewhere."""
    try:
        base = interp.decode(payload, shape, _skipped(missing, model))
    except CorruptStreamError:
        raise
    except (ValueError, IndexError, TypeError, OverflowError, RuntimeError) as err:
        raise CorruptStreamError(f"the L2 base section is damaged ({err})") from None
    return base if model is None else np.where(model.used, model.x_hat, base)


def _correct(hat: np.ndarray, counts: np.ndarray, idx: np.ndarray, q: np.ndarray, comps: np.ndarray,
             step: float) -> np.ndarray:
    """``hat`` rows plus their kept components: ``((hat + t_0) + t_1) + ...``, ``t_j = (q_j * step) * comps[idx_j]``.

    Row ``i`` uses the first ``counts[i]`` entries of ``idx[i]`` and ``q[i]``.  Only elementwise
    float64 operations in a fixed order (a numba kernel, :mod:`xdiffc.kernels`), so the result is
    bit-identical on every machine.
    """
    out = np.array(hat, np.float64, order="C")
    _correct_rows(out, np.ascontiguousarray(counts, np.int64), np.ascontiguousarray(idx, np.int64),
                  np.ascontiguousarray(q, np.int64), np.ascontiguousarray(comps, np.float64), float(step))
    return out


@kernel
def _correct_rows(out, counts, idx, q, comps, step):
    for i in range(out.shape[0]):
        for j in range(min(counts[i], idx.shape[1])):
            t = np.float64(q[i, j]) * step
            c = comps[idx[i, j]]
            for k in range(out.shape[1]):
                out[i, k] = out[i, k] + t * c[k]


def _err2(x: np.ndarray, y: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Squared L2 error of each row over its valid points, computed in float64 on the output-dtype ``y``."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.where(ok, (x - y.astype(np.float64)) ** 2, 0.0).sum(axis=1)


# ----------------------------------------------------------------------------- encoder


def _value_range(values: np.ndarray, valid: np.ndarray) -> float:
    data = values[valid]
    return float(data.max()) - float(data.min()) if data.size else 0.0


def _pca(r: np.ndarray, bits: int) -> np.ndarray:
    """Components of the rows of ``r`` by decreasing variance (uncentred), one per column, as stored:
    integer codes ``rint(v * 2**bits)`` (D, D)."""
    _, vectors = np.linalg.eigh(r.T @ r)
    return np.rint(vectors[:, ::-1] * 2.0**bits).astype(np.int64)


def _basis_bits(d: int) -> int:
    """Precision of the stored basis entries for patches of ``d`` values."""
    return math.ceil(math.log2(d) / 2) + BASIS_EXTRA_BITS


def _components(codes: np.ndarray, bits: int) -> np.ndarray:
    """The stored basis as float64 rows, one per component (exact: codes times a power of two)."""
    return np.ascontiguousarray(codes.T * 2.0**-bits)


def _kept(order: np.ndarray, k: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense (indices ascending, values) of each row's ``k`` largest coefficients; unused entries are 0."""
    kmax = max(int(k.max(initial=0)), 1)
    used = np.arange(kmax) < k[:, None]
    idx = np.sort(np.where(used, order[:, :kmax], order.shape[1]), axis=1)
    idx = np.where(used, idx, 0)
    return idx, np.where(used, np.take_along_axis(q, idx, axis=1), 0)


def _estimate(a: np.ndarray, q: np.ndarray, order: np.ndarray, total: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Fewest coefficients (by magnitude) whose error, assuming an orthonormal basis, is within ``target`` (in bins^2)."""
    a_s, q_s = np.take_along_axis(a, order, axis=1), np.take_along_axis(q, order, axis=1)
    left = total[:, None] - np.cumsum(a_s**2 - (a_s - q_s) ** 2, axis=1)
    meets = np.hstack([(total <= target)[:, None], left <= target[:, None]])
    return np.where(meets.any(axis=1), meets.argmax(axis=1), a.shape[1])


class _Fit(NamedTuple):
    """The correction of the failing patches: basis, then per corrected patch its count, indices and values."""

    basis: np.ndarray
    rows: np.ndarray
    counts: np.ndarray
    idx: np.ndarray
    q: np.ndarray
    exact: np.ndarray


def _fit(x: np.ndarray, hat: np.ndarray, ok: np.ndarray, tau2: np.ndarray, step: float, scale: float,
         dtype: np.dtype) -> _Fit:
    """Correct the given (failing) patches with the fewest components that pass the decoder-exact check.

    Rows that still fail with every component are returned in ``exact``.
    """
    r = np.where(ok, x - hat, 0.0)
    bits = _basis_bits(x.shape[1])
    basis = _pca(r / scale, bits)
    comps = _components(basis, bits)
    a = (r @ comps.T) / step  # encoder-only: any rounding here just changes the choice
    q = np.clip(np.rint(a), -(1 << 15) + 1, (1 << 15) - 1)
    order = np.argsort(-np.abs(a), axis=1, kind="stable")
    k = _estimate(a, q, order, (r**2).sum(axis=1) / step**2, tau2 / step**2)
    d = x.shape[1]
    pending = np.arange(x.shape[0])
    while pending.size:
        pending = pending[k[pending] <= d]
        idx, qk = _kept(order[pending], k[pending], q[pending])
        y = _correct(hat[pending], k[pending], idx, qk, comps, step).astype(dtype)
        pending = pending[_err2(x[pending], y, ok[pending]) > tau2[pending]]
        k[pending] += 1
    done = np.flatnonzero(k <= d)
    idx, qk = _kept(order[done], k[done], q[done])
    return _Fit(basis, done, k[done], idx, qk.astype(np.int64), np.flatnonzero(k > d))


def encode(values: np.ndarray, missing: np.ndarray, nrmse: float, patch: tuple[int, int] = (8, 8), *,
           dtype: np.dtype = np.float64, model: ModelBase | None = None,
           base_c: float = BASE_C) -> dict[str, bytes]:
    """Code ``values`` so that every block meets ``||x - y||_2 <= nrmse * sqrt(n) * (max - min)``.

    Parameters
    ----------
    values : float64 array, ndim >= 1, finite where ``~missing`` (the last two axes are the slice),
        representable in ``dtype`` (as the input cast to float64 is): exact patches store them in it.
    missing : bool array of the same shape; those points are neither coded nor counted.
    nrmse : eps > 0, the NRMSE target; ``tau = eps * sqrt(D)`` per full patch in normalised units.
    patch : (rows, cols) of a patch, D = rows * cols values.
    dtype : the output dtype (float32 or float64) in which the bound is checked.
    model : optional :class:`ModelBase`: the model's reconstruction is the base where it is used
        (held to a bound tightened by its margin), and :func:`decode` must be given the same.
    base_c : pointwise bound of the base in units of ``eps * (max - min)``.

    Returns
    -------
    dict with the sections ``"l2base"`` (base reconstruction) and ``"pca"`` (the guarantee).
    """
    eps, dtype = float(nrmse), np.dtype(dtype)
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"nrmse must be finite and positive, got {nrmse!r}")
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    grid = _Grid.of(np.shape(values), patch)
    values = np.ascontiguousarray(values, np.float64)
    missing = np.broadcast_to(np.asarray(missing, bool), values.shape)
    scale = _value_range(values, ~missing)
    model = None if model is None else model.checked(values.shape)
    skip = _skipped(missing, model)
    target = values if skip is None else np.where(skip, 0.0, values)
    base_tol = base_c * eps * scale
    base = interp.encode(target, base_tol if base_tol > 0 else base_c * eps, skip)
    hat = grid.patches(_base(base, values.shape, missing, model))
    x, ok = grid.patches(np.where(missing, 0.0, values)), grid.patches(~missing)
    tau2 = patch_bounds(grid, ok, eps, scale, model)
    fail = np.flatnonzero(_err2(x, hat.astype(dtype), ok) > tau2)
    step = 2.0 * eps * scale
    empty = np.zeros(0, np.int64)
    if fail.size and step > 0 and math.isfinite(step):
        fit = _fit(x[fail], hat[fail], ok[fail], tau2[fail], step, scale, dtype)
        fit = fit._replace(rows=fail[fit.rows], exact=fail[fit.exact])
    else:
        fit = _Fit(np.zeros((grid.d, grid.d), np.int64), empty, empty, empty[:, None], empty[:, None], fail)
    head = struct.pack("<B", VERSION) + uvarint(int(patch[0])) + uvarint(int(patch[1]))
    head += struct.pack("<dddd", eps, scale, step, float(base_c))
    head += uvarint(grid.n_patches) + uvarint(fit.rows.size) + uvarint(fit.exact.size)
    body = head + _pack_fit(fit, grid) + _pack_exact(fit.exact, x, ok, grid, dtype)
    return {"l2base": base, "pca": body}


def patch_bounds(grid: _Grid, ok: np.ndarray, eps: float, scale: float, model: ModelBase | None) -> np.ndarray:
    """Each patch's squared bound as the encoder enforces it: ``(eps R - m_p)^2 n (1 - MARGIN)`` (0 where m_p >= eps R)."""
    room = np.full(len(ok), eps * scale)
    if model is not None:
        room = room - np.where(ok, grid.patches(model.margin), 0.0).max(axis=1, initial=0.0)
    return np.maximum(room, 0.0) ** 2 * ok.sum(axis=1) * (1.0 - MARGIN)


def correction_bits(values: np.ndarray, missing: np.ndarray, hat: np.ndarray, eps: float, scale: float,
                    dtype: np.dtype, model: ModelBase | None = None, patch: tuple[int, int] = (8, 8)) -> np.ndarray:
    """Estimated bits of the correction of base ``hat`` (float64, field shape), spread over each patch's valid points.

    The correction is fitted as :func:`encode` fits it (one basis for all failing patches, which
    is not counted); a kept coefficient is counted as ``log2(D)`` bits of index and
    ``2 + 2 log2(1 + |q|)`` of value, an exactly stored patch at the dtype's full width.  With
    ``model``, patches are held to the bound tightened by its margin.  An estimate for choosing a
    base (:mod:`xdiffc.l2model`), not a size.
    """
    grid = _Grid.of(np.shape(values), patch)
    x, ok, h = grid.patches(np.where(missing, 0.0, values)), grid.patches(~missing), grid.patches(hat)
    tau2 = patch_bounds(grid, ok, eps, scale, None if model is None else model.checked(np.shape(values)))
    fail = np.flatnonzero(_err2(x, h.astype(dtype), ok) > tau2)
    bits, n = np.zeros(len(x)), ok.sum(axis=1)
    step = 2.0 * eps * scale
    exact = fail
    if fail.size and step > 0 and math.isfinite(step):
        fit = _fit(x[fail], h[fail], ok[fail], tau2[fail], step, scale, np.dtype(dtype))
        used = np.arange(fit.idx.shape[1]) < fit.counts[:, None]
        per = np.where(used, math.log2(grid.d) + 2.0 + 2.0 * np.log2(1.0 + np.abs(fit.q)), 0.0).sum(axis=1)
        bits[fail[fit.rows]] = per + 2.0
        exact = fail[fit.exact]
    bits[exact] = n[exact] * np.dtype(dtype).itemsize * 8.0
    return grid.unpatch(np.where(ok, (bits / np.maximum(n, 1))[:, None], 0.0), np.shape(values))


def _flags(rows: np.ndarray, n: int) -> bytes:
    bits = np.zeros(n, bool)
    bits[rows] = True
    return _frame(np.packbits(bits).tobytes())


def _pack_fit(fit: _Fit, grid: _Grid) -> bytes:
    if not fit.rows.size:
        return b""
    used = np.arange(fit.idx.shape[1]) < fit.counts[:, None]
    return (bytes([_basis_bits(grid.d)]) + _pack_ints(_zigzag(fit.basis.ravel())) + _flags(fit.rows, grid.n_patches)
            + _pack_ints(fit.counts - 1) + _pack_ints(fit.idx[used]) + _pack_ints(_zigzag(fit.q[used])))


def _pack_exact(rows: np.ndarray, x: np.ndarray, ok: np.ndarray, grid: _Grid, dtype: np.dtype) -> bytes:
    if not rows.size:
        return b""
    vals = x[rows][ok[rows]].astype(dtype.newbyteorder("<"))
    return _flags(rows, grid.n_patches) + _frame(vals.tobytes())


# ----------------------------------------------------------------------------- decoder


def summary(pca: bytes) -> dict[str, float]:
    """The header of a ``pca`` section: patch, eps, R, step, base_c and the patch counts (for reports, tools)."""
    r = Reader(pca, "the L2 guarantee section")
    if r.u8() not in _READS:
        raise CorruptStreamError("the L2 guarantee section has an unknown format version")
    ph, pw = r.uvarint(_MAX_D), r.uvarint(_MAX_D)
    eps, scale, step, base_c = struct.unpack("<dddd", r.take(32))
    n, corrected, exact = (r.uvarint(1 << 62) for _ in range(3))
    return dict(patch=(ph, pw), eps=eps, range=scale, step=step, base_c=base_c, patches=n,
                corrected=corrected, exact=exact)


def decode(sections: dict[str, bytes], shape: tuple[int, ...], missing: np.ndarray | None, dtype: np.dtype,
           model: ModelBase | None = None) -> np.ndarray:
    """Rebuild the field from :func:`encode`'s sections, in ``dtype`` (missing points: anything).

    ``missing`` and ``model`` (its ``x_hat`` and ``used``) must be those given to the encoder.  A malformed section
    raises :class:`~xdiffc.errors.CorruptStreamError`.
    """
    dtype, shape = np.dtype(dtype), tuple(int(n) for n in shape)
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    if "l2base" not in sections or "pca" not in sections:
        raise CorruptStreamError("the stream lacks the L2 mode's 'l2base' or 'pca' section")
    pca, base = bytes(sections["pca"]), bytes(sections["l2base"])
    version = pca[0] if pca else None
    if version not in _READS:
        raise CorruptStreamError("the L2 guarantee section has an unknown format version")
    if version == 1:  # release 0.1.0 also checked the two sections with a CRC of their own
        if len(pca) < 4 or zlib.crc32(base + pca[:-4]) != struct.unpack("<I", pca[-4:])[0]:
            raise CorruptStreamError("the L2 sections' checksum does not match: they are truncated or damaged")
        pca = pca[:-4]
    r = Reader(pca, "the L2 guarantee section")
    r.u8()
    ph, pw = r.uvarint(_MAX_D), r.uvarint(_MAX_D)
    eps, scale, step, base_c = struct.unpack("<dddd", r.take(32))
    try:
        grid = _Grid.of(shape, (ph, pw))
    except ValueError as err:
        raise CorruptStreamError(f"the L2 guarantee section is malformed ({err})") from None
    n = grid.n_patches
    if r.uvarint(n) != n or not all(math.isfinite(v) and v >= 0 for v in (eps, scale, step, base_c)):
        raise CorruptStreamError("the L2 guarantee section's header does not match the array")
    n_corr, n_exact = r.uvarint(n), r.uvarint(n)
    # allocated only now that the section's patch count matches the shape
    missing = np.zeros(shape, bool) if missing is None else np.broadcast_to(np.asarray(missing, bool), shape)
    y = grid.patches(_base(base, shape, missing, None if model is None else model.checked(shape)))
    if n_corr:
        basis, rows, counts, idx, q = _read_fit(r, grid, n_corr)
        y[rows] = _correct(y[rows], counts, idx, q, basis, step)
    y = y.astype(dtype)
    if n_exact:
        ok = grid.patches(~missing)
        rows = _read_flags(r, n, n_exact)
        want = ok[rows]
        vals = np.frombuffer(_frame_of(r, int(want.sum()) * dtype.itemsize), dtype.newbyteorder("<"))
        block = y[rows]
        block[want] = vals
        y[rows] = block
    r.done()
    return grid.unpatch(y, shape)


def _read_flags(r: Reader, n: int, count: int) -> np.ndarray:
    rows = np.flatnonzero(np.unpackbits(np.frombuffer(_frame_of(r, (n + 7) // 8), np.uint8), count=n))
    if rows.size != count:
        raise CorruptStreamError("the L2 guarantee section's patch flags do not match their count")
    return rows


def _read_fit(r: Reader, grid: _Grid, n_corr: int) -> tuple[np.ndarray, ...]:
    """Components (float64 rows), corrected rows, counts and dense ascending indices and values, all validated."""
    d = grid.d
    bits = r.u8()
    if not 1 <= bits <= _MAX_BITS:
        raise CorruptStreamError("the L2 guarantee section's basis precision is out of range")
    basis = _components(_unzigzag(_unpack_ints(r, d * d, 1 << 16)).reshape(d, d), bits)
    rows = _read_flags(r, grid.n_patches, n_corr)
    counts = _unpack_ints(r, n_corr, d) + 1
    total = int(counts.sum())
    flat_idx, flat_q = _unpack_ints(r, total, d), _unzigzag(_unpack_ints(r, total, 1 << 16))
    used = np.arange(int(counts.max())) < counts[:, None]
    idx, q = np.zeros(used.shape, np.int64), np.zeros(used.shape, np.int64)
    idx[used], q[used] = flat_idx, flat_q
    if np.any((np.diff(idx, axis=1) <= 0) & used[:, 1:]):
        raise CorruptStreamError("the L2 guarantee section's coefficient indices are not ascending")
    return basis, rows, counts, idx, q
