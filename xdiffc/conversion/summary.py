"""What a conversion did, per variable and in total: :class:`ConvertSummary`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import zarr

from ..errors import VerificationError
from ..xarray.variables import is_lossy
from .inputs import Inputs
from .verify import verify_store


@dataclass
class ConvertSummary:
    """What :func:`xdiffc.convert` did: per variable, the table; in total, the rates."""

    store: str
    table: pd.DataFrame
    seconds: float
    #: uncompressed bytes and units written by this run (counted as the units finish)
    written_bytes: int
    units_done: int
    #: units found done in the progress log of an interrupted run, and not redone
    units_skipped: int
    workers: dict[str, int]

    @property
    def mb_per_s(self) -> float:
        return self.written_bytes / 2**20 / self.seconds if self.seconds else math.nan

    def __str__(self) -> str:
        if not self.units_done and not self.units_skipped:
            return f"{self.store}: already complete, nothing to do"
        total = self.table[["MB", "stored_MB"]].sum()
        return (f"{self.table.to_string(float_format=lambda v: f'{v:.4g}')}\n"
                f"{self.store}: {total['MB']:.1f} MB -> {total['stored_MB']:.2f} MB "
                f"(ratio {total['MB'] / total['stored_MB']:.1f}), {self.units_done} units written "
                f"({self.units_skipped} already done) in {self.seconds:.1f} s, {self.mb_per_s:.2f} MB/s")


def summarise(path: Path, store: Path, spec: Inputs, stats: dict[str, dict], seconds: float, skipped: int, *,
              verify: bool, since: int = 0) -> ConvertSummary:
    """The summary of a conversion into ``store``, read from ``path`` (where it is built): per variable, size,
    stored size, ratio, time (error over bound with ``verify``, against the inputs, which are the store's steps from
    ``since`` on); in total, the units that ``stats`` says were written."""
    group = zarr.open_group(str(path), mode="r")
    lossy = [n for n, a in group.arrays() if is_lossy(a.attrs)]
    rows = {n: {"MB": group[n].nbytes / 2**20, "stored_MB": group[n].nbytes_stored() / 2**20,
                "seconds": stats.get(n, {}).get("seconds", 0.0)} for n in lossy}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.insert(2, "ratio", table["MB"] / table["stored_MB"])
    if verify:
        report = verify_store(spec, path, require_complete=False, since=since)
        if not report.ok:
            raise VerificationError(f"the conversion into {str(store)!r} fails verification; it stays unfinished in "
                                    f"{str(path)!r}:\n" + "\n".join(report.problems))
        table.insert(3, "max_err/bound", report.table["max_err_over_bound"])
        table.insert(4, "nrmse", report.table["nrmse"])
        if "nrmse_over_bound" in report.table:
            table.insert(5, "nrmse/bound", report.table["nrmse_over_bound"])
    workers: dict[str, int] = {}
    for s in stats.values():
        for w, n in s["workers"].items():
            workers[w] = workers.get(w, 0) + n
    return ConvertSummary(str(store), table, seconds, sum(s["bytes"] for s in stats.values()),
                          sum(s["units"] for s in stats.values()), skipped, workers)
