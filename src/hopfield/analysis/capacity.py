"""Storage capacity of associative memories, measured and against theory.

Protocol of :func:`retrieval_curve` (one memory, one dimension D, one noise level ρ):
  1. draw N random patterns with i.i.d. ±1 entries (seeded), store them;
  2. queries: ``n_queries`` stored patterns, each with exactly round(ρ·D) randomly chosen signs
     flipped (ρ = 0: the pattern itself, i.e. "is it a fixed point"); with
     ``corruption="mask"`` those entries are set to 0 instead (erased bits; only for memories
     that accept real-valued states, i.e. the modern network);
  3. retrieve and take ``sign`` of the result (ties → +1);
  4. a query **succeeds** when the overlap m = xᵀ sign(ξ*) / D with its target is ≥ 0.95
     (at most 2.5 % wrong bits: the retrieval states of Amit–Gutfreund–Sompolinsky at α_c still
     have about 1.5 % wrong bits).
The measured capacity N* at (D, ρ) is the largest N of the grid before the success rate first
drops below 1/2 (finite-size estimate of the transition; resolution = grid spacing).

Theory curves (:func:`theory_capacity`):
  classical Hebbian   0.138·D                   (Amit, Gutfreund, Sompolinsky 1985)
  classical Storkey   D / sqrt(2 ln D)          (Storkey 1997)
  polynomial DAM      D^(n−1) / (2 (2n−3)!! ln D)   (Krotov & Hopfield 2016), ∝ D^(n−1)
  exponential DAM     exp(D · I(1−2ρ) / 2),  I(x) = ½[(1+x)ln(1+x) + (1−x)ln(1−x)]
                      (Demircigil et al. 2017; 2^(D/2) at ρ = 0)
  modern (Theorem 3)  :func:`theorem3_bound` (a lower bound; see there for the assumptions)

Shape legend: N stored patterns, D dimension, L queries.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from .._validation import check_positive_int, check_probability

__all__ = [
    "SUCCESS_OVERLAP",
    "CapacityCurve",
    "capacity_from_curve",
    "capacity_study",
    "default_memories",
    "flip_bits",
    "geometric_grid",
    "mask_bits",
    "random_bipolar",
    "retrieval_curve",
    "theorem3_bound",
    "theorem3_c",
    "theory_capacity",
]

SUCCESS_OVERLAP = 0.95


def random_bipolar(n: int, d: int, gen: torch.Generator) -> torch.Tensor:
    """(n, d) i.i.d. uniform ±1 float64 patterns."""
    return torch.randint(0, 2, (n, d), generator=gen).to(torch.float64) * 2 - 1


def flip_bits(x: torch.Tensor, rho: float, gen: torch.Generator) -> torch.Tensor:
    """Flip exactly round(rho·D) randomly chosen entries of each row of ±1 ``x`` (L, D)."""
    L, D = x.shape
    n_flip = round(rho * D)
    if n_flip == 0:
        return x.clone()
    idx = torch.rand(L, D, generator=gen).argsort(dim=-1)[:, :n_flip].to(x.device)  # (L, n_flip)
    sign = torch.ones_like(x)
    sign.scatter_(1, idx, -1.0)
    return x * sign


def mask_bits(x: torch.Tensor, rho: float, gen: torch.Generator) -> torch.Tensor:
    """Set exactly round(rho·D) randomly chosen entries of each row of ``x`` (L, D) to 0."""
    L, D = x.shape
    n_mask = round(rho * D)
    out = x.clone()
    if n_mask:
        idx = torch.rand(L, D, generator=gen).argsort(dim=-1)[:, :n_mask].to(x.device)
        out.scatter_(1, idx, 0.0)
    return out


@dataclass
class CapacityCurve:
    """Success rate and mean overlap against N for one memory at one (D, ρ, corruption)."""

    memory: str
    dim: int
    noise: float
    n_patterns: list[int]
    success: list[float]
    overlap: list[float]
    capacity: int = 0
    meta: dict[str, Any] = field(default_factory=dict)
    corruption: str = "flip"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def capacity_from_curve(n_patterns: Sequence[int], success: Sequence[float],
                        level: float = 0.5) -> int:
    """Largest N before the success rate first drops below ``level`` (0 if it never reaches it)."""
    if len(n_patterns) != len(success):
        raise ValueError(f"success must have one value per N (len {len(n_patterns)}), got "
                         f"len {len(success)}")
    cap = 0
    for n, s in zip(n_patterns, success):
        if s < level:
            break
        cap = int(n)
    return cap


def retrieval_curve(
    make_memory: Callable[[], Any],
    dim: int,
    n_patterns: Sequence[int],
    noise: float = 0.0,
    *,
    corruption: str = "flip",
    n_queries: int = 32,
    seed: int = 0,
    name: str = "memory",
) -> CapacityCurve:
    """Measure success rate and mean overlap for each N in ``n_patterns`` (see module doc).

    ``make_memory()`` returns a fresh memory with ``store(P)`` and ``retrieve(Q)``; patterns and
    queries are float64 torch tensors with ±1 entries.
    """
    dim = check_positive_int(dim, "dim")
    noise = check_probability(noise, "noise")
    if corruption not in ("flip", "mask"):
        raise ValueError(f"corruption must be one of ['flip', 'mask'], got {corruption!r}")
    n_queries = check_positive_int(n_queries, "n_queries")
    if not n_patterns:
        raise ValueError("n_patterns must hold at least one N, got none")
    success, overlap = [], []
    for n in n_patterns:
        n = check_positive_int(int(n), "n_patterns[i]")
        gen = torch.Generator().manual_seed(seed * 1_000_003 + dim * 1009 + n)
        patterns = random_bipolar(n, dim, gen)  # (N, D)
        which = torch.randint(0, n, (n_queries,), generator=gen)  # (L,)
        target = patterns[which]  # (L, D)
        queries = (flip_bits if corruption == "flip" else mask_bits)(target, noise, gen)
        mem = make_memory().store(patterns)
        out = torch.as_tensor(mem.retrieve(queries), dtype=torch.float64)  # (L, D)
        out = torch.where(out >= 0, 1.0, -1.0).to(torch.float64)
        m = (out * target).mean(-1)  # (L,)
        success.append(float((m >= SUCCESS_OVERLAP).double().mean()))
        overlap.append(float(m.mean()))
    ns = [int(n) for n in n_patterns]
    return CapacityCurve(memory=name, dim=dim, noise=noise, n_patterns=ns, success=success,
                         overlap=overlap, capacity=capacity_from_curve(ns, success),
                         meta={"n_queries": n_queries, "seed": seed}, corruption=corruption)


def _double_factorial(k: int) -> int:
    return math.prod(range(k, 0, -2)) if k > 0 else 1


def theorem3_bound(dim: float, beta: float, K: float = 1.0, p: float = 0.001) -> float:
    """Lower bound of Theorem 3 (Ramsauer et al. 2020) on the number of storable patterns.

    Assumptions of the theorem: N patterns drawn uniformly on the sphere of radius
    M = K·sqrt(d − 1) in R^d, failure probability p; with probability ≥ 1 − p every pattern is
    "stored" (has a sphere around it that the update maps into itself, with a fixed point in it).

        a = 2/(d−1) · (1 + ln(2 β K² p (d−1)))
        b = 2 K² β / 5
        c = b / W₀(exp(a + ln b))            (W₀ = principal branch of Lambert W)
        N ≥ sqrt(p) · c^((d−1)/4),   valid when c ≥ (2/sqrt(p))^(4/(d−1))

    Returns the bound sqrt(p)·c^((d−1)/4), or NaN where the validity condition fails.
    (Check: β=1, K=3, d=20, p=0.001 gives c ≈ 3.1546; β=1, K=1, d=75 gives c ≈ 1.3718.)
    """
    d = float(dim)
    c = theorem3_c(d, beta, K, p)
    if c < (2.0 / math.sqrt(p)) ** (4.0 / (d - 1.0)):
        return float("nan")
    return math.sqrt(p) * c ** ((d - 1.0) / 4.0)


def theorem3_c(dim: float, beta: float, K: float = 1.0, p: float = 0.001) -> float:
    """The constant c of :func:`theorem3_bound` (exposed for checks against the paper)."""
    from scipy.special import lambertw

    d = float(dim)
    if not d > 1:  # also rejects nan
        raise ValueError(f"dim must be > 1, got {dim}")
    if not (beta > 0 and K > 0 and 0 < p <= 1):
        raise ValueError(f"beta and K must be > 0 and p in (0, 1], got {beta}, {K}, {p}")
    a = 2.0 / (d - 1.0) * (1.0 + math.log(2.0 * beta * K * K * p * (d - 1.0)))
    b = 2.0 * K * K * beta / 5.0
    return b / float(lambertw(math.exp(a + math.log(b)), 0).real)


def theory_capacity(kind: str, dim: float, *, degree: int = 3, noise: float = 0.0,
                    beta: float = 1.0) -> float:
    """Theoretical capacity of ``kind`` in {hebbian, storkey, polynomial, exponential, modern}."""
    d = float(dim)
    if kind == "hebbian":
        return 0.138 * d
    if kind == "storkey":
        return d / math.sqrt(2.0 * math.log(d))
    if kind == "polynomial":
        return d ** (degree - 1) / (2.0 * _double_factorial(2 * degree - 3) * math.log(d))
    if kind == "exponential":
        x = 1.0 - 2.0 * noise
        info = 0.5 * ((1 + x) * math.log1p(x) + ((1 - x) * math.log(1 - x) if x < 1 else 0.0))
        return math.exp(d * info / 2.0)
    if kind == "modern":  # ±1 patterns have norm sqrt(d) = K sqrt(d − 1)
        return theorem3_bound(d, beta, K=math.sqrt(d / (d - 1.0)))
    raise ValueError("kind must be one of ['exponential', 'hebbian', 'modern', 'polynomial', "
                     f"'storkey'], got {kind!r}")


def default_memories(seed: int = 0, betas: Sequence[float] = (0.3, 1.0, 3.0),
                     degree: int = 3) -> dict[str, tuple[str, Callable[[], Any]]]:
    """name → (theory kind, factory) for the memories of the capacity study."""
    from ..memory import ClassicalHopfield, DenseAssociativeMemory, ModernHopfield

    mems: dict[str, tuple[str, Callable[[], Any]]] = {
        "hebbian": ("hebbian", lambda: ClassicalHopfield("hebbian", max_steps=30,
                                                         random_state=seed)),
        "storkey": ("storkey", lambda: ClassicalHopfield("storkey", max_steps=30,
                                                         random_state=seed)),
        f"polynomial n={degree}": ("polynomial", lambda: DenseAssociativeMemory(
            "polynomial", degree, max_steps=30, random_state=seed)),
        "exponential": ("exponential", lambda: DenseAssociativeMemory(
            "exponential", max_steps=30, random_state=seed)),
    }
    for b in betas:
        mems[f"modern β={b:g}"] = ("modern", lambda b=b: ModernHopfield(beta=b, max_steps=30))
    return mems


def geometric_grid(lo: int, hi: int, ratio: float = 2 ** 0.5) -> list[int]:
    """Distinct integers from ``lo`` to ``hi`` spaced by about ``ratio``."""
    out, v = [], float(lo)
    while v < hi * 1.0001:
        n = round(v)
        if not out or n > out[-1]:
            out.append(n)
        v *= ratio
    return out


# (dims, largest N as a function of D) per theory kind; the quick variant keeps the two smallest D.
_GRIDS: dict[str, tuple[tuple[int, ...], Callable[[int], int]]] = {
    "hebbian": ((32, 64, 128, 256), lambda d: d // 2),
    "storkey": ((32, 64, 128, 256), lambda d: d),
    "polynomial": ((12, 16, 24, 32), lambda d: 4 * d * d),
    "exponential": ((8, 12, 16, 20), lambda d: 4 * 2 ** (d // 2)),
    "modern": ((16, 32, 64, 128), lambda d: 4096),
}


def capacity_study(
    *,
    quick: bool = False,
    seed: int = 0,
    noises: Sequence[float] = (0.0, 0.1, 0.2),
    masks: Sequence[float] = (0.25, 0.5),
    n_queries: int = 32,
    progress: bool = True,
    memories: dict[str, tuple[str, Callable[[], Any]]] | None = None,
) -> list[CapacityCurve]:
    """Run :func:`retrieval_curve` for every memory, dimension and noise level (module doc).

    ``masks`` are erased fractions, used for the modern memories only (the others take ±1 states).
    ``quick`` uses the two smallest dimensions, two noise levels, one mask level, N ≤ 64 and
    16 queries (for tests/CI; many quick points are censored by the N ≤ 64 cap).
    """
    from tqdm.auto import tqdm

    memories = memories if memories is not None else default_memories(seed)
    if quick:
        noises, masks, n_queries = tuple(noises)[:2], tuple(masks)[:1], min(n_queries, 16)
    jobs = []
    for name, (kind, factory) in memories.items():
        dims, n_max = _GRIDS[kind]
        for d in dims[:2] if quick else dims:
            top = min(n_max(d), 64) if quick else n_max(d)
            levels = [("flip", r) for r in noises]
            levels += [("mask", r) for r in masks] if kind == "modern" else []
            for corruption, rho in levels:
                jobs.append((name, kind, factory, d, rho, corruption, geometric_grid(1, top)))
    curves = []
    for name, kind, factory, d, rho, corruption, grid in tqdm(jobs, desc="capacity",
                                                              disable=not progress):
        c = retrieval_curve(factory, d, grid, rho, corruption=corruption, n_queries=n_queries,
                            seed=seed, name=name)
        c.meta.update(kind=kind, theory=theory_capacity(kind, d, noise=0.0 if corruption ==
                                                        "mask" else rho,
                                                        beta=_beta_of(name)),
                      censored=c.capacity == grid[-1])
        curves.append(c)
    return curves


def _beta_of(name: str) -> float:
    return float(name.split("β=")[1]) if "β=" in name else 1.0
