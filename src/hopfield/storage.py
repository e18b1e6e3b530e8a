"""A persistent, append-only store of patterns larger than RAM.

Shape legend: N stored patterns (rows), D pattern dimension.

On disk a store is a directory::

    <path>/data.bin     raw row-major (N, D) array, little-endian float16/float32/float64
    <path>/meta.json    {"format", "version", "dim", "dtype", "count", "block_rows", "crc32": [...]}

Why raw memmap + JSON rather than safetensors: a safetensors file has its header (with the tensor
shape) in front of the data, so appending rows means rewriting the header and moving all existing
data. Raw rows + a separate metadata file can be appended in place, and the metadata is the single
point of truth that is replaced atomically.

Crash safety. ``append`` (1) writes the new rows after the last committed row of ``data.bin`` and
fsyncs it, then (2) writes ``meta.json.tmp``, fsyncs it and ``os.replace``-s it over ``meta.json``.
A crash before (2) leaves the old ``meta.json``: readers see exactly the previous rows (bytes past
``count`` are ignored and overwritten by the next append). Integrity. ``open`` checks that
``data.bin`` holds at least ``count`` rows (a truncated file raises ``ValueError`` naming the file
and the expected vs found size); CRC-32 checksums of every block of ``block_rows`` rows are kept in
the metadata and checked by :meth:`PatternStore.verify` (by default also at ``open`` for stores up
to ``VERIFY_ON_OPEN_BYTES``), so silent corruption is detected rather than returned.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

try:  # one writer at a time (advisory lock); absent on Windows
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

from ._validation import check_finite, check_positive_int, shape_str

__all__ = ["PatternStore"]

_FORMAT = "hopfield.PatternStore"
_VERSION = 1
_DTYPES = {"float16": np.float16, "float32": np.float32, "float64": np.float64}
_TORCH_DTYPES = {"float16": torch.float16, "float32": torch.float32, "float64": torch.float64}
DATA_FILE, META_FILE = "data.bin", "meta.json"
VERIFY_ON_OPEN_BYTES = 256 * 2**20  # full checksum check at open for stores up to 256 MiB
_BLOCK_BYTES = 16 * 2**20  # one CRC-32 per ~16 MiB block of rows


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _write_json_atomic(path: Path, obj: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class PatternStore:
    """Append-only on-disk (N, D) pattern matrix, read in chunks or sliced like an array.

    Use :meth:`create` or :meth:`open` (not the constructor). Rows come back as torch tensors
    (CPU, the store's dtype). Example::

        with PatternStore.create("/tmp/mem", dim=64) as st:
            st.append(np.random.randn(1000, 64))
        st = PatternStore.open("/tmp/mem")
        for start, chunk in st.iter_chunks(4096):   # chunk: (<=4096, 64) tensor
            ...
        st[10:20]                                    # (10, 64) tensor
    """

    def __init__(self, path: Path, meta: dict[str, Any], mode: str) -> None:
        self.path = path
        self.mode = mode
        self._meta = meta
        self._np_dtype = np.dtype(_DTYPES[meta["dtype"]]).newbyteorder("<")
        self._row_bytes = self._np_dtype.itemsize * int(meta["dim"])
        self._closed = False
        self._lock = None
        if mode == "r+" and fcntl is not None:
            self._lock = open(path / ".lock", "a")
            try:
                fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                self._lock.close()
                raise ValueError(f"PatternStore at {path} is already open for appending by "
                                 "another writer") from None

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(cls, path: str | os.PathLike, dim: int, dtype: str = "float32",
               *, overwrite: bool = False) -> PatternStore:
        """Create an empty store at directory ``path`` for ``dim``-dimensional patterns."""
        dim = check_positive_int(dim, "dim")
        if not isinstance(dtype, (str, torch.dtype)):  # numpy dtypes / scalar types
            try:
                dtype = np.dtype(dtype).name
            except TypeError:
                pass
        dtype = str(dtype).removeprefix("torch.")
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        path = Path(path)
        if (path / META_FILE).exists() and not overwrite:
            raise FileExistsError(f"path already holds a PatternStore: {path} "
                                  "(pass overwrite=True to replace it)")
        path.mkdir(parents=True, exist_ok=True)
        block_rows = max(1, _BLOCK_BYTES // (np.dtype(_DTYPES[dtype]).itemsize * dim))
        meta = {"format": _FORMAT, "version": _VERSION, "dim": dim, "dtype": dtype, "count": 0,
                "block_rows": block_rows, "crc32": []}
        with open(path / DATA_FILE, "wb") as f:
            f.flush()
            os.fsync(f.fileno())
        _write_json_atomic(path / META_FILE, meta)
        return cls(path, meta, "r+")

    @classmethod
    def open(cls, path: str | os.PathLike, mode: str = "r", *,
             verify: bool | None = None) -> PatternStore:
        """Open an existing store; ``mode`` is ``"r"`` (read only) or ``"r+"`` (append).

        ``verify``: check every block checksum now (``None``: only if the data is at most
        ``VERIFY_ON_OPEN_BYTES``). Sizes are always checked.
        """
        if mode not in ("r", "r+"):
            raise ValueError(f"mode must be 'r' or 'r+', got {mode!r}")
        path = Path(path)
        meta_path = path / META_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"no PatternStore at {path}: {meta_path} does not exist")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{meta_path} is corrupt: not valid JSON ({e})") from None
        cls._check_meta(meta, meta_path)
        store = cls(path, meta, mode)
        store._check_size()
        if verify or (verify is None and store.nbytes <= VERIFY_ON_OPEN_BYTES):
            store.verify()
        return store

    @staticmethod
    def _check_meta(meta: Any, meta_path: Path) -> None:
        keys = ("format", "version", "dim", "dtype", "count", "block_rows", "crc32")
        if not isinstance(meta, dict) or any(k not in meta for k in keys):
            raise ValueError(f"{meta_path} is corrupt: expected a JSON object with keys {keys}")
        if meta["format"] != _FORMAT or meta["version"] != _VERSION:
            raise ValueError(f"{meta_path} must describe a {_FORMAT} version {_VERSION}, got "
                             f"format {meta['format']!r} version {meta['version']!r}")
        ok = (meta["dtype"] in _DTYPES and isinstance(meta["dim"], int) and meta["dim"] > 0
              and isinstance(meta["count"], int) and meta["count"] >= 0
              and isinstance(meta["block_rows"], int) and meta["block_rows"] > 0
              and isinstance(meta["crc32"], list)
              and len(meta["crc32"]) == -(-meta["count"] // meta["block_rows"]))
        if not ok:
            raise ValueError(f"{meta_path} is corrupt: inconsistent dim/dtype/count/checksums")

    def _check_size(self) -> None:
        data = self.path / DATA_FILE
        if not data.is_file():
            raise ValueError(f"{data} is missing: expected {self.nbytes} bytes "
                             f"({len(self)} x {self.dim} {self._meta['dtype']})")
        found = data.stat().st_size
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

    def _read_rows(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) as a fresh (writable) array; bounded memory, no mmap residency."""
        n = stop - start
        out = np.empty((n, self.dim), dtype=self._np_dtype)
        if n == 0:
            return out
        with open(self.path / DATA_FILE, "rb") as f:
            f.seek(start * self._row_bytes)
            got = f.readinto(memoryview(out).cast("B"))
        if got != n * self._row_bytes:
            raise ValueError(f"{self.path / DATA_FILE} is truncated: expected "
                             f"{stop * self._row_bytes} bytes, found "
                             f"{start * self._row_bytes + got}")
        return out

    def iter_chunks(self, chunk_size: int = 65536, *, start: int = 0,
                    stop: int | None = None) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield ``(start, chunk)`` with ``chunk`` a (<= chunk_size, D) CPU tensor, in order.

        Each chunk is read into fresh memory, so peak memory is O(chunk_size × D) whatever N is.
        """
        self._check_open()
        chunk_size = check_positive_int(chunk_size, "chunk_size")
        stop = len(self) if stop is None else min(int(stop), len(self))
        with open(self.path / DATA_FILE, "rb") as f:
            f.seek(start * self._row_bytes)
            for s in range(start, stop, chunk_size):
                n = min(chunk_size, stop - s)
                buf = np.empty((n, self.dim), dtype=self._np_dtype)
                got = f.readinto(memoryview(buf).cast("B"))
                if got != n * self._row_bytes:
                    raise ValueError(f"{self.path / DATA_FILE} is truncated: expected "
                                     f"{(s + n) * self._row_bytes} bytes, found "
                                     f"{s * self._row_bytes + got}")
                yield s, torch.from_numpy(buf)

    def __getitem__(self, index: Any) -> torch.Tensor:
        """``store[i]`` → (D,), ``store[i:j]`` → (M, D), ``store[idx_array]`` → (M, D)."""
        self._check_open()
        n = len(self)
        if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
            i = int(index) + (n if index < 0 else 0)
            if not 0 <= i < n:
                raise IndexError(f"index {index} is out of range for a store of {n} patterns")
            return torch.from_numpy(self._read_rows(i, i + 1)[0])
        if isinstance(index, slice):
            start, stop, step = index.indices(n)
            if step == 1:
                return torch.from_numpy(self._read_rows(start, max(start, stop)))
            index = np.arange(start, stop, step)
        if isinstance(index, torch.Tensor):
            index = index.detach().cpu().numpy()
        idx = np.asarray(index)
        if idx.dtype.kind not in "iu":
            raise TypeError(f"index must be an int, a slice or an integer array, got "
                            f"{type(index).__name__} of dtype {idx.dtype}")
        idx = np.where(idx < 0, idx + n, idx)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"indices must be in [-{n}, {n}), got min {idx.min()} max {idx.max()}")
        if idx.size == 0:
            return torch.empty(*idx.shape, self.dim, dtype=self.dtype)
        mm = np.memmap(self.path / DATA_FILE, dtype=self._np_dtype, mode="r", shape=(n, self.dim))
        out = np.array(mm[idx.reshape(-1)])
        del mm
        return torch.from_numpy(out.reshape(*idx.shape, self.dim))

    def verify(self) -> None:
        """Recompute every block's CRC-32; raise ``ValueError`` naming the first bad block."""
        self._check_open()
        self._check_size()
        br = int(self._meta["block_rows"])
        for b, expected in enumerate(self._meta["crc32"]):
            start = b * br
            found = zlib.crc32(self._read_rows(start, min(start + br, len(self))))
            if found != expected:
                raise ValueError(f"{self.path / DATA_FILE} is corrupt: checksum of rows "
                                 f"[{start}, {min(start + br, len(self))}) expected {expected}, "
                                 f"found {found}")

    # ------------------------------------------------------------------ writing
    def append(self, patterns: Any) -> PatternStore:
        """Append rows (M, D) (numpy or torch; cast to the store's dtype). Returns ``self``.

        Existing rows are never rewritten. Non-finite values are rejected before anything is
        written. The new rows become visible only when the metadata is atomically replaced.
        """
        self._check_open()
        if self.mode != "r+":
            raise ValueError(f"PatternStore at {self.path} is open read-only; "
                             "use PatternStore.open(path, mode='r+') to append")
        arr = self._as_rows(patterns)
        if arr.shape[0] == 0:
            return self
        old, new_n = len(self), len(self) + arr.shape[0]
        with open(self.path / DATA_FILE, "r+b") as f:
            f.seek(old * self._row_bytes)
            f.write(memoryview(arr).cast("B"))
            f.truncate(new_n * self._row_bytes)  # drop bytes left by an interrupted append
            f.flush()
            os.fsync(f.fileno())
        meta = dict(self._meta, count=new_n, crc32=self._new_checksums(old, new_n, arr))
        self._commit(meta)
        return self

    def _as_rows(self, patterns: Any) -> np.ndarray:
        if isinstance(patterns, torch.Tensor):
            if patterns.dtype == torch.bool or patterns.is_complex():
                raise TypeError(f"patterns must be real numbers, got dtype {patterns.dtype}")
            patterns = patterns.detach().cpu()
            if patterns.dtype == torch.bfloat16:
                patterns = patterns.float()
            patterns = patterns.numpy()
        if not isinstance(patterns, np.ndarray):
            raise TypeError(f"patterns must be a numpy array or a torch tensor, got "
                            f"{type(patterns).__name__}")
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
        _write_json_atomic(self.path / META_FILE, meta)
        self._meta = meta

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Release the writer lock; further reads or appends raise ``ValueError``."""
        if self._lock is not None:
            self._lock.close()  # closing the file releases the flock
            self._lock = None
        self._closed = True

    def __del__(self) -> None:
        lock = getattr(self, "_lock", None)
        if lock is not None:
            lock.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> PatternStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
