"""docs/format.md documents every section a stream may hold, and a golden stream holds each one."""

from __future__ import annotations

import re
from pathlib import Path

from xdiffc.bitstream import Stream
from xdiffc.core import written_sections

ROOT = Path(__file__).resolve().parents[1]


def documented_sections() -> set[str]:
    """The names in the first column of the Sections table of docs/format.md."""
    text = (ROOT / "docs" / "format.md").read_text()
    table = text.split("## Sections", 1)[1].split("\n\n", 1)[0]
    return set(re.findall(r"^\| `([a-z0-9_]+)` \|", table, re.M))


def test_every_section_the_code_writes_is_documented():
    missing = written_sections() - documented_sections()
    assert not missing, f"sections written but not in docs/format.md's Sections table: {sorted(missing)}"
    stale = documented_sections() - written_sections()
    assert not stale, f"sections documented that no code writes: {sorted(stale)}"


def test_every_section_has_a_golden_stream():
    held = set()
    for path in (ROOT / "tests" / "golden").glob("*.xdfc"):
        held |= set(Stream.from_bytes(path.read_bytes()).sections)
    assert written_sections() <= held, f"no golden stream holds {sorted(written_sections() - held)}"
