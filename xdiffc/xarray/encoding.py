"""How each lossy variable is encoded for Zarr: its absolute bound, its chunks, its codec and the attrs that record them.

Each lossy variable gets an absolute bound: its entry in ``tol``, or ``rel_tol`` times the range
of its valid values over the *whole* variable (one reduction, lazy with Dask), so that every
chunk of a variable has the same bound. Its attrs record the bound (``xdiffc_tol``, and
``xdiffc_rel_tol`` where a relative bound was given). With ``mode="l2", nrmse=eps`` each lossy
variable instead meets the paper's per-block L2 bound (:mod:`xdiffc.l2`), recorded as
``xdiffc_nrmse``. Every attribute xdiffc adds starts with ``xdiffc_``; all others come back as
they were.

Native grids: a variable along an unstructured column dimension is coded with its columns laid
out on a 2-D canvas (:mod:`xdiffc.grids`) where that saves more chunk bytes than the layout adds to
the metadata (``layout="auto"``, :func:`layout_pays`; a named layout is always used). The layout travels in the codec's
configuration, so the store keeps its ``ncol`` dimension; each Zarr chunk then holds every column.

Archive climatology: a pointwise variable along time, chunked shorter than its length, gets its
climatology over the whole variable in its codec's configuration where that measures smaller
(:mod:`xdiffc.xarray.climatology_choice`, :mod:`xdiffc.archive_climatology`).
"""

from __future__ import annotations

import itertools
import logging
import math
import warnings
from collections.abc import Hashable, Iterable, Iterator, Mapping
from dataclasses import replace

import dask
import numpy as np
import xarray as xr
import zarr

from .. import grids
from ..codec import GCDTCCodec
from ..api import check_chunks
from ..core import DEFAULT_STEPS
from ..model_files import store_model
from ..options import DEFAULT_LEVEL, Options
from ..zarr_codec import GCDTCZarrCodec
from . import climatology_choice as climatologies
from .passes import Passes
from .variables import (ATTR_NRMSE, ATTR_PRESERVE_ZERO, BOUND_ATTRS, LOSSY_DTYPES, MEMBER_ATTR, NativeLayouts,
                        cf_valid_range, exact_by_default, fill_values, never_lossy, valid)

log = logging.getLogger(__name__)

#: CF packing keys dropped from a lossy variable's encoding: it is stored as the float it decodes to.
PACKING_KEYS = ("scale_factor", "add_offset", "dtype")
#: Values on which a variable's native-grid layout is weighed against the file's order: all its chunks up to this size,
#: else this much of its middle chunk.
LAYOUT_SAMPLE = 2**20
#: Chunks of variables without Dask chunks hold about this many bytes, split along leading dimensions.
DEFAULT_CHUNK_BYTES = 16 * 2**20


def zarr_chunks(var: xr.Variable, chunks: Mapping[Hashable, int] | None) -> tuple[int, ...]:
    """The Zarr chunk shape: ``chunks[dim]`` where given, else the Dask chunk, else about 16 MiB per chunk."""
    chunks = chunks or {}
    out = []
    budget = max(1, DEFAULT_CHUNK_BYTES // var.dtype.itemsize)
    for axis in reversed(range(var.ndim)):
        dim, size = var.dims[axis], var.shape[axis]
        if dim in chunks:  # as asked, even past the size: appends then fill the chunk the user chose
            n = max(1, int(chunks[dim]))
        else:
            n = var.chunks[axis][0] if var.chunks is not None else min(size, budget)
            n = max(1, min(n, size))
        budget = max(1, budget // n)
        out.append(n)
    return tuple(reversed(out))


class BoundPlan:
    """Which variables are lossy, and each one's codec options (:class:`~xdiffc.options.Options`, with an
    absolute ``tol``, None for a pointwise-relative bound alone) and ``rel_tol`` (recorded in its attrs).

    ``rel_tol`` covers the variables that no other bound names (:attr:`~xdiffc.options.Options.uses_rel_tol`).
    ``preserve_zero`` by default (None) is on where the minimum of the valid values is 0 (a field >= 0 with
    exact zeros: it then costs little or nothing, see docs/zarr-xarray.md) or the CF valid minimum is 0.
    """

    def __init__(self, ds: xr.Dataset, options: Options, exclude: Iterable[Hashable]):
        fixed, by_default = never_lossy(ds), exact_by_default(ds)
        exclude = set(exclude)
        named = options.named()
        unknown = [n for n in (*named, *exclude) if n not in ds.variables]
        if unknown:
            raise ValueError(f"no variable named {unknown} in this Dataset; its variables are {sorted(map(str, ds.variables))}")
        for name, option in named.items():
            if name in exclude or name in fixed and ds[name].dtype.kind not in "iub":  # numbers: cast them, below
                why = "is excluded" if name in exclude else "is a coordinate, bound, cell measure or time: never lossy"
                raise ValueError(f"{option} names {name!r}, which {why}")
            if ds[name].dtype not in LOSSY_DTYPES:
                raise TypeError(f"{option} names {name!r}, of dtype {ds[name].dtype}: xdiffc compresses float32 and "
                                f"float64 lossily; cast it first (ds[{name!r}].astype('float32'))")
        l2 = options.mode == "l2"
        rel_tol = options.nrmse if l2 else options.rel_tol  # in l2 mode each variable's NRMSE bound
        own: dict[Hashable, Options] = {}  # each lossy variable's entries in the options
        self.rel_tol: dict[Hashable, float] = {}
        for name, da in ds.data_vars.items():
            if name in fixed or name in exclude or name in by_default and name not in named:
                continue
            if da.dtype not in LOSSY_DTYPES:
                warnings.warn(f"{name!r} has dtype {da.dtype}, which xdiffc cannot compress lossily: stored losslessly",
                              stacklevel=3)
                continue
            given = options.for_variable(name)
            if given.uses_rel_tol:
                if rel_tol is None:
                    continue
                self.rel_tol[name] = rel_tol
            own[name] = given
        valid_range = {n: cf_valid_range(ds[n].variable) for n in own}
        auto = [] if l2 else [n for n in own if own[n].preserve_zero is None]  # the default rule
        measured = list(self.rel_tol.keys() | set(auto))
        lazy = [ds[n].where(valid(ds[n])) for n in measured]
        ranges = dict(zip(measured, dask.compute(*[(d.max(), d.min()) for d in lazy])))
        #: each lossy variable's codec options, in the Dataset's order
        self.options: dict[Hashable, Options] = {}
        for name, given in own.items():
            if l2:
                self.options[name] = Options(mode="l2", nrmse=self.rel_tol[name], level=options.level)
                continue
            tol = given.tol
            if name in self.rel_tol:
                span = float(ranges[name][0]) - float(ranges[name][1])
                tol = self.rel_tol[name] * span if math.isfinite(span) else 0.0
            keep = given.preserve_zero if given.preserve_zero is not None else (
                float(ranges[name][1]) == 0 or (valid_range[name] or (None,))[0] == 0)
            self.options[name] = replace(given, tol=tol, rel_tol=None, preserve_zero=keep,
                                         valid_range=valid_range[name])

    @property
    def lossy(self) -> list[Hashable]:
        return list(self.options)


class VariableEncoder:
    """Builds one lossy variable: encoding for ``to_zarr`` and the attrs that record its bound."""

    def __init__(self, model: str | None, steps: int, chunks, zarr_format: int, climatology: bool, passes: Passes,
                 member_dim: Hashable | None = None):
        self.model = store_model(model)
        self.steps, self.chunks, self.zarr_format = steps, chunks, zarr_format
        self.climatology, self.passes, self.member_dim = climatology, passes, member_dim

    def __call__(self, ds: xr.Dataset, name: Hashable, plan: BoundPlan,
                 native: tuple[Hashable, grids.Layout] | None = None, forced_layout: bool = False) -> xr.Variable:
        """The variable ``name`` ready for ``to_zarr``. ``native``: its column dimension and the layout found
        for it, used where it measures smaller than the file's own order unless ``forced_layout``."""
        var = ds[name].variable
        encoding = {k: v for k, v in var.encoding.items() if k not in PACKING_KEYS}
        options = plan.options[name]
        config = dict(variable=str(name), **self.model, steps=self.steps, fill_values=fill_values(var),
                      **options.to_config())
        chunks = dict(self.chunks or {})
        attrs = dict(var.attrs) | _bound_attrs(options, plan.rel_tol.get(name))
        if native is not None:
            dim, layout = native
            config["layout"] = layout.to_config(var.dims.index(dim))
            chunks[dim] = var.sizes[dim]  # the layout needs every column of a chunk
        shape = zarr_chunks(var, chunks)
        if native is not None and not forced_layout:
            self.passes.start(f"{name}: layout")
        if native is not None and (forced_layout or layout_pays(ds[name], _model_free(config), native[1].attrs(),
                                                                shape)):
            attrs.update(native[1].attrs())
        elif native is not None:
            log.info("%s: its columns cost fewer bytes in the file's order than on the %s layout, metadata "
                     "included", name, native[1].kind)
            config.pop("layout")
            native = None
        if "model_file" in config:
            self.passes.start(f"{name}: model")
        if "model_file" in config and not climatologies.pays_for_itself(ds[name], _model_free(config),
                                                                         _carried(config), shape):
            warnings.warn(f"model {config['model_id']!r} does not pay for its {len(config['model_file'])} bytes in "
                          f"{name!r}'s metadata (measured on a sample chunk): {name!r} is stored model-free",
                          UserWarning, stacklevel=3)
            config = _model_free(config)
        if self.climatology and options.mode == "pointwise":
            self.passes.start(f"{name}: climatology")
            axis = None if native is None else (native[1], var.dims.index(native[0]))
            config["climatology"] = climatologies.choose(ds, name, config, shape, axis, shared=self.member_dim)
        if self.zarr_format == 2:
            encoding.update(compressors=[GCDTCCodec(**config)], filters=None)
            encoding.pop("serializer", None)
        else:
            encoding.update(serializer=GCDTCZarrCodec(**config), compressors=None, filters=None)
        encoding["chunks"] = shape
        out = align_chunks(var, encoding["chunks"]).copy(deep=False)
        out.attrs, out.encoding = attrs, encoding
        return out


def _bound_attrs(options: Options, rel_tol: float | None) -> dict:
    """The attrs that record a variable's bound: ``xdiffc_nrmse`` in l2 mode, else those of its bounds that are set
    (:mod:`~xdiffc.xarray.variables`), and ``xdiffc_preserve_zero`` where zeros and signs are kept."""
    if options.mode == "l2":
        return {ATTR_NRMSE: options.nrmse}
    recorded = {option: rel_tol if option == "rel_tol" else getattr(options, option) for option in BOUND_ATTRS}
    attrs = {BOUND_ATTRS[option]: value for option, value in recorded.items() if value is not None}
    return attrs | ({ATTR_PRESERVE_ZERO: 1} if options.keep_sign else {})


def layout_pays(da: xr.DataArray, config: dict, attrs: Mapping, chunks: tuple[int, ...]) -> bool:
    """Whether the native-grid layout in codec configuration ``config`` (its ``layout`` entry) makes ``da`` take
    fewer bytes in the store than the file's order, its own metadata included.

    The layout usually wins (neighbours meet on the canvas), but not always: on small faces, or
    where time carries most of the correlation, the file's order can be smaller (RESULTS.md, native
    grids). Its cost is the JSON of the ``layout`` entry and of the ``attrs`` that record it, in the
    array's own metadata and in the consolidated copy (:func:`~.climatology_choice.metadata_bytes`); its
    saving is measured with the variable's own configuration (bound, ``preserve_zero``, valid range,
    level): every chunk where the variable holds at most :data:`LAYOUT_SAMPLE` values, else the
    first :data:`LAYOUT_SAMPLE` values or so of its middle chunk, scaled by the variable's size.
    """
    plain = {k: v for k, v in config.items() if k != "layout"}
    cost = climatologies.metadata_bytes({"layout": config["layout"]}, dict(attrs))
    if da.size <= LAYOUT_SAMPLE:
        samples, scale = [np.asarray(da[s].values) for s in _chunk_slices(da.shape, chunks)], 1.0
    else:
        sample = climatologies.middle_chunk(da, chunks)
        samples = [sample[: max(1, LAYOUT_SAMPLE // max(1, sample[0].size))]]
        scale = da.size / samples[0].size
    sizes = [sum(len(GCDTCCodec(**entry).encode_chunk(x)) for x in samples) for entry in (config, plain)]
    saving = (sizes[1] - sizes[0]) * scale
    log.info("%s: the %s layout costs %d bytes of metadata and saves %.0f bytes of chunks", da.name,
             config["layout"]["kind"], cost, saving)
    return saving > cost


def _chunk_slices(shape: tuple[int, ...], chunks: tuple[int, ...]) -> Iterator[tuple[slice, ...]]:
    """The index of every chunk of an array of ``shape`` in chunks of ``chunks``, in C order."""
    starts = itertools.product(*(range(0, n, c) for n, c in zip(shape, chunks)))
    return (tuple(slice(i, i + c) for i, c in zip(start, chunks)) for start in starts)


def _carried(config: dict) -> dict:
    return {k: config[k] for k in ("model_id", "model_sha256", "model_file")}


def _model_free(config: dict) -> dict:
    return {k: v for k, v in config.items() if k != "model_file"} | {"model_id": "", "model_sha256": ""}


def encode_dataset(ds: xr.Dataset, tol=None, rel_tol: float | None = 1e-3, model: str | None = None,
                   chunks: Mapping[Hashable, int] | None = None, exclude: Iterable[Hashable] = (), *,
                   steps: int = DEFAULT_STEPS, zarr_format: int = 3, layout: str = "auto", grid=None,
                   mode: str = "pointwise", nrmse: float | None = None, pw_rel_tol=None,
                   preserve_zero: bool | Mapping[Hashable, bool] | None = None,
                   climatology: bool = True, choose_layout: bool = True, level: int = DEFAULT_LEVEL,
                   member_dim: Hashable | None = None, progress: bool | None = None) -> xr.Dataset:
    """``ds`` with each lossy variable carrying its codec, chunks and bound for ``to_zarr`` (``ds.gcdtc.compress``).

    ``tol``: absolute bound for every lossy variable, or ``{name: bound}``; ``rel_tol`` (a fraction
    of each variable's value range) covers the variables ``tol`` does not name. ``chunks``:
    ``{dim: size}`` for the Zarr chunks (-1: the whole dimension; default: the Dask chunks, else
    about 16 MiB). Dask chunks are re-chunked to the Zarr chunks. ``exclude``: names to keep exact.
    ``layout``: "auto" (detect native grids), "cubed-sphere", "hilbert" or "none"; ``grid``: a
    file or Dataset with the columns' lat/lon, for data that lacks them. ``mode="l2", nrmse=eps``:
    the per-block L2 bound of the paper instead of a pointwise one, for every lossy variable.
    ``pw_rel_tol``: a pointwise-relative bound ``|y - x| <= r |x|`` (zeros and signs kept) for every
    lossy variable, or ``{name: r}``; with ``tol`` too the stricter holds at each point, and
    ``rel_tol`` covers only the variables neither names. ``preserve_zero``: exact zeros kept and
    signs kept, True/False for all or ``{name: bool}``; by default on where the valid minimum is 0
    (a field >= 0 with exact zeros) or the CF valid minimum is 0. Every output is clamped into its
    chunk's input range, narrowed to the CF ``valid_range``/``valid_min``/``valid_max`` where given.
    ``climatology``: give variables chunked along time an archive-level climatology where it measures
    smaller (one pass over the data, and two trial encodings of a chunk, per variable).
    ``choose_layout=False`` keeps a found native-grid layout without weighing it against the file's
    order (two trial encodings of a sample per variable): for updates, which reuse the store's codec.
    ``level``: 1 (fastest) to 9 (smallest; default 8), as for :func:`xdiffc.compress`.
    ``member_dim``: an ensemble's member dimension, across which each variable's archive climatology
    is shared (one reference, the means over every member). ``progress``: a bar naming each pass over the
    data (:mod:`~xdiffc.xarray.passes`): None shows it in a notebook or a terminal, not when stderr goes to
    a file; True always; False never.
    """
    options = dataset_options(tol=tol, rel_tol=rel_tol, mode=mode, nrmse=nrmse, pw_rel_tol=pw_rel_tol,
                              preserve_zero=preserve_zero, level=level)
    allow_consolidated_metadata()  # for the user's own ``to_zarr`` of the result
    if member_dim is not None:
        ds = ds.assign_attrs({MEMBER_ATTR: member_dim})
    return encode_variables(ds, options, model, chunks, exclude, steps=steps, zarr_format=zarr_format,
                            layout=layout, grid=grid, climatology=climatology, choose_layout=choose_layout,
                            progress=progress)


def dataset_options(*, rel_tol: float | None = 1e-3, mode: str = "pointwise", preserve_zero=None, **others) -> Options:
    """The options of a Dataset from the accessor's keywords (the others as :class:`~xdiffc.options.Options` takes
    them): ``preserve_zero`` by default the rule of :class:`BoundPlan`, and ``rel_tol``'s default (1e-3) no bound
    given in l2 mode, where ``nrmse`` bounds every variable."""
    return Options(rel_tol=None if mode == "l2" else rel_tol, mode=mode, preserve_zero=preserve_zero, **others)


def encode_variables(ds: xr.Dataset, options: Options, model: str | None = None,
                     chunks: Mapping[Hashable, int] | None = None, exclude: Iterable[Hashable] = (), *,
                     steps: int = DEFAULT_STEPS, zarr_format: int = 3, layout: str = "auto", grid=None,
                     climatology: bool = True, choose_layout: bool = True,
                     progress: bool | None = None) -> xr.Dataset:
    """:func:`encode_dataset` with its bounds already parsed into ``options``; an ensemble names its member
    dimension in ``ds.attrs[MEMBER_ATTR]``."""
    chunks = check_chunks(chunks, ds.sizes)
    with Passes(progress) as passes:
        passes.start("value ranges")
        plan = BoundPlan(ds, options, exclude)
        passes.expect(1 + len(plan.lossy))
        passes.done()
        encode = VariableEncoder(model, steps, chunks, zarr_format, climatology, passes, ds.attrs.get(MEMBER_ATTR))
        layouts = NativeLayouts(ds, layout, grid)
        out = ds.copy(deep=False)
        for name in plan.lossy:
            passes.start(str(name))
            out[name] = encode(ds, name, plan, layouts.of(ds[name].variable),
                               forced_layout=layout != "auto" or not choose_layout)
            passes.done()
    return one_fill_value(out)


#: Zarr's warning at every write of consolidated metadata into a Zarr v3 store (they are not yet part of the v3
#: specification): "... may not be supported by other zarr implementations". xarray writes them by default.
CONSOLIDATED_WARNING = "Consolidated metadata is currently not part"


def allow_consolidated_metadata() -> None:
    """Silence :data:`CONSOLIDATED_WARNING` in this process from now on, and nothing else.

    ``compress`` then a plain ``ds.to_zarr``, which consolidates by default, would show it. It is no news for a
    store of xdiffc's: only a reader with xdiffc can decode its chunks, and xarray reads a store fastest with
    consolidated metadata (``ds.gcdtc.to_zarr`` and ``convert`` write them, and silence it for their own writes).
    """
    warnings.filterwarnings("ignore", CONSOLIDATED_WARNING, UserWarning)


def one_fill_value(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with ``missing_value`` dropped from the encoding of each variable where it differs from its
    ``_FillValue``, with a warning naming them.

    xarray reads both as NaN but can write only one of them, and refuses the pair ("conflicting
    _FillValue and missing_value"); the store keeps ``_FillValue``, which CF readers mask by. The
    points themselves come back as NaN either way.
    """
    out, dropped = ds, []
    for name, var in ds.variables.items():
        fv, mv = var.encoding.get("_FillValue"), var.encoding.get("missing_value")
        if fv is None or mv is None or var.dtype.kind not in "fiu" or np.allclose(np.ravel(fv).astype(float), np.ravel(mv).astype(float),
                                                   equal_nan=True):
            continue
        if out is ds:
            out = ds.copy(deep=False)
        var = out[name].variable.copy(deep=False)
        var.encoding = {k: v for k, v in var.encoding.items() if k != "missing_value"}
        out = out.assign_coords({name: var}) if name in ds.coords else out.assign({name: var})
        dropped.append(f"{name!s} (_FillValue {_plain(fv)}, missing_value {_plain(mv)})")
    if dropped:
        warnings.warn(f"xarray cannot write a _FillValue and a different missing_value on one variable (it reads "
                      f"both as NaN); the store keeps the _FillValue of: {', '.join(dropped)}", UserWarning,
                      stacklevel=3)
    return out


def _plain(value) -> str:
    """A fill value as a reader would write it: ``1e+36``, not ``np.float32(1e+36)``."""
    flat = [f"{float(v):g}" for v in np.ravel(value)]
    return flat[0] if len(flat) == 1 else f"[{', '.join(flat)}]"


def stored_bytes(source, names: Iterable[Hashable]) -> dict[Hashable, float]:
    """Bytes each array occupies in a Zarr store (chunks plus its metadata document); NaN without a store."""
    if source is None:
        return {n: math.nan for n in names}
    group = zarr.open_group(source, mode="r")
    return {n: float(group[str(n)].nbytes_stored()) for n in names}


def align_chunks(var: xr.Variable, chunks: tuple[int, ...], offsets: Mapping[Hashable, int] | None = None) -> xr.Variable:
    """``var`` with Dask chunks equal to the Zarr ``chunks``: each task then writes whole Zarr chunks,
    never decoding and re-encoding a chunk that another task wrote (which would compound the error).

    ``offsets`` (``{dim: start}``): where ``var`` goes in the store along a dimension (an append); its
    first Dask chunk there ends where the store's chunk that holds ``start`` ends."""
    if var.chunks is None:
        return var
    offsets = offsets or {}
    wanted = []
    for dim, c, n in zip(var.dims, chunks, var.shape):
        first = min(n, c - offsets.get(dim, 0) % c)
        wanted.append((first,) + tuple(min(c, n - i) for i in range(first, n, c)))
    wanted = tuple(wanted)
    return var if var.chunks == wanted else var.chunk(dict(zip(var.dims, wanted)))
