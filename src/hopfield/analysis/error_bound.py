"""Theorem 5 of Ramsauer et al. (2020): the one-step retrieval error is exponentially small.

For stored patterns X = (x_1, ..., x_N), M = max_j ‖x_j‖, separation
Δ_i = x_iᵀx_i − max_{j≠i} x_iᵀx_j, a state ξ near x_i and the fixed point x_i* near x_i, one update
f(ξ) = X softmax(β Xᵀ ξ) obeys

    ‖f(ξ) − x_i‖ ≤ 2 (N − 1) M exp(−β (Δ_i − 2 M max{‖ξ − x_i‖, ‖x_i* − x_i‖}))

Why it holds for every ξ (the short proof this module relies on):
f(ξ) − x_i = Σ_{j≠i} p_j (x_j − x_i), so ‖f(ξ) − x_i‖ ≤ 2M (1 − p_i) ≤ 2M Σ_{j≠i} exp(β (x_j − x_i)ᵀ
ξ), and (x_j − x_i)ᵀ ξ = x_jᵀx_i − x_iᵀx_i + (x_j − x_i)ᵀ(ξ − x_i) ≤ −Δ_i + 2M ‖ξ − x_i‖.

:func:`one_step_error` measures the left side and evaluates the right side for every pattern.
Here x_i* is found by iterating the update from x_i (:func:`hopfield.functional.retrieve`).

Shape legend: N stored patterns, D dimension.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from .. import functional as HF
from .._validation import check_beta, check_positive_int, check_tensor

__all__ = ["ErrorBoundResult", "one_step_error", "sphere_patterns", "theorem5_bound",
           "theorem5_study"]


def sphere_patterns(n: int, d: int, radius: float, gen: torch.Generator) -> torch.Tensor:
    """(n, d) float64 patterns drawn uniformly on the sphere of the given radius."""
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    return radius * x / x.norm(dim=-1, keepdim=True)


def theorem5_bound(patterns: torch.Tensor, beta: float, dist: torch.Tensor) -> torch.Tensor:
    """Right side of Theorem 5 per pattern, dist_i = max{‖ξ−x_i‖, ‖x_i*−x_i‖}: (N,) → (N,)."""
    n = patterns.shape[0]
    m = patterns.norm(dim=-1).max()
    delta = HF.separation_margin(patterns)  # (N,)
    return 2.0 * (n - 1) * m * torch.exp(-beta * (delta - 2.0 * m * dist))


@dataclass
class ErrorBoundResult:
    """Measured one-step error vs Theorem 5's bound for each β (lists over ``betas``)."""

    betas: list[float]
    error_median: list[float]
    error_max: list[float]
    bound_median: list[float]
    bound_holds: list[float]  # fraction of patterns with error ≤ bound (1.0 = always)
    n_patterns: int
    dim: int
    radius: float
    perturbation: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def one_step_error(
    patterns: torch.Tensor,
    betas: Sequence[float],
    perturbation: float,
    *,
    seed: int = 0,
) -> ErrorBoundResult:
    """For each β: start at ξ_i = x_i + e_i (‖e_i‖ = ``perturbation``, random direction), do one
    update, measure ‖f(ξ_i) − x_i‖ and evaluate Theorem 5's bound for every pattern i.

    Args:
        patterns: (N, D) stored patterns, N ≥ 2.
        betas: inverse temperatures to sweep.
        perturbation: distance of the start states from their patterns (≥ 0).
    """
    check_tensor(patterns, "patterns", ndim=2, layout="(N, D)")
    if patterns.shape[0] < 2:
        raise ValueError("patterns must hold at least 2 patterns, got shape "
                         f"{tuple(patterns.shape)}")
    if not betas:
        raise ValueError("betas must hold at least one value, got none")
    if not perturbation >= 0:
        raise ValueError(f"perturbation must be >= 0, got {perturbation}")
    x = patterns.to(torch.float64)
    gen = torch.Generator().manual_seed(check_positive_int(seed, "seed", minimum=0))
    e = torch.randn(x.shape, generator=gen, dtype=torch.float64).to(x.device)
    xi = x + perturbation * e / e.norm(dim=-1, keepdim=True)  # (N, D)
    res = ErrorBoundResult([], [], [], [], [], int(x.shape[0]), int(x.shape[1]),
                           float(x.norm(dim=-1).max()), float(perturbation))
    for beta in betas:
        beta = float(check_beta(beta))
        err = (HF.update(xi, x, beta) - x).norm(dim=-1)  # (N,)
        fixed = HF.retrieve(x, x, beta, max_steps=100, tol=1e-9)  # x_i*, (N, D)
        dist = torch.maximum((xi - x).norm(dim=-1), (fixed - x).norm(dim=-1))  # (N,)
        bound = theorem5_bound(x, beta, dist)  # (N,)
        res.betas.append(beta)
        res.error_median.append(float(err.median()))
        res.error_max.append(float(err.max()))
        res.bound_median.append(float(bound.median()))
        res.bound_holds.append(float((err <= bound * (1 + 1e-9) + 1e-12).double().mean()))
    return res


def theorem5_study(*, quick: bool = False, seed: int = 0) -> ErrorBoundResult:
    """The experiment of ``hopfield capacity`` (docs/analysis.md): N patterns uniform on the sphere
    of radius √D in D dimensions (N = D = 64; 16 with ``quick``), starts at distance 0.1·√D, β
    log-spaced over [0.01, 2] (16 values; 8 with ``quick``). Deterministic for a seed."""
    import math

    import numpy as np

    n, d = (16, 16) if quick else (64, 64)
    gen = torch.Generator().manual_seed(check_positive_int(seed, "seed", minimum=0))
    patterns = sphere_patterns(n, d, math.sqrt(d), gen)
    betas = [float(b) for b in np.geomspace(0.01, 2.0, 8 if quick else 16)]
    return one_step_error(patterns, betas, 0.1 * math.sqrt(d), seed=seed)
