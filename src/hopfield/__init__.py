"""hopfield: modern Hopfield networks — associative memories, PyTorch layers, streaming and
distributed retrieval, and analysis tools (Ramsauer et al., 2020, "Hopfield Networks is All You
Need").
"""

from __future__ import annotations

import importlib

from . import functional, separations
from ._validation import set_validation, validation, validation_enabled
from .functional import RetrievalInfo
from .separations import available_separations, get_separation, register_separation

__version__ = "0.1.0"

# Public names re-exported lazily from their modules (keeps `import hopfield` fast and lets each
# part of the package be imported on its own).
_LAZY = {
    "ClassicalHopfield": "hopfield.memory",
    "DenseAssociativeMemory": "hopfield.memory",
    "ModernHopfield": "hopfield.memory",
    "Hopfield": "hopfield.nn",
    "HopfieldPooling": "hopfield.nn",
    "HopfieldLayer": "hopfield.nn",
    "HopfieldInfo": "hopfield.nn",
    "HopfieldEncoderLayer": "hopfield.nn.transformer",
    "HopfieldDecoderLayer": "hopfield.nn.transformer",
    "PatternStore": "hopfield.storage",
}

__all__ = [
    "RetrievalInfo",
    "available_separations",
    "functional",
    "get_separation",
    "register_separation",
    "separations",
    "set_validation",
    "validation",
    "validation_enabled",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hopfield' has no attribute {name!r}")
