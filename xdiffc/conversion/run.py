"""``xdiffc convert``: the Dask client, the units run on it, and the final rename."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import numbers
import os
import shutil
import signal
import sys
import time
import uuid
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import xarray as xr
import zarr

from ..api import check_chunks
from ..errors import warn
from ..options import BOUNDS, DEFAULT_LEVEL, Options, parse_bounds
from ..xarray.encoding import dataset_options
from ..xarray.writes import quiet_zarr
from . import append as appending
from .inputs import (Inputs, default_time_chunk, ignore_dates_beyond_numpy, quiet_dates, resolve_paths, scan, select,
                     stamps, time_decoding, time_steps)
from .opening import cached_inputs, open_inputs, release_inputs
from .lock import locked
from .members import resolve_members, scan_members
from .prepare import fingerprint, open_progress, prepare_output
from .progress import COMPLETE_ATTR, DELAY_ENV, PARTIAL_STORE, Progress, Unit, partial_path, plan_units
from .summary import ConvertSummary, summarise


#: Inputs of at most this many bytes (decoded) are converted on threads of this process, unless workers or GPUs
#: are asked for: a local cluster of worker processes takes 5-14 s to start, and each worker then loads the
#: kernels, longer than a small conversion itself. Measured on 2 shared cores: 3.4 MB in 5-8 s instead of 15-26 s,
#: 40 MB in 65-74 s instead of 119-121 s (docs/cli.md, "convert: where it runs"). Larger inputs get worker
#: processes, which no lock of the interpreter's can hold back, and whose memory is their own.
IN_PROCESS_BYTES = 64 * 2**20


def in_process(input_bytes: int, scheduler: str | None, workers: int | None, gpus: int) -> bool:
    """Whether a conversion runs on threads of this process: small inputs, when no cluster was asked for."""
    return scheduler is None and workers is None and not gpus and input_bytes <= IN_PROCESS_BYTES


@contextlib.contextmanager
def _client(scheduler: str | None, workers: int | None, threads_per_worker: int | None, gpus: int,
            threads: bool = False, announce: bool = True) -> Iterator:
    """A ``distributed.Client``: on ``scheduler`` if given; else with ``threads`` on one worker in this process; else
    on a local cluster of worker processes (one per GPU with ``gpus``), announced on stderr with ``announce``."""
    from distributed import Client, LocalCluster, Nanny, Scheduler, SpecCluster

    _quiet_interrupted_gathers()
    if scheduler is not None:
        with Client(scheduler) as client:
            yield client
        return
    # the dashboard where bokeh can serve it, else only the scheduler's HTTP server (health, metrics); either on a
    # free port, not on 8787, which another cluster may hold (Dask would warn)
    dashboard = announce and not threads and importlib.util.find_spec("bokeh") is not None
    http = {"dashboard": dashboard, "dashboard_address": "127.0.0.1:0"}
    quiet = logging.ERROR  # no INFO lines from the scheduler and the workers
    with contextlib.ExitStack() as stack:  # closes the cluster whatever happens, a Ctrl-C as it starts included
        with _sigint_blocked():  # the cluster's threads and worker processes start now, and inherit it
            if threads:
                cluster = LocalCluster(processes=False, n_workers=1, threads_per_worker=threads_per_worker,
                                       scheduler_kwargs=http, silence_logs=quiet)
            elif gpus:
                spec = {f"gpu{i}": {"cls": Nanny, "options": {"nthreads": threads_per_worker or 1,
                                                              "resources": {"GPU": 1}, "silence_logs": quiet,
                                                              "env": {"CUDA_VISIBLE_DEVICES": str(i)}}}
                        for i in range(gpus)}
                cluster = SpecCluster(workers=spec, scheduler={"cls": Scheduler, "options": {"host": "127.0.0.1", **http}},
                                      silence_logs=quiet)
            else:
                cluster = LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker, host="127.0.0.1",
                                       scheduler_kwargs=http, silence_logs=quiet)
            stack.enter_context(cluster)
        client = stack.enter_context(Client(cluster))
        if not threads:
            # worker processes decode dates too (xarray reads a Dask array's first date to tell cftime dates); in
            # this process, convert's quiet_dates holds
            client.register_worker_callbacks(ignore_dates_beyond_numpy)
        if announce and not threads:
            nthreads = client.nthreads()
            where = f"dashboard: {client.dashboard_link}" if dashboard else "pip install bokeh for its dashboard"
            print(f"xdiffc: started a local Dask cluster, {_count(len(nthreads), 'worker process', 'es')} with "
                  f"{_count(sum(nthreads.values()), 'thread')} in all; {where}", file=sys.stderr)
        yield client


def _count(n: int, noun: str, plural: str = "s") -> str:
    return f"{n} {noun}{'' if n == 1 else plural}"


def _warn_missing_gpus(gpus: int) -> None:
    """One warning when ``gpus`` local GPU workers are asked for and fewer CUDA GPUs are visible: the workers
    without one run the codec on the CPU (called by :func:`convert` only)."""
    try:
        import torch
    except ImportError:
        found, why = 0, "torch is not installed (pip install 'xdiffc[models]')"
    else:
        found = torch.cuda.device_count()
        why = "no CUDA GPU is visible" if found == 0 else f"only {_count(found, 'CUDA GPU')} visible"
    if found < gpus:
        which = "every GPU worker runs" if found == 0 else f"{gpus - found} of the {gpus} GPU workers run"
        warn(f"gpus={gpus} (--gpus), but {why}: {which} the codec on the CPU")


def _quiet_interrupted_gathers() -> None:
    """No "Task exception was never retrieved ... AllExit" from asyncio after a Ctrl-C: the Dask client's gather
    that the KeyboardInterrupt cut short ends with AllExit, its normal way out, which nobody is left to read."""
    from distributed.client import AllExit

    log = logging.getLogger("asyncio")
    if not any(isinstance(f, _DropAllExit) for f in log.filters):
        log.addFilter(_DropAllExit(AllExit))


class _DropAllExit(logging.Filter):
    def __init__(self, kind: type):
        super().__init__()
        self.kind = kind

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], self.kind))


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """SIGINT blocked in this thread for the block, and for good in the threads and processes started meanwhile.

    A Ctrl-C in a terminal reaches every process of its foreground group: the local cluster's workers too,
    which would each print a traceback of their own. Started while SIGINT is blocked, they keep it blocked (a
    signal mask is inherited by new threads, and across ``fork`` and ``exec``), and stop when this process closes
    the cluster on its KeyboardInterrupt. A Ctrl-C during the block is not lost: it raises KeyboardInterrupt
    here at the latest as the block ends. Python's resource tracker unblocks SIGINT in the thread that first
    starts it, so it is started first, outside the block.
    """
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def flag(option: str) -> str:
    """The command-line flag of an option: ``--rel-tol`` for ``rel_tol``."""
    return "--" + option.replace("_", "-")


def flag_label(option: str, variable: Hashable | None) -> str:
    """How ``convert`` names a bound in an error: ``tol (--tol)``, or ``tol of 'T' (--tol T=...)`` for one
    variable's."""
    if variable is None:
        return f"{option} ({flag(option)})"
    return f"{option} of {variable!r} ({flag(option)} {variable}=...)"


def _options(mode: str, bounds: Mapping[str, Any], preserve_zero: bool | None, level: int) -> Options:
    """The options of ``ds.gcdtc.compress`` from convert's arguments: ``bounds`` (``tol``, ``rel_tol`` and the
    pointwise-relative bound, as given; ``tol="auto"`` adds no bound yet) for a pointwise mode, or ``rel_tol`` alone,
    the NRMSE bound, for ``l2``.

    Every bound is checked here, before a cluster starts, by the options' own parser with the command-line flag in
    each message (:func:`flag_label`); then the options' rules as a whole (:class:`~xdiffc.options.Options`).
    """
    parsed = parse_bounds({**bounds, "tol": None if isinstance(bounds["tol"], str) else bounds["tol"]}, flag_label)
    if mode != "l2":
        return dataset_options(mode=mode, preserve_zero=preserve_zero, level=level, **parsed)
    if preserve_zero or parsed["rel_tol"] is None or any(v is not None for k, v in bounds.items() if k != "rel_tol"):
        raise ValueError("mode 'l2' bounds the NRMSE of every lossy variable by --rel-tol (rel_tol=); "
                         "it takes no --tol, --pw-rel-tol or --preserve-zero")
    return dataset_options(mode="l2", nrmse=parsed["rel_tol"], level=level)


def _recorded(options: Options) -> dict:
    """The options as the resume fingerprint records them (as it always has, so that older progress logs still
    resume): pointwise, the bounds but ``nrmse``, and ``preserve_zero``; l2, its NRMSE bound; the level only where
    it is not the default."""
    if options.mode == "l2":
        recorded = {"tol": None, "mode": "l2", "nrmse": options.nrmse}
    else:
        recorded = {option: getattr(options, option) for option in (*BOUNDS, "preserve_zero") if option != "nrmse"}
    return recorded | ({} if options.level == DEFAULT_LEVEL else {"level": options.level})


def _check_cluster(workers, threads_per_worker, gpus) -> None:
    """A ValueError for a local cluster that could never run a unit: no workers (it would wait forever) or no
    threads."""
    for name, option, value, least in (("workers", "--workers", workers, 1),
                                       ("threads_per_worker", "--threads-per-worker", threads_per_worker, 1),
                                       ("gpus", "--gpus", gpus, 0)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least):
            raise ValueError(f"{name} ({option}) must be a whole number >= {least}, got {value!r}")


def _auto_options(given: Options, tol: str, spec: Inputs, model: str | None) -> Options:
    """``tol="auto"``: ``given`` with the bounds :func:`xdiffc.tuning.suggest_tol` finds on a sample of the inputs:
    an absolute bound for every variable, and pointwise-relative ones where they win (those the user gave by
    variable win over them; one for every variable holds only where none is found)."""
    if tol != "auto":
        raise ValueError(f"tol must be a number, a mapping of variable to number, or 'auto'; got {tol!r}")
    from ..tuning import suggest_tol

    chunks = dict(spec.chunks)
    with open_inputs(replace(spec, chunks=())) as ds:
        suggestion = suggest_tol(ds, variables=spec.variables, model=model, chunks=chunks)
    print(suggestion.table.to_string(float_format=lambda v: f"{v:.4g}"), file=sys.stderr)
    mine = given.pw_rel_tol
    relative = {**suggestion.pw_rel_tol, **(mine if isinstance(mine, Mapping) else {})} or mine
    return replace(given, tol=dict(suggestion), rel_tol=None, pw_rel_tol=relative)


@quiet_zarr()
@quiet_dates()
def convert(inputs: Iterable[str | os.PathLike] | str, store: str | os.PathLike, *,
            tol: float | Mapping[Hashable, float] | None = None, rel_tol: float | None = 1e-3,
            pw_rel_tol: float | Mapping[Hashable, float] | None = None, preserve_zero: bool | None = None,
            model: str | None = None, mode: str = "pointwise", chunks: Mapping[str, int] | None = None,
            variables: Sequence[str] | None = None, scheduler: str | None = None, workers: int | None = None,
            threads_per_worker: int | None = None, gpus: int = 0, resume: bool = False, verify: bool = False,
            overwrite: bool = False, progress: bool = True, layout: str = "auto", grid: str | None = None,
            use_cftime: bool = False, decode_times: bool = True, train_model: int = 0,
            level: int = DEFAULT_LEVEL, member_dim: str | None = None, append: bool = False) -> ConvertSummary:
    """Convert netCDF files (or one Zarr store) into one compressed Zarr store on a Dask cluster.

    The bounds, ``preserve_zero``, ``model``, ``chunks``, ``layout`` and ``grid`` are those of
    ``ds.gcdtc.compress``; ``tol="auto"`` picks, per variable, the loosest bound that passes the
    Baker et al. criteria on a sample (:func:`xdiffc.tuning.suggest_tol`). ``mode`` is
    ``"pointwise"`` or ``"l2"``. ``scheduler``: address of an existing cluster; otherwise a local
    one with ``workers`` x ``threads_per_worker``, or with ``gpus`` one worker per GPU. With
    ``gpus`` the units need the worker resource ``GPU=1``. ``resume`` finishes an interrupted
    conversion; ``overwrite`` replaces an existing store (at the end: until then it is untouched);
    ``verify`` checks every bound before the store is put in place. ``use_cftime`` decodes every
    input's times as cftime dates; ``decode_times=False`` keeps them as numbers (for units that no
    calendar decodes, such as "months since"). ``train_model=STEPS`` first trains a model for ``STEPS`` steps on
    the inputs themselves (each variable's last 15% of time steps held out for validation;
    checkpointed, so a resumed conversion continues it) and compresses with it; the store carries
    the model in its codec configurations. ``level``: 1 (fastest) to 9 (smallest; default 8), as for
    :func:`xdiffc.compress`. ``member_dim``: the inputs are an ensemble, one member per item of
    ``inputs`` (a path, a glob, or a list of paths combined along time), stacked along this new
    dimension (:mod:`~xdiffc.conversion.members`). The store is built in :func:`~.progress.partial_path` and appears
    at ``store`` only when complete. ``append=True`` adds the inputs' times to the finished ``store``
    with its own bounds, codec and climatology (:mod:`.append`; ``resume`` then finishes an interrupted
    append). Returns the :class:`~.summary.ConvertSummary`.
    """
    bounds = dict(tol=tol, rel_tol=rel_tol, pw_rel_tol=pw_rel_tol)  # as given
    if append:
        if overwrite:
            raise ValueError("append=True (--append) adds to the store, overwrite=True (--overwrite) replaces it: "
                             "give one of them")
        _check_cluster(workers, threads_per_worker, gpus)
        shaping = dict(bounds, preserve_zero=preserve_zero, model=model, mode=mode, chunks=chunks, layout=layout,
                       grid=grid, train_model=train_model, level=level)
        job = appending.plan(inputs, store, shaping, variables=variables, resume=resume, use_cftime=use_cftime,
                             decode_times=decode_times)
        if job.finished is not None:
            return job.finished
        with contextlib.closing(job.new), locked(job.store), _client(scheduler, workers, threads_per_worker,
                                                                    gpus) as client:  # the new inputs closed at the end
            log = appending.open_progress(job, resume)
            return _build(client, job.store, job.spec, log, appending.units(job, log), gpus, progress, verify,
                          source=job.source, write=appending.write_unit, since=job.source.length)
    store = Path(store).absolute()
    arguments = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    if member_dim is None:
        paths, is_zarr = resolve_paths(arguments)
    else:
        groups, is_zarr = resolve_members(arguments)
    prepare_output(store, resume, overwrite)
    options = _options(mode, bounds, preserve_zero, level)
    _check_cluster(workers, threads_per_worker, gpus)
    if gpus and scheduler is None:
        _warn_missing_gpus(gpus)
    times = time_decoding(use_cftime, decode_times)
    if member_dim is None:
        time_dim, first = scan(paths, is_zarr, times)
        spec = Inputs(paths, is_zarr, time_dim, stamps=stamps(paths), times=times)
    else:
        spec = scan_members(groups, is_zarr, times, member_dim)
        time_dim, first = spec.time_dim, open_inputs(spec)
    if variables is not None:
        select(first, variables)  # unknown names fail here, before any work
    chunks = dict(chunks or {})
    if time_dim is not None and (chunks.get(time_dim) == -1 or time_dim not in chunks):  # the combined time axis
        steps = first.sizes[time_dim] if member_dim or len(paths) == 1 else time_steps(paths, is_zarr, times, time_dim)
    if time_dim is not None and chunks.get(time_dim) == -1:  # the whole time axis of the combined inputs
        chunks[time_dim] = steps
    chunks = check_chunks(chunks, first.sizes)
    if member_dim is not None:
        chunks.setdefault(member_dim, 1)
    if time_dim is not None and time_dim not in chunks:  # sized on all inputs: one-step monthly files share chunks
        chunks[time_dim] = default_time_chunk(first, time_dim, chunks, steps)
    spec = replace(spec, variables=None if variables is None else tuple(variables),
                   chunks=tuple(sorted(chunks.items())))
    if isinstance(tol, str):
        options = _auto_options(options, tol, spec, model)
    if train_model and (isinstance(train_model, bool) or not isinstance(train_model, int) or train_model < 0):
        raise ValueError(f"train_model must be a number of training steps >= 1, got {train_model!r}")
    if train_model and model is not None:
        raise ValueError("give either model= or train_model=, not both")
    signature = {**fingerprint(spec, _recorded(options), model, mode, chunks, layout, grid), "train_model": train_model}
    threads = in_process(first.nbytes * (1 if member_dim else len(paths)), scheduler, workers, gpus)
    first.close()  # as every input this process opens: no file stays open once convert returns (release_inputs)
    with locked(store), _client(scheduler, workers, threads_per_worker, gpus, threads, progress) as client:
        log = open_progress(store, spec, signature, resume, overwrite, options,
                            dict(model=model, chunks=chunks, layout=layout, grid=grid, progress=progress), train_model,
                            progress)
        if log is None:  # resuming a store that is already complete
            return summarise(store, store, spec, {}, 0.0, 0, verify=verify)
        units = plan_units(zarr.open_group(str(log.path.parent / PARTIAL_STORE), mode="r"), log.header["arrays"],
                           time_dim)
        if threads:  # opened here once: the units' threads then share it (two threads opening one netCDF file
            cached_inputs(spec)  # at once fail inside HDF5, "NetCDF: HDF error")
        return _build(client, store, spec, log, units, gpus, progress, verify)


def _build(client, store: Path, spec: Inputs, log: Progress, units: list[Unit], gpus: int, progress: bool,
           verify: bool, *, source=None, write=None, since: int = 0) -> ConvertSummary:
    """Run the units not in ``log`` into the store in the partial folder, summarise (verify), and put it in place.
    A conversion's units read ``spec`` with :func:`_write_unit`; an append's read ``source`` with ``write``, and
    the inputs are its store's steps from ``since`` on."""
    work = log.path.parent / PARTIAL_STORE
    skipped = len(log.done)
    start = time.perf_counter()
    try:
        stats = _run_units(client, spec if source is None else source, work, units, log, gpus, progress,
                           write or _write_unit)
    finally:
        _release(client, spec if source is None else source.inputs)
    seconds = time.perf_counter() - start
    summary = summarise(work, store, spec, stats, seconds, skipped, verify=verify, since=since)
    _finish(store)
    return summary


@quiet_zarr()
def _write_unit(inputs: Inputs, store: str, unit: Unit) -> tuple[float, str]:
    """Read one unit from the inputs, encode it and write its chunks (runs on a worker).

    Returns the seconds it took and the worker's address. The variable is rebuilt without its
    input encoding: xarray then encodes it exactly like the array already in the store.
    """
    from distributed import get_worker

    start = time.perf_counter()
    time.sleep(float(os.environ.get(DELAY_ENV, 0)))
    # synchronous: each unit is one task; passed to this load alone, not set in Dask's configuration, which is
    # global to the process, that threads of an in-process worker would share
    var = cached_inputs(inputs)[unit.name].variable[unit.slices].load(scheduler="synchronous")
    part = xr.Dataset({unit.name: xr.Variable(var.dims, var.data)})
    part.to_zarr(store, region=unit.slices, mode="r+", consolidated=False, zarr_format=3)
    return time.perf_counter() - start, get_worker().address


def _run_units(client, spec, store: Path, units: list[Unit], log: Progress, gpus: int,
               progress: bool, write=_write_unit) -> dict[str, dict]:
    """Run the units not in ``log`` on the cluster, a few per thread at a time; record each as it finishes.
    Each is ``write(spec, store, unit)`` (``spec``: what it reads; a conversion's :class:`Inputs`).

    Returns, per variable, what was really done: units and bytes written, seconds, units per worker.
    """
    from distributed import as_completed
    from tqdm.auto import tqdm

    todo = [i for i in range(len(units)) if i not in log.done]
    window = 2 * max(1, sum(client.nthreads().values()))
    resources = {"GPU": 1} if gpus else None
    stats: dict[str, dict] = {}
    done_chunks = sum(units[i].nchunks for i in log.done if i < len(units))
    bar = tqdm(total=sum(u.nchunks for u in units), initial=done_chunks, unit="chunk", disable=not progress,
               desc="converting", dynamic_ncols=True)
    start, written = time.perf_counter(), 0

    token, index_of = uuid.uuid4().hex[:8], {}

    def submit(i: int):
        future = client.submit(write, spec, str(store), units[i], resources=resources, pure=False,
                               key=f"xdiffc-unit-{token}-{i}")
        index_of[future.key] = i
        return future

    queue = iter(todo)
    running = as_completed([submit(i) for i in _take(queue, window)])
    with bar:
        for future in running:
            seconds, worker = future.result()
            index = index_of.pop(future.key)
            unit = units[index]
            log.record(index)
            s = stats.setdefault(unit.name, {"units": 0, "bytes": 0, "seconds": 0.0, "workers": {}})
            s["units"] += 1
            s["bytes"] += unit.nbytes
            s["seconds"] += seconds
            s["workers"][worker] = s["workers"].get(worker, 0) + 1
            written += unit.nbytes
            bar.set_postfix_str(f"{written / 2**20 / (time.perf_counter() - start):.2f} MB/s", refresh=False)
            bar.update(unit.nchunks)
            for i in _take(queue, 1):
                running.add(submit(i))
    return stats


def _release(client, inputs: Inputs) -> None:
    """The units' inputs closed in every worker process and in this one (in-process workers' threads share its
    copy), whether the units finished or not. A cluster that is gone holds nothing open."""
    with contextlib.suppress(Exception):
        client.run(release_inputs, inputs)
    release_inputs(inputs)


def _take(iterator: Iterator[int], n: int) -> list[int]:
    return [i for _, i in zip(range(n), iterator)]


def _finish(store: Path) -> None:
    """Mark the store in the partial folder complete, consolidate its metadata (so they include the mark), fsync
    it, put it in place with one rename (an existing store moved aside first), then delete the partial folder."""
    partial = partial_path(store)
    work = partial / PARTIAL_STORE
    zarr.open_group(str(work), mode="r+").attrs[COMPLETE_ATTR] = True
    with quiet_zarr():  # xarray reads consolidated metadata fastest; Zarr v3 has no spec for them yet
        zarr.consolidate_metadata(str(work))
    sync_tree(work)  # on disk before it is put in place: a crash just after the rename finds every chunk
    if store.exists():
        os.rename(store, partial / "replaced.zarr")
    os.rename(work, store)
    _fsync(store.parent)  # the rename itself
    shutil.rmtree(partial)


def sync_tree(root: Path) -> None:
    """``fsync`` every file and directory under ``root``, ``root`` included, as databases do before a commit.

    Threads, because ``fsync`` releases the GIL and a filesystem commits many of them together.
    """
    paths = []
    for folder, _, files in os.walk(root):
        paths += [os.path.join(folder, name) for name in files]
        paths.append(folder)
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(_fsync, paths))


def _fsync(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)  # a directory too: its entries
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
