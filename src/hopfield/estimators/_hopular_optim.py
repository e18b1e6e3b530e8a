"""Hopular's optimiser: LAMB inside Lookahead, from the maintained ``pytorch-optimizer`` package,
imported lazily on the first ``fit``.

``pytorch_optimizer``'s package ``__init__`` imports every optimiser and, through
``pytorch_optimizer.base.compatibility``, ``transformers`` (only to look up DeepSpeed ZeRO-3 for
its LOMO optimisers) — seconds on a cold start, for a function Hopular never calls. When neither
package has been imported yet, :func:`lamb_lookahead` imports ``pytorch_optimizer`` with
``transformers`` hidden and then restores the package's own view of it: ``HAS_TRANSFORMERS`` is
set to whether ``transformers`` is installed and ``is_deepspeed_zero3_enabled`` (in the places the
package re-exports it) becomes a function that imports ``transformers``' version on its first
call. LOMO users therefore see the same answer as before, only computed later. Hiding is an
assignment to ``sys.modules`` for the duration of the import (another thread importing
``transformers`` in exactly that window would get an ImportError).
"""

from __future__ import annotations

import sys
from importlib.util import find_spec

__all__ = ["lamb_lookahead"]


def _zero3_enabled() -> bool:
    """``transformers``' ``is_deepspeed_zero3_enabled``, imported on first use."""
    try:
        from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled
    except ImportError:  # older transformers
        from transformers.deepspeed import is_deepspeed_zero3_enabled
    return bool(is_deepspeed_zero3_enabled())


def _import_without_transformers() -> None:
    if "pytorch_optimizer" in sys.modules or "transformers" in sys.modules:
        return
    has = find_spec("transformers") is not None
    sys.modules["transformers"] = None  # find_spec -> None: the package skips the import
    try:
        import pytorch_optimizer  # noqa: F401
    finally:
        if sys.modules.get("transformers", 0) is None:
            del sys.modules["transformers"]
    if not has:
        return
    # Restore the package's view wherever this version keeps it (names looked up, never assumed:
    # a layout of another pytorch-optimizer release is left as it imported itself).
    for name in ("pytorch_optimizer.base.compatibility", "pytorch_optimizer.optimizer.utils",
                 "pytorch_optimizer.optimizer.lomo", "pytorch_optimizer.optimizer",
                 "pytorch_optimizer"):
        mod = sys.modules.get(name)
        if mod is not None and hasattr(mod, "is_deepspeed_zero3_enabled"):
            mod.is_deepspeed_zero3_enabled = _zero3_enabled
        if mod is not None and hasattr(mod, "HAS_TRANSFORMERS"):
            mod.HAS_TRANSFORMERS = True


def lamb_lookahead(params, *, lr: float, weight_decay: float):
    """``Lookahead(Lamb(params, lr, weight_decay), k=5, alpha=0.8)`` (the reference code's
    setting)."""
    _import_without_transformers()
    from pytorch_optimizer import Lamb, Lookahead

    return Lookahead(Lamb(params, lr=lr, weight_decay=weight_decay), k=5, alpha=0.8)
