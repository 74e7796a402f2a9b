"""The progress bar of the passes over the data that compressing a Dataset makes before its chunks are written.

``ds.gcdtc.compress`` (and so ``ds.gcdtc.to_zarr`` and ``xdiffc convert``) reads the data before
any chunk is encoded: one pass for the value ranges of every variable (``rel_tol``, and the default
``preserve_zero``), then per lossy variable trial encodings of a sample chunk (its native-grid
layout, a carried model) and one more pass for its archive climatology. On a Dataset of gigabytes
these take tens of seconds; without a word they would pass in silence before Dask's own progress
bar, if any. So a bar (tqdm's: a widget in a notebook, a line on stderr in a terminal) names the
pass under way and counts the steps: the ranges, then one per lossy variable. It closes without a
trace when the passes are done.
"""

from __future__ import annotations

import warnings

from tqdm import TqdmWarning

with warnings.catch_warnings():  # in a notebook without ipywidgets: tqdm's text bar, without tqdm's advice to install it
    warnings.simplefilter("ignore", TqdmWarning)
    from tqdm.auto import tqdm


class Passes:
    """A bar over the passes of one compression; ``enabled``: True (always), None (in a notebook or a terminal,
    not when stderr goes to a file or a pipe) or False (never)."""

    def __init__(self, enabled: bool | None = None):
        self._bar = tqdm(total=1, desc="xdiffc: ", unit="step", leave=False, dynamic_ncols=True,
                         disable=None if enabled is None else not enabled,
                         bar_format="{desc}{n}/{total} steps [{elapsed}]")

    def start(self, what: str) -> None:
        """Name the pass that begins now."""
        self._bar.set_description(f"xdiffc: {what}")

    def expect(self, steps: int) -> None:
        """The number of steps, once known (after the ranges: how many variables are lossy)."""
        self._bar.total = steps
        self._bar.refresh()

    def done(self) -> None:
        """One step done."""
        self._bar.update()

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> Passes:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
