"""Helpers shared by the reproduction parts: markdown tables and the final report."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path

from .._io import atomic_write_text

__all__ = ["markdown_table", "write_report"]


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
        (f"Finished {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} after "
         f"{elapsed / 60:.1f} min on {platform.machine()} / {os.cpu_count()} CPUs, torch "
         f"{torch.__version__}."),
        "",
    ]
    return atomic_write_text(Path(out_dir) / "report.md",
                             "\n".join(head + [s.rstrip() + "\n" for s in sections]))
