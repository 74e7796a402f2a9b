"""Archive-level climatology: one reference per variable, computed over the whole store, used by every chunk.

Zarr chunks along time are short (often a year of months), and a chunk-level decomposition
(:mod:`xdiffc.coders.decomposition`) pays less the shorter the chunk. So a variable's climatology (its
time mean, or one mean field per phase of a cycle: 12 for monthly data, 24 for hourly) is
computed once over the whole variable, coded once by the interpolation coder at
:data:`MEAN_FRACTION` of the bound, and travels in the codec's configuration. Every chunk may then
code ``x - climatology[(t + phase) mod P]`` instead of ``x``; the chunk's stream records the
reference's sha256 and the phase, and the core keeps this candidate only where it is smaller.

Why the codec configuration: a codec sees nothing of the store but its own configuration (zarr
never says which chunk, or which store, it is decoding), and a reader must need nothing but
``xr.open_zarr``. The grid permutation travels the same way. Why a phase in each chunk: the codec
does not know where its chunk starts in time, so the encoder searches the phase that fits the
chunk best (any phase decodes within the bound; the right one costs fewest bits). Appends reuse
the store's codec, so new chunks use the same reference.

The reference applies to chunks of shape ``(n,) + spatial`` with the reference's spatial shape
(chunks that split space code without it).

Blob (what the sha256 covers; base64 in the configuration):

==========  ==============================================================
4 bytes     magic ``XDCL``
``uv``      period ``P``
``uv``      number of spatial dimensions ``k``, then ``k`` sizes (``uv``)
bytes       the interpolation coder's payload for shape ``(P,) + spatial``
==========  ==============================================================
"""

from __future__ import annotations

import base64
import functools
import hashlib
import math

import numpy as np

from .bitstream import MAX_RATIO
from .byteio import Reader, uvarint
from .coders import interp
from .errors import CorruptStreamError, ModelMismatchError
from .masking import fill_gaps

MAGIC = b"XDCL"
#: The reference is coded at this fraction of the bound (as the chunk-level climatology is).
MEAN_FRACTION = 0.25
#: The longest cycle a reference may hold (hourly data: 24).
MAX_PERIOD = 366
#: Phase search: at most this many points per time step are compared.
PHASE_SAMPLE = 4096
#: Name of the stream section that records the reference's sha256 and the chunk's phase.
SECTION = "ref"


class Climatology:
    """``P`` mean fields of shape ``spatial`` (float64, as decoded from the blob), and the blob's sha256.

    The header is checked when it is built; the values are decoded on first use (``values``), so that
    opening a store whose variables carry climatologies costs no decoding until a chunk needs one.
    """

    def __init__(self, blob: bytes):
        self.blob = bytes(blob)
        self.sha256 = hashlib.sha256(self.blob).hexdigest()
        r = Reader(self.blob, "the climatology")
        if bytes(r.take(4)) != MAGIC:
            raise CorruptStreamError("the climatology does not start with XDCL")
        self.period = r.uvarint(MAX_PERIOD)
        if self.period < 1:
            raise CorruptStreamError("the climatology's period is 0")
        self.spatial = tuple(r.uvarint(1 << 31) for _ in range(r.uvarint(32)))
        shape = (self.period,) + self.spatial
        if math.prod(shape) * 8 > MAX_RATIO * len(self.blob):
            raise CorruptStreamError(f"the climatology declares shape {shape}, more than {len(self.blob)} bytes can hold")
        self._payload = r.pos

    @functools.cached_property
    def values(self) -> np.ndarray:
        """The ``(P,) + spatial`` means, decoded once (read-only)."""
        values = interp.decode(self.blob[self._payload:], (self.period,) + self.spatial)
        values.flags.writeable = False
        return values

    @classmethod
    def build(cls, means: np.ndarray, tol: float) -> Climatology:
        """Code per-phase means ``(P,) + spatial`` (NaN where a phase has no valid point) at ``MEAN_FRACTION * tol``."""
        means = np.asarray(means, dtype=np.float64)
        if means.ndim < 2 or not 1 <= means.shape[0] <= MAX_PERIOD:
            raise ValueError(f"a climatology is (period <= {MAX_PERIOD},) + spatial, got shape {means.shape}")
        if not (math.isfinite(tol) and tol > 0):
            raise ValueError(f"a climatology needs a finite positive bound, got {tol!r}")
        empty = ~np.isfinite(means)
        filled = fill_gaps(means, empty) if empty.any() else means
        head = MAGIC + uvarint(means.shape[0]) + uvarint(means.ndim - 1) + b"".join(uvarint(n) for n in means.shape[1:])
        blob = head + interp.encode(np.ascontiguousarray(filled), tol * MEAN_FRACTION)
        if math.prod(means.shape) * 8 > MAX_RATIO * len(blob):  # a near-constant field: nothing to gain
            raise ValueError("the climatology is constant to within the bound: it cannot help")
        return cls(blob)

    # -- configuration ---------------------------------------------------------------------------

    def to_config(self) -> dict:
        return {"sha256": self.sha256, "blob": base64.b64encode(self.blob).decode("ascii")}

    @staticmethod
    def from_config(config: dict) -> Climatology:
        """The reference of a codec configuration, checked against its sha256 (decoded once per process)."""
        try:
            sha, text = str(config["sha256"]), str(config["blob"])
            blob = base64.b64decode(text.encode("ascii"), validate=True)
        except (KeyError, TypeError, ValueError) as err:
            raise CorruptStreamError(f"the codec's climatology is malformed ({err})") from None
        if hashlib.sha256(blob).hexdigest() != sha:
            raise CorruptStreamError(f"the codec's climatology does not match its sha256 {sha}: the store's "
                                     f"metadata is damaged")
        return _decoded(blob)

    # -- chunks ----------------------------------------------------------------------------------

    def applies(self, shape: tuple[int, ...]) -> bool:
        """Whether a chunk of ``shape`` can use it: time first, then exactly the reference's spatial shape."""
        return len(shape) == len(self.spatial) + 1 and tuple(shape[1:]) == self.spatial and shape[0] >= 1

    def prediction(self, steps: int, phase: int) -> np.ndarray:
        """``climatology[(t + phase) mod P]`` for ``t < steps``, float64."""
        return self.values[(np.arange(steps) + phase) % self.period]

    def best_phase(self, x: np.ndarray, skip: np.ndarray | None) -> int:
        """The phase whose prediction is closest (least squares, on a sample of points) to chunk ``x``."""
        if self.period == 1:
            return 0
        flat = x.reshape(x.shape[0], -1)
        ref = self.values.reshape(self.period, -1)
        stride = max(1, flat.shape[1] // PHASE_SAMPLE)
        sample = flat[:, ::stride].astype(np.float64)
        keep = np.ones(sample.shape, bool) if skip is None else ~skip.reshape(flat.shape)[:, ::stride]
        with np.errstate(invalid="ignore", over="ignore"):
            keep &= np.isfinite(sample)
            sample = np.where(keep, sample, 0.0)
            costs = [float(np.sum(np.where(keep, sample - ref[(np.arange(len(sample)) + s) % self.period][:, ::stride],
                                           0.0) ** 2)) for s in range(self.period)]
        return int(np.nanargmin(costs)) if np.isfinite(costs).any() else 0

    def section(self, phase: int) -> bytes:
        """The stream section of a chunk coded against this reference at ``phase``."""
        return bytes.fromhex(self.sha256) + uvarint(phase)


def read_section(payload: bytes) -> tuple[str, int]:
    """``(sha256, phase)`` of a chunk's reference section."""
    r = Reader(payload, "the reference section")
    sha = bytes(r.take(32)).hex()
    phase = r.uvarint(MAX_PERIOD - 1)
    if r.pos != r.end:
        raise CorruptStreamError("the reference section has trailing bytes")
    return sha, phase


def check(reference: Climatology | None, payload: bytes, shape: tuple[int, ...]) -> np.ndarray:
    """The prediction a chunk's reference section asks for; ModelMismatchError where that reference is not at hand."""
    sha, phase = read_section(payload)
    if reference is None or reference.sha256 != sha:
        offered = "none was given" if reference is None else f"the one offered is {reference.sha256}"
        raise ModelMismatchError(f"this chunk was coded against the archive climatology sha256 {sha}, but {offered}; "
                                 f"open it through the store's codec, which carries its climatology")
    if not reference.applies(shape) or phase >= reference.period:
        raise CorruptStreamError(f"the chunk's shape {shape} or phase {phase} does not fit its climatology "
                                 f"({reference.period} x {reference.spatial})")
    return reference.prediction(shape[0], phase)


@functools.lru_cache(maxsize=32)
def _decoded(blob: bytes) -> Climatology:
    return Climatology(blob)
