"""Associative memories with one API: ``store``, ``add``, ``retrieve``, ``energy``."""

from __future__ import annotations

import importlib

from .base import AssociativeMemory, NotStoredError
from .modern import ModernHopfield

_LAZY = {"ClassicalHopfield": ".classical", "DenseAssociativeMemory": ".dense"}

__all__ = ["AssociativeMemory", "ClassicalHopfield", "DenseAssociativeMemory", "ModernHopfield",
           "NotStoredError"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
