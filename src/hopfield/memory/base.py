"""Common API of the associative memories.

Every memory has ``store(patterns)`` (replace), ``add(patterns)`` (append), ``retrieve(queries)``,
``energy(states)`` and the fitted attributes ``patterns_`` and ``n_patterns_``. Inputs may be numpy
arrays or torch tensors; outputs come back in the caller's type (numpy in, numpy out).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .._validation import check_finite, shape_str

__all__ = ["AssociativeMemory", "NotStoredError", "from_user", "to_user"]


class NotStoredError(ValueError, AttributeError):
    """Raised when a memory is used before ``store`` (like scikit-learn's NotFittedError)."""


def from_user(x: Any, name: str, *, dtype: torch.dtype | None = None,
              device: torch.device | str | None = None,
              finite: bool = True) -> tuple[torch.Tensor, bool]:
    """Convert numpy/torch input to a tensor; returns ``(tensor, was_numpy)``.

    The finiteness check runs on the *converted* tensor, so a value that is finite in the input's
    dtype but overflows the target ``dtype`` (1e39 into float32) is rejected naming the dtype
    (``finite=False`` leaves the check to the caller).
    """
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{name} must be a numeric array, got dtype {x.dtype}")
        if finite:
            check_finite(x, name)
        t = torch.from_numpy(np.ascontiguousarray(x))
        if dtype is None and t.dtype not in (torch.float32, torch.float64):
            dtype = torch.float32 if t.dtype != torch.float64 else torch.float64
        was_numpy = True
    elif isinstance(x, torch.Tensor):
        if x.is_complex():  # bool is accepted as 0/1, like a numpy bool array
            raise TypeError(f"{name} must be a real numeric tensor, got dtype {x.dtype}")
        if finite:
            check_finite(x, name)
        if dtype is None and not torch.is_floating_point(x):
            dtype = torch.float32
        t, was_numpy = x, False
    else:
        raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(x).__name__}")
    src = t.dtype
    t = t.to(dtype=dtype or t.dtype, device=device)
    if finite and t.dtype != src and torch.is_floating_point(t):
        _check_fits(t, name, src)
    return t, was_numpy


def _check_fits(t: torch.Tensor, name: str, src: torch.dtype) -> None:
    try:
        check_finite(t, name)
    except ValueError:
        raise ValueError(f"{name} must fit the memory's dtype {t.dtype}: values that are finite "
                         f"in {src} overflow {t.dtype} (max {torch.finfo(t.dtype).max:.3g}); "
                         "store float64 patterns to keep them") from None


def to_user(x: torch.Tensor, as_numpy: bool) -> np.ndarray | torch.Tensor:
    return x.detach().cpu().numpy() if as_numpy else x


class AssociativeMemory:
    """Base class. Subclasses implement ``_store``/``_add`` hooks, ``_retrieve`` and ``_energy``.

    Patterns are kept as a (N, D) tensor ``patterns_``; queries are (L, D) or a single (D,) vector.
    """

    patterns_: torch.Tensor
    n_patterns_: int

    # -- hooks for subclasses -------------------------------------------------------------
    def _check_patterns(self, patterns: torch.Tensor, name: str) -> torch.Tensor:
        return patterns

    def _fit(self, patterns: torch.Tensor) -> None:
        """Build internal state (e.g. weight matrix) from all of ``patterns_``."""

    def _fit_add(self, new: torch.Tensor) -> None:
        """Incremental update when ``new`` was appended; default rebuilds from scratch."""
        self._fit(self.patterns_)

    def _retrieve(self, queries: torch.Tensor, **kwargs: Any) -> Any:  # pragma: no cover
        raise NotImplementedError

    def _energy(self, states: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    # -- public API -------------------------------------------------------------------------
    def _as_patterns(self, patterns: Any, name: str) -> torch.Tensor:
        t, _ = from_user(patterns, name)
        if t.dim() != 2:
            raise ValueError(f"{name} must have shape (N, D), got {shape_str(t.shape)}")
        if t.shape[0] == 0:
            raise ValueError(f"{name} must hold at least one pattern, got shape "
                             f"{shape_str(t.shape)}")
        if t.shape[1] == 0:
            raise ValueError(f"{name} must have at least one dimension, got shape "
                             f"{shape_str(t.shape)}")
        return self._check_patterns(t, name)

    def store(self, patterns: Any) -> AssociativeMemory:
        """Replace the memory's content with ``patterns`` (N, D). Returns ``self``."""
        t = self._as_patterns(patterns, "patterns")
        self.patterns_ = t
        self.n_patterns_ = int(t.shape[0])
        self._fit(t)
        return self

    def add(self, patterns: Any) -> AssociativeMemory:
        """Append ``patterns`` (M, D) to the memory (stores them if the memory is empty)."""
        if not self.is_stored:
            return self.store(patterns)
        t = self._as_patterns(patterns, "patterns")
        if t.shape[1] != self.dim_:
            raise ValueError(f"patterns must have shape (M, {self.dim_}) to match the stored "
                             f"patterns, got {shape_str(t.shape)}")
        src = t.dtype
        t = t.to(dtype=self.patterns_.dtype, device=self.patterns_.device)
        if t.dtype != src:
            _check_fits(t, "patterns", src)  # memory unchanged on error
        self.patterns_ = torch.cat([self.patterns_, t], dim=0)
        self.n_patterns_ = int(self.patterns_.shape[0])
        self._fit_add(t)
        return self

    @property
    def is_stored(self) -> bool:
        return hasattr(self, "patterns_")

    @property
    def dim_(self) -> int:
        self._check_stored()
        return int(self.patterns_.shape[1])

    def _check_stored(self) -> None:
        if not self.is_stored:
            raise NotStoredError(f"This {type(self).__name__} is empty: call store(patterns) "
                                 "before retrieve or energy")

    def _as_queries(self, queries: Any, name: str = "queries") -> tuple[torch.Tensor, bool, bool]:
        """Returns (queries (L, D) tensor, was_numpy, was_1d)."""
        self._check_stored()
        t, as_numpy = from_user(queries, name, dtype=self.patterns_.dtype,
                                device=self.patterns_.device)
        shape = t.shape
        single = t.dim() == 1
        if single:
            t = t.unsqueeze(0)
        if t.dim() != 2 or t.shape[1] != self.dim_:
            raise ValueError(f"{name} must have shape (L, {self.dim_}) or ({self.dim_},), got "
                             f"{shape_str(shape)}")
        return t, as_numpy, single

    def energy(self, states: Any) -> np.ndarray | torch.Tensor:
        """Energy of each state: (L, D) → (L,), or (D,) → scalar."""
        t, as_numpy, single = self._as_queries(states, "states")
        e = self._energy(t)
        e = e[0] if single else e
        return to_user(e, as_numpy)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self._repr_params().items())
        stored = f", n_patterns_={self.n_patterns_}" if self.is_stored else ""
        return f"{type(self).__name__}({params}{stored})"

    def _repr_params(self) -> dict[str, Any]:
        return {}
