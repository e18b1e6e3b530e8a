"""The classical (binary) Hopfield network: bipolar ±1 states, a symmetric weight matrix, sign
updates.

Shape legend:
    N    number of stored patterns
    L    number of queries (states) retrieved in parallel
    D    number of units (pattern dimension)

Learning rules (patterns x_μ ∈ {−1, +1}^D, weights W (D, D) with zero diagonal):

    hebbian   W = (1/D) Σ_μ x_μ x_μᵀ                          (Hopfield, 1982)
    storkey   W ← W + (1/D) (x xᵀ − x hᵀ − h xᵀ),  h_ij = Σ_{k≠i,j} w_ik x_k   (Storkey, 1997)
              applied sequentially, one pattern at a time

Dynamics (energy E(s) = −½ sᵀ W s):

    async     for i in a random permutation of the units: s_i ← sign(Σ_j w_ij s_j)
    sync      s ← sign(W s)            (all units at once; may end in a 2-cycle)

A unit whose local field is exactly 0 keeps its value. Asynchronous updates never increase the
energy, so they reach a fixed point; random ±1 patterns are recalled up to a load N/D ≈ 0.138
(Amit, Gutfreund & Sompolinsky, 1985).
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._driver import iterate
from .._validation import check_positive_int
from .base import AssociativeMemory, to_user

__all__ = ["BipolarRetrievalInfo", "ClassicalHopfield", "bipolar_out", "check_bipolar",
           "make_generator", "run_bipolar"]

_RULES = ("hebbian", "storkey")
_UPDATES = ("async", "sync")


@dataclass
class BipolarRetrievalInfo:
    """Diagnostics of a bipolar memory's ``retrieve(..., return_info=True)``.

    Attributes:
        steps: (L,) sweeps applied to each query until a sweep changed nothing (or ``max_steps``).
        converged: (L,) whether the query reached a fixed point within ``max_steps`` sweeps.
        energy: (T + 1, L) energy of each state before the first and after every sweep.
    """

    steps: torch.Tensor
    converged: torch.Tensor
    energy: torch.Tensor


def check_bipolar(x: torch.Tensor, name: str) -> torch.Tensor:
    """Raise ``ValueError`` unless every entry of ``x`` is −1 or +1."""
    bad = (x != 1) & (x != -1)
    if bool(bad.any()):
        found = torch.unique(x[bad])[:5].tolist()
        raise ValueError(f"{name} must have entries in {{-1, +1}}, got {int(bad.sum())} other "
                         f"value(s), e.g. {found}")
    return x


def check_random_state(random_state: object) -> Any:
    """None, an int, or a ``numpy.random.Generator`` / ``RandomState`` (kept by reference, as in
    scikit-learn: each ``retrieve`` draws its seed from it, so the stream advances)."""
    if random_state is None:
        return None
    if isinstance(random_state, (np.random.Generator, np.random.RandomState)):
        return random_state
    if isinstance(random_state, bool) or not isinstance(random_state, numbers.Integral):
        raise TypeError(f"random_state must be an int, a numpy.random.Generator or None, got "
                        f"{type(random_state).__name__}")
    return int(random_state)


def _renamed_steps(max_steps: object, max_iter: object) -> tuple[object, str]:
    """``(value, argument name)`` with the deprecated ``max_iter`` alias of ``max_steps`` (one
    vocabulary: retrieval iterations are ``max_steps`` in the functional core, the memories and
    the layers)."""
    if max_iter is None:
        return max_steps, "max_steps"
    warnings.warn("max_iter is deprecated and will be removed in the next release; use max_steps",
                  FutureWarning, stacklevel=3)
    return max_iter, "max_iter"


def make_generator(random_state: Any) -> torch.Generator | None:
    """A CPU generator seeded with ``random_state`` (None = torch's global RNG; a numpy
    Generator/RandomState supplies a fresh seed on every call)."""
    if random_state is None:
        return None
    if isinstance(random_state, np.random.Generator):
        return torch.Generator().manual_seed(int(random_state.integers(2**63 - 1)))
    if isinstance(random_state, np.random.RandomState):
        return torch.Generator().manual_seed(int(random_state.randint(2**31 - 1)))
    return torch.Generator().manual_seed(random_state)


def _choice(value: object, name: str, valid: tuple[str, ...]) -> str:
    if value not in valid:
        raise ValueError(f"{name} must be one of {list(valid)}, got {value!r}")
    return str(value)


def bipolar_out(s: torch.Tensor, queries: Any, as_numpy: bool, single: bool) -> Any:
    """Return states in the caller's type; numpy queries get their own dtype back (e.g. int8)."""
    s = s[0] if single else s
    if as_numpy:
        return to_user(s, True).astype(queries.dtype, copy=False)
    return s.to(queries.dtype)


def _sign_keep(field: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """sign(field), keeping ``current`` where the field is exactly 0."""
    return torch.where(field > 0, 1.0, torch.where(field < 0, -1.0, current)).to(current.dtype)


class ClassicalHopfield(AssociativeMemory):
    """Binary Hopfield network with the Hebbian or Storkey learning rule.

    Args:
        rule: ``"hebbian"`` or ``"storkey"``.
        update: ``"async"`` (units in a seeded random order, one sweep = every unit once; all
            queries share the order and run in parallel) or ``"sync"`` (s ← sign(W s)).
        max_steps: maximum number of sweeps in :meth:`retrieve` (``max_iter``: deprecated
            alias, FutureWarning).
        random_state: seed of the asynchronous update order: None (torch's global RNG), an int
            (every call of :meth:`retrieve` is reproducible) or a ``numpy.random.Generator``
            (each call draws its seed from it).

    Fitted attributes: ``patterns_`` (N, D), ``n_patterns_``, ``weights_`` (D, D), zero diagonal.

    Example:
        >>> mem = ClassicalHopfield("storkey", random_state=0).store(patterns)   # ±1, (N, D)
        >>> out = mem.retrieve(noisy)                                            # ±1, (L, D)
    """

    weights_: torch.Tensor

    def __init__(self, rule: str = "hebbian", *, update: str = "async", max_steps: int = 100,
                 random_state: Any = None, max_iter: int | None = None) -> None:
        self.rule = _choice(rule, "rule", _RULES)
        self.update = _choice(update, "update", _UPDATES)
        self.max_steps = check_positive_int(*_renamed_steps(max_steps, max_iter))
        self.random_state = check_random_state(random_state)

    @property
    def max_iter(self) -> int:
        """Deprecated alias of ``max_steps``."""
        return self.max_steps

    def _repr_params(self) -> dict[str, Any]:
        return {"rule": self.rule, "update": self.update}

    # -- learning ------------------------------------------------------------------------
    def _check_patterns(self, patterns: torch.Tensor, name: str) -> torch.Tensor:
        return check_bipolar(patterns, name)

    def _fit(self, patterns: torch.Tensor) -> None:
        d = patterns.shape[1]
        self.weights_ = torch.zeros(d, d, dtype=patterns.dtype, device=patterns.device)
        self._fit_add(patterns)

    def _fit_add(self, new: torch.Tensor) -> None:
        w, d = self.weights_, new.shape[1]
        new = new.to(w.dtype)
        if self.rule == "hebbian":
            w = w + new.mT @ new / d  # (D, D)
        else:
            for x in new:  # Storkey's rule is sequential by definition
                h = w @ x  # (D,) h_i = Σ_{k≠i} w_ik x_k (zero diagonal)
                # h_ij = h_i − w_ij x_j;  Δw_ij = (x_i x_j − x_i h_ji − h_ij x_j) / D
                hij = h[:, None] - w * x[None, :]  # (D, D)
                w = w + (torch.outer(x, x) - x[:, None] * hij.mT - hij * x[None, :]) / d
                w.fill_diagonal_(0.0)
        w.fill_diagonal_(0.0)
        self.weights_ = w

    # -- retrieval -----------------------------------------------------------------------
    def _energy(self, states: torch.Tensor) -> torch.Tensor:
        w = self.weights_
        s = states.to(w.dtype)
        return -0.5 * ((s @ w) * s).sum(-1)  # (L,)

    def retrieve(self, queries: Any, *, return_info: bool = False) -> Any:
        """Run the sign dynamics from ``queries`` (L, D) or (D,) with ±1 entries.

        Returns the final states (±1, the caller's type and shape); with ``return_info=True``
        also a :class:`BipolarRetrievalInfo`.
        """
        q, as_numpy, single = self._as_queries(queries)
        check_bipolar(q, "queries")
        s, info = self._run(q.to(self.weights_.dtype))
        s = bipolar_out(s.to(q.dtype), queries, as_numpy, single)
        return (s, info) if return_info else s

    def _run(self, s: torch.Tensor) -> tuple[torch.Tensor, BipolarRetrievalInfo]:
        w = self.weights_
        D = s.shape[1]
        gen = make_generator(self.random_state)

        def sweep(s: torch.Tensor, _: bool) -> tuple[torch.Tensor, None]:
            if self.update == "sync":
                return _sign_keep(s @ w, s), None  # W symmetric: (W s)ᵀ = sᵀ W
            s = s.clone()
            for i in torch.randperm(D, generator=gen).tolist():
                s[:, i] = _sign_keep(s @ w[:, i], s[:, i])  # (L,)
            return s, None

        return run_bipolar(sweep, s, self.max_steps, self._energy)


def run_bipolar(sweep: Any, s: torch.Tensor, max_steps: int,
                energy: Any) -> tuple[torch.Tensor, BipolarRetrievalInfo]:
    """Sweeps through the one retrieval driver (:func:`hopfield._driver.iterate`): ±1 states move
    by ≥ 2 when any unit flips, so ``tol=1`` means "the sweep changed nothing"; each query freezes
    at its own fixed point; the energy is traced before and after every sweep."""
    s, info = iterate(sweep, s, max_steps=max_steps, tol=1.0, energy=energy, need_energy=True)
    return s, BipolarRetrievalInfo(steps=info.steps, converged=info.converged, energy=info.energy)
