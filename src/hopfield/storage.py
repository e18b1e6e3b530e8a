"""A persistent, append-only store of patterns larger than RAM.

Shape legend: N stored patterns (rows), D pattern dimension.

On disk a store is a directory::

    <path>/data.bin     raw row-major (N, D) array, little-endian float16/float32/float64
    <path>/meta.json    {"format", "version", "dim", "dtype", "count", "block_rows", "crc32": [...]}
    <path>/.lock        empty file; the writer's advisory lock (flock)

Why raw memmap + JSON rather than safetensors: a safetensors file has its header (with the tensor
shape) in front of the data, so appending rows means rewriting the header and moving all existing
data. Raw rows + a separate metadata file can be appended in place, and the metadata is the single
point of truth that is replaced atomically (through :mod:`hopfield._io`).

Crash safety. ``append`` (1) writes the new rows after the last committed row of ``data.bin`` and
fsyncs it, then (2) atomically replaces ``meta.json`` (temporary file, fsync, ``os.replace``,
fsync of the directory). A crash before (2) leaves the old ``meta.json``: readers see exactly the
previous rows (bytes past ``count`` are ignored and overwritten by the next append).

Concurrency. One writer at a time: ``open(path, "r+")`` and ``create`` take an exclusive advisory
lock on ``.lock`` *before* reading or writing anything, and ``append`` re-reads ``meta.json`` under
that lock before every write, so a writer never appends at a stale row count and never overwrites
a committed row. Readers take no lock and keep the snapshot (row count) they opened.

Integrity. ``open`` checks ``meta.json`` field by field and that ``data.bin`` holds at least
``count`` rows (a truncated file raises ``ValueError`` naming the file and the expected vs found
size); CRC-32 checksums of every block of ``block_rows`` rows are kept in the metadata and checked
by :meth:`PatternStore.verify` (by default also at ``open`` for stores up to
``VERIFY_ON_OPEN_BYTES``). Every read (chunks, slices, index arrays) checks that the rows it
returns are finite, so a NaN/inf that reached ``data.bin`` behind the library's back raises a
``ValueError`` naming the store and the row range instead of flowing into a retrieval.
"""

from __future__ import annotations

import json
import mmap
import os
import stat
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

try:  # one writer at a time (advisory lock); absent on Windows
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

from . import _io
from ._validation import check_finite, check_positive_int, shape_str

__all__ = ["PatternStore"]

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
        raise ValueError(f"{meta_path} is corrupt: expected a JSON object with keys "
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


#: rows per block of the finiteness check of read rows (256 KiB of bools at D = 64).
_CHECK_ROWS = 4096


def _rows_finite(rows: np.ndarray) -> bool:
    """``np.isfinite(rows).all()`` without a full-size temporary."""
    if rows.dtype.kind != "f" or rows.size == 0:
        return True
    flat = rows.reshape(-1, rows.shape[-1]) if rows.ndim != 2 else rows
    block = np.empty((min(_CHECK_ROWS, flat.shape[0]), flat.shape[1]), dtype=bool)
    for s in range(0, flat.shape[0], _CHECK_ROWS):
        part = flat[s:s + _CHECK_ROWS]
        out = block[:part.shape[0]]
        np.isfinite(part, out=out)
        if not out.all():
            return False
    return True


class PatternStore:
    """Append-only on-disk (N, D) pattern matrix, read in chunks or sliced like an array.

    Use :meth:`create` or :meth:`open` (not the constructor). Rows come back as torch tensors
    (CPU, the store's dtype). Example::

        with PatternStore.create(folder, dim=64) as st:
            st.append(np.random.randn(1000, 64))
        st = PatternStore.open(folder)
        for start, chunk in st.iter_chunks(4096):   # chunk: (<=4096, 64) tensor
            ...
        st[10:20]                                    # (10, 64) tensor
    """

    def __init__(self, path: Path, meta: dict[str, Any], mode: str,
                 lock: IO[str] | None = None, fd: int | None = None) -> None:
        self.path = path
        self.mode = mode
        self._meta = meta
        self._np_dtype = np.dtype(_DTYPES[meta["dtype"]]).newbyteorder("<")
        self._row_bytes = self._np_dtype.itemsize * int(meta["dim"])
        self._closed = False
        self._lock = lock
        self._fd = _open_data(path) if fd is None else fd
        self._append_mutex = threading.Lock()  # threads sharing this handle append one by one
        self._read_mutex = threading.Lock()  # only for platforms without os.preadv

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(cls, path: str | os.PathLike, dim: int, dtype: Any = "float32",
               *, overwrite: bool = False) -> PatternStore:
        """Create an empty store at directory ``path`` for ``dim``-dimensional patterns.

        ``path`` must not exist, be an empty folder, or (with ``overwrite=True``) hold a
        PatternStore and nothing else. A folder holding any other file raises
        ``FileExistsError`` naming it: the library never deletes or overwrites a file it did
        not write. The writer lock is taken before anything is written, so creating over a store
        that another process has open for appending raises ``ValueError`` and leaves it as it
        was. The returned store is open for appending (``mode="r+"``).
        """
        path = _as_path(path)
        dim = check_positive_int(dim, "dim")
        dtype = cls._dtype_name(dtype)
        if not isinstance(overwrite, bool):
            raise TypeError(f"overwrite must be a bool, got {type(overwrite).__name__}")
        cls._check_create_target(path, overwrite)  # refuse before touching anything
        path.mkdir(parents=True, exist_ok=True)
        lock = _acquire_lock(path)
        try:
            cls._check_create_target(path, overwrite)  # again, now that no writer can interfere
            block_rows = max(1, _BLOCK_BYTES // (np.dtype(_DTYPES[dtype]).itemsize * dim))
            meta = {"format": _FORMAT, "version": _VERSION, "dim": dim, "dtype": dtype,
                    "count": 0, "block_rows": block_rows, "crc32": []}
            data = path / DATA_FILE
            if data.exists() and not data.is_file():
                raise ValueError(f"cannot overwrite {path}: its {DATA_FILE} is a folder (or "
                                 "other non-file), not a PatternStore's data file")
            if not data.exists():
                _io.atomic_write_bytes(data, b"")
            _write_meta(path / META_FILE, meta)  # commit: from here on the store is empty
            if data.stat().st_size:  # an old store's rows: a new empty file takes their place
                _io.atomic_write_bytes(data, b"")  # (readers of the old store keep theirs)
        except BaseException:
            if lock is not None:
                lock.close()
            raise
        return cls(path, meta, "r+", lock)

    @staticmethod
    def _dtype_name(dtype: Any) -> str:
        if dtype is not None and not isinstance(dtype, (str, torch.dtype)):  # numpy types
            try:
                dtype = np.dtype(dtype).name
            except (TypeError, ValueError):
                pass
        name = str(dtype).removeprefix("torch.") if isinstance(dtype, (str, torch.dtype)) else None
        if name not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {_short(dtype)}")
        return name

    @staticmethod
    def _check_create_target(path: Path, overwrite: bool) -> None:
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

    @classmethod
    def open(cls, path: str | os.PathLike, mode: str = "r", *,
             verify: bool | None = None) -> PatternStore:
        """Open an existing store; ``mode`` is ``"r"`` (read only) or ``"r+"`` (append).

        ``verify``: check every block checksum now (``None``: only if the data is at most
        ``VERIFY_ON_OPEN_BYTES``). Sizes and metadata are always checked. With ``"r+"`` the
        writer lock is taken first and the metadata read under it; if another writer holds
        it, ``ValueError`` (retry later).
        """
        path = _as_path(path)
        if not isinstance(mode, str) or mode not in ("r", "r+"):
            raise ValueError(f"mode must be 'r' or 'r+', got {_short(mode)}")
        if verify is not None and not isinstance(verify, (bool, np.bool_)):
            raise TypeError(f"verify must be a bool or None, got {type(verify).__name__}")
        _meta_file(path)  # clear error before creating a lock file in a folder that is no store
        lock = _acquire_lock(path) if mode == "r+" else None
        store, fd = None, None
        try:
            # The data file before the metadata: create(overwrite=True) commits the new metadata
            # before it replaces data.bin, so a data file opened first always has the rows that
            # the metadata read next describes (or more).
            fd = _open_data(path)
            store = cls(path, _read_meta(path), mode, lock, fd)
            store._check_size()
            if verify or (verify is None and store.nbytes <= VERIFY_ON_OPEN_BYTES):
                store.verify()
        except BaseException:
            if store is not None:
                store.close()
            else:
                if lock is not None:
                    lock.close()
                if fd is not None:
                    os.close(fd)
            raise
        return store

    def _check_size(self) -> None:
        data = self.path / DATA_FILE
        if self._fd is None:
            raise ValueError(f"{data} is missing: expected {self.nbytes} bytes "
                             f"({len(self)} x {self.dim} {self._meta['dtype']})")
        st = os.fstat(self._fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{data} is corrupt: it is a folder (or other non-file), not the "
                             "store's data file")
        found = st.st_size
        if found < self.nbytes:
            raise ValueError(f"{data} is truncated: expected at least {self.nbytes} bytes "
                             f"({len(self)} x {self.dim} {self._meta['dtype']}), found {found}")

    # ------------------------------------------------------------------ properties
    def __len__(self) -> int:
        return int(self._meta["count"])

    @property
    def dim(self) -> int:
        return int(self._meta["dim"])

    @property
    def dtype(self) -> torch.dtype:
        """Element dtype of the stored rows (a ``torch.dtype``)."""
        return _TORCH_DTYPES[self._meta["dtype"]]

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self), self.dim)

    @property
    def nbytes(self) -> int:
        return len(self) * self._row_bytes

    def __repr__(self) -> str:
        state = "closed" if self._closed else self.mode
        return (f"PatternStore({str(self.path)!r}, n={len(self)}, dim={self.dim}, "
                f"dtype={self._meta['dtype']}, {state})")

    # ------------------------------------------------------------------ reading
    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"PatternStore at {self.path} is closed")

    def _check_rows_finite(self, rows: np.ndarray, start: int, stop: int,
                           index: np.ndarray | None = None) -> None:
        """Rows read from ``data.bin`` must be finite (``append`` only ever writes finite rows).

        Checked in blocks of :data:`_CHECK_ROWS` rows through one small reused bool buffer: a
        whole-chunk ``np.isfinite(rows)`` allocated a (C, D) bool temporary per chunk and made
        the streaming read of a store ~1.5-1.8x slower than the same read without a check."""
        if _rows_finite(rows):
            return
        finite = np.isfinite(rows)
        row = int(np.flatnonzero(~finite.all(axis=-1))[0])
        where = (f"row {int(index[row])}" if index is not None
                 else f"rows [{start}, {stop}) (first at row {start + row})")
        raise ValueError(f"{self.path / DATA_FILE} is corrupt: non-finite values in {where} of "
                         f"the PatternStore at {self.path}; the file was changed outside this "
                         "library (run store.verify() to check the checksums)")

    def _read_at(self, out: np.ndarray, offset: int) -> int:
        """Fill ``out`` from byte ``offset`` of the data file; returns the bytes read.

        ``os.preadv`` has no shared file position, so threads (the streaming prefetch thread)
        and forked processes (DataLoader workers) can read through one handle at once.
        """
        if self._fd is None:
            self._check_size()
        view = memoryview(out).cast("B")
        got = 0
        while got < len(view):
            if hasattr(os, "preadv"):
                n = os.preadv(self._fd, [view[got:got + 2**30]], offset + got)
            else:  # pragma: no cover - Windows
                with self._read_mutex:
                    os.lseek(self._fd, offset + got, os.SEEK_SET)
                    data = os.read(self._fd, min(len(view) - got, 2**30))
                n = len(data)
                view[got:got + n] = data
            if n == 0:
                break
            got += n
        return got

    def _read_rows(self, start: int, stop: int, *, check: bool = True) -> np.ndarray:
        """Rows [start, stop) as a fresh (writable) array; bounded memory, no mmap residency."""
        n = stop - start
        out = np.empty((n, self.dim), dtype=self._np_dtype)
        if n == 0:
            return out
        got = self._read_at(out, start * self._row_bytes)
        if got != n * self._row_bytes:
            raise ValueError(f"{self.path / DATA_FILE} is truncated: expected "
                             f"{stop * self._row_bytes} bytes, found "
                             f"{start * self._row_bytes + got}")
        if check:
            self._check_rows_finite(out, start, stop)
        return out

    def iter_chunks(self, chunk_size: int = 65536, *, start: int = 0,
                    stop: int | None = None) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield ``(start, chunk)`` with ``chunk`` a (<= chunk_size, D) CPU tensor, in order.

        Rows ``[start, stop)``; ``start``/``stop`` are non-negative ints (``stop=None``: all rows;
        both are clipped to ``len(self)``). Each chunk is read into fresh memory, so peak memory is
        O(chunk_size × D) whatever N is, and checked to be finite: a non-finite value (a file
        changed behind the library's back) raises ``ValueError`` naming the store and the rows.
        Streaming retrieval (:mod:`hopfield.streaming`, :mod:`hopfield.distributed`) reads
        through this method.
        """
        self._check_open()
        chunk_size = check_positive_int(chunk_size, "chunk_size")
        start = _check_int(start, "start")
        stop = len(self) if stop is None else _check_int(stop, "stop")
        start, stop = min(start, len(self)), min(stop, len(self))
        return self._chunks(chunk_size, start, stop)

    def _chunks(self, chunk_size: int, start: int,
                stop: int) -> Iterator[tuple[int, torch.Tensor]]:
        for s in range(start, stop, chunk_size):
            self._check_open()
            n = min(chunk_size, stop - s)
            buf = np.empty((n, self.dim), dtype=self._np_dtype)
            got = self._read_at(buf, s * self._row_bytes)
            if got != n * self._row_bytes:
                raise ValueError(f"{self.path / DATA_FILE} is truncated: expected "
                                 f"{(s + n) * self._row_bytes} bytes, found "
                                 f"{s * self._row_bytes + got}")
            self._check_rows_finite(buf, s, s + n)
            yield s, torch.from_numpy(buf)

    def __getitem__(self, index: Any) -> torch.Tensor:
        """``store[i]`` → (D,), ``store[i:j]`` → (M, D), ``store[idx_array]`` → (*idx.shape, D).

        One row index only: a tuple such as ``store[0, 1]`` raises ``TypeError`` (take the rows
        first, then index the tensor: ``store[rows][:, cols]``). Boolean masks are not accepted
        (use ``np.flatnonzero(mask)``).
        """
        self._check_open()
        n = len(self)
        if isinstance(index, tuple):
            raise TypeError(f"a PatternStore takes one row index (an int, a slice or an integer "
                            f"array), got the tuple {_short(index)}; index the rows first, then "
                            "the returned tensor: store[rows][:, cols]")
        if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
            i = int(index) + (n if index < 0 else 0)
            if not 0 <= i < n:
                raise IndexError(f"index {index} is out of range for a store of {n} patterns")
            return torch.from_numpy(self._read_rows(i, i + 1)[0])
        if isinstance(index, slice):
            try:
                start, stop, step = index.indices(n)
            except TypeError:
                raise TypeError(f"slice bounds must be ints or None, got {_short(index)}") from None
            if step == 1:
                return torch.from_numpy(self._read_rows(start, max(start, stop)))
            index = np.arange(start, stop, step)
        if isinstance(index, torch.Tensor):
            if index.layout != torch.strided or index.is_meta:
                raise TypeError(f"index must be a dense tensor with data, got layout "
                                f"{index.layout} on device {index.device}")
            index = index.detach().cpu().numpy()
        try:
            idx = np.asarray(index)
        except (TypeError, ValueError, OverflowError):
            idx = np.asarray(None)
        if idx.size == 0 and isinstance(index, (list, range)):  # st[[]]: no rows, as in numpy
            idx = idx.astype(np.int64)
        if idx.dtype.kind not in "iu":
            what = (f"dtype {idx.dtype}" if idx.dtype.kind != "O" and index is not None
                    else "an unsupported value")
            hint = " (boolean masks are not supported: use np.flatnonzero(mask))" \
                if idx.dtype.kind == "b" else ""
            raise TypeError(f"index must be an int, a slice or an integer array, got "
                            f"{type(index).__name__} of {what}{hint}")
        idx = np.where(idx < 0, idx + n, idx)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"indices must be in [-{n}, {n}), got min {idx.min()} max {idx.max()}")
        if idx.size == 0:
            return torch.empty(*idx.shape, self.dim, dtype=self.dtype)
        self._check_size()  # a map over a truncated file would die with SIGBUS
        flat = idx.reshape(-1)
        with mmap.mmap(self._fd, n * self._row_bytes, access=mmap.ACCESS_READ) as mm:
            rows = np.frombuffer(mm, dtype=self._np_dtype).reshape(n, self.dim)
            out = rows[flat]  # a copy (advanced indexing)
            del rows
        self._check_rows_finite(out, 0, n, index=flat)
        return torch.from_numpy(out.reshape(*idx.shape, self.dim))

    def verify(self) -> None:
        """Recompute every block's CRC-32; raise ``ValueError`` naming the first bad block."""
        self._check_open()
        self._check_size()
        br = int(self._meta["block_rows"])
        for b, expected in enumerate(self._meta["crc32"]):
            start = b * br
            found = zlib.crc32(self._read_rows(start, min(start + br, len(self)), check=False))
            if found != expected:
                raise ValueError(f"{self.path / DATA_FILE} is corrupt: checksum of rows "
                                 f"[{start}, {min(start + br, len(self))}) expected {expected}, "
                                 f"found {found}")

    # ------------------------------------------------------------------ writing
    def append(self, patterns: Any) -> PatternStore:
        """Append rows (M, D) (numpy or torch; cast to the store's dtype). Returns ``self``.

        Existing rows are never rewritten. Non-finite values are rejected before anything is
        written. The row count is re-read from ``meta.json`` under the writer lock first, so the
        rows always go after the last committed row. The new rows become visible only when the
        metadata is atomically replaced.
        """
        self._check_open()
        if self.mode != "r+":
            raise ValueError(f"PatternStore at {self.path} is open read-only; "
                             "use PatternStore.open(path, mode='r+') to append")
        arr = self._as_rows(patterns)
        if arr.shape[0] == 0:
            return self
        with self._append_mutex:
            self._check_open()
            self._reload_meta()
            self._write_rows(arr)
        return self

    def _write_rows(self, arr: np.ndarray) -> None:
        old, new_n = len(self), len(self) + arr.shape[0]
        with open(self.path / DATA_FILE, "r+b") as f:
            f.seek(old * self._row_bytes)
            f.write(memoryview(arr).cast("B"))
            f.truncate(new_n * self._row_bytes)  # drop bytes left by an interrupted append
            f.flush()
            os.fsync(f.fileno())
        meta = dict(self._meta, count=new_n, crc32=self._new_checksums(old, new_n, arr))
        self._commit(meta)

    def _reload_meta(self) -> None:
        """Writer: the committed metadata on disk (under the lock) becomes this handle's state."""
        meta = _read_meta(self.path)
        for key in ("dim", "dtype", "block_rows"):
            if meta[key] != self._meta[key]:
                raise ValueError(f"PatternStore at {self.path} was replaced while open for "
                                 f"appending ({key} {self._meta[key]!r} -> {meta[key]!r}); "
                                 "reopen it")
        self._meta = meta

    def _as_rows(self, patterns: Any) -> np.ndarray:
        if isinstance(patterns, torch.Tensor):  # bool is accepted as 0/1, as for numpy arrays
            if patterns.is_complex():
                raise TypeError(f"patterns must be real numbers, got dtype {patterns.dtype}")
            if patterns.layout != torch.strided or patterns.is_meta:
                raise TypeError(f"patterns must be a dense tensor with data, got layout "
                                f"{patterns.layout} on device {patterns.device}")
            patterns = patterns.detach().cpu()
            if patterns.dtype == torch.bfloat16:
                patterns = patterns.float()
            patterns = patterns.resolve_conj().resolve_neg().numpy()
        if not isinstance(patterns, np.ndarray):
            raise TypeError(f"patterns must be a numpy array or a torch tensor, got "
                            f"{type(patterns).__name__}")
        if isinstance(patterns, np.ma.MaskedArray):  # the masked entries' data would be stored
            raise TypeError("patterns must be a plain numpy array, got a masked array; fill the "
                            "masked entries first (patterns.filled(value))")
        if patterns.dtype.kind not in "biuf":
            raise TypeError(f"patterns must be a numeric array, got dtype {patterns.dtype}")
        if patterns.ndim == 1:
            patterns = patterns[None]
        if patterns.ndim != 2 or patterns.shape[1] != self.dim:
            raise ValueError(f"patterns must have shape (M, {self.dim}), got "
                             f"{shape_str(patterns.shape)}")
        check_finite(patterns, "patterns")
        with np.errstate(over="ignore"):
            arr = np.ascontiguousarray(patterns, dtype=self._np_dtype)
        bad = int((~np.isfinite(arr)).sum())
        if bad:
            raise ValueError(f"patterns must be finite in the store's dtype "
                             f"{self._meta['dtype']}, got {bad} value(s) that overflow it")
        return arr

    def _new_checksums(self, old: int, new_n: int, arr: np.ndarray) -> list[int]:
        br = int(self._meta["block_rows"])
        crcs = list(self._meta["crc32"])
        fill = old % br  # rows already in the partly filled last block
        # CRC-32 is incremental: crc32(a + b) == crc32(b, crc32(a)), so the partial block's
        # checksum continues from its committed value without re-reading it.
        crc = crcs.pop() if fill else 0
        pos = 0
        while pos < arr.shape[0]:
            take = min(br - fill, arr.shape[0] - pos)
            crc = zlib.crc32(arr[pos:pos + take], crc)
            crcs.append(crc)
            pos, fill, crc = pos + take, 0, 0
        return crcs

    def _commit(self, meta: dict[str, Any]) -> None:
        _write_meta(self.path / META_FILE, meta)
        self._meta = meta

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Release the writer lock and the data file; further reads or appends raise
        ``ValueError``."""
        self._closed = True
        if self._lock is not None:
            self._lock.close()  # closing the file releases the flock
            self._lock = None
        fd, self._fd = getattr(self, "_fd", None), None
        if fd is not None:
            os.close(fd)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> PatternStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
