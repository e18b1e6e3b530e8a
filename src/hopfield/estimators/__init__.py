"""scikit-learn estimators built on Hopfield layers.

- :class:`HopfieldMILClassifier` — multiple-instance learning (bags of instances) with
  ``HopfieldPooling`` (``hopfield.estimators.mil``).
- :class:`HopfieldClassifier` — tabular classifier for small data (``hopfield.estimators.tabular``).
- :class:`HopfieldRegressor` — the same network for a real-valued target
  (``hopfield.estimators.regressor``).
- :class:`HopularClassifier`, :class:`HopularRegressor` — Hopular (Schäfl et al. 2022) for tabular
  data (``hopfield.estimators.hopular``).

All share one base (``hopfield.estimators._base``: validation, seeding, device, training loop with
per-member early stopping, versioned save/load). They are imported lazily so that
``import hopfield.estimators`` stays cheap.
"""

from __future__ import annotations

import importlib

__all__ = ["HopfieldClassifier", "HopfieldMILClassifier", "HopfieldRegressor", "HopularClassifier",
           "HopularRegressor"]

_LAZY = {
    "HopfieldMILClassifier": "hopfield.estimators.mil",
    "HopfieldClassifier": "hopfield.estimators.tabular",
    "HopfieldRegressor": "hopfield.estimators.regressor",
    "HopularClassifier": "hopfield.estimators.hopular",
    "HopularRegressor": "hopfield.estimators.hopular",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hopfield.estimators' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
