"""Size guards: each residual coder, the log-domain path and the bitmaps stay within the byte ceilings of
tests/golden/sizes.json on fixed synthetic fields (regenerate with ``python tests/golden/make_sizes.py`` only when a
size changes on purpose). The bound tests cannot see a coder that grows: the exact check hides it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parent / "golden"
sys.path.insert(0, str(GOLDEN))
import make_sizes  # noqa: E402

PINNED = json.loads((GOLDEN / "sizes.json").read_text())


@pytest.fixture(scope="module")
def measured() -> dict[str, int]:
    return make_sizes.measure()


def test_every_guard_is_pinned(measured):
    assert set(measured) == set(PINNED["ceiling"]) == set(PINNED["measured"])
    assert PINNED["margin"] == make_sizes.MARGIN <= 0.05
    for name, top in PINNED["ceiling"].items():
        assert top == make_sizes.ceiling(PINNED["measured"][name])


@pytest.mark.parametrize("name", sorted(PINNED["ceiling"]))
def test_size_within_its_ceiling(measured, name):
    assert measured[name] <= PINNED["ceiling"][name], (
        f"{name}: {measured[name]} bytes, ceiling {PINNED['ceiling'][name]} (measured {PINNED['measured'][name]})")
