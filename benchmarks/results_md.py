"""Writing one benchmark's section of ``benchmarks/RESULTS.md``, leaving the other sections as they are.

Each script owns the text between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``; a rerun with
``--write-results`` replaces only that text. Where the markers are absent, the section is appended
under ``heading``.
"""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_section(name: str, text: str, heading: str | None = None, path: Path = RESULTS) -> None:
    """Put ``text`` between the ``name`` markers of ``path``; append it (under ``heading``) if they are absent."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    body = path.read_text() if path.exists() else "# Benchmark results\n"
    block = f"{begin}\n{text}\n{end}"
    if begin in body and end in body:
        head, rest = body.split(begin, 1)
        body = head + block + rest.split(end, 1)[1]
    else:
        body = body.rstrip("\n") + "\n\n" + (f"{heading}\n\n" if heading else "") + block + "\n"
    path.write_text(body)
