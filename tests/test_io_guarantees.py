"""docs/guarantees.md names a test for every promise: each named test must exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_test_named_in_guarantees_exists():
    text = (ROOT / "docs" / "guarantees.md").read_text(encoding="utf-8")
    named, current = [], None
    # `tests/x.py::test_a`, `::test_b` (a bare `::name` refers to the file named before it)
    for file, name in re.findall(r"`(tests/[\w/]+\.py)?::(test_\w+)`", text):
        current = file or current
        assert current, f"{name} is named before any test file"
        named.append((current, name))
    assert len(named) >= 30
    missing = [f"{f}::{n}" for f, n in named
               if not re.search(rf"^def {n}\(", (ROOT / f).read_text(encoding="utf-8"), re.MULTILINE)]
    assert missing == []
