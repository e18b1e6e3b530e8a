"""Reproduction of the paper's real-data results: ``hopfield reproduce [mil|uci|all]``.

Each part is a module exposing the same contract::

    def run(out_dir: pathlib.Path, *, mode: str = "quick", seed: int = 0, data_dir=None) -> str

``run`` writes its CSV/JSON/PNG files under ``out_dir/<name>/``, caches every finished fold as JSON
under ``out_dir/<name>/folds/`` (atomic writes; a rerun skips them, so an interrupted ``--full`` run
resumes), shows a tqdm progress bar with an ETA, and returns its markdown section of the report.
``mode`` is ``"quick"`` or ``"full"`` (plus ``"smoke"``, a tiny setting used by the tests).

Parts: ``mil`` (:mod:`hopfield.reproduce.mil`), ``uci`` (:mod:`hopfield.reproduce.uci`).
"""

from __future__ import annotations

import importlib

__all__ = ["MODES", "PARTS", "get_part"]

PARTS = ("mil", "uci")
MODES = ("smoke", "quick", "full")


def get_part(name: str):
    """The module implementing part ``name`` (``"mil"`` or ``"uci"``)."""
    if name not in PARTS:
        raise ValueError(f"part must be one of {list(PARTS)}, got {name!r}")
    return importlib.import_module(f"{__name__}.{name}")
