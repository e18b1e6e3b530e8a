"""scikit-learn estimators built on Hopfield layers.

- :class:`HopfieldMILClassifier` — multiple-instance learning (bags of instances) with
  ``HopfieldPooling`` (``hopfield.estimators.mil``).
- :class:`HopfieldClassifier` — tabular classifier for small data (``hopfield.estimators.tabular``).

Both are imported lazily so that ``import hopfield.estimators`` stays cheap.
"""

from __future__ import annotations

import importlib

__all__ = ["HopfieldClassifier", "HopfieldMILClassifier"]

_LAZY = {
    "HopfieldMILClassifier": "hopfield.estimators.mil",
    "HopfieldClassifier": "hopfield.estimators.tabular",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hopfield.estimators' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
