"""Helpers shared by the reproduction parts: atomic file writes, markdown tables, the final report."""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["atomic_savefig", "atomic_write_json", "atomic_write_text", "markdown_table", "write_report"]


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` via a temporary sibling file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_json(path: str | os.PathLike[str], obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=float))


def atomic_savefig(fig, path: str | os.PathLike[str], dpi: int = 120) -> Path:
    """Save a matplotlib figure atomically (format from the suffix of ``path``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table (first column left-aligned, the others right-aligned)."""
    lines = ["| " + " | ".join(map(str, header)) + " |",
             "|" + "|".join([":--"] + ["--:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines)


def write_report(out_dir: str | os.PathLike[str], sections: Sequence[str], *, command: str,
                 elapsed: float) -> Path:
    """Write ``out_dir/report.md`` (atomically) from the parts' markdown sections."""
    import torch

    head = [
        "# hopfield reproduce — report",
        "",
        f"Command: `{command}`  ",
        f"Finished {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} after {elapsed / 60:.1f} min "
        f"on {platform.machine()} / {os.cpu_count()} CPUs, torch {torch.__version__}.",
        "",
    ]
    return atomic_write_text(Path(out_dir) / "report.md", "\n".join(head + [s.rstrip() + "\n" for s in sections]))
