"""Input validation shared by the whole package.

Every public entry point validates its inputs here, so errors read the same everywhere:
``"<argument> must be <expected>, got <found>"``. Data-dependent checks (finiteness, positivity of a
tensor ``beta``, fully masked rows) read a value back from the device — a host synchronisation on
a GPU. They are skipped while ``torch.compile`` traces (they would break the graph) and when the
user turns them off for a hot loop::

    hopfield.set_validation(False)          # globally, e.g. after checking the data once
    with hopfield.validation(False):        # or for one block
        out = layer(x)

Shape, dtype and argument checks (no device read) always run.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Iterator, Sequence

import numpy as np
import torch

__all__ = [
    "check_beta",
    "check_finite",
    "check_mask",
    "check_positive_float",
    "check_positive_int",
    "check_probability",
    "check_tensor",
    "is_compiling",
    "set_validation",
    "shape_str",
    "skip_data_checks",
    "validation",
    "validation_enabled",
]


def is_compiling() -> bool:
    """True while ``torch.compile`` / dynamo traces the code."""
    compiler = getattr(torch, "compiler", None)
    if compiler is not None and hasattr(compiler, "is_compiling"):
        return bool(compiler.is_compiling())
    return False


_VALIDATION = True


def validation_enabled() -> bool:
    """Whether data-dependent checks (finiteness, positivity, fully masked rows) run."""
    return _VALIDATION


def set_validation(enabled: bool) -> None:
    """Turn the data-dependent checks on or off for the whole process (default: on).

    Off, no public entry point reads a value back from the device for validation, so a GPU hot
    loop has no hidden host synchronisations; non-finite inputs are then the caller's
    responsibility. Shape, dtype and argument checks still run.
    """
    global _VALIDATION
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be a bool, got {type(enabled).__name__}")
    _VALIDATION = enabled


@contextlib.contextmanager
def validation(enabled: bool) -> Iterator[None]:
    """Context manager form of :func:`set_validation`; restores the previous setting on exit."""
    previous = _VALIDATION
    set_validation(enabled)
    try:
        yield
    finally:
        set_validation(previous)


def skip_data_checks() -> bool:
    """True when data-dependent checks must not run: validation is off or dynamo is tracing."""
    return not _VALIDATION or is_compiling()


def shape_str(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


def check_tensor(
    x: object,
    name: str,
    *,
    min_ndim: int | None = None,
    ndim: int | None = None,
    layout: str | None = None,
    floating: bool = True,
    finite: bool = True,
) -> torch.Tensor:
    """Check that ``x`` is a tensor of the right rank and dtype kind, with finite values.

    ``layout`` is a human description of the expected shape such as ``"(..., L, D)"``.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    what = layout or (f"{ndim}-D" if ndim is not None else f"at least {min_ndim}-D")
    if ndim is not None and x.dim() != ndim:
        raise ValueError(f"{name} must have shape {what}, got {shape_str(x.shape)}")
    if min_ndim is not None and x.dim() < min_ndim:
        raise ValueError(f"{name} must have shape {what}, got {shape_str(x.shape)}")
    if floating and not torch.is_floating_point(x):
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if finite:
        check_finite(x, name)
    return x


def check_finite(x: torch.Tensor | np.ndarray, name: str) -> None:
    """Raise ``ValueError`` if ``x`` holds NaN or infinity."""
    if isinstance(x, np.ndarray):
        if x.dtype.kind in "fc" and not np.isfinite(x).all():
            bad = int((~np.isfinite(x)).sum())
            raise ValueError(f"{name} must be finite, got {bad} NaN or infinite value(s)")
        return
    if skip_data_checks() or not torch.is_floating_point(x):
        return
    # One reduction first: a NaN or inf anywhere makes the sum non-finite. Only then (or when a
    # large finite sum overflows) run the exact element-wise check, which allocates a mask.
    if bool(torch.isfinite(x.sum())):
        return
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise ValueError(f"{name} must be finite, got {bad} NaN or infinite value(s)")


def check_beta(beta: object, name: str = "beta") -> float | torch.Tensor:
    """``beta`` must be a positive finite number or a tensor of positive finite numbers."""
    if isinstance(beta, torch.Tensor):
        if not torch.is_floating_point(beta):
            raise TypeError(f"{name} must be a float or a floating-point tensor, got dtype "
                            f"{beta.dtype}")
        if not skip_data_checks():
            b = beta.detach()
            if not bool(torch.isfinite(b).all()) or not bool((b > 0).all()):
                raise ValueError(f"{name} must be > 0 and finite, got min {float(b.min()):g}")
        return beta
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real):
        raise TypeError(f"{name} must be a float or a tensor, got {type(beta).__name__}")
    beta = float(beta)
    if not math.isfinite(beta) or beta <= 0:
        raise ValueError(f"{name} must be > 0 and finite, got {beta}")
    return beta


def check_positive_int(value: object, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_positive_float(value: object, name: str) -> float:
    """A real number > 0 (a tolerance): ``TypeError`` for other types, ``ValueError`` for ≤
    0/NaN."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a float > 0, got {type(value).__name__}")
    if not float(value) > 0:
        raise ValueError(f"{name} must be a float > 0, got {value!r}")
    return float(value)


def check_probability(value: object, name: str, *, inclusive_one: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    value = float(value)
    upper_ok = value <= 1.0 if inclusive_one else value < 1.0
    if not (0.0 <= value and upper_ok):
        interval = "[0, 1]" if inclusive_one else "[0, 1)"
        raise ValueError(f"{name} must be in {interval}, got {value}")
    return value


def check_mask(
    mask: object, name: str, *, lead: Sequence[int], L: int, N: int
) -> torch.Tensor:
    """Validate a pattern mask (True = ignore that stored pattern) and return it as (..., L, N).

    Accepted shapes: ``(..., N)`` (one row for every state) or ``(..., L, N)``, broadcastable
    against the leading dimensions ``lead`` of the states.
    """
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name} must be a bool torch.Tensor, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(f"{name} must have dtype torch.bool (True = ignore), got {mask.dtype}")
    expected = f"(..., {N}) or (..., {L}, {N}) broadcastable to leading dims {shape_str(lead)}"
    if mask.dim() == 0 or mask.shape[-1] != N:
        raise ValueError(f"{name} must have shape {expected}, got {shape_str(mask.shape)}")
    # (..., L, N) when the mask has one more dim than (..., N) would; otherwise a per-pattern mask.
    full = mask if mask.dim() >= len(lead) + 2 else mask.unsqueeze(-2)
    if full.dim() > len(lead) + 2:
        raise ValueError(f"{name} must have shape {expected}, got {shape_str(mask.shape)}")
    try:
        torch.broadcast_shapes(full.shape, (*lead, L, N))
    except RuntimeError:
        raise ValueError(
            f"{name} must have shape {expected}, got {shape_str(mask.shape)}") from None
    if not skip_data_checks() and bool(full.all(dim=-1).any()):
        raise ValueError(f"{name} hides every stored pattern for at least one state; "
                         "each state must see at least one pattern")
    return full
