"""``compress`` and ``decompress``: the error-bounded pipeline for numpy arrays.

    x -> mask NaN/inf/fill (kept exactly) -> residual coders under the bound, each tried
      -> exact check in the output dtype, violations stored exactly -> keep the cheapest
      -> container (header, sections, CRC32)

Every candidate is decoded exactly as the decoder will decode it, then checked in the
output dtype, so the bound holds whatever the coder's arithmetic did. Exact storage is
always a candidate, so no chunk costs more than lossless zstd.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np

from . import archive_climatology as references, fidelity, guarantee, l2, l2model, logdomain, masking, model_path
from .api import FLOAT_DTYPES, is_float
from .bitstream import SECTIONS, Header, Stream
from .coders import REGISTRY as RESIDUAL_CODERS, ResidualCoder, Trial, enabled, lossless
from .errors import CorruptStreamError, ModelMismatchError
from .options import DEFAULT_LEVEL, FULL_SEARCH_LEVEL, Options

log = logging.getLogger(__name__)

#: Arrays smaller than this are stored exactly: no residual coder beats zstd on a handful of values.
MIN_LOSSY_SIZE = 16
#: Coders never see a bound above this, so 2*tol stays finite.
_MAX_CODER_TOL = 1e300
#: The model path is tried only on chunks of at least this many values with 2 or more dimensions.
MIN_MODEL_SIZE = 4096
#: Exact storage is encoded in full where the lossy stream exceeds this fraction of its fast estimate
#: (zstd's level 6 stays within 10% of level 1 on float planes; the margin leaves 2x).
LOSSLESS_MARGIN = 0.5
#: An archive climatology (a store's reference) is weighed from this level up, as the temporal decomposition is.
#: Below :data:`~xdiffc.options.FULL_SEARCH_LEVEL` a chunk it applies to is coded against it only, not also without
#: it. Measured on Zarr stores chunked by 12 steps (``ds.gcdtc.to_zarr(chunks={"time": 12})``, the 6 benchmark
#: fields with a time axis at eps 1e-2, 1e-3 and 1e-4: 15 of the 18 stores carry a climatology): the same bytes
#: to the byte but for one store 0.05% larger (aodsw at 1e-3), in 0.31-0.54x the CPU time at level 8.
REFERENCE_MIN_LEVEL = 4
#: Denoising steps of the neural decoder unless the caller says otherwise (recorded in the stream).
DEFAULT_STEPS = 4


@dataclass
class _Candidate:
    sections: dict[str, bytes]
    predictor: object = None

    @property
    def nbytes(self) -> int:
        return sum(len(v) for v in self.sections.values())


def _input_array(x) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiub" or arr.dtype.kind == "f" and not is_float(arr.dtype):
        raise TypeError(
            f"xdiffc compresses float32 and float64 arrays (integers and booleans losslessly); "
            f"got dtype {arr.dtype}. Convert with x.astype(np.float32) first."
        )
    return arr


def _working_layout(arr: np.ndarray) -> tuple[np.ndarray, str]:
    """A C-contiguous, native-byte-order array and the order to give back ('F' input is coded transposed)."""
    order = "F" if arr.ndim > 1 and arr.flags.f_contiguous and not arr.flags.c_contiguous else "C"
    work = arr.T if order == "F" else arr
    return np.ascontiguousarray(work, dtype=work.dtype.newbyteorder("=")), order


@dataclass(frozen=True)
class _Check:
    """The exact check of every candidate: the decoder's output rule applied, then the bound at every valid point.

    The bound is ``tol`` (the absolute one, which may be inf), tightened to the pointwise-relative one
    of ``options`` where it has one, with zeros and signs kept where they ask for it; ``valid`` is None
    where no point is missing.
    """

    tol: float
    rule: fidelity.OutputRule
    valid: np.ndarray | None
    options: Options = Options(tol=0.0)

    def violations(self, work: np.ndarray, y: np.ndarray) -> np.ndarray:
        self.rule.apply(y)
        return guarantee.violations(work, y, self.tol, self.valid, self.options)


def _residual_candidates(work: np.ndarray, values: np.ndarray, tol: float, skip: np.ndarray | None,
                         prediction: np.ndarray | None = None, *, check: _Check, level: int,
                         negative: np.ndarray | None = None) -> list[_Candidate]:
    """Code ``values - prediction`` under ``tol`` with the residual coders ``level`` enables, each where its own
    estimate says it may win; each candidate is checked in the output dtype by ``check``.

    ``y = cast(prediction + decoded residual)`` is exactly what the decoder computes (each coder
    returns the reconstruction its decoder rebuilds bit for bit), so the violations found here are
    all the points that need exact storage. With ``negative`` (the sign bitmap), ``values`` are
    ``log2|x|`` and ``y = cast(+-exp2(decoded))`` (:mod:`xdiffc.logdomain`).
    """
    target = values if prediction is None else values - prediction
    if skip is not None and prediction is not None:
        target = np.where(skip, 0.0, target)
    linear = prediction is None and negative is None
    trial = Trial(target, min(tol, _MAX_CODER_TOL), skip, level, work.dtype if linear else None)
    out = []
    coders = [c for c in enabled(level, RESIDUAL_CODERS) if c.applies(target.shape)]
    for coder in coders:
        if coder.worth_encoding(trial):
            out += _encoded(coder, trial, work, prediction, negative, check)
    for coder in [c for c in coders if c.name in trial.recheck]:  # declined until the later ones had run
        if coder.worth_encoding(trial):
            out += _encoded(coder, trial, work, prediction, negative, check)
    return out


def _encoded(coder: ResidualCoder, trial: Trial, work: np.ndarray, prediction: np.ndarray | None,
             negative: np.ndarray | None, check: _Check) -> list[_Candidate]:
    """``coder``'s checked candidate (none where it cannot code the input, or its payload alone cannot win); its
    size goes into ``trial.sizes`` for the gates of the coders tried later."""
    try:
        payload, residual = coder.encode(trial)
    except Exception as err:  # a coder that cannot handle this input is simply not a candidate
        log.debug("residual coder %s skipped: %s", coder.name, err)
        return []
    if residual is None:  # its payload alone costs more than a candidate checked
        return []
    candidate = _checked(coder.name, payload, residual, work, prediction, negative, check)
    trial.sizes[coder.name] = candidate.nbytes
    return [candidate]


def _checked(name: str, payload: bytes, residual: np.ndarray, work: np.ndarray, prediction: np.ndarray | None,
             negative: np.ndarray | None, check: _Check) -> _Candidate:
    """The candidate of a coder's payload: its output checked in the output dtype, violations stored exactly."""
    if negative is not None:
        y = logdomain.to_linear(residual, negative, work.dtype)
    else:
        y = (residual if prediction is None else prediction + residual).astype(work.dtype, copy=False)
    del residual
    bad = check.violations(work, y)
    sections = {name: payload}
    if negative is not None:
        sections[logdomain.SECTION] = masking.encode_bits(negative)
    if bad.size:
        sections["exc"] = guarantee.encode_exceptions(work, bad)
    return _Candidate(sections)


def compress(
    x,
    tol: float | None = None,
    rel_tol: float | None = None,
    *,
    nrmse: float | None = None,
    pw_rel_tol: float | None = None,
    preserve_zero: bool = False,
    valid_range: tuple[float, float] | None = None,
    mode: str = "pointwise",
    fill_values: Iterable[float] = (),
    fill_threshold: float = masking.FILL_THRESHOLD,
    model=None,
    steps: int | None = None,
    device: str | None = None,
    reference: references.Climatology | None = None,
    exact_floor: bool = True,
    level: int = DEFAULT_LEVEL,
) -> bytes:
    """Compress a numpy array so that every valid value moves by at most the bound.

    Parameters
    ----------
    x : array_like
        float32 or float64, any shape (0-D to N-D), any memory order or byte order.
        Integer and boolean arrays are stored losslessly.
    tol : float
        Absolute bound: ``|y - x| <= tol`` for every finite, non-fill value. ``0`` is lossless.
    rel_tol : float
        Relative bound: ``tol = rel_tol * (max - min)`` over the finite, non-fill values.
    nrmse : float
        With ``mode="l2"``: every 8x8 patch of every 2-D slice meets
        ``||y - x||_2 <= nrmse * sqrt(n) * (max - min)`` over its n valid values, so the global
        NRMSE is at most ``nrmse`` (the paper's PCA guarantee, :mod:`xdiffc.l2`).
    pw_rel_tol : float
        Pointwise-relative bound r: ``|y - x| <= r |x|`` at every valid point, zeros kept exactly and
        signs kept (implies ``preserve_zero``). With ``tol`` or ``rel_tol`` too, the stricter of the
        two holds at each point; alone, it is the only bound.
    preserve_zero : bool
        Exact zeros come back exactly zero (``-0.0`` as ``0.0``), and every other valid value keeps
        its sign (and is never 0).
    valid_range : (float, float), optional
        A CF ``valid_range`` (in the array's units): the output is clamped into the intersection
        of it and the range of the valid input. Without it, into the range of the valid input
        (of its non-zero values with ``preserve_zero``): no new extremes, whatever the bound.
    mode : str
        "pointwise" (the default: ``tol`` or ``rel_tol``) or "l2" (``nrmse``).
    fill_values : iterable of float
        Values that mark missing data (``_FillValue``, ``missing_value``); kept bit-exactly.
    fill_threshold : float
        Values at least this large in magnitude are also treated as fill (default 1e30).
    model : str, path or ModelPredictor, optional
        A learned predictor to try block by block ("default" is the shipped model). Blocks where
        it does not pay are coded model-free; the stream records the model's id and sha256. In
        ``mode="l2"`` a block takes the model's reconstruction as the base of the PCA guarantee
        where that is estimated cheaper (:mod:`xdiffc.l2model`).
    steps : int, optional
        Denoising steps of the neural decoder (default :data:`DEFAULT_STEPS`).
    device : str, optional
        Where the model runs ("cpu", "cuda"); default: CUDA when available.
    reference : Climatology, optional
        An archive-level climatology (:mod:`xdiffc.archive_climatology`) for arrays of shape
        ``(time,) + its spatial shape``: coding ``x`` minus it, at the phase that fits best, is one
        more candidate. The stream then needs the same reference to decode.
    exact_floor : bool
        Store the array exactly where that is smaller than every lossy stream (the default). False
        keeps the smallest lossy stream even then: ``xdiffc tune`` judges its reconstruction, since
        a larger chunk of the same field may well be coded lossily.
    level : int
        1 (fastest: one predictor, one entropy path) to 9 (smallest: the full search); default 8;
        what each costs: README, "Levels".
        The stream is self-describing: decoding never needs the level.

    The bound arguments (``tol`` to ``mode``, and ``level``) become one :class:`~xdiffc.options.Options`.

    Returns
    -------
    bytes
        A self-describing stream; :func:`decompress` gives back the same shape and dtype.
    """
    options = Options(tol=tol, rel_tol=rel_tol, pw_rel_tol=pw_rel_tol, nrmse=nrmse, mode=mode,
                      preserve_zero=preserve_zero, valid_range=valid_range, level=level)
    return encode(x, options, fill_values, fill_threshold=fill_threshold, model=model, steps=steps, device=device,
                  reference=reference, exact_floor=exact_floor)


def encode(x, options: Options, fill_values: Iterable[float] = (), *, fill_threshold: float = masking.FILL_THRESHOLD,
           model=None, steps: int | None = None, device: str | None = None,
           reference: references.Climatology | None = None, exact_floor: bool = True) -> bytes:
    """:func:`compress` with its bounds already parsed into ``options`` (the codecs call this)."""
    options.check_array()
    mode, relative = options.mode, options.pw_rel_tol
    arr = _input_array(x)
    work, order = _working_layout(arr)
    is_float = work.dtype.kind == "f"
    mask = masking.special_mask(work, fill_values, fill_threshold) if is_float else None
    # In l2 mode, tol is the RMS bound nrmse * (max - min), recorded for information.
    bound = options.absolute(work, None if mask is None else ~mask)
    rel_tol = options.nrmse if mode == "l2" else options.rel_tol
    header = dict(dtype=arr.dtype.str, shape=arr.shape, order=order, tol=bound,
                  rel_tol=float("nan") if rel_tol is None else float(rel_tol))

    if not is_float or bound == 0 or relative == 0 or work.size < MIN_LOSSY_SIZE:
        return Stream(Header(mode="lossless", **{**header, "tol": 0.0}), {"raw": lossless.encode(work)}).to_bytes()

    sections: dict[str, bytes] = {}
    missing = mask.any()
    if missing:
        sections["mask"], sections["special"] = masking.encode(work, mask)
    else:  # no missing values: a zero-byte stand-in, so that the coders' temporaries are all the memory
        mask = np.broadcast_to(np.False_, work.shape)
    zeros = fidelity.zero_mask(work, mask) if options.keep_sign else None
    skip = mask if zeros is None else mask | zeros  # the coders' don't-care points
    rule = fidelity.OutputRule(fidelity.value_range(work, skip if missing or zeros is not None else None,
                                                    None if mode == "l2" else options.valid_range), zeros)
    sections.update(rule.sections())
    sections.update(fidelity.guarantee_section(options))
    if mode == "l2":  # clamping into the input's range can only bring each value closer: the L2 bound holds
        values = _float64(work)
        candidates = [_Candidate(l2.encode(values, mask, rel_tol, dtype=work.dtype))]
        predictor = _resolve_predictor(model, device)
        if predictor is not None and work.ndim >= 2 and work.size >= MIN_MODEL_SIZE:
            chosen = l2model.choose_blocks(predictor, values, mask, rel_tol, steps or DEFAULT_STEPS, work.dtype)
            if chosen is not None:
                payload, base = chosen
                coded = {"model": payload, **l2.encode(values, mask, rel_tol, dtype=work.dtype, model=base)}
                candidates.append(_Candidate(coded, predictor))
    else:
        coder_skip = skip if missing or zeros is not None else None
        check = _Check(bound, rule, ~mask if missing else None, options)
        candidates = []
        if math.isfinite(bound):  # the coders read float32 values as they are (no float64 copy of the chunk)
            against = (reference is not None and options.level >= REFERENCE_MIN_LEVEL and order == "C"
                       and reference.applies(work.shape))
            referenced = _reference_candidates(reference, work, bound, coder_skip, check, options.level) if against else []
            if not referenced or options.level >= FULL_SEARCH_LEVEL:  # the chunk coded without the reference too
                candidates += _residual_candidates(work, work, bound, coder_skip, check=check, level=options.level)
            candidates += referenced
        if relative is not None:
            t, negative = logdomain.encode(work, coder_skip)
            candidates += _residual_candidates(work, t, logdomain.log_bound(relative, work.dtype), coder_skip,
                                               check=check, level=options.level, negative=negative)
            del t
        predictor = _resolve_predictor(model, device)
        if predictor is not None and relative is None and work.ndim >= 2 and work.size >= MIN_MODEL_SIZE:
            candidates += _model_candidates(predictor, work, _float64(work), bound, skip, steps or DEFAULT_STEPS,
                                            check, options.level)
    best = min(candidates, key=lambda c: c.nbytes, default=None)
    lossy = math.inf if best is None else best.nbytes + sum(map(len, sections.values()))
    # Exact storage is the floor: encoded in full only where a fast frame says it may be smaller.
    if exact_floor and lossy >= LOSSLESS_MARGIN * lossless.estimate(work):
        exact = lossless.encode(work)
        if lossy >= len(exact):
            return Stream(Header(mode="lossless", **{**header, "tol": 0.0}), {"raw": exact}).to_bytes()
    sections.update(best.sections)
    if best.predictor is not None:
        header.update(model_id=best.predictor.model_id, model_sha256=best.predictor.sha256)
    return Stream(Header(mode=mode, **header), sections).to_bytes()


def _float64(work: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):  # a signalling NaN is masked (kept exactly): its cast does not matter
        return work.astype(np.float64)


def _reference_candidates(reference: references.Climatology, work: np.ndarray, tol: float,
                          skip: np.ndarray | None, check: _Check, level: int) -> list[_Candidate]:
    """``x - climatology`` at the chunk's best phase, coded by the residual coders; each names the reference."""
    phase = reference.best_phase(work, skip)
    out = _residual_candidates(work, _float64(work), tol, skip, reference.prediction(work.shape[0], phase),
                               check=check, level=level)
    for c in out:
        c.sections = {references.SECTION: reference.section(phase), **c.sections}
    return out


def _model_candidates(predictor, work: np.ndarray, values: np.ndarray, tol: float, mask: np.ndarray,
                      steps: int, check: _Check, level: int) -> list[_Candidate]:
    filled = masking.fill_gaps(values, mask) if mask.any() else values
    chosen = model_path.choose_blocks(predictor, filled, mask, tol, steps, work.dtype)
    if chosen is None:
        return []
    out = _residual_candidates(work, values, chosen.tol, mask if mask.any() else None, chosen.prediction,
                               check=replace(check, tol=chosen.tol), level=level)
    for c in out:
        c.sections = {"model": chosen.payload, **c.sections}
        c.predictor = predictor
    return out


def written_sections() -> frozenset[str]:
    """Every section name a stream may hold: the container's and the residual coders'."""
    return frozenset(SECTIONS) | frozenset(RESIDUAL_CODERS)


def default_device() -> str:
    """Where models run unless told otherwise: the first CUDA device when there is one, else the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _resolve_predictor(model, device: str | None, sha256: str | None = None):
    """None, a loaded predictor, or a name/path resolved through the per-process model cache."""
    if model is None or not isinstance(model, (str, bytes)) and hasattr(model, "analyse"):
        return model
    from .neural import load_model

    return load_model(str(model), sha256=sha256, device=device or default_device())


def decompress(blob: bytes | bytearray | memoryview | np.ndarray | Stream, *, model=None,
               device: str | None = None, reference: references.Climatology | None = None) -> np.ndarray:
    """Rebuild the array from a stream written by :func:`compress`: same shape, dtype and memory order.

    A stream coded with a model needs that model: the shipped one is found by its id; for your
    own, pass ``model=PATH`` (or a loaded predictor). A stream coded against an archive
    climatology needs that ``reference`` (the store's codec carries it).

    Raises :class:`~xdiffc.errors.CorruptStreamError` for a truncated, damaged or foreign stream,
    and :class:`~xdiffc.errors.ModelMismatchError` when the model offered is not the stream's.
    A :class:`~xdiffc.bitstream.Stream` already parsed (and so checked) is decoded as it is.
    """
    if isinstance(blob, np.ndarray):
        blob = blob.tobytes()
    stream = blob if isinstance(blob, Stream) else Stream.from_bytes(blob)
    h = stream.header
    dtype = np.dtype(h.dtype)
    native = dtype.newbyteorder("=")
    work_shape = h.shape[::-1] if h.order == "F" else h.shape
    if h.mode == "lossless":
        y = lossless.decode(stream.section("raw"), work_shape, native)
    elif h.mode == "pointwise":
        y = _decode_pointwise(stream, work_shape, native, model, device, reference)
    else:
        y = _decode_l2(stream, work_shape, native, model, device)
    if h.order == "F":
        y = y.T
    return y.astype(dtype, copy=False)


def _stream_predictor(header: Header, model, device: str | None):
    """The predictor a stream needs, checked against the id and sha256 it records."""
    wanted = f"model {header.model_id!r} (sha256 {header.model_sha256})"
    try:
        predictor = _resolve_predictor(model if model is not None else header.model_id, device,
                                       None if model is not None else header.model_sha256)
    except (FileNotFoundError, ValueError) as err:
        raise ModelMismatchError(f"this stream was encoded with {wanted}, which cannot be loaded here ({err}); "
                                 f"pass model=PATH to that model file") from None
    if predictor.sha256 != header.model_sha256:
        raise ModelMismatchError(f"this stream was encoded with {wanted}, but the model offered is "
                                 f"{predictor.model_id!r} (sha256 {predictor.sha256}); pass model=PATH to the right file")
    return predictor


def _model_prediction(stream: Stream, shape: tuple[int, ...], model, device: str | None, *, l2_base: bool = False):
    """The prediction of the stream's ``model`` section (with ``l2_base``: its :class:`~xdiffc.l2.ModelBase`),
    by the model the header names; a payload made by another model than that one is damage."""
    if not stream.header.model_sha256:
        raise CorruptStreamError("the stream has a model section but names no model")
    predictor = _stream_predictor(stream.header, model, device)
    payload = stream.sections["model"]
    try:
        return l2model.model_base(predictor, payload, shape) if l2_base else predictor.reconstruct(payload, shape)
    except ModelMismatchError as err:
        raise CorruptStreamError(f"the stream's model section disagrees with its header ({err})") from None


def _missing(stream: Stream, shape: tuple[int, ...], dtype: np.dtype) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The stream's missing-value mask and exact values, or (None, None) when it has none."""
    if "mask" not in stream.sections:
        return None, None
    return masking.decode(stream.section("mask"), stream.section("special"), shape, dtype)


def _decode_l2(stream: Stream, shape: tuple[int, ...], dtype: np.dtype, model=None,
               device: str | None = None) -> np.ndarray:
    if dtype not in FLOAT_DTYPES:
        raise CorruptStreamError(f"an l2 stream cannot hold dtype {dtype}")
    mask, special = _missing(stream, shape, dtype)
    sections = {name: stream.section(name) for name in ("l2base", "pca")}
    base = _model_prediction(stream, shape, model, device, l2_base=True) if "model" in stream.sections else None
    y = l2.decode(sections, shape, mask, dtype, model=base)
    fidelity.OutputRule.from_sections(stream.sections, shape).apply(y)
    if mask is not None:
        y[mask] = special
    return y


def _decode_pointwise(stream: Stream, shape: tuple[int, ...], dtype: np.dtype, model=None,
                      device: str | None = None, reference: references.Climatology | None = None) -> np.ndarray:
    if dtype not in FLOAT_DTYPES:
        raise CorruptStreamError(f"a pointwise stream cannot hold dtype {dtype}")
    mask, special = _missing(stream, shape, dtype)
    rule = fidelity.OutputRule.from_sections(stream.sections, shape)
    fidelity.read_guarantee(stream.sections)  # a malformed record of the bound is a damaged stream
    skip = mask if rule.zeros is None else rule.zeros if mask is None else mask | rule.zeros
    names = [n for n in RESIDUAL_CODERS if n in stream.sections]
    if len(names) != 1:
        raise CorruptStreamError("the stream does not name exactly one residual coder")
    # the coder's field is the output itself where nothing is added to it (decoded in the output dtype)
    plain = not {"model", references.SECTION, logdomain.SECTION} & stream.sections.keys()
    residual = RESIDUAL_CODERS[names[0]].decode(stream.sections[names[0]], shape, skip, dtype if plain else None)
    if "model" in stream.sections:
        residual = _model_prediction(stream, shape, model, device) + residual
    if references.SECTION in stream.sections:
        if "model" in stream.sections or stream.header.order != "C":
            raise CorruptStreamError("a reference section goes with neither a model section nor Fortran order")
        residual = references.check(reference, stream.sections[references.SECTION], shape) + residual
    if logdomain.SECTION in stream.sections:
        y = logdomain.decode(residual, stream.sections[logdomain.SECTION], dtype)
    else:
        y = residual.astype(dtype, copy=False)
    del residual
    rule.apply(y)
    if mask is not None:
        y[mask] = special
    guarantee.apply_exceptions(y, stream.sections.get("exc", b""))
    return y
