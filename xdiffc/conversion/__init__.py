"""Convert an archive (netCDF files or one Zarr store) into one xdiffc-compressed Zarr store on Dask.

    summary = xdiffc.convert(["h0/*.nc"], "archive.zarr", tol={"T": 0.1}, rel_tol=1e-3, workers=4)
    report = xdiffc.verify(["h0/*.nc"], "archive.zarr")          # report.ok, report.table

One job per module:

- :mod:`.inputs`: finding, opening and combining the inputs (time decoding, grid and time checks);
- :mod:`.members`: ensembles, members stacked along a new dimension (``member_dim``);
- :mod:`.netcdf3`: the length a netCDF-3 file's header promises (a file cut short is refused);
- :mod:`.progress`: units, the partial folder, the progress log, completeness;
- :mod:`.lock`: one conversion at a time per output (pid, host, since when);
- :mod:`.prepare`: the output's checks, the fingerprint a resume repeats, setting up the partial store;
- :mod:`.run`: :func:`~.run.convert`: the Dask client, running the units, fsync and the final rename;
- :mod:`.append`: ``convert(..., append=True)``: new times added to a finished store, as crash-safe;
- :mod:`.summary`: :class:`~.summary.ConvertSummary`;
- :mod:`.verify`: :func:`~.verify.verify` and :class:`~.verify.VerifyReport`.

How a conversion runs:

1. The inputs are opened lazily and combined along time by their coordinates (``use_cftime``
   decodes every file's times as cftime dates, for calendars or dates numpy cannot hold alike).
   ``ds.gcdtc.compress`` gives each lossy variable its codec and absolute bound (``rel_tol``
   costs one reduction pass over the data, on the cluster, for the global value range).
2. Nothing is written at ``OUT``. The conversion builds the store in a sibling folder,
   ``OUT.xdiffc-partial/``: the store itself, ``data.zarr``, with the root attribute
   ``xdiffc_complete = False``, every array's metadata and the index coordinates; beside it the
   progress log, ``progress``, records the conversion's inputs and options.
3. The data are written in *units*: one variable, as many whole chunks of the other dimensions as
   fit in :data:`~.progress.UNIT_BYTES`, and as many Zarr chunks along time as fit in
   :data:`~.progress.LEAD_BYTES` while the variable still splits into :data:`~.progress.MIN_UNITS`
   units (an append's units begin at the chunk of its first new step). Each unit is a small task
   (paths and slices, never data or a model) that reads its slab from the inputs, encodes and
   writes whole chunks, so no chunk is written twice and a worker's memory stays flat however
   long the archive. The codec loads its model once per worker process (the model cache in
   :mod:`xdiffc.neural`). A unit's index is appended to the progress log only after its chunks
   are written.
4. ``--resume`` finds the partial folder, reads the log and runs only the units not recorded.
   Encoding is deterministic, so a unit redone after a kill writes the same bytes: the store ends
   up identical to one from an uninterrupted run. On a finished store it does nothing, and only
   when the store records these very inputs and options (its root attribute ``xdiffc_conversion``);
   otherwise it raises :class:`~xdiffc.errors.ResumeMismatchError`.
5. Last: optional verification, then ``xdiffc_complete = True`` and consolidated metadata, every
   file and folder fsynced, and then ``data.zarr`` is renamed to ``OUT`` (one atomic rename; with
   ``--overwrite`` an existing ``OUT`` is first moved into the partial folder, and deleted with it
   afterwards).

From start to end the run holds a lock in the partial folder: a second run into ``OUT`` fails at once.

What a reader sees: ``OUT`` appears, whole and consolidated, only at that rename. While a
conversion runs, and after it is killed at any moment, plain ``xr.open_zarr(OUT)`` raises
``FileNotFoundError`` (or, with ``--overwrite``, still opens the previous store, untouched). It
never returns the NaNs of chunks not yet written. Opening ``OUT.xdiffc-partial`` fails too (it is
not a Zarr store); only a reader who opens ``OUT.xdiffc-partial/data.zarr`` on purpose gets
unfinished data, marked ``xdiffc_complete = False`` and without consolidated metadata.
:func:`~.progress.is_complete` and :func:`~.verify.verify` report such a store as incomplete.

Stores are local directories (or a shared filesystem the workers see at the same path): the
final step is a filesystem rename.

The package is named ``conversion``, not ``convert``: importing a submodule binds it as an attribute
of its parent, so a package ``xdiffc.convert`` would replace the function ``xdiffc.convert``.
"""
