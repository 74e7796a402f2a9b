"""Before the units run: the output's checks, what a resumed conversion must repeat, and the partial folder set up
(or found again, with ``--resume``)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import zarr

from ..errors import ResumeMismatchError
from ..options import Options
from ..xarray.encoding import encode_variables
from ..xarray.variables import is_lossy
from ..xarray.writes import for_new_store
from .inputs import Inputs
from .opening import open_inputs
from .lock import LOCK_FILE, check_unlocked
from .progress import COMPLETE_ATTR, PARTIAL_STORE, RECORD_ATTR, Progress, is_complete, partial_path

#: The model ``--train-model`` trains, in the partial folder (its checkpoint beside it): the store then carries it.
ARCHIVE_MODEL = "archive.pt"
#: ``--train-model`` trains on input files evenly spread over the inputs, up to this many bytes of them.
TRAIN_BYTES = 2 * 2**30


def prepare_output(store: Path, resume: bool, overwrite: bool) -> None:
    """Refuse an output that another conversion holds; refuse to touch an existing store, or the partial folder of
    an interrupted conversion, without --overwrite or --resume; fail early where nothing can be written."""
    check_unlocked(store)
    partial = partial_path(store)
    if not (resume or overwrite):
        if store.exists():
            raise FileExistsError(f"{str(store)!r} already exists; pass --overwrite to replace it, or --resume to "
                                  f"finish an interrupted conversion into it")
        if partial.exists():
            raise FileExistsError(f"an interrupted conversion into {str(store)!r} left {str(partial)!r}; pass --resume "
                                  f"to finish it, or --overwrite to start again")
    parent = store.parent
    if not parent.is_dir():
        raise PermissionError(f"cannot write {str(store)!r}: {str(parent)!r} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write {str(store)!r}: no write permission in {str(parent)!r}")


def input_sizes(paths: Sequence[str]) -> list[list]:
    """``[path, bytes]`` of each input (None for a Zarr store): how a fingerprint names its inputs."""
    return [[p, os.path.getsize(p) if os.path.isfile(p) else None] for p in paths]


def fingerprint(inputs: Inputs, bounds: Mapping, model, mode, chunks, layout, grid) -> dict:
    """What a resumed conversion must share with the first run (JSON): ``bounds`` are the options as it records
    them."""
    def plain(value):
        return {str(k): float(v) for k, v in value.items()} if isinstance(value, Mapping) else value

    raw = {"decode_times": False} if inputs.times == "raw" else {}
    return {"inputs": input_sizes(inputs.paths),
            "use_cftime": inputs.times == "cftime", "variables": inputs.variables, **{k: plain(v) for k, v in bounds.items()},
            "model": model, "mode": mode, "chunks": dict(chunks), "layout": layout,
            "grid": None if grid is None else str(grid)} | raw | _members(inputs)


def _members(inputs: Inputs) -> dict:
    """An ensemble's part of the fingerprint: its member dimension, and each member's label and files."""
    if inputs.member_dim is None:
        return {}
    return {"member_dim": inputs.member_dim,
            "members": [[label, list(paths)] for label, paths in zip(inputs.labels, inputs.members)]}


def recorded(store: Path) -> dict | None:
    """What a finished store records of its conversion (:data:`~.progress.RECORD_ATTR`): None for a store written
    before xdiffc recorded it, or not by ``convert``."""
    text = zarr.open_group(str(store), mode="r").attrs.get(RECORD_ATTR)
    return json.loads(text) if isinstance(text, str) else None


def differences(then: Mapping, now: Mapping) -> list[str]:
    """What differs between two fingerprints, one phrase each: the inputs by file (in any order), else by option."""
    then, now = json.loads(json.dumps(then)), json.loads(json.dumps(now))
    out = []
    for key in sorted(then.keys() | now.keys()):
        a, b = then.get(key), now.get(key)
        if key == "inputs":
            a, b = dict(map(tuple, a or [])), dict(map(tuple, b or []))
            for what, names in (("not among them before", [p for p in b if p not in a]),
                                ("no longer given", [p for p in a if p not in b]),
                                ("of another size now", [p for p in b if p in a and a[p] != b[p]])):
                if names:
                    out.append(f"{len(names)} input(s) {what} (the first: {names[0]!r})")
        elif a != b:
            out.append(f"{key} {a!r} then, {b!r} now")
    return out


def _set_up(store: Path, inputs: Inputs, options: Options, compress_kwargs: dict, record: Mapping) -> list[str]:
    """Create the store (in the partial folder), marked incomplete and with ``record`` (the conversion's
    fingerprint): all metadata, the index coordinates; returns the arrays left to units. ``compress_kwargs``: the
    other arguments of ``ds.gcdtc.compress``."""
    with open_inputs(inputs) as ds:
        return _write_metadata(store, inputs, ds, options, compress_kwargs, record)


def _write_metadata(store: Path, inputs: Inputs, ds, options: Options, compress_kwargs: dict,
                    record: Mapping) -> list[str]:
    """:func:`_set_up` on the inputs opened as ``ds``."""
    enc = encode_variables(ds, options, **compress_kwargs)  # an ensemble's Dataset names its member dimension
    if not any(is_lossy(v.attrs) for v in enc.data_vars.values()):
        floats = [str(n) for n, v in ds.data_vars.items() if v.dtype.kind == "f"]
        raise ValueError(f"nothing to compress: no data variable of the inputs is a lossy float field "
                         f"(float data variables: {floats or 'none'}); name one in --tol, or give a --rel-tol")
    chunks = dict(inputs.chunks)
    for name, var in list(enc.variables.items()):
        if var.chunks is None or is_lossy(var.attrs):
            continue
        if var.dtype.kind in "mMO":
            # dates (time bounds): xarray cannot write a region of a date array that is still empty; they are small,
            # so read here, where quiet_dates holds (a worker would warn of dates numpy cannot hold)
            new = var.compute(scheduler="synchronous")
        else:
            # exact variables: one chunk along time per region, whole along the other dimensions
            target = {d: chunks.get(d, n) if d == inputs.time_dim else n for d, n in var.sizes.items()}
            new = var.chunk(target)
            new.encoding = {k: v for k, v in var.encoding.items() if k not in ("chunks", "preferred_chunks")}
            new.encoding["chunks"] = tuple(min(target[d], n) for d, n in var.sizes.items()) or None
        enc = enc.assign_coords({name: new}) if name in enc.coords else enc.assign({name: new})
    enc = for_new_store(enc, [n for n, v in enc.data_vars.items() if is_lossy(v.attrs)], zarr_format=3)
    attrs = {COMPLETE_ATTR: False, RECORD_ATTR: json.dumps(record)}
    zarr.open_group(str(store), mode="w", zarr_format=3, attributes=attrs)
    enc.attrs.update(attrs)
    enc.to_zarr(str(store), mode="a", compute=False, consolidated=False, zarr_format=3)
    return [str(n) for n, v in enc.variables.items() if v.chunks is not None]


def open_progress(store: Path, spec: Inputs, fingerprint: dict, resume: bool, overwrite: bool, options: Options,
                  compress_kwargs: dict, train_model: int = 0, progress: bool = True) -> Progress | None:
    """The progress log to run against: on resume the one in the partial folder, else a fresh partial folder
    (after training the archive model, when asked); None when resuming a conversion that has already finished."""
    partial = partial_path(store)
    if resume:
        log = Progress.load(partial)
        if log is not None and (partial / PARTIAL_STORE).exists():
            diff = differences(log.header["fingerprint"], fingerprint)
            if diff:
                was = "an append" if log.header["fingerprint"].get("append") else "a conversion"
                raise ResumeMismatchError(
                    f"{str(store)!r} was started from other inputs or options ({was}); rerun with the same ones"
                    f"{' (and --append)' if was == 'an append' else ''}, or pass --overwrite to start again: "
                    + "; ".join(diff))
            return log
        if is_complete(store)[0]:
            _check_finished(store, fingerprint)
            shutil.rmtree(partial, ignore_errors=True)  # left behind by a kill just after the final rename
            return None
        if store.exists() and not overwrite:
            raise FileExistsError(f"{str(store)!r} is not a finished xdiffc conversion, and no interrupted one was "
                                  f"found in {str(partial)!r}; pass --overwrite to replace it")
        # killed while training or while the partial folder was being set up, or never started: start again,
        # keeping the archive model's training (its checkpoint resumes)
        _clear(partial, keep=(LOCK_FILE, ARCHIVE_MODEL, ARCHIVE_MODEL + ".ckpt") if train_model else (LOCK_FILE,))
    else:
        _clear(partial, keep=(LOCK_FILE,))
    if train_model:
        compress_kwargs = {**compress_kwargs, "model": str(_train_archive_model(partial, spec, train_model, progress))}
    arrays = _set_up(partial / PARTIAL_STORE, spec, options, compress_kwargs, fingerprint)
    return Progress.start(partial, {"fingerprint": fingerprint, "arrays": arrays})


def _check_finished(store: Path, fingerprint: dict) -> None:
    """A :class:`ResumeMismatchError` unless the finished ``store`` records this very conversion: a resume that
    found nothing to do must not pass off a store of other inputs or options as these."""
    then = recorded(store)
    if then is None:
        raise ResumeMismatchError(
            f"{str(store)!r} is finished, but records no inputs or options (written before xdiffc recorded them, or "
            f"not by convert), so --resume cannot tell whether it holds these inputs: check it with xdiffc verify "
            f"IN... {str(store)!r}, or pass --overwrite to convert them again")
    diff = differences(then, fingerprint)
    if diff:
        raise ResumeMismatchError(
            f"{str(store)!r} is a finished conversion of other inputs or options, so --resume has nothing of this run "
            f"to finish: {'; '.join(diff)}. Pass --overwrite to convert these inputs again, or --append to add new "
            f"times to it")


def _clear(folder: Path, keep: Sequence[str] = ()) -> None:
    """Remove everything in ``folder`` but the entries named in ``keep``."""
    if not folder.exists():
        return
    for entry in folder.iterdir():
        if entry.name not in keep:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def _train_archive_model(partial: Path, spec: Inputs, steps: int, progress: bool) -> Path:
    """The archive model in ``partial``: trained for ``steps`` on a sample of the inputs (resuming its
    checkpoint), or the finished file of an earlier run."""
    from ..core import default_device
    from ..training import train

    output = partial / ARCHIVE_MODEL
    if output.exists():
        return output
    partial.mkdir(parents=True, exist_ok=True)
    paths = _training_sample(spec.paths)
    return train(paths, output, steps=steps, resume=True, variables=spec.variables, device=default_device(),
                 eval_every=max(10, min(250, steps // 10)), progress=progress)


def _training_sample(paths: Sequence[str]) -> list[str]:
    """Input files evenly spread over ``paths`` (time order), at most :data:`TRAIN_BYTES` of them, at least one."""
    sizes = [os.path.getsize(p) if os.path.isfile(p) else 0 for p in paths]
    total = sum(sizes)
    if total <= TRAIN_BYTES:
        return list(paths)
    keep = max(1, int(len(paths) * TRAIN_BYTES / total))
    return [paths[i] for i in np.linspace(0, len(paths) - 1, keep).round().astype(int)]
