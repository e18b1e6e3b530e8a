"""Simulated immune repertoires with implanted disease motifs (DeepRC / immuneML style).

Background sequences are CDR3-like: a length drawn from a discretised normal distribution
(mean 15, sd 2, clipped to [10, 22] amino acids, like the IMGT junction lengths of human TRB),
a conserved leading ``C`` and a trailing ``F`` (85 %) or ``W`` (15 %), and interior residues drawn
i.i.d. from an approximate CDR3 amino-acid composition (:data:`BACKGROUND_FREQUENCIES`: rich in
S, G, Y, A, T; poor in C, M, H, W).

Disease signal: ``motifs`` (k-mers; default one random 4-mer) are implanted into exactly
``max(1, round(witness_rate * n_sequences))`` sequences of every positive repertoire
("witnesses"). A witness receives one motif (drawn uniformly when there are several), written over
the interior at a uniform random position (the conserved ends are never touched), with the
noise of the DeepRC simulations (Widrich et al. 2020, appendix A):

- ``substitution_rate``: each motif position is replaced by a random amino acid with this
  probability (independently per witness);
- ``gap_rate``: with this probability one random amino acid is inserted at a random interior
  position of the motif (the motif is then one residue longer: a gapped motif).

Negative repertoires contain no implanted sequence (a background sequence may contain a motif by
chance: about 12 positions × 20⁻⁴ ≈ 0.01 % of sequences for a 4-mer, the rate of the hardest
DeepRC setting; the ``oracle`` baseline sees exactly this noise floor).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .data import ALPHABET, Repertoire, RepertoireDataset

__all__ = ["BACKGROUND_FREQUENCIES", "simulate_repertoires"]

#: Approximate amino-acid composition of CDR3 interiors (frequencies, normalised below).
BACKGROUND_FREQUENCIES = {
    "A": 0.075, "C": 0.005, "D": 0.060, "E": 0.055, "F": 0.035, "G": 0.110, "H": 0.012,
    "I": 0.020, "K": 0.020, "L": 0.050, "M": 0.008, "N": 0.045, "P": 0.040, "Q": 0.045,
    "R": 0.050, "S": 0.130, "T": 0.070, "V": 0.030, "W": 0.015, "Y": 0.125,
}
_P = np.array([BACKGROUND_FREQUENCIES[a] for a in ALPHABET])
_P = _P / _P.sum()
_C, _F, _W = (ALPHABET.index(a) + 1 for a in "CFW")


def _check_motifs(motifs, n_motifs, motif_length, rng) -> list[str]:
    if motifs is None:
        if not isinstance(n_motifs, int) or n_motifs < 1:
            raise ValueError(f"n_motifs must be an int >= 1, got {n_motifs!r}")
        if not isinstance(motif_length, int) or not 2 <= motif_length <= 8:
            raise ValueError(f"motif_length must be an int in [2, 8], got {motif_length!r}")
        out: list[str] = []
        while len(out) < n_motifs:  # distinct motifs from the uniform amino-acid distribution
            m = "".join(rng.choice(list(ALPHABET), motif_length))
            if m not in out:
                out.append(m)
        return out
    if isinstance(motifs, str):
        motifs = [motifs]
    motifs = list(motifs)
    if not motifs:
        raise ValueError("motifs must hold at least one motif, got an empty list")
    for i, m in enumerate(motifs):
        if not isinstance(m, str) or not 2 <= len(m) <= 8 or any(c not in ALPHABET for c in m):
            raise ValueError(f"motifs[{i}] must be a string of 2 to 8 of the 20 amino acids "
                             f"{ALPHABET}, got {m!r}")
    return motifs


def simulate_repertoires(n_repertoires: int, n_sequences: int | Sequence[int], witness_rate: float,
                         motifs: str | Sequence[str] | None = None, seed: int = 0, *,
                         n_motifs: int = 1, motif_length: int = 4, substitution_rate: float = 0.0,
                         gap_rate: float = 0.0, positive_fraction: float = 0.5,
                         mean_length: float = 15.0, sd_length: float = 2.0,
                         count_mean: float | None = None) -> RepertoireDataset:
    """Simulate labelled repertoires (see the module docstring for the model).

    Args:
        n_repertoires: number of repertoires (>= 2).
        n_sequences: sequences per repertoire (an int, or one int per repertoire).
        witness_rate: fraction in (0, 1] of the sequences of a positive repertoire that carry a
            motif; each positive repertoire gets ``max(1, round(witness_rate * n))`` witnesses.
        motifs: the implanted k-mers (strings of amino acids); default ``n_motifs`` random
            ``motif_length``-mers drawn with ``seed``.
        seed: everything is a deterministic function of the arguments and ``seed``.
        substitution_rate, gap_rate: motif noise (see module docstring).
        positive_fraction: share of positive repertoires (rounded; at least one of each class).
        mean_length, sd_length: CDR3 length distribution (clipped to [10, 22], and long enough
            for the motif in witnesses).
        count_mean: if given, counts (templates) are 1 + Poisson(count_mean - 1); default all 1.

    Returns a :class:`RepertoireDataset` with ``repertoires``, ``y`` (0/1), ``ids``
    (``"rep0000"``...), ``witness`` (boolean mask per repertoire) and ``motifs``.
    Example::

        ds = simulate_repertoires(20, 1000, witness_rate=0.01, seed=0)
        ds.repertoires[0].sequences(0, 3)     # ['CASSLGQGAYEQYF', ...]
        int(ds.witness[ds.y.argmax()].sum())  # 10 witnesses in each positive repertoire
    """
    if isinstance(n_repertoires, bool) or not isinstance(n_repertoires, (int, np.integer)) \
            or n_repertoires < 2:
        raise ValueError(f"n_repertoires must be an int >= 2, got {n_repertoires!r}")
    if isinstance(n_sequences, (int, np.integer)) and not isinstance(n_sequences, bool):
        sizes = np.full(n_repertoires, int(n_sequences))
    else:
        sizes = np.asarray(n_sequences)
        if sizes.shape != (n_repertoires,) or sizes.dtype.kind not in "iu":
            raise ValueError(f"n_sequences must be an int or {n_repertoires} ints, got "
                             f"{n_sequences!r}")
    if sizes.min() < 1:
        raise ValueError(f"n_sequences must be >= 1, got {int(sizes.min())}")
    if not isinstance(witness_rate, (int, float)) or not 0 < witness_rate <= 1:
        raise ValueError(f"witness_rate must be a float in (0, 1], got {witness_rate!r}")
    for name, v in (("substitution_rate", substitution_rate), ("gap_rate", gap_rate)):
        if not isinstance(v, (int, float)) or not 0 <= v <= 1:
            raise ValueError(f"{name} must be a float in [0, 1], got {v!r}")
    if not isinstance(positive_fraction, (int, float)) or not 0 < positive_fraction < 1:
        raise ValueError(f"positive_fraction must be a float in (0, 1), got {positive_fraction!r}")
    if count_mean is not None and (not isinstance(count_mean, (int, float)) or count_mean < 1):
        raise ValueError(f"count_mean must be None or a float >= 1, got {count_mean!r}")
    rng = np.random.default_rng(seed)
    motifs = _check_motifs(motifs, n_motifs, motif_length, rng)
    mcodes = [np.array([ALPHABET.index(c) + 1 for c in m], dtype=np.uint8) for m in motifs]
    n_pos = min(n_repertoires - 1, max(1, round(positive_fraction * n_repertoires)))
    y = np.zeros(n_repertoires, dtype=np.int64)
    y[rng.permutation(n_repertoires)[:n_pos]] = 1
    longest = max(len(m) for m in motifs) + (1 if gap_rate > 0 else 0)
    reps, witness = [], []
    for r in range(n_repertoires):
        n = int(sizes[r])
        lengths = np.clip(np.rint(rng.normal(mean_length, sd_length, n)), 10, 22).astype(np.int64)
        wit = np.zeros(n, dtype=bool)
        if y[r]:
            k = min(n, max(1, round(witness_rate * n)))
            wit[rng.choice(n, k, replace=False)] = True
            lengths[wit] = np.maximum(lengths[wit], longest + 4)
        total = int(lengths.sum())
        codes = (rng.choice(20, total, p=_P) + 1).astype(np.uint8)
        off = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=off[1:])
        codes[off[:-1]] = _C
        codes[off[1:] - 1] = np.where(rng.random(n) < 0.85, _F, _W)
        for i in np.flatnonzero(wit):
            m = mcodes[rng.integers(len(mcodes))].copy()
            if substitution_rate > 0:
                sub = rng.random(len(m)) < substitution_rate
                m[sub] = rng.integers(1, 21, int(sub.sum()))
            if gap_rate > 0 and rng.random() < gap_rate:
                g = int(rng.integers(1, len(m)))
                m = np.concatenate([m[:g], [rng.integers(1, 21)], m[g:]]).astype(np.uint8)
            # interior positions 1 .. L-2; the motif fits in [1, L-1-len(m)]
            start = off[i] + int(rng.integers(1, lengths[i] - len(m)))
            codes[start:start + len(m)] = m
        counts = None
        if count_mean is not None:
            counts = (1 + rng.poisson(count_mean - 1, n)).astype(np.uint32)
        reps.append(Repertoire(codes, lengths.astype(np.uint8), counts, id=f"rep{r:04d}"))
        witness.append(wit)
    return RepertoireDataset(reps, y, [rp.id for rp in reps], witness, motifs)
