"""Every Python example in README.md and docs/*.md runs exactly as pasted (issue 8 item 15).

Conventions (for everyone writing docs):

- A fenced block tagged ``python`` is an example a user may paste: it is run, **on its own**, in a
  fresh interpreter (``python snippet.py`` in a new temporary working directory), with nothing
  prepended — so each block has its own imports and creates the files it reads. Blocks are not
  run as a sequence: a user copying the third block of a page must not need the first two.
- Anything that must not run here — shell commands, program output, ``torchrun`` programs, long
  benchmark scripts — is tagged ``bash``, ``console`` or ``text``; a Python *listing* that is not an
  example (e.g. the benchmark script behind a table) may be tagged ``py`` to keep highlighting.
  Only ``python`` means "runnable example". Every fence carries a language tag, so "not run" is
  always an explicit choice of the author.
- An example should finish in well under a minute on one core; each run has a hard timeout of
  :data:`TIMEOUT` seconds. The runs are marked ``slow`` (together a few CPU-minutes, one Python
  start-up with torch per block); they still run in CI. The structural checks are fast.

Pages are collected automatically (``docs/*.md``), so a new page is tested without editing this
file. The runs are parametrized per block (test id ``<page>:<line>``) so a failure names the block.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TIMEOUT = 900  # seconds per block: a guard against hangs, generous for a loaded 2-core machine
_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)[^\n`]*$")


def fenced_blocks(text: str) -> list[tuple[int, str, str]]:
    """(line of the opening fence, language tag, code) of every fenced block of a markdown text."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.group(1), m.group(2), m.group(3).lower()
        start, body = i + 1, []
        i += 1
        while i < len(lines) and not (lines[i].strip().startswith(fence[0] * len(fence))
                                      and lines[i].strip().strip(fence[0]) == ""):
            line = lines[i]
            body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
            i += 1
        blocks.append((start, lang, "\n".join(body) + "\n"))
        i += 1  # closing fence
    return blocks


def _python_blocks() -> list[tuple[str, str]]:
    params = []
    for page in PAGES:
        for line, lang, code in fenced_blocks(page.read_text(encoding="utf-8")):
            if lang == "python":
                params.append(pytest.param(page, code, id=f"{page.relative_to(ROOT).as_posix()}:{line}"))
    return params


PYTHON_BLOCKS = _python_blocks()


def test_parser_finds_blocks_and_languages():
    text = "a\n```python\nx = 1\n```\n\n  ```bash\n  ls\n  ```\n```\nplain\n```\n"
    assert fenced_blocks(text) == [(2, "python", "x = 1\n"), (6, "bash", "ls\n"), (9, "", "plain\n")]


def test_readme_and_docs_have_examples():
    assert sum(1 for p in PYTHON_BLOCKS if "README.md" in p.id) >= 3
    assert len(PYTHON_BLOCKS) >= 20


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_fence_has_a_language(page):
    untagged = [line for line, lang, _ in fenced_blocks(page.read_text(encoding="utf-8")) if not lang]
    assert not untagged, (f"{page.name}: fenced blocks at lines {untagged} have no language tag; use "
                          "```python for an example that runs, ```bash / ```text for anything else")


@pytest.mark.slow
@pytest.mark.parametrize("page,code", PYTHON_BLOCKS)
def test_python_block_runs_as_pasted(page, code, tmp_path):
    script = tmp_path / "snippet.py"
    script.write_text(code, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["PYTHONPATH"] = ""  # the installed package only, no test-tree imports
    try:
        proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"example did not finish within {TIMEOUT} s:\n{code}")
    assert proc.returncode == 0, (f"example exited with {proc.returncode}:\n{code}\n--- stderr:\n"
                                  f"{proc.stderr[-3000:]}")
