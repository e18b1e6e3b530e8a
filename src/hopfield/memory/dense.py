"""Dense associative memories: bipolar states with a steep interaction function F.

Shape legend:
    N    number of stored patterns
    L    number of queries (states) retrieved in parallel
    D    number of units (pattern dimension)

Energy of a state σ ∈ {−1, +1}^D given stored patterns x_μ ∈ {−1, +1}^D:

    E(σ) = −Σ_μ F(x_μᵀ σ)
    polynomial    F(z) = z^n         (Krotov & Hopfield, 2016)   capacity ∝ D^(n−1)
    exponential   F(z) = exp(z)      (Demircigil et al., 2017)   capacity exponential in D

Dynamics (asynchronous, one sweep = every unit once in a seeded random order): unit i is set to the
sign that gives the lower energy with all other units fixed,

    σ_i ← sign( Σ_μ [F(a_μ + x_μi) − F(a_μ − x_μi)] ),   a_μ = x_μᵀσ − x_μi σ_i,

keeping σ_i on a tie. Every flip strictly lowers E, so the dynamics reach a fixed point.

Numerics: the polynomial difference is expanded exactly, F(a + x) − F(a − x) = 2x Σ_{k odd}
C(n, k) a^(n−k) for x = ±1 (no cancellation of large powers), in float64. The exponential
comparison is done between log Σ_μ exp(a_μ ± x_μi) (log-sum-exp), which never overflows; for the
same reason :meth:`DenseAssociativeMemory.energy` with ``interaction="exponential"`` returns
log(−E) negated, −log Σ_μ exp(x_μᵀσ), a monotone transform of E (E itself overflows float64 once
D ≳ 700).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .._validation import check_positive_int
from .base import AssociativeMemory
from .classical import (
    BipolarRetrievalInfo,
    _choice,
    _renamed_steps,
    bipolar_out,
    check_bipolar,
    check_random_state,
    make_generator,
    run_bipolar,
)

__all__ = ["DenseAssociativeMemory"]

_INTERACTIONS = ("polynomial", "exponential")
_LOG_MAX = math.log(torch.finfo(torch.float64).max) - 10.0  # headroom for sums and products
_MAX_DEGREE = int(_LOG_MAX / math.log(4.0))  # the bound below with D = 2, N = 1


class DenseAssociativeMemory(AssociativeMemory):
    """Dense associative memory (modern binary Hopfield network).

    Args:
        interaction: ``"polynomial"`` (F(z) = z^degree) or ``"exponential"`` (F(z) = exp(z)).
        degree: the power n ≥ 2 of the polynomial interaction (ignored for ``"exponential"``);
            n = 2 is the classical Hebbian network up to a constant.
        max_steps: maximum number of asynchronous sweeps in :meth:`retrieve` (``max_iter``:
            deprecated alias, FutureWarning).
        random_state: seed of the update order (None = torch's global RNG).

    There is no weight matrix: the memory keeps ``patterns_`` (N, D) and ``add`` just appends.

    Example:
        >>> mem = DenseAssociativeMemory("polynomial", degree=3, random_state=0).store(patterns)
        >>> out = mem.retrieve(noisy)                                    # ±1, (L, D)
    """

    def __init__(self, interaction: str = "polynomial", degree: int = 3, *, max_steps: int = 100,
                 random_state: Any = None, max_iter: int | None = None) -> None:
        self.interaction = _choice(interaction, "interaction", _INTERACTIONS)
        self.degree = check_positive_int(degree, "degree", minimum=2)
        if self.degree > _MAX_DEGREE:
            raise ValueError(f"degree must be <= {_MAX_DEGREE} (z^degree overflows float64 for any "
                             f"D >= 2 beyond that), got {self.degree}")
        self.max_steps = check_positive_int(*_renamed_steps(max_steps, max_iter))
        self.random_state = check_random_state(random_state)

    @property
    def max_iter(self) -> int:
        """Deprecated alias of ``max_steps``."""
        return self.max_steps

    def _repr_params(self) -> dict[str, Any]:
        if self.interaction == "exponential":
            return {"interaction": self.interaction}
        return {"interaction": self.interaction, "degree": self.degree}

    def _check_patterns(self, patterns: torch.Tensor, name: str) -> torch.Tensor:
        check_bipolar(patterns, name)
        if self.interaction == "polynomial":
            n = patterns.shape[0] + (self.n_patterns_ if self.is_stored else 0)
            d = patterns.shape[1]
            # fields and energies are bounded by N · 2^degree · D^degree (C(n, k) ≤ 2^n, |z| ≤ D)
            if math.log(n) + self.degree * math.log(2.0 * d) > _LOG_MAX:
                top = int((_LOG_MAX - math.log(n)) / math.log(2.0 * d))
                raise ValueError(f"degree must be <= {top} for {n} patterns of dimension {d} "
                                 f"(z^degree overflows float64 beyond that), got {self.degree}")
        return patterns

    # -- energy ----------------------------------------------------------------------------
    def _energy_from_overlaps(self, z: torch.Tensor) -> torch.Tensor:
        """Energy from the overlaps z = σ Xᵀ (L, N) (float64) → (L,)."""
        if self.interaction == "polynomial":
            return -(z ** self.degree).sum(-1)
        return -torch.logsumexp(z, dim=-1)

    def _energy(self, states: torch.Tensor) -> torch.Tensor:
        x = self.patterns_.to(torch.float64)
        e = self._energy_from_overlaps(states.to(torch.float64) @ x.mT)
        return e.to(states.dtype)

    # -- retrieval ---------------------------------------------------------------------------
    def retrieve(self, queries: Any, *, return_info: bool = False) -> Any:
        """Asynchronous energy descent from ``queries`` (L, D) or (D,) with ±1 entries.

        Returns the final states (±1, the caller's type and shape); with ``return_info=True``
        also a :class:`hopfield.memory.classical.BipolarRetrievalInfo` (energies in float64).
        """
        q, as_numpy, single = self._as_queries(queries)
        check_bipolar(q, "queries")
        s, info = self._run(q.to(torch.float64))
        s = bipolar_out(s.to(q.dtype), queries, as_numpy, single)
        return (s, info) if return_info else s

    def _field(self, a: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        """Σ_μ [F(a_μ + x_μi) − F(a_μ − x_μi)] up to a positive factor, for a (L, N), xi (N,)."""
        if self.interaction == "exponential":
            return torch.logsumexp(a + xi, dim=-1) - torch.logsumexp(a - xi, dim=-1)
        n = self.degree
        # g(a) = Σ_{k odd} C(n, k) a^(n−k): F(a + x) − F(a − x) = 2 x g(a) for x = ±1
        g = torch.zeros_like(a)
        for k in range(1, n + 1, 2):
            g = g + float(math.comb(n, k)) * a ** (n - k)
        return g @ xi  # (L,)

    def _run(self, s: torch.Tensor) -> tuple[torch.Tensor, BipolarRetrievalInfo]:
        x = self.patterns_.to(device=s.device, dtype=torch.float64)  # (N, D)
        D = s.shape[1]
        gen = make_generator(self.random_state)

        def sweep(s: torch.Tensor, need_energy: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
            s = s.clone()
            z = s @ x.mT  # (L, N) overlaps x_μᵀσ (exact: ±1 entries in float64), kept up to date
            e = self._energy_from_overlaps(z) if need_energy else None
            for i in torch.randperm(D, generator=gen).tolist():
                xi, si = x[:, i], s[:, i]  # (N,), (L,)
                a = z - si[:, None] * xi[None, :]  # (L, N) overlaps without unit i
                field = self._field(a, xi)  # (L,)
                new = torch.where(field > 0, 1.0, torch.where(field < 0, -1.0, si))
                z = a + new[:, None] * xi[None, :]
                s[:, i] = new
            return s, e

        return run_bipolar(sweep, s, self.max_steps,
                           lambda s: self._energy_from_overlaps(s @ x.mT))
