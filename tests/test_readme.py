"""README.md and docs/*.md: links resolve, and the README lists every command.

The README's Python examples are run, exactly as pasted, by ``tests/test_docs_snippets.py``
(nothing is prepended to them: a missing import fails there).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
_LINK = re.compile(r"\]\(([^)\s]+)\)")  # [text](target) and ![alt](target)


def _local_links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)  # not in code
    return [t for t in _LINK.findall(text) if not re.match(r"^(https?:|mailto:|#)", t)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page):
    missing = [t for t in _local_links(page) if not (page.parent / t.split("#", 1)[0]).exists()]
    assert not missing, f"{page.name} links to missing files: {missing}"


def test_readme_lists_every_command_and_version():
    import typer

    from hopfield.cli import app

    text = README.read_text(encoding="utf-8")
    for name in typer.main.get_command(app).commands:
        assert f"`{name}`" in text or f"hopfield {name}" in text, f"README does not mention {name!r}"
    assert "hopfield --version" in text


def test_readme_links_the_guides():
    links = set(_local_links(README))
    for page in ("docs/architecture.md", "docs/guarantees.md", "CHANGELOG.md", "LICENSE"):
        if (ROOT / page).exists():
            assert page in links, f"README should link {page}"
