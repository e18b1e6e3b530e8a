"""Atomic file output shared by the package: write a temporary sibling, then ``os.replace``.

This is the package's one atomic-write module (reports, JSON, CSV, figures, the
:class:`hopfield.PatternStore` metadata, estimator saves). A reader, or a crash at any moment,
never sees a half-written file: ``path`` has either its old content or its new content.

- The temporary file is a hidden sibling ``.<name>.<random>.tmp<suffix>`` in the same directory
  (so ``os.replace`` is a rename on one filesystem); it is removed if writing fails, also on
  ``KeyboardInterrupt``. Only a hard kill (SIGKILL, power loss) between creating and renaming it
  can leave one behind; :func:`is_temp_name` recognises such leftovers.
- ``durable=True`` (the default) also fsyncs the file before the rename and the directory after
  it, so once the call returns the new content survives a power loss.
- New files get the usual permissions ``0o666 & ~umask`` (not ``mkstemp``'s 0600).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

__all__ = ["atomic_savefig", "atomic_write", "atomic_write_bytes", "atomic_write_json",
           "atomic_write_text", "fsync_dir", "is_temp_name", "replace_dir"]

# The process umask, read once at import (reading it means setting it, which is not thread-safe).
_UMASK = os.umask(0)
os.umask(_UMASK)

_TEMP_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]+\.tmp(\.[^.]*)?$")


def is_temp_name(name: str) -> bool:
    """Whether a file name has the form of a temporary file left by :func:`atomic_write`."""
    return bool(_TEMP_NAME.match(name))


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync the directory ``path`` so that a rename or new file in it survives a power loss.

    A no-op on platforms that cannot open a directory (Windows).
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on a directory
        pass
    finally:
        os.close(fd)


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], Any], *,
                 durable: bool = True) -> Path:
    """Call ``write(tmp_path)`` for a temporary file beside ``path``, then move it into place.

    If ``write`` raises (anything, also ``KeyboardInterrupt``), the temporary file is removed
    and ``path`` keeps its old content. Missing parent directories are created. Returns ``path``.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"cannot write the file {path}: it is an existing directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix,
                                   dir=path.parent)
    except OSError as e:  # read-only folder or filesystem, a file where a folder should be, ...
        raise type(e)(e.errno, f"cannot write {path}: {e.strerror}", str(path.parent)) from None
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual mode
        write(tmp)
        if durable:
            _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes | bytearray | memoryview, *,
                       durable: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    return atomic_write(path, write, durable=durable)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, durable: bool = True) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_write`)."""
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    return atomic_write(path, write, durable=durable)


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, sort_keys: bool = False,
                      durable: bool = True) -> Path:
    """JSON with 2-space indent; numpy scalars and other number-likes are written as floats.

    The object is serialised before anything is written, so a non-serialisable ``obj``
    (``TypeError``/``ValueError``) leaves ``path`` untouched.
    """
    text = json.dumps(obj, indent=2, sort_keys=sort_keys, default=float) + "\n"
    return atomic_write_text(path, text, durable=durable)


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


def replace_dir(tmp: str | os.PathLike[str], path: str | os.PathLike[str], *,
                owned: Collection[str]) -> Path:
    """Move the finished folder ``tmp`` (a sibling of ``path``) to ``path``; for folder saves.

    ``path`` must be absent, an empty folder, or a folder whose entries are all in ``owned`` (the
    names of files and folders the caller's format writes; the caller checks that it is its own
    kind, e.g. a saved model of the same class). Anything else raises ``FileExistsError`` naming
    the folder and its foreign entries before anything is moved. An old folder is moved aside,
    ``tmp`` is renamed into place (the old folder is moved back if that fails), then only the
    ``owned`` entries of the old folder are deleted (owned folders recursively); entries that
    appeared in it meanwhile are left in the aside folder, with a warning naming it. The parent
    is fsynced. A crash leaves the old or the new folder at ``path`` (and at worst a hidden
    ``.<name>.old-*`` folder beside it). Returns ``path``.
    """
    tmp, path, owned = Path(tmp), Path(path), frozenset(owned)
    if not tmp.is_dir():
        raise NotADirectoryError(f"tmp must be a finished folder, got {tmp}")
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"cannot replace {path}: it is an existing file, not a folder")
    entries = sorted(os.listdir(path)) if path.is_dir() else []
    foreign = [n for n in entries if n not in owned]
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5
                                          else "")
        raise FileExistsError(f"cannot replace {path}: it holds files this library did not write "
                              f"({shown}); nothing was changed")
    if not path.exists():
        os.replace(tmp, path)
        fsync_dir(path.parent)
        return path
    if not entries:  # an empty folder: os.replace onto it works on POSIX; be portable
        path.rmdir()
        os.replace(tmp, path)
        fsync_dir(path.parent)
        return path
    aside = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
    old = aside / path.name
    os.replace(path, old)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.replace(old, path)
        aside.rmdir()
        raise
    fsync_dir(path.parent)
    for name in owned:
        entry = old / name
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        elif entry.exists() or entry.is_symlink():
            entry.unlink()
    try:
        old.rmdir()
        aside.rmdir()
    except OSError:
        warnings.warn(f"{path} was replaced, but files that appeared in the old folder "
                      f"meanwhile were kept in {old}", RuntimeWarning, stacklevel=2)
    return path
