"""Atomic file output shared by the package: write a temporary sibling, then ``os.replace``.

A reader (or a crash) never sees a half-written report, JSON, CSV or figure: the file either has
its old content or its new content.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["atomic_savefig", "atomic_write", "atomic_write_json", "atomic_write_text"]

# The process umask, read once at import (reading it means setting it, which is not thread-safe).
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], Any]) -> Path:
    """Call ``write(tmp_path)`` for a temporary file beside ``path``, then move it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix,
                               dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    return atomic_write(path, write)


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, sort_keys: bool = False) -> Path:
    """JSON with 2-space indent; numpy scalars and other number-likes are written as floats."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=sort_keys, default=float)
                             + "\n")


def atomic_savefig(fig: Any, path: str | os.PathLike[str], *, dpi: int = 110,
                   close: bool = True) -> Path:
    """Save a matplotlib figure (format from the suffix of ``path``) atomically; close it."""
    fmt = Path(path).suffix.lstrip(".") or "png"
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format=fmt,
                                                          bbox_inches="tight"))
    finally:
        if close:
            import matplotlib.pyplot as plt

            plt.close(fig)
