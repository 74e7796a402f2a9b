"""Where a conversion stands: its units, the partial folder it works in, the progress log, and whether a store
is complete."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

import zarr

from ..errors import ResumeMismatchError

#: Root attribute of a store being converted: False until every chunk is written and verified.
COMPLETE_ATTR = "xdiffc_complete"
#: Root attribute of a converted store: JSON of what it was converted from and how (the fingerprint a ``--resume``
#: repeats; ``--append`` adds its inputs), so that a resume or an append can be checked against the finished store.
RECORD_ATTR = "xdiffc_conversion"
#: The sibling folder ``OUT<suffix>`` where a conversion into ``OUT`` builds the store until it is complete.
PARTIAL_SUFFIX = ".xdiffc-partial"
#: The store being built, inside the partial folder; renamed to ``OUT`` when complete.
PARTIAL_STORE = "data.zarr"
#: The progress log, inside the partial folder: a JSON header line, then one finished unit index per line.
PROGRESS_FILE = "progress"
#: Test hook: seconds each unit sleeps before writing, so that a test can kill a conversion mid-way.
DELAY_ENV = "XDIFFC_TEST_UNIT_DELAY"
#: A unit (one task) holds at most about this many bytes of uncompressed data, in whole chunks.
UNIT_BYTES = 64 * 2**20
#: A unit takes several time chunks where its array has many: up to about this many bytes, and never so many that
#: the array splits into fewer than :data:`MIN_UNITS` units. A task then lasts seconds, and what scheduling, reading
#: and writing cost per task is shared by its chunks (on the 2-core benchmark machine, a 1 MB unit spent 0.045 s
#: reading and writing and left 0.05 s of scheduling gaps beside its 0.12 s of coding).
LEAD_BYTES = 16 * 2**20
MIN_UNITS = 16
#: How units are cut, recorded in the progress log: a resume must cut them the same way (1: one time chunk each;
#: 2: :data:`LEAD_BYTES`).
UNIT_PLAN = 2


# ---------------------------------------------------------------------------------------- units


@dataclass(frozen=True)
class Unit:
    """One task: the slab ``region`` (start, stop per dimension) of array ``name``, in whole Zarr chunks."""

    name: str
    region: tuple[tuple[str, int, int], ...]
    nbytes: int
    nchunks: int

    @property
    def slices(self) -> dict[str, slice]:
        return {d: slice(a, b) for d, a, b in self.region}


def _block_counts(shape: Sequence[int], chunks: Sequence[int], itemsize: int, lead: int, lead_chunks: int) -> list[int]:
    """Chunks per unit along each axis: the trailing axes filled up to :data:`UNIT_BYTES`, then ``lead`` (of which
    ``lead_chunks`` chunks are to be planned) up to :data:`LEAD_BYTES`, leaving at least :data:`MIN_UNITS` units."""
    counts = [1] * len(shape)
    budget = max(1, UNIT_BYTES // (itemsize * math.prod(chunks)))
    for axis in reversed(range(len(shape))):
        if axis == lead:
            continue
        n = min(-(-shape[axis] // chunks[axis]), budget)
        counts[axis] = max(1, n)
        budget = max(1, budget // counts[axis])
    if shape:
        unit = itemsize * math.prod(c * k for c, k in zip(chunks, counts))
        counts[lead] = max(1, min(lead_chunks // MIN_UNITS, LEAD_BYTES // max(unit, 1)))
    return counts


def plan_units(group: zarr.Group, names: Sequence[str], time_dim: str | None, since: int = 0) -> list[Unit]:
    """Every unit of the arrays ``names``, in time order: the same list for the same store. Along ``time_dim`` the
    units begin at the chunk that holds step ``since`` (an append's first new step): the chunks before it are not
    planned, and no unit reaches back into them."""
    units: list[tuple[int, int, Unit]] = []
    for order, name in enumerate(names):
        array = group[name]
        dims = tuple(getattr(array.metadata, "dimension_names", None)  # Zarr v3; v2 keeps them in an attribute
                     or array.attrs.get("_ARRAY_DIMENSIONS", ()))
        shape, chunks = array.shape, array.chunks
        lead = dims.index(time_dim) if time_dim in dims else 0
        first = since // chunks[lead] * chunks[lead] if time_dim in dims else 0
        counts = _block_counts(shape, chunks, array.dtype.itemsize, lead,
                               -(-(shape[lead] - first) // chunks[lead]) if shape else 1)
        steps = [c * k for c, k in zip(chunks, counts)]
        starts = [range(first if axis == lead else 0, n, s)
                  for axis, (n, s) in enumerate(zip(shape, steps))] or [range(1)]
        for corner in product(*starts):
            region = tuple((d, a, min(a + s, n)) for d, a, s, n in zip(dims, corner, steps, shape))
            extent = [b - a for _, a, b in region]
            nchunks = math.prod(-(-e // c) for e, c in zip(extent, chunks))
            unit = Unit(name, region, array.dtype.itemsize * math.prod(extent), nchunks)
            units.append((corner[lead] if dims else 0, order, unit))
    return [u for *_, u in sorted(units, key=lambda t: t[:2])]


# ---------------------------------------------------------------------------------------- progress log


@dataclass
class Progress:
    """The progress log of a conversion: its header (inputs, options, arrays) and the units done."""

    path: Path
    header: dict
    done: set[int] = field(default_factory=set)

    @classmethod
    def start(cls, partial: Path, header: dict) -> Progress:
        """Write a fresh log into the partial folder (atomically: a kill leaves either no log or a whole header)."""
        path = partial / PROGRESS_FILE
        tmp = path.with_suffix(".tmp")
        header = {**header, "units": UNIT_PLAN}
        tmp.write_text(json.dumps(header) + "\n")
        os.replace(tmp, path)
        return cls(path, header)

    @classmethod
    def load(cls, partial: Path) -> Progress | None:
        """The log in the partial folder, or None; a last line cut short by a kill is ignored. A
        :class:`~xdiffc.errors.ResumeMismatchError` if it numbers its units by another plan (:data:`UNIT_PLAN`)."""
        path = partial / PROGRESS_FILE
        if not path.exists():
            return None
        head, *lines = path.read_text().split("\n")
        header = json.loads(head)
        if header.get("units", 1) != UNIT_PLAN:
            raise ResumeMismatchError(f"{str(partial)!r} was started by an older xdiffc, which cut the work into other "
                                      f"units: resume it with that version, or start again (--overwrite, or remove "
                                      f"the folder before an --append)")
        return cls(path, header, {int(s) for s in lines[:-1] if s})

    def record(self, index: int) -> None:
        """Append a finished unit; called only after the unit's chunks are written."""
        with open(self.path, "a") as f:
            f.write(f"{index}\n")
        self.done.add(index)


# ---------------------------------------------------------------------------------------- partial folder


def partial_path(store: str | os.PathLike) -> Path:
    """The folder where a conversion into ``store`` works until it is complete: ``store`` + :data:`PARTIAL_SUFFIX`."""
    store = Path(store)
    return store.with_name(store.name + PARTIAL_SUFFIX)


def is_complete(store: str | os.PathLike) -> tuple[bool, str]:
    """Whether ``store`` is a finished conversion, and if not, why (for messages)."""
    store, partial = Path(store), partial_path(store)
    if not store.exists() and partial.exists():
        return False, (f"{str(store)!r} is incomplete: a conversion into it has not finished (its work so far is in "
                       f"{str(partial)!r}); rerun it with --resume")
    if not store.exists():
        return False, f"{str(store)!r} does not exist"
    if not (store / "zarr.json").exists() and not (store / ".zgroup").exists():
        return False, f"{str(store)!r} is not a Zarr store"
    if zarr.open_group(str(store), mode="r").attrs.get(COMPLETE_ATTR, True) is not True:
        return False, (f"{str(store)!r} is incomplete: {COMPLETE_ATTR} is false (an unfinished conversion, moved or "
                       f"made by an older xdiffc: convert again with --overwrite)")
    return True, ""
