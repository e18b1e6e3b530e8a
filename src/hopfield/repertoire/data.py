"""Immune repertoires as compact integer-coded bags of amino-acid sequences.

Shape legend: N sequences of one repertoire, L padded sequence length (``max_length``).

A :class:`Repertoire` holds its N sequences as one flat ``uint8`` array of amino-acid codes
(``codes``, the sequences concatenated), their lengths (``lengths``, ``uint8``) and their counts
(``counts``, ``uint32``: templates / duplicate_count, 1 when unknown). The arrays are plain numpy
arrays (simulated data) or read-only memory maps of a converted dataset on disk
(:func:`hopfield.repertoire.load_repertoires`), so a 300,000-sequence repertoire costs about 5 MB of
page cache and never exists as 300,000 Python strings. :meth:`Repertoire.encode` pads a slice of
sequences into an (M, L) code matrix for the model, chunk by chunk.

Codes: 0 = padding, 1..20 = ``ALPHABET`` ("ACDEFGHIKLMNPQRSTVWY"), 21 = ``X`` (the unknown token,
only when a dataset was loaded with ``unknown="token"``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["ALPHABET", "N_TOKENS", "UNKNOWN", "Repertoire", "RepertoireDataset", "as_repertoire",
           "decode", "encode_sequences"]

ALPHABET = "ACDEFGHIKLMNPQRSTVWY"
UNKNOWN = 21  # code of the unknown token "X"
N_TOKENS = 22  # padding + 20 amino acids + unknown
MAX_LENGTH = 255  # lengths are stored as uint8

#: bytes -> code translation (255 = not an amino acid); lower case is accepted
_TABLE = bytearray([255]) * 256
for _i, _a in enumerate(ALPHABET, start=1):
    _TABLE[ord(_a)] = _i
    _TABLE[ord(_a.lower())] = _i
_TABLE = bytes(_TABLE)
_CODE = {**{a: i for i, a in enumerate(ALPHABET, 1)},
         **{a.lower(): i for i, a in enumerate(ALPHABET, 1)}}
_DECODE = np.frombuffer(("-" + ALPHABET + "X").encode() + b"?" * 233, dtype="S1")


def encode_sequences(seqs: Sequence[str], *, name: str = "sequences",
                     unknown: str = "error") -> tuple[np.ndarray, np.ndarray]:
    """Encode strings to (flat uint8 codes, uint8 lengths).

    ``unknown="error"`` raises ``ValueError`` naming the first sequence with a character outside
    the 20 amino acids (and how many such sequences there are); ``"token"`` maps those characters
    to the unknown token ``X`` (code 21). Empty and over-long (> 255) sequences always raise.
    """
    if unknown not in ("error", "token"):
        raise ValueError(f"unknown must be 'error' or 'token', got {unknown!r}")
    if isinstance(seqs, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of strings, got a single {type(seqs).__name__}")
    parts, lengths, bad = [], np.empty(len(seqs), dtype=np.uint8), []
    for i, s in enumerate(seqs):
        if not isinstance(s, str):
            raise TypeError(f"{name}[{i}] must be a str, got {type(s).__name__}")
        n = len(s)
        if n == 0:
            raise ValueError(f"{name}[{i}] is an empty sequence")
        if n > MAX_LENGTH:
            raise ValueError(f"{name}[{i}] has {n} amino acids, more than the maximum {MAX_LENGTH}")
        b = s.encode("utf-8", "replace").translate(_TABLE)
        if len(b) != n or 255 in b:
            bad.append(i)
            b = bytes(_CODE.get(ch, UNKNOWN) for ch in s)
        parts.append(b)
        lengths[i] = n
    if bad and unknown == "error":
        s = seqs[bad[0]]
        ch = next(c for c in s if c not in _CODE)
        raise ValueError(f"{name}[{bad[0]}] = {s!r} contains {ch!r}, not one of the 20 amino "
                         f"acids {ALPHABET} ({len(bad)} sequence(s) affected; pass "
                         "unknown='token' to map such characters to the unknown token X)")
    return np.frombuffer(b"".join(parts), dtype=np.uint8).copy(), lengths


def decode(codes: np.ndarray) -> str:
    """Codes (1-D uint8) -> amino-acid string (padding dropped)."""
    codes = np.asarray(codes, dtype=np.uint8)
    return _DECODE[codes[codes > 0]].tobytes().decode()


class Repertoire:
    """One repertoire: N sequences (flat ``codes`` + ``lengths``) and their ``counts``.

    Build from strings with :meth:`from_sequences`; datasets from disk give memory-mapped ones.
    ``len(rep)`` is N; ``rep.sequences()`` decodes (all, or a slice) to strings.
    """

    __slots__ = ("_offsets", "codes", "counts", "id", "lengths")

    def __init__(self, codes: np.ndarray, lengths: np.ndarray, counts: np.ndarray | None = None,
                 *, id: str | None = None) -> None:
        self.codes = codes
        self.lengths = lengths
        self.counts = np.ones(len(lengths), dtype=np.uint32) if counts is None else counts
        self._offsets = None
        self.id = id

    @classmethod
    def from_sequences(cls, sequences: Sequence[str], counts: Any = None, *, id: str | None = None,
                       unknown: str = "error") -> Repertoire:
        """A repertoire from amino-acid strings (and optional non-negative integer counts)."""
        name = "sequences" if id is None else f"repertoire {id!r} sequences"
        codes, lengths = encode_sequences(list(sequences), name=name, unknown=unknown)
        if len(lengths) == 0:
            raise ValueError(f"{name} is empty: a repertoire needs at least one sequence")
        return cls(codes, lengths, None if counts is None else check_counts(counts, len(lengths),
                                                                             name), id=id)

    def __len__(self) -> int:
        return len(self.lengths)

    def __repr__(self) -> str:
        tag = "" if self.id is None else f"{self.id!r}, "
        return f"Repertoire({tag}n_sequences={len(self)})"

    @property
    def offsets(self) -> np.ndarray:
        """(N + 1,) int64 start of each sequence in ``codes`` (computed once)."""
        if self._offsets is None:
            off = np.zeros(len(self) + 1, dtype=np.int64)
            np.cumsum(self.lengths, out=off[1:])
            self._offsets = off
        return self._offsets

    @property
    def max_length(self) -> int:
        return int(self.lengths.max()) if len(self) else 0

    def encode(self, start: int = 0, stop: int | None = None, max_length: int | None = None,
               index: np.ndarray | None = None) -> np.ndarray:
        """Padded code matrix (M, L) uint8 of sequences ``[start, stop)`` (or of ``index``).

        ``L`` is ``max_length`` (default: the longest of the selected sequences). Longer sequences
        raise ``ValueError`` naming the repertoire and the sequence index.
        """
        idx = np.arange(start, len(self) if stop is None else min(stop, len(self))) \
            if index is None else np.asarray(index, dtype=np.int64)
        lens = np.asarray(self.lengths[idx], dtype=np.int64)  # (M,)
        L = int(lens.max(initial=0)) if max_length is None else int(max_length)
        if lens.size and lens.max() > L:
            j = int(idx[int(np.argmax(lens > L))])
            who = "" if self.id is None else f" of repertoire {self.id!r}"
            raise ValueError(f"sequence {j}{who} has {int(self.lengths[j])} amino acids, more than "
                             f"max_length={L}")
        if idx.size == 0:
            return np.zeros((0, L), dtype=np.uint8)
        off = self.offsets[idx]
        lo, hi = int(off.min()), int(off.max() + lens.max())
        flat = np.asarray(self.codes[lo:hi])  # one contiguous read (memmap-friendly)
        pos = np.arange(L)
        valid = pos[None, :] < lens[:, None]  # (M, L)
        gather = np.where(valid, off[:, None] - lo + pos[None, :], 0)
        out = flat[gather]
        out[~valid] = 0
        return out

    def sequences(self, start: int = 0, stop: int | None = None) -> list[str]:
        """Decoded amino-acid strings of sequences ``[start, stop)``."""
        m = self.encode(start, stop)
        return [_DECODE[row[row > 0]].tobytes().decode() for row in m]

    def iter_chunks(self, chunk_size: int, max_length: int | None = None,
                    ) -> Iterator[tuple[int, np.ndarray]]:
        """``(start, (M, L) codes)`` for consecutive chunks of at most ``chunk_size`` sequences."""
        for s in range(0, len(self), chunk_size):
            yield s, self.encode(s, s + chunk_size, max_length)


def check_counts(counts: Any, n: int, name: str) -> np.ndarray:
    """Validate per-sequence counts: non-negative integers, one per sequence -> uint32."""
    c = np.asarray(counts)
    if c.shape != (n,):
        raise ValueError(f"{name} counts must have shape ({n},) (one per sequence), got {c.shape}")
    if c.dtype.kind == "f":
        bad = ~np.isfinite(c) | (c != np.round(c))
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"{name} counts must be non-negative integers, got {c[i]!r} at {i}")
    elif c.dtype.kind not in "iub":
        raise TypeError(f"{name} counts must be integers, got dtype {c.dtype}")
    if c.size and (c.min() < 0 or c.max() > np.iinfo(np.uint32).max):
        i = int(np.argmax((c < 0) | (c > np.iinfo(np.uint32).max)))
        raise ValueError(f"{name} counts must be integers in [0, 2**32), got {c[i]!r} at {i}")
    return c.astype(np.uint32)


def as_repertoire(obj: Any, name: str) -> Repertoire:
    """Accept a :class:`Repertoire`, a list of strings or a ``(sequences, counts)`` pair."""
    if isinstance(obj, Repertoire):
        if len(obj) == 0:
            raise ValueError(f"{name} is an empty repertoire (0 sequences)")
        return obj
    if isinstance(obj, tuple) and len(obj) == 2 and not isinstance(obj[0], str):
        return Repertoire.from_sequences(obj[0], obj[1], id=name)
    if isinstance(obj, (str, bytes)) or not hasattr(obj, "__len__"):
        raise TypeError(f"{name} must be a Repertoire, a list of amino-acid strings or a "
                        f"(sequences, counts) pair, got {type(obj).__name__}")
    if len(obj) == 0:
        raise ValueError(f"{name} is an empty repertoire (0 sequences)")
    return Repertoire.from_sequences(list(obj), id=name)


def as_repertoires(X: Any, name: str = "X") -> list[Repertoire]:
    """A list of repertoires from a :class:`RepertoireDataset` or a list of repertoire-likes."""
    if isinstance(X, RepertoireDataset):
        X = X.repertoires
    if isinstance(X, (Repertoire, str, bytes)) or not hasattr(X, "__len__"):
        raise TypeError(f"{name} must be a list of repertoires (or a RepertoireDataset), got "
                        f"{type(X).__name__}")
    if len(X) == 0:
        raise ValueError(f"{name} must contain at least one repertoire, got 0")
    return [as_repertoire(r, f"{name}[{i}]") for i, r in enumerate(X)]


@dataclass
class RepertoireDataset:
    """Repertoires with labels.

    Attributes:
        repertoires: list of :class:`Repertoire` (pass as is to ``DeepRCClassifier.fit``).
        y: (n_repertoires,) labels (0/1 for simulated data; the target column when loaded).
        ids: repertoire IDs.
        witness: simulated data only: one boolean (N_i,) array per repertoire, True = the
            sequence carries an implanted motif (all False in negative repertoires).
        motifs: simulated data only: the implanted motifs (strings; ``-`` marks a gap position).
        metadata: extra columns of the metadata table (column -> list of strings), if loaded.
        path: the converted on-disk dataset, if loaded.
    """

    repertoires: list[Repertoire]
    y: np.ndarray
    ids: list[str]
    witness: list[np.ndarray] | None = None
    motifs: list[str] | None = None
    metadata: dict[str, list[str]] = field(default_factory=dict)
    path: Any = None

    def __len__(self) -> int:
        return len(self.repertoires)

    def __repr__(self) -> str:
        n = sum(len(r) for r in self.repertoires)
        return (f"RepertoireDataset(n_repertoires={len(self)}, n_sequences={n}, "
                f"classes={np.unique(self.y).tolist()})")

    def subset(self, index: Sequence[int]) -> RepertoireDataset:
        """The repertoires at ``index`` (views, nothing copied)."""
        idx = [int(i) for i in index]
        return RepertoireDataset([self.repertoires[i] for i in idx], self.y[idx],
                                 [self.ids[i] for i in idx],
                                 None if self.witness is None else [self.witness[i] for i in idx],
                                 self.motifs, {k: [v[i] for i in idx]
                                               for k, v in self.metadata.items()}, self.path)

    def write(self, path: Any, *, format: str = "deeprc", overwrite: bool = False) -> Any:
        """Write the DeepRC layout (``metadata.tsv`` + ``repertoires/<ID>.tsv`` with
        ``amino_acid``/``templates``) or AIRR TSV (``format="airr"``: ``metadata.tsv`` with
        ``repertoire_id`` + per-repertoire ``junction_aa``/``duplicate_count`` files).
        See :func:`hopfield.repertoire.write_repertoires`."""
        from .io import write_repertoires

        return write_repertoires(self, path, format=format, overwrite=overwrite)
