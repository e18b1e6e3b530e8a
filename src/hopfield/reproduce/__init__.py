"""Reproduction of the paper's real-data results: ``hopfield reproduce [PART ...]``.

Each part is a module exposing the same contract::

    def run(out_dir: pathlib.Path, *, mode: str = "quick", seed: int = 0, data_dir=None) -> str

``run`` writes its CSV/JSON/PNG files under ``out_dir/<name>/``, caches every finished fold as JSON
under ``out_dir/<name>/folds/`` (atomic writes through :mod:`hopfield._io`; a rerun skips them, so
an interrupted ``--full`` run resumes), shows a tqdm progress bar with an ETA, and returns its
markdown section of the report. ``mode`` is ``"quick"`` or ``"full"`` (plus ``"smoke"``, a tiny
setting used by the tests).

The parts are listed in :data:`PARTS`, a registry ``name -> Part(module, description)``. Adding a
part is one line there (the CLI's ``--help`` and the tests read the registry). :data:`DEFAULT_PARTS`
is what ``hopfield reproduce`` runs without a part argument; it must stay within about 15 minutes in
quick mode on a laptop (``mil`` + ``uci`` quick: about 5.4 min on 2 CPUs).
"""

from __future__ import annotations

import importlib
import numbers
from types import ModuleType
from typing import NamedTuple

__all__ = ["DEFAULT_PARTS", "MODES", "PARTS", "Part", "check_run_args", "get_part"]


class Part(NamedTuple):
    """One reproduction part: the module implementing ``run`` and a one-line description."""

    module: str
    description: str


# name -> Part(module, one-line description of at most ~65 characters). Add a part with ONE line
# here.
PARTS: dict[str, Part] = {
    "mil": Part("hopfield.reproduce.mil", "8 MIL sets incl. Elephant, UCSB: Hopfield pooling vs 6 "
                                          "baselines."),
    "uci": Part("hopfield.reproduce.uci", "21 UCI tabular sets: HopfieldClassifier vs 9 "
                                          "baselines, ranks."),
    "ood": Part("hopfield.reproduce.ood", "OOD digits/letters/text: Hopfield energy vs 7 "
                                          "baselines."),
    "cloob": Part("hopfield.reproduce.cloob", "CLOOB vs InfoNCE/InfoLOOB/+Hopfield: stdlib "
                                              "docs<->names."),
    "deeprc": Part("hopfield.reproduce.deeprc", "Simulated immune repertoires: DeepRC vs k-mer "
                                                "LR/SVM, oracle."),
    "tabular": Part("hopfield.reproduce.tabular", "Hopular vs tuned GBDTs/RF/SVM: 21 UCI + 8 "
                                                  "mid-size sets."),
}

# What ``hopfield reproduce`` runs when no part is given (keep ``--quick`` within ~15 min).
DEFAULT_PARTS: tuple[str, ...] = ("mil", "uci")

MODES = ("smoke", "quick", "full")


def get_part(name: str) -> ModuleType:
    """The module implementing part ``name`` (a key of :data:`PARTS`)."""
    if name not in PARTS:
        raise ValueError(f"part must be one of {sorted(PARTS)}, got {name!r}")
    return importlib.import_module(PARTS[name].module)


def check_run_args(mode: object, modes: object, seed: object) -> None:
    """The shared argument check of every part's ``run``: ``mode`` one of ``modes``, ``seed`` an
    int >= 0 (numpy ints accepted, bools not)."""
    if mode not in modes:
        raise ValueError(f"mode must be one of {list(modes)}, got {mode!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
