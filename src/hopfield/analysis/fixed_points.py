"""What a retrieval converged to: a single pattern, a metastable state, or the global average.

Definition (from the final association weights p = softmax(β X ξ*) of the retrieved state ξ*,
and k = :func:`metastable_k` (p, threshold), the paper's 0.9-mass count; N = number of patterns):

    single      k == 1              one pattern carries ≥ ``threshold`` of the mass
    global      k > N/2             the state averages over more than half of all patterns
                                    (class I of the head analysis)
    metastable  1 < k ≤ N/2         an average over a group of k patterns

The group of a metastable state is the k patterns with the largest weights. With N = 2 only
"single" and "global" can occur.

:func:`beta_sweep` retrieves the same queries at many β and reports how the kinds change: small β
gives the global average, large β single patterns, and in between metastable states appear when
patterns are similar.

Shape legend: L queries, N stored patterns, D dimension, S number of β values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from .. import functional as HF
from .._validation import check_beta, check_tensor
from .metastable import _check_threshold, metastable_k

__all__ = [
    "KINDS",
    "BetaSweep",
    "FixedPoints",
    "beta_sweep",
    "classify_fixed_points",
    "classify_weights",
    "clustered_patterns",
    "noisy_queries",
]

KINDS = ("single", "metastable", "global")


@dataclass
class FixedPoints:
    """Classification of L retrieved states.

    Attributes:
        kind: (L,) long, index into :data:`KINDS` (0 single, 1 metastable, 2 global).
        k: (L,) long, metastable group size (1 for single, N-ish for global).
        top: (L,) long, index of the pattern with the largest weight.
        states: (L, D) the retrieved states ξ*.
        weights: (L, N) their association weights.
        converged: (L,) bool from the retrieval.
    """

    kind: torch.Tensor
    k: torch.Tensor
    top: torch.Tensor
    states: torch.Tensor
    weights: torch.Tensor
    converged: torch.Tensor

    @property
    def names(self) -> list[str]:
        return [KINDS[int(i)] for i in self.kind]

    def group(self, i: int) -> list[int]:
        """Indices of the patterns of state i's group (the k largest weights)."""
        return self.weights[i].topk(int(self.k[i])).indices.tolist()


def classify_weights(weights: torch.Tensor, threshold: float = 0.9) -> tuple[torch.Tensor,
                                                                               torch.Tensor]:
    """(..., L, N) association weights → (kind, k), both (..., L) long (see module doc)."""
    k = metastable_k(weights, threshold=threshold)  # (..., L)
    n = weights.shape[-1]
    kind = torch.where(k == 1, 0, torch.where(2 * k > n, 2, 1))
    return kind, k


def classify_fixed_points(
    queries: torch.Tensor,
    patterns: torch.Tensor,
    beta: float,
    *,
    threshold: float = 0.9,
    max_steps: int = 500,
    tol: float = 1e-8,
) -> FixedPoints:
    """Retrieve from ``queries`` (L, D) with ``patterns`` (N, D) at ``beta``; classify the result.

    Example:
        >>> fp = classify_fixed_points(x[:4] + 0.1 * noise, x, beta=2.0)
        >>> fp.names, fp.k
    """
    check_tensor(queries, "queries", ndim=2, layout="(L, D)")
    check_tensor(patterns, "patterns", ndim=2, layout="(N, D)")
    if queries.shape[1] != patterns.shape[1]:
        raise ValueError(f"queries must have shape (L, {patterns.shape[1]}) to match patterns, got "
                         f"({queries.shape[0]}, {queries.shape[1]})")
    beta = check_beta(beta)
    threshold = _check_threshold(threshold)
    xi, info = HF.retrieve(queries, patterns, beta, max_steps, tol, return_info=True)
    kind, k = classify_weights(info.weights, threshold)
    return FixedPoints(kind=kind, k=k, top=info.weights.argmax(-1), states=xi,
                       weights=info.weights, converged=info.converged)


@dataclass
class BetaSweep:
    """Fractions of single / metastable / global fixed points and median k for each β."""

    betas: list[float]
    single: list[float]
    metastable: list[float]
    global_: list[float]
    k_median: list[float]
    converged: list[float]
    n_patterns: int
    n_queries: int

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["global"] = d.pop("global_")
        return d


def beta_sweep(
    queries: torch.Tensor,
    patterns: torch.Tensor,
    betas: Sequence[float],
    *,
    threshold: float = 0.9,
    max_steps: int = 500,
    progress: bool = False,
) -> BetaSweep:
    """Classify the fixed points reached from ``queries`` at every β in ``betas``."""
    from tqdm.auto import tqdm

    if not betas:
        raise ValueError("betas must hold at least one value, got none")
    out = BetaSweep([], [], [], [], [], [], int(patterns.shape[-2]), int(queries.shape[-2]))
    for beta in tqdm(list(betas), desc="beta sweep", disable=not progress):
        fp = classify_fixed_points(queries, patterns, beta, threshold=threshold,
                                   max_steps=max_steps)
        frac = torch.bincount(fp.kind, minlength=3).double() / fp.kind.numel()
        out.betas.append(float(beta))
        out.single.append(float(frac[0]))
        out.metastable.append(float(frac[1]))
        out.global_.append(float(frac[2]))
        out.k_median.append(float(fp.k.double().median()))
        out.converged.append(float(fp.converged.double().mean()))
    return out


def clustered_patterns(n_clusters: int, per_cluster: int, dim: int, *, spread: float = 0.3,
                       radius: float = 1.0, seed: int = 0) -> torch.Tensor:
    """(n_clusters·per_cluster, D) float64 patterns: random centres on a sphere of ``radius`` and
    members at relative distance ``spread`` around them (a memory with metastable groups)."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_clusters, dim, generator=gen, dtype=torch.float64)
    centres = radius * centres / centres.norm(dim=-1, keepdim=True)  # (C, D)
    noise = torch.randn(n_clusters, per_cluster, dim, generator=gen, dtype=torch.float64)
    noise = spread * radius * noise / dim ** 0.5
    return (centres[:, None, :] + noise).reshape(-1, dim)


def noisy_queries(patterns: torch.Tensor, noise: float, *, seed: int = 0) -> torch.Tensor:
    """Queries x_i + noise · ‖x_i‖/√D · ε_i, ε_i ~ N(0, I), one per pattern, float64 (N, D);
    the starts of ``hopfield beta-sweep``. Deterministic for a seed."""
    if not (isinstance(patterns, torch.Tensor) and patterns.ndim == 2 and patterns.shape[0] > 0
            and bool(torch.isfinite(patterns).all())):
        raise ValueError(f"patterns must be a finite (N, D) tensor with N >= 1, got "
                         f"{getattr(patterns, 'shape', type(patterns).__name__)}")
    if not 0 <= noise < float("inf"):
        raise ValueError(f"noise must be finite and >= 0, got {noise}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    x = patterns.to(torch.float64)
    gen = torch.Generator().manual_seed(seed)
    scale = x.norm(dim=-1, keepdim=True) / x.shape[1] ** 0.5  # (N, 1)
    return x + noise * scale * torch.randn(x.shape, generator=gen, dtype=torch.float64).to(x.device)
