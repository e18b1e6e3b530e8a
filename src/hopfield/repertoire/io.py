"""Reading and writing repertoire datasets: DeepRC layout, AIRR TSV, and the converted store.

Input formats (detected from the header of the first repertoire file):

- **DeepRC layout**: ``<path>/metadata.tsv`` with an ``ID`` column and target column(s);
  ``<path>/repertoires/<ID>.tsv`` with columns ``amino_acid`` and (optional) ``templates``.
- **AIRR TSV**: a metadata table (``metadata.tsv`` or ``metadata.csv``) with a ``repertoire_id``
  (or ``filename``) column and target column(s); one AIRR rearrangement file per repertoire
  (``<id>.tsv``, in ``repertoires/`` or beside the metadata) with ``junction_aa`` and (optional)
  ``duplicate_count``.

:func:`load_repertoires` converts the text files once, streaming (one block of 65,536 lines in
memory at a time), into a compact store::

    <cache>/codes.bin     uint8 amino-acid codes of all sequences, concatenated
    <cache>/lengths.bin   uint8 length of every sequence
    <cache>/counts.bin    uint32 little-endian count of every sequence (1 without a count column)
    <cache>/meta.json     ids, targets, per-repertoire extents, sizes and CRC-32 checksums

about 20 bytes per CDR3 sequence, read back through memory maps. The store is built in a
temporary sibling directory and renamed into place only when complete, so an interrupted
conversion (Ctrl-C, a crash) never leaves a half-written dataset: the next call starts the
conversion again from scratch (the leftover temporary directory of a killed process is removed).
A store whose recorded fingerprint (file names, sizes, modification times and the options) no
longer matches the source is rebuilt.

Bad input raises ``ValueError`` naming the file and line: characters outside the 20 amino acids,
empty sequences, sequences longer than ``max_length``, negative / non-integer / empty counts,
metadata IDs without a repertoire file, repertoire files without metadata, empty repertoires and
target columns mixing types (e.g. ``1`` and ``yes``). ``on_invalid="skip"`` drops invalid
sequences instead (a ``UserWarning`` gives the count per reason); ``unknown="token"`` maps
non-amino-acid characters to the unknown token ``X`` (counted in a warning).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import tempfile
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write_json, replace_dir
from ._convert import _BLOCK, _FILES, _FLOAT, _INT, _SEQ_COLUMNS, _convert_file, _Writer
from .data import MAX_LENGTH, Repertoire, RepertoireDataset, decode

__all__ = ["load_repertoires", "write_repertoires"]

_FORMAT, _VERSION = "hopfield.RepertoireStore", 1
_ID_COLUMNS = ("ID", "repertoire_id", "filename")
_MARKER = ".hopfield-repertoires"  # marks directories written by this module

VERIFY_ON_OPEN_BYTES = 256 * 2**20  # full checksum check at open up to 256 MiB (as PatternStore)

csv.field_size_limit(2**24)

# ----------------------------------------------------------------------------- writing


def write_repertoires(dataset: RepertoireDataset, path: Any, *, format: str = "deeprc",
                      overwrite: bool = False) -> Path:
    """Write ``dataset`` as text in the DeepRC layout (default) or as AIRR TSV; returns the path.

    Written atomically (a temporary sibling directory renamed into place). An existing ``path``
    is replaced only with ``overwrite=True`` and only if this function wrote it.
    """
    if format not in _SEQ_COLUMNS:
        raise ValueError(f"format must be one of {list(_SEQ_COLUMNS)}, got {format!r}")
    path = Path(path)
    if path.exists():
        if not overwrite:
            raise FileExistsError(f"{path} already exists (pass overwrite=True to replace a "
                                  "dataset written by write_repertoires)")
        if not (path / _MARKER).is_file():
            raise ValueError(f"refusing to overwrite {path}: it was not written by "
                             "write_repertoires (no marker file)")
    seq_col, cnt_col = _SEQ_COLUMNS[format]
    id_col = "ID" if format == "deeprc" else "repertoire_id"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        (tmp / "repertoires").mkdir()
        extra = list(dataset.metadata)
        rows = ["\t".join([id_col, "label", *extra])]
        for i, (rid, rep) in enumerate(zip(dataset.ids, dataset.repertoires)):
            rows.append("\t".join([str(rid), str(dataset.y[i]),
                                   *(str(dataset.metadata[c][i]) for c in extra)]))
            with open(tmp / "repertoires" / f"{rid}.tsv", "w", encoding="utf-8") as f:
                f.write(f"{seq_col}\t{cnt_col}\n")
                for s, chunk in rep.iter_chunks(_BLOCK):
                    counts = np.asarray(rep.counts[s:s + len(chunk)])
                    f.write("".join(f"{decode(row)}\t{c}\n" for row, c in zip(chunk, counts)))
        (tmp / "metadata.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
        (tmp / _MARKER).write_text(format + "\n", encoding="utf-8")
        _replace_dir(tmp, path, _DATASET_FILES)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


_DATASET_FILES = ("repertoires", "metadata.tsv", _MARKER, ".hopfield-encoded")
_STORE_FILES = (*(name for name, _ in _FILES.values()), "meta.json", _MARKER)


def _replace_dir(tmp: Path, path: Path, owned: tuple[str, ...]) -> None:
    """Move the finished directory ``tmp`` to ``path``; an existing ``path`` may hold only the
    ``owned`` names (files a user added make it raise, nothing moved:
    :func:`hopfield._io.replace_dir`)."""
    replace_dir(tmp, path, owned=owned)


# ----------------------------------------------------------------------------- metadata


def _read_table(file: Path) -> tuple[list[str], list[list[str]]]:
    delim = "," if file.suffix.lower() == ".csv" else "\t"
    with open(file, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter=delim))
    if not rows or not any(h.strip() for h in rows[0]):
        raise ValueError(f"{file} is empty: expected a header line with an ID column")
    header = [h.strip() for h in rows[0]]
    body = []
    for ln, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise ValueError(f"{file} line {ln}: expected {len(header)} fields, found {len(row)}")
        body.append((ln, [c.strip() for c in row]))
    return header, body


def _kind(v: str) -> str:
    if _INT.fullmatch(v):
        return "int"
    if v.lower() in ("true", "false"):
        return "bool"
    if _FLOAT.fullmatch(v):
        return "float"
    return "str"


def _parse_targets(file: Path, column: str, lines: list[int], values: list[str]) -> np.ndarray:
    kinds = []
    for ln, v in zip(lines, values):
        if v == "":
            raise ValueError(f"{file} line {ln}: empty value in target column {column!r}")
        kinds.append(_kind(v))
    first = kinds[0]
    for ln, v, k in zip(lines, values, kinds):
        if k != first and {k, first} != {"int", "float"}:
            raise ValueError(f"{file} line {ln}: target column {column!r} mixes types: {v!r} "
                             f"({k}) after {values[0]!r} ({first}) on line {lines[0]}")
    kinds_set = set(kinds)
    if kinds_set == {"int"}:
        return np.array([int(v) for v in values], dtype=np.int64)
    if kinds_set <= {"int", "float"}:
        return np.array([float(v) for v in values], dtype=np.float64)
    if kinds_set == {"bool"}:
        return np.array([v.lower() == "true" for v in values], dtype=np.int64)
    return np.array(values, dtype=object)


def _find_metadata(path: Path, metadata: Any) -> Path:
    if metadata is not None:
        m = Path(metadata)
        m = m if m.is_absolute() or m.exists() else path / m
        if not m.is_file():
            raise FileNotFoundError(f"metadata file {m} does not exist")
        return m
    for name in ("metadata.tsv", "metadata.csv"):
        if (path / name).is_file():
            return path / name
    raise FileNotFoundError(f"no metadata table in {path}: expected metadata.tsv or metadata.csv "
                            "(or pass metadata=...)")


def _repertoire_dir(path: Path) -> Path:
    return path / "repertoires" if (path / "repertoires").is_dir() else path


def _locate(path: Path, meta_file: Path, ln: int, rid: str) -> Path:
    rdir = _repertoire_dir(path)
    cands = [rdir / rid, rdir / f"{rid}.tsv"] if not rid.endswith(".tsv") else [rdir / rid]
    for c in cands:
        if c.is_file():
            return c
    raise ValueError(f"{meta_file} line {ln}: repertoire {rid!r} has no file (looked for "
                     f"{', '.join(str(c) for c in cands)})")


def _fingerprint(meta_file: Path, files: list[Path], opts: dict) -> str:
    h = hashlib.sha256(json.dumps(opts, sort_keys=True).encode())
    for f in [meta_file, *files]:
        st = f.stat()
        h.update(f"{f.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _clean_stale(cache: Path) -> None:
    """Remove temporary directories of conversions whose process is gone (killed mid-way)."""
    for d in cache.parent.glob(f".{cache.name}.tmp-*"):
        if not (d / _MARKER).is_file():
            continue  # not ours
        try:
            pid = int((d / _MARKER).read_text().split()[0])
            os.kill(pid, 0)  # still running: leave it alone
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except (ValueError, IndexError, PermissionError, OSError):
            continue


def load_repertoires(path: Any, *, target: str | None = None, metadata: Any = None,
                     cache_dir: Any = None, max_length: int = 64, counts: bool = True,
                     on_invalid: str = "error", unknown: str = "error",
                     strict: bool = True, progress: bool = False) -> RepertoireDataset:
    """Load a DeepRC-layout or AIRR-TSV dataset (see the module docstring), converting it once.

    Args:
        path: the dataset directory (holding the metadata table and the repertoire files).
        target: the label column of the metadata (default: the only column besides the ID).
        metadata: metadata table (default ``metadata.tsv`` / ``metadata.csv`` in ``path``).
        cache_dir: where the converted store goes (default ``<path>/.hopfield-encoded``).
        max_length: longest accepted sequence (amino acids, <= 255).
        counts: read the count column (``templates`` / ``duplicate_count``); without the column,
            or with ``counts=False``, every sequence counts 1.
        on_invalid: ``"error"`` (default) or ``"skip"`` for empty, too long and (unless
            ``unknown="token"``) non-amino-acid sequences.
        unknown: ``"error"`` or ``"token"`` (map non-amino-acid characters to ``X``).
        strict: repertoire files that no metadata row names are an error (else ignored).
        progress: show a tqdm bar over the files during a conversion.

    Returns a :class:`RepertoireDataset` whose repertoires are memory-mapped.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"repertoire dataset directory {path} does not exist")
    if on_invalid not in ("error", "skip"):
        raise ValueError(f"on_invalid must be 'error' or 'skip', got {on_invalid!r}")
    if unknown not in ("error", "token"):
        raise ValueError(f"unknown must be 'error' or 'token', got {unknown!r}")
    if isinstance(max_length, bool) or not isinstance(max_length, int) \
            or not 1 <= max_length <= MAX_LENGTH:
        raise ValueError(f"max_length must be an int in [1, {MAX_LENGTH}], got {max_length!r}")
    meta_file = _find_metadata(path, metadata)
    header, body = _read_table(meta_file)
    if not body:
        raise ValueError(f"{meta_file} lists no repertoire (only a header)")
    id_col = next((c for c in _ID_COLUMNS if c in header), None)
    if id_col is None:
        raise ValueError(f"{meta_file} line 1: no ID column (expected one of {list(_ID_COLUMNS)}, "
                         f"found {header})")
    others = [c for c in header if c not in _ID_COLUMNS]
    if target is None:
        if len(others) != 1:
            raise ValueError(f"{meta_file}: cannot tell the target column among {others}; pass "
                             "target=<column>")
        target = others[0]
    elif target not in header:
        raise ValueError(f"target column {target!r} is not in {meta_file} (columns: {header})")
    ii, ti = header.index(id_col), header.index(target)
    ids, lines = [r[ii] for _, r in body], [ln for ln, _ in body]
    seen: dict[str, int] = {}
    for ln, rid in zip(lines, ids):
        if rid == "":
            raise ValueError(f"{meta_file} line {ln}: empty {id_col}")
        if rid in seen:
            raise ValueError(f"{meta_file} line {ln}: repertoire {rid!r} is listed twice "
                             f"(first on line {seen[rid]})")
        seen[rid] = ln
    y = _parse_targets(meta_file, target, lines, [r[ti] for _, r in body])
    files = [_locate(path, meta_file, ln, rid) for ln, rid in zip(lines, ids)]
    if strict:
        rdir = _repertoire_dir(path)
        named = {f.resolve() for f in files}
        for f in sorted(rdir.glob("*.tsv")):
            if f.resolve() not in named and f.resolve() != meta_file.resolve():
                raise ValueError(f"{f} is a repertoire file without a row in {meta_file} (add "
                                 "it to the metadata, remove it, or pass strict=False)")
    with open(files[0], encoding="utf-8", errors="replace") as f:
        first = f.readline().rstrip("\r\n").split("\t")
    fmt = next((k for k, (s, _) in _SEQ_COLUMNS.items() if s in first), None)
    if fmt is None:
        raise ValueError(f"{files[0]} line 1: expected an 'amino_acid' (DeepRC) or 'junction_aa' "
                         f"(AIRR) column, found {first}")
    opts = {"format": fmt, "target": target, "max_length": max_length, "counts": bool(counts),
            "on_invalid": on_invalid, "unknown": unknown, "id_column": id_col}
    finger = _fingerprint(meta_file, files, opts)
    cache = Path(cache_dir) if cache_dir is not None else path / ".hopfield-encoded"
    meta_extra = {c: [r[header.index(c)] for _, r in body] for c in others if c != target}
    if not _is_current(cache, finger):
        _convert(cache, files, fmt, opts, finger, ids, progress)
    return _open(cache, ids, y, meta_extra)


def _is_current(cache: Path, finger: str) -> bool:
    try:
        meta = json.loads((cache / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("format") == _FORMAT \
        and meta.get("version") == _VERSION and meta.get("fingerprint") == finger


def _convert(cache: Path, files: list[Path], fmt: str, opts: dict, finger: str, ids: list[str],
             progress: bool) -> None:
    if cache.exists() and not (cache / _MARKER).is_file():
        raise ValueError(f"cache_dir {cache} exists and was not written by load_repertoires; "
                         "choose another cache_dir")
    cache.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale(cache)
    tmp = Path(tempfile.mkdtemp(prefix=f".{cache.name}.tmp-", dir=cache.parent))
    try:
        (tmp / _MARKER).write_text(f"{os.getpid()}\n", encoding="utf-8")
        w = _Writer(tmp)
        extents, stats = [], {}
        it = files
        if progress:
            from tqdm.auto import tqdm
            it = tqdm(files, desc="converting repertoires", unit="file")
        try:
            for file in it:
                s0, c0 = w.size["lengths"], w.size["codes"]
                n, _ = _convert_file(file, fmt, w, opts, stats)
                extents.append([s0, n, c0])
        finally:
            w.close()
        if stats:
            warnings.warn("repertoire conversion: "
                          f"{', '.join(f'{v} {k}' for k, v in stats.items())} sequence(s) "
                          f"{'mapped' if set(stats) == {'unknown token'} else 'skipped'} "
                          f"(on_invalid={opts['on_invalid']!r}, unknown={opts['unknown']!r})",
                          UserWarning, stacklevel=3)
        meta = {"format": _FORMAT, "version": _VERSION, "fingerprint": finger, "options": opts,
                "ids": ids, "extents": extents, "sizes": w.size, "crc32": w.crc, "skipped": stats}
        atomic_write_json(tmp / "meta.json", meta)
        _replace_dir(tmp, cache, _STORE_FILES)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _open(cache: Path, ids: list[str], y: np.ndarray, extra: dict) -> RepertoireDataset:
    meta_path = cache / "meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("ids") != ids:
        raise ValueError(f"{meta_path} does not match the metadata table (ids differ)")
    arrays = {}
    total = sum(meta["sizes"].values())
    for key, (name, dt) in _FILES.items():
        f = cache / name
        size = meta["sizes"][key]
        if not f.is_file() or f.stat().st_size != size:
            found = f.stat().st_size if f.is_file() else "no file"
            raise ValueError(f"{f} is truncated or altered: expected {size} bytes, found {found}")
        if total <= VERIFY_ON_OPEN_BYTES:
            crc = 0
            with open(f, "rb") as fh:
                while block := fh.read(16 * 2**20):
                    crc = zlib.crc32(block, crc)
            if crc != meta["crc32"][key]:
                raise ValueError(f"{f} is corrupt: CRC-32 {crc} != recorded {meta['crc32'][key]}")
        arrays[key] = np.memmap(f, dtype=dt, mode="r") if size else np.zeros(0, dt)
    reps = []
    for rid, (s0, n, c0) in zip(ids, meta["extents"]):
        lengths = arrays["lengths"][s0:s0 + n]
        n_codes = int(np.asarray(lengths, dtype=np.int64).sum())
        reps.append(Repertoire(arrays["codes"][c0:c0 + n_codes], lengths,
                               arrays["counts"][s0:s0 + n], id=rid))
    return RepertoireDataset(reps, y, list(ids), metadata=extra, path=cache)
