"""The on-disk format of :class:`hopfield.storage.PatternStore`: files, metadata, writer lock.

A store is a directory::

    <path>/data.bin     raw row-major (N, D) array, little-endian float16/float32/float64
    <path>/meta.json    {"format", "version", "dim", "dtype", "count", "block_rows", "crc32": [...]}
    <path>/.lock        empty file; the writer's advisory lock (flock)

This module reads, checks and (atomically, through :mod:`hopfield._io`) writes ``meta.json``,
takes the writer lock, opens ``data.bin``, and decides which files of a folder the library wrote
(a folder holding anything else is never written into). The store itself — reads, appends,
checksums — is :mod:`hopfield.storage`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

try:  # one writer at a time (advisory lock); absent on Windows
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

from . import _io

_FORMAT = "hopfield.PatternStore"
_VERSION = 1
_DTYPES = {"float16": np.float16, "float32": np.float32, "float64": np.float64}
_TORCH_DTYPES = {"float16": torch.float16, "float32": torch.float32, "float64": torch.float64}
DATA_FILE, META_FILE, LOCK_FILE = "data.bin", "meta.json", ".lock"
VERIFY_ON_OPEN_BYTES = 256 * 2**20  # full checksum check at open for stores up to 256 MiB
_BLOCK_BYTES = 16 * 2**20  # one CRC-32 per ~16 MiB block of rows
_META_KEYS = ("format", "version", "dim", "dtype", "count", "block_rows", "crc32")


def _short(value: Any, limit: int = 60) -> str:
    r = repr(value)
    return r if len(r) <= limit else r[:limit - 3] + "..."


def _as_path(path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)) or isinstance(path, bytes):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    return Path(path)


def _check_int(value: Any, name: str, lo: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < lo:
        raise ValueError(f"{name} must be >= {lo}, got {int(value)}")
    return int(value)


def _is_library_file(name: str) -> bool:
    """Files a store directory may hold that this library wrote (data.bin checked separately)."""
    return (name in (META_FILE, LOCK_FILE, META_FILE + ".tmp")  # .tmp: before hopfield._io
            or (name.startswith((f".{META_FILE}.", f".{DATA_FILE}.")) and _io.is_temp_name(name)))


def _write_meta(path: Path, meta: dict[str, Any]) -> None:
    """The commit point of create/append: atomically replace ``meta.json`` (durable)."""
    _io.atomic_write_text(path, json.dumps(meta, indent=1) + "\n")  # ints only: no float default


def _acquire_lock(path: Path) -> IO[str] | None:
    """Exclusive writer lock on ``path/.lock``; ``ValueError`` (nothing touched) if held."""
    if fcntl is None:  # pragma: no cover - Windows: no advisory locks
        return None
    try:
        lock = open(path / LOCK_FILE, "a")  # noqa: SIM115 - held until close()
    except OSError as e:  # read-only folder or filesystem
        raise type(e)(e.errno, f"cannot open the PatternStore at {path} for writing "
                      f"({e.strerror})", str(path / LOCK_FILE)) from None
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise ValueError(f"PatternStore at {path} is already open for appending by another "
                         "writer (close it first, or retry later)") from None
    except BaseException:
        lock.close()
        raise
    return lock


def _open_data(path: Path) -> int | None:
    """A read-only descriptor of ``path/data.bin`` (None if it is missing).

    A store handle reads through the descriptor it opened, so it keeps reading the file it
    opened even if ``create(..., overwrite=True)`` puts a new ``data.bin`` in place meanwhile.
    """
    try:
        return os.open(path / DATA_FILE, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    except (FileNotFoundError, NotADirectoryError):
        return None


def _meta_file(path: Path) -> Path:
    """``path/meta.json`` of an existing store, or a clear error saying what is there instead."""
    meta_path = path / META_FILE
    if not path.exists():
        raise FileNotFoundError(f"no PatternStore at {path}: the folder does not exist")
    if not path.is_dir():
        raise NotADirectoryError(f"no PatternStore at {path}: it is a file, not a folder")
    if not meta_path.exists():
        raise FileNotFoundError(f"no PatternStore at {path}: {meta_path} does not exist")
    if not meta_path.is_file():
        raise ValueError(f"{meta_path} is corrupt: it is a folder (or other non-file), not the "
                         "store's metadata file")
    return meta_path


def _read_meta(path: Path) -> dict[str, Any]:
    meta_path = _meta_file(path)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise ValueError(f"{meta_path} is corrupt: not valid JSON ({type(e).__name__}: "
                         f"{_short(str(e), 100)})") from None
    _check_meta(meta, meta_path)
    return meta


def _check_meta(meta: Any, meta_path: Path) -> None:
    """Every field of ``meta.json``: a ValueError naming the file, the field and what was found."""
    if not isinstance(meta, dict):
        raise ValueError(  # noqa: TRY004 - corrupt file content, not a wrong argument type
            f"{meta_path} is corrupt: expected a JSON object with keys "
            f"{_META_KEYS}, got {type(meta).__name__}")
    missing = [k for k in _META_KEYS if k not in meta]
    if missing:
        raise ValueError(f"{meta_path} is corrupt: expected a JSON object with keys {_META_KEYS}, "
                         f"missing {missing}")

    def bad(key: str, expected: str) -> ValueError:
        return ValueError(f"{meta_path} is corrupt: {key!r} must be {expected}, got "
                          f"{_short(meta[key])}")

    if meta["format"] != _FORMAT or type(meta["version"]) is not int or meta["version"] != _VERSION:
        raise ValueError(f"{meta_path} must describe a {_FORMAT} version {_VERSION}, got "
                         f"format {_short(meta['format'])} version {_short(meta['version'])}")
    if not isinstance(meta["dtype"], str) or meta["dtype"] not in _DTYPES:
        raise bad("dtype", f"one of {sorted(_DTYPES)}")
    for key, lo in (("dim", 1), ("count", 0), ("block_rows", 1)):
        if type(meta[key]) is not int or meta[key] < lo:
            raise bad(key, f"an integer >= {lo}")
    crcs = meta["crc32"]
    if not isinstance(crcs, list) or not all(type(c) is int and 0 <= c < 2**32 for c in crcs):
        raise bad("crc32", "a list of CRC-32 values (integers in [0, 2**32))")
    blocks = -(-meta["count"] // meta["block_rows"])
    if len(crcs) != blocks:
        raise ValueError(f"{meta_path} is corrupt: {meta['count']} rows in blocks of "
                         f"{meta['block_rows']} need {blocks} checksums, found {len(crcs)}")


def dtype_name(dtype: Any) -> str:
    if dtype is not None and not isinstance(dtype, (str, torch.dtype)):  # numpy types
        try:
            dtype = np.dtype(dtype).name
        except (TypeError, ValueError):
            pass
    name = str(dtype).removeprefix("torch.") if isinstance(dtype, (str, torch.dtype)) else None
    if name not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {_short(dtype)}")
    return name

def check_create_target(path: Path, overwrite: bool) -> None:
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"cannot create a PatternStore at {path}: it is an existing "
                              "file, not a folder")
    if not path.is_dir():
        return
    names = sorted(os.listdir(path))
    ours = set(filter(_is_library_file, names))
    if DATA_FILE in names and (META_FILE in names or LOCK_FILE in names):
        ours.add(DATA_FILE)  # a data.bin alone could be anybody's
    foreign = [n for n in names if n not in ours]
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more"
                                          if len(foreign) > 5 else "")
        raise FileExistsError(
            f"cannot create a PatternStore in {path}: the folder is not empty and is not a "
            f"PatternStore (it holds {shown}); choose a new or empty folder (files the "
            "library did not write are never deleted or overwritten)")
    if META_FILE not in names:
        return  # empty, or left by a create that was interrupted before its commit
    if not overwrite:
        raise FileExistsError(f"path already holds a PatternStore: {path} "
                              "(pass overwrite=True to replace it)")
    meta_path = path / META_FILE
    try:
        ok = meta_path.is_file() and json.loads(
            meta_path.read_text(encoding="utf-8")).get("format") == _FORMAT
    except (OSError, ValueError, RecursionError, AttributeError):
        ok = False
    if not ok:
        raise FileExistsError(f"cannot overwrite {path}: its {META_FILE} is not a "
                              f"{_FORMAT}'s metadata, so it may not have been written by "
                              "this library; remove the folder yourself if it is garbage")
