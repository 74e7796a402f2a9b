"""Mutation audit: apply each known mutation of the library, run the tests meant to catch it, always revert.

    python tools/mutation_audit.py                 # every mutation; JSON summary on stdout, progress on stderr
    python tools/mutation_audit.py --only log_bound --only dssim_min
    python tools/mutation_audit.py --list          # names, files and tests, without running anything

Each mutation names a file (or several candidate paths and globs, for files that may move), the exact old text
(which must occur exactly once in exactly one candidate file; alternatives may be listed, for code that is being
renamed), the new text, and the pytest node ids expected to catch it. For each, the file's bytes are read, the
mutation written, ``python -m pytest -x -q NODEIDS`` run from the repository root, and the original bytes written
back in a ``finally`` (so on Ctrl-C and SIGTERM too: both signals become KeyboardInterrupt, and pytest is
killed). A mutation is

* ``caught``: pytest failed (exit 1);
* ``survived``: pytest passed (exit 0): the tests listed do not see it;
* ``no-test``: no node id is listed, or pytest found none of them (exit 4 or 5);
* ``error``: pytest could not run (other exit codes, or the timeout);
* ``stale``: the old text is not in any candidate file (the code changed: update the mutation).

The kill rate is caught / (every mutation applied). Exit status: 0 where every applied mutation was caught, 1
otherwise, 2 where a file still holds a mutated text before the start (a run killed with SIGKILL: ``git checkout``
the file). Run it on a clean work tree; it only ever writes the files below and restores their exact bytes.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutation:
    name: str
    #: Candidate paths (relative to the root; globs allowed): the mutation applies in the one that holds ``old``.
    files: tuple[str, ...]
    #: ``(old, new)`` alternatives, tried in order: the first whose old text occurs exactly once is applied.
    edits: tuple[tuple[str, str], ...]
    tests: tuple[str, ...]
    why: str = ""


SIZES = "tests/test_trust_sizes.py::test_size_within_its_ceiling"
CONVERSION = ("xdiffc/conversion.py", "xdiffc/conversion/*.py", "xdiffc/convert/*.py", "xdiffc/convert.py")

MUTATIONS: tuple[Mutation, ...] = (
    Mutation(
        "fill_threshold", ("xdiffc/masking.py",),
        (("FILL_THRESHOLD = 1e30\n", "FILL_THRESHOLD = 1e31\n"),),
        ("tests/test_trust_fill.py::test_the_threshold_edges",
         "tests/test_trust_fill.py::test_one_huge_value_stays_exact_and_out_of_the_range"),
        "one 5e30 value enters the range, and rel_tol of that range wipes out the field"),
    Mutation(
        "climatology_at_tol", ("xdiffc/coders/decomposition.py",),
        (("tol * MEAN_FRACTION, _empty", "tol, _empty"),),
        ("tests/test_trust_decomposition.py::test_the_climatology_is_coded_at_a_quarter_of_the_bound",
         "tests/test_trust_decomposition.py::test_the_anomaly_stream_size_is_pinned"),
        "the climatology coded at tol instead of tol/4: 8,866 -> 18,070 bytes on 110 x 64 x 128"),
    Mutation(
        "log_bound_loose", ("xdiffc/logdomain.py",),
        (("return math.log2((1 + pw_rel_tol) / (1 + _ROUNDOFF[np.dtype(dtype)]))",
          "return pw_rel_tol / math.log(2) * 1.01 - math.log2(1 + _ROUNDOFF[np.dtype(dtype)])"),),
        ("tests/test_trust_logdomain.py::test_the_log_bound_inequality",
         "tests/test_trust_logdomain.py::test_decoding_within_the_log_bound_keeps_the_pointwise_bound",
         "tests/test_trust_logdomain.py::test_a_precipitation_field_needs_no_exceptions",
         f"{SIZES}[precipitation/log_domain_0.01]"),
        "log2(1+r) -> r/ln2*1.01: the exact check hides it as exceptions and a larger stream"),
    Mutation(
        "negative_zero_unmasked", ("xdiffc/fidelity.py",),
        (("zeros = (x == 0) & ~missing", "zeros = (x == 0) & ~np.signbit(x) & ~missing"),),
        ("tests/test_trust_zeros.py::test_every_zero_comes_back_as_positive_zero",
         "tests/test_trust_zeros.py::test_negative_zeros_cost_what_positive_zeros_cost"),
        "-0.0 left out of the zero mask: it comes back as -0.0 (stored as an exception), the stream grows"),
    Mutation(
        "dssim_min_loose", ("xdiffc/metrics.py",),
        (("dssim_min: float = 0.995", "dssim_min: float = 0.99"),),
        ("tests/test_trust_tuning.py::test_dssim_binds_the_search",
         "tests/test_trust_tuning.py::test_suggest_tol_reports_dssim_as_binding"),
        "suggest_tol's DSSIM threshold (Baker's criteria, in metrics.Criteria) 0.995 -> 0.99"),
    Mutation(
        "climatology_tol_doubled", ("xdiffc/coders/decomposition.py",),
        (("tol * MEAN_FRACTION, _empty", "tol * MEAN_FRACTION * 2, _empty"),),
        (f"{SIZES}[climate/anomaly]", f"{SIZES}[climate_nan/anomaly]"),
        "size guard: the climatology at tol/2"),
    Mutation(
        "interp_no_previous_slice_context", ("xdiffc/coders/interp.py",),
        (("_K_CHOICES = (0, 1, 2, 4, 8, 16)", "_K_CHOICES = (0,)"),),
        (f"{SIZES}[smooth/interp]", f"{SIZES}[smooth_nan/interp]"),
        "size guard: interp's version 3 without the previous-slice contexts"),
    Mutation(
        "bitmap_no_previous_slice_context", ("xdiffc/entropy/bitmap.py",),
        (("prev = b[t - 1, i, j] + 1 if t > 0 else 0", "prev = 0"),),
        (f"{SIZES}[speckle/bitmap_coder]",),
        "size guard: the bitmap coder without the previous slice's bit in its context"),
    Mutation(
        "wavelet_no_packets", ("xdiffc/coders/wavelet.py",),
        (("PROBE_PACKETS = {1: (False,), 2: (False, True), 3: (True,)}",
          "PROBE_PACKETS = {1: (False,), 2: (False,), 3: (False,)}"),),
        (f"{SIZES}[smooth/wavelet]", f"{SIZES}[smooth_nan/wavelet]"),
        "size guard: the wavelet coder without its packet decomposition"),
    Mutation(
        "resume_skips_units_logged_out_of_order", CONVERSION,
        (("todo = [i for i in range(len(units)) if i not in log.done]",
          "todo = list(range(len(log.done), len(units)))  # the log read as a prefix"),),
        ("tests/test_convert.py::test_sigkill_then_resume_gives_the_same_store",),
        "--resume reads the progress log as a prefix: units finished out of order are skipped or redone "
        "(tests owned by the conversion session; the SIGKILL test catches it only when units finish out of order)"),
    Mutation(
        "rename_before_verification", CONVERSION,
        (("summary = _summarise(work, store, spec, stats, seconds, skipped, verify=verify)\n        _finish(store)\n",
          "_finish(store)\n        summary = _summarise(store, store, spec, stats, seconds, skipped, verify=verify)\n"),
         ("summary = summarise(work, store, spec, stats, seconds, skipped, verify=verify)\n        _finish(store)\n",
          "_finish(store)\n        summary = summarise(store, store, spec, stats, seconds, skipped, verify=verify)\n")),
        (),
        "the final rename before verification: a store that fails verification is put in place "
        "(tests owned by the conversion session: none listed yet)"),
)


@dataclass
class Result:
    name: str
    status: str
    file: str | None = None
    tests: list[str] = field(default_factory=list)
    seconds: float = 0.0
    detail: str = ""


def candidates(m: Mutation) -> list[Path]:
    paths: list[Path] = []
    for pattern in m.files:
        for p in sorted(glob.glob(str(ROOT / pattern))):
            if Path(p).is_file() and Path(p) not in paths:
                paths.append(Path(p))
    return paths


def locate(m: Mutation) -> tuple[Path, str, str] | None:
    """The file and the edit that apply: the first alternative whose old text occurs exactly once in one file."""
    for old, new in m.edits:
        hits = [p for p in candidates(m) if p.read_text().count(old) == 1]
        if len(hits) == 1:
            return hits[0], old, new
    return None


def leftovers() -> list[str]:
    """Mutations whose new text is already in a file (a run killed before it could revert)."""
    found = []
    for m in MUTATIONS:
        texts = {p: p.read_text() for p in candidates(m)}
        for old, new in m.edits:
            if not any(old in t for t in texts.values()):
                found += [f"{m.name}: {p.relative_to(ROOT)}" for p, t in texts.items() if new in t]
    return found


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def run_one(m: Mutation, timeout: float, python: str) -> Result:
    where = locate(m)
    if where is None:
        return Result(m.name, "stale", None, list(m.tests), detail="the old text is in no candidate file")
    path, old, new = where
    rel = str(path.relative_to(ROOT))
    if not m.tests:
        return Result(m.name, "no-test", rel, [], detail="no test listed")
    original = path.read_bytes()
    start = time.monotonic()
    try:
        path.write_bytes(original.replace(old.encode(), new.encode(), 1))
        cmd = [python, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *m.tests]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        try:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return Result(m.name, "error", rel, list(m.tests), time.monotonic() - start, f"timeout after {timeout} s")
    finally:
        path.write_bytes(original)
    lines = [ln for ln in (proc.stdout + proc.stderr).strip().splitlines() if ln.strip()]
    status = {0: "survived", 1: "caught", 4: "no-test", 5: "no-test"}.get(proc.returncode, "error")
    return Result(m.name, status, rel, list(m.tests), time.monotonic() - start,
                  f"pytest exit {proc.returncode}: {lines[-1] if lines else ''}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", metavar="NAME", help="run this mutation (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per pytest run (default 900)")
    parser.add_argument("--python", default=sys.executable, help="the interpreter that runs pytest")
    args = parser.parse_args(argv)
    names = {m.name for m in MUTATIONS}
    unknown = sorted(set(args.only or ()) - names)
    if unknown:
        parser.error(f"unknown mutations {unknown}; known: {sorted(names)}")
    chosen = [m for m in MUTATIONS if not args.only or m.name in args.only]
    if args.list:
        for m in chosen:
            where = locate(m)
            print(json.dumps({"name": m.name, "file": where and str(where[0].relative_to(ROOT)),
                              "old": where and where[1], "new": where and where[2], "tests": m.tests, "why": m.why}))
        return 0
    left = leftovers()
    if left:
        print(f"mutated text already present (git checkout these files first): {left}", file=sys.stderr)
        return 2
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    results: list[Result] = []
    try:
        for m in chosen:
            print(f"{m.name} ...", file=sys.stderr, end=" ", flush=True)
            results.append(run_one(m, args.timeout, args.python))
            print(f"{results[-1].status} ({results[-1].seconds:.0f} s)", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        print("interrupted: every file restored", file=sys.stderr)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    applied = [r for r in results if r.status != "stale"]
    caught = sum(r.status == "caught" for r in results)
    summary = {"results": [asdict(r) for r in results],
               "counts": {s: sum(r.status == s for r in results)
                          for s in ("caught", "survived", "no-test", "error", "stale")},
               "kill_rate": round(caught / len(applied), 4) if applied else None,
               "interrupted": len(results) < len(chosen)}
    print(json.dumps(summary, indent=1))
    return 0 if applied and caught == len(applied) and not summary["interrupted"] else 1


if __name__ == "__main__":
    sys.exit(main())
