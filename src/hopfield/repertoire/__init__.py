"""Immune-repertoire classification (DeepRC): data, the Hopfield-pooling classifier, baselines.

- :func:`simulate_repertoires` — CDR3-like repertoires with implanted motifs and the ground truth.
- :func:`load_repertoires` / :func:`write_repertoires` — DeepRC layout and AIRR TSV, converted once
  to a compact memory-mapped store.
- :class:`DeepRCClassifier` — 1-D CNN sequence embedding -> multi-head ``HopfieldPooling`` over
  every sequence of a repertoire -> output network (Widrich et al. 2020).
- :class:`KmerClassifier`, :class:`MotifOracle` — the baselines of ``hopfield reproduce deeprc``.

See docs/deeprc.md.
"""

from __future__ import annotations

import importlib

from .data import ALPHABET, Repertoire, RepertoireDataset
from .io import load_repertoires, write_repertoires
from .simulate import simulate_repertoires

__all__ = ["ALPHABET", "DeepRCClassifier", "KmerClassifier", "MotifOracle", "Repertoire",
           "RepertoireDataset", "kmer_counts", "load_repertoires", "simulate_repertoires",
           "write_repertoires"]

_LAZY = {"DeepRCClassifier": ".model", "KmerClassifier": ".baselines",
         "MotifOracle": ".baselines", "kmer_counts": ".baselines"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'hopfield.repertoire' has no attribute {name!r}")
