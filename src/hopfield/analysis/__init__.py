"""Analysis tools: metastable states of attention heads, capacity against theory, fixed points and
energy landscapes (Ramsauer et al., 2020, "Hopfield Networks is All You Need")."""

from __future__ import annotations

import importlib

from .metastable import (
    CLASS_NAMES,
    HeadClasses,
    classify_ratio,
    head_classes,
    metastable_k,
)
from .transformer import (
    HeadReport,
    analyze_attention,
    analyze_transformer,
    load_corpus,
    minilm_path,
    read_texts,
)

# Submodules with heavier imports (matplotlib, scipy) load on first use.
_LAZY = {
    "capacity": "hopfield.analysis.capacity",
    "error_bound": "hopfield.analysis.error_bound",
    "fixed_points": "hopfield.analysis.fixed_points",
    "landscape": "hopfield.analysis.landscape",
    "plotting": "hopfield.analysis.plotting",
    "classify_fixed_points": "hopfield.analysis.fixed_points",
    "beta_sweep": "hopfield.analysis.fixed_points",
    "energy_landscape": "hopfield.analysis.landscape",
}

__all__ = [
    "CLASS_NAMES",
    "HeadClasses",
    "HeadReport",
    "analyze_attention",
    "analyze_transformer",
    "classify_ratio",
    "head_classes",
    "load_corpus",
    "metastable_k",
    "minilm_path",
    "read_texts",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        mod = importlib.import_module(_LAZY[name])
        return mod if mod.__name__.endswith(name) else getattr(mod, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
