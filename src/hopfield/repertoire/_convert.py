"""Streaming conversion of one repertoire text file (DeepRC layout or AIRR TSV) into the
repertoire store of :mod:`hopfield.repertoire.io`: blocks of 65,536 lines, amino-acid encoding,
count parsing, and the appending ``_Writer`` (codes, lengths, counts; CRC-32 as it goes). Errors
name the file and line.
"""

from __future__ import annotations

import csv
import os
import re
import zlib
from pathlib import Path

import numpy as np

from .data import _TABLE, ALPHABET, UNKNOWN

_FILES = {"codes": ("codes.bin", np.uint8), "lengths": ("lengths.bin", np.uint8),
          "counts": ("counts.bin", np.dtype("<u4"))}
_SEQ_COLUMNS = {"deeprc": ("amino_acid", "templates"), "airr": ("junction_aa", "duplicate_count")}
_BLOCK = 65536
_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


# ----------------------------------------------------------------------------- conversion


class _Writer:
    """Appends to the three flat files of a store under construction, with running CRC-32s."""

    def __init__(self, root: Path) -> None:
        self.f = {k: open(root / name, "wb")  # noqa: SIM115 - held until close()
                  for k, (name, _) in _FILES.items()}
        self.crc = {k: 0 for k in _FILES}
        self.size = {k: 0 for k in _FILES}

    def append(self, key: str, arr: np.ndarray) -> None:
        b = np.ascontiguousarray(arr, dtype=_FILES[key][1]).tobytes()
        self.f[key].write(b)
        self.crc[key] = zlib.crc32(b, self.crc[key])
        self.size[key] += len(b)

    def close(self) -> None:
        for f in self.f.values():
            f.flush()
            os.fsync(f.fileno())
            f.close()


def _encode_block(seqs: list[str], lines: list[int], file: Path, max_length: int, unknown: str,
                  on_invalid: str, stats: dict[str, int],
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Encode one block; returns (codes, lengths, keep) with invalid sequences removed."""
    lens = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
    keep = np.ones(len(seqs), dtype=bool)

    def invalid(i: int, reason: str, msg: str) -> None:
        if on_invalid == "error":
            raise ValueError(f"{file} line {lines[i]}: {msg} (pass on_invalid='skip' to drop "
                             "invalid sequences)")
        keep[i] = False
        stats[reason] = stats.get(reason, 0) + 1

    for i in np.flatnonzero(lens == 0):
        invalid(int(i), "empty", "empty sequence")
    for i in np.flatnonzero(lens > max_length):
        invalid(int(i), "too long", f"sequence of {int(lens[i])} amino acids is longer than "
                f"max_length={max_length}")
    raw = "".join(seqs).encode("utf-8", "replace")
    if len(raw) == int(lens.sum()):  # ASCII: one translate for the whole block
        codes = np.frombuffer(raw.translate(_TABLE), dtype=np.uint8).copy()
    else:
        codes = np.array([_TABLE[ord(c)] if ord(c) < 256 else 255 for c in "".join(seqs)],
                         dtype=np.uint8)
    off = np.zeros(len(seqs) + 1, dtype=np.int64)
    np.cumsum(lens, out=off[1:])
    bad = np.flatnonzero(codes == 255)
    if bad.size:
        seq_idx = np.unique(np.searchsorted(off, bad, side="right") - 1)
        if unknown == "token":
            codes[bad] = UNKNOWN
            stats["unknown token"] = stats.get("unknown token", 0) + int(seq_idx.size)
        else:
            for i in seq_idx:
                s = seqs[i]
                ch = next(c for c in s if c not in ALPHABET and c.upper() not in ALPHABET)
                invalid(int(i), "non-amino-acid", f"{s!r} contains {ch!r}, not one of the 20 "
                        f"amino acids {ALPHABET} (or pass unknown='token')")
    if not keep.all():
        cmask = np.repeat(keep, lens)
        codes, lens = codes[cmask], lens[keep]
    return codes, lens.astype(np.uint8), keep


def _parse_counts(values: list[str], lines: list[int], file: Path, column: str) -> np.ndarray:
    try:
        c = np.array(values, dtype=np.int64)
    except (ValueError, OverflowError):
        for ln, v in zip(lines, values):
            if not _INT.fullmatch(v.strip()):
                try:
                    f = float(v)
                    ok = np.isfinite(f) and f == round(f)
                except ValueError:
                    ok = False
                if not ok:
                    raise ValueError(f"{file} line {ln}: count {v!r} in column {column!r} is not "
                                     "a non-negative integer (pass counts=False to ignore the "
                                     "column)") from None
        c = np.array([int(float(v)) for v in values], dtype=np.int64)
    bad = np.flatnonzero((c < 0) | (c > np.iinfo(np.uint32).max))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{file} line {lines[i]}: count {values[i]!r} in column {column!r} must "
                         "be a non-negative integer below 2**32")
    return c


def _convert_file(file: Path, fmt: str, w: _Writer, opts: dict, stats: dict) -> tuple[int, int]:
    """Stream one repertoire file into the writer; returns (n_sequences, n_codes)."""
    seq_col, cnt_col = _SEQ_COLUMNS[fmt]
    n_seq = n_codes = 0
    with open(file, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{file} is empty: expected a header line with column {seq_col!r}")
        header = [h.strip() for h in header]
        if seq_col not in header:
            raise ValueError(f"{file} line 1: no {seq_col!r} column (found {header})")
        si = header.index(seq_col)
        ci = header.index(cnt_col) if opts["counts"] and cnt_col in header else None
        seqs: list[str] = []
        cnts: list[str] = []
        lines: list[int] = []
        ln = 1

        def flush() -> None:
            nonlocal n_seq, n_codes
            if not seqs:
                return
            counts = _parse_counts(cnts, lines, file, cnt_col) if ci is not None else None
            codes, lens, keep = _encode_block(seqs, lines, file, opts["max_length"],
                                              opts["unknown"], opts["on_invalid"], stats)
            w.append("codes", codes)
            w.append("lengths", lens)
            w.append("counts", np.ones(len(lens), dtype=np.uint32) if counts is None
                     else counts[keep])
            n_seq += len(lens)
            n_codes += len(codes)
            seqs.clear()
            cnts.clear()
            lines.clear()

        for row in reader:
            ln += 1
            if not row:
                continue
            if len(row) != len(header):
                raise ValueError(f"{file} line {ln}: expected {len(header)} tab-separated fields, "
                                 f"found {len(row)}")
            seqs.append(row[si].strip())
            if ci is not None:
                cnts.append(row[ci].strip())
            lines.append(ln)
            if len(seqs) == _BLOCK:
                flush()
        flush()
    if n_seq == 0:
        raise ValueError(f"{file} holds no (valid) sequence: an empty repertoire")
    return n_seq, n_codes
