"""Real benchmark data, read offline.

- :func:`load_mil` — multiple-instance learning sets (musk1, musk2, elephant, ucsb_breast_cancer,
  ...) from ``<data_dir>/mil/<name>.csv`` or the installed ``mil`` package
  (``hopfield.datasets.mil``).
- :func:`load_uci` — small UCI sets with fixed splits (``hopfield.datasets.uci``).
- :func:`data_dir` — the data directory (argument, ``$HOPFIELD_DATA``, ``~/.cache/hopfield``).
"""

from __future__ import annotations

import importlib

from ._paths import BUNDLED_DIR, DATA_ENV, data_dir

__all__ = ["BUNDLED_DIR", "DATA_ENV", "data_dir", "load_mil", "load_uci"]

_LAZY = {
    "load_mil": "hopfield.datasets.mil",
    "MILDataset": "hopfield.datasets.mil",
    "MIL_DATASETS": "hopfield.datasets.mil",
    "load_uci": "hopfield.datasets.uci",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hopfield.datasets' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
