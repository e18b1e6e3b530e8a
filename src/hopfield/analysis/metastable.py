"""Metastable-state analysis of association (attention) weights.

Ramsauer et al. (2020, Sec. 3 and App. A.5) read every attention head as a Hopfield retrieval and
characterise it by how many stored patterns one retrieval averages over:

    k      = the smallest number of association weights of one query whose sum reaches 0.90
    k̄      = the median of k over query tokens and sequences
    class  I   k̄ > N/2          (global averaging over almost all tokens)
           II  N/8  < k̄ ≤ N/2  (large metastable states)
           III N/32 < k̄ ≤ N/8  (small metastable states)
           IV  k̄ ≤ N/32         (close to retrieving a single pattern)

Shape legend:
    ...  leading dims (batch B, heads H, ...)
    L    query (state) tokens
    N    key (stored pattern) tokens

Padding. ``mask`` is boolean with **True = ignore** (this package's convention): a key mask of
shape (..., N) or (..., L, N) removes padded keys, and ``query_mask`` (..., L) removes padded
queries, which get ``k = 0`` and take no part in any median.

Variable-length sequences. The paper's rule compares k̄ with one N. With sequences of different
real lengths this library classifies the median of the **ratio** ``k / N_real`` (N_real = number of
unmasked keys of that query), against the thresholds 1/2, 1/8 and 1/32. When every sequence has the
same length this is exactly the paper's rule, because median(k / N) = median(k) / N. k̄ (median of
k) and the median N are reported next to it.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import torch

from .._validation import check_tensor, shape_str

__all__ = [
    "CLASS_NAMES",
    "HeadClasses",
    "classify_ratio",
    "head_classes",
    "head_values",
    "median",
    "metastable_k",
    "summarize_heads",
]

CLASS_NAMES = ("I", "II", "III", "IV")

# Upper bounds of k̄/N for classes IV, III, II (class I is everything above 1/2).
_BOUNDS = (1.0 / 32.0, 1.0 / 8.0, 1.0 / 2.0)

# Cumulative sums are compared with ``threshold - tol`` so that weights such as (0.5, 0.4, 0.1)
# reach 0.9 with k = 2 despite rounding: tol = max(1e-6, 2·eps of the weights' dtype)
# (float16: 2e-3, bfloat16: 1.6e-2, float32: 1e-6, float64: 1e-6).
_TOL = 1e-6


def _check_threshold(threshold: object) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise TypeError(f"threshold must be a float, got {type(threshold).__name__}")
    t = float(threshold)
    if not 0.0 < t <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {t}")
    return t


def _key_mask(mask: object, weights: torch.Tensor) -> torch.Tensor | None:
    """Validate a key mask and broadcast it to the shape of ``weights`` (..., L, N)."""
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        found = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise TypeError(f"mask must be a bool torch.Tensor (True = ignore), got {found}")
    L, N = weights.shape[-2:]
    expected = f"(..., {N}) or (..., {L}, {N}) broadcastable to weights {shape_str(weights.shape)}"
    if mask.dim() == 0 or mask.shape[-1] != N:
        raise ValueError(f"mask must have shape {expected}, got {shape_str(mask.shape)}")
    # A mask with as many dims as weights is (..., L, N); otherwise it is per key (..., N).
    full = mask if mask.dim() == weights.dim() else mask.unsqueeze(-2)
    try:
        return torch.broadcast_to(full, weights.shape)
    except RuntimeError:
        raise ValueError(f"mask must have shape {expected}, got {shape_str(mask.shape)}") from None


def _query_mask(query_mask: object, weights: torch.Tensor) -> torch.Tensor | None:
    if query_mask is None:
        return None
    if not isinstance(query_mask, torch.Tensor) or query_mask.dtype != torch.bool:
        found = (query_mask.dtype if isinstance(query_mask, torch.Tensor)
                 else type(query_mask).__name__)
        raise TypeError(f"query_mask must be a bool torch.Tensor (True = ignore), got {found}")
    try:
        return torch.broadcast_to(query_mask, weights.shape[:-1])
    except RuntimeError:
        raise ValueError("query_mask must have shape broadcastable to "
                         f"{shape_str(weights.shape[:-1])}"
                         f" (..., L), got {shape_str(query_mask.shape)}") from None


def metastable_k(
    weights: torch.Tensor,
    mask: torch.Tensor | None = None,
    threshold: float = 0.9,
    *,
    query_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Size k of the metastable state of every query: (..., L, N) weights → (..., L) long.

    k is the smallest number of the largest weights of a row whose sum reaches ``threshold``.
    Masked keys (``mask`` True) are dropped and each row is renormalised over its real keys;
    masked queries (``query_mask`` True) get ``k = 0``.

    Reference (plain math, one row ``p`` of non-negative weights summing to one)::

        k = 1 + #{j : cumsum(sort(p, descending))[j] < threshold}

    Args:
        weights: (..., L, N) non-negative association weights (rows sum to one over real keys).
        mask: optional bool (..., N) or (..., L, N), True = padded key.
        threshold: mass the k largest weights must reach, in (0, 1]; the paper uses 0.9.
        query_mask: optional bool (..., L), True = padded query.
    """
    check_tensor(weights, "weights", min_ndim=2, layout="(..., L, N)")
    threshold = _check_threshold(threshold)
    if weights.shape[-1] == 0:
        raise ValueError("weights must have at least one key (N >= 1), got "
                         f"{shape_str(weights.shape)}")
    if bool((weights < 0).any()):
        raise ValueError(f"weights must be non-negative, got min {float(weights.min()):g}")
    kmask = _key_mask(mask, weights)
    qmask = _query_mask(query_mask, weights)
    w = weights if kmask is None else weights.masked_fill(kmask, 0.0)  # (..., L, N)
    srt = w.sort(dim=-1, descending=True).values.to(torch.float64)  # sort in input dtype (fast)
    total = srt.sum(-1, keepdim=True)  # (..., L, 1)
    dead = total.squeeze(-1) <= 0  # rows with no mass on any real key
    if qmask is not None:
        dead = dead & ~qmask
    if bool(dead.any()):
        raise ValueError("weights must put positive mass on at least one unmasked key in every "
                         f"unmasked query row, got {int(dead.sum())} row(s) with none")
    cum = srt.cumsum(-1) / total.clamp_min(torch.finfo(torch.float64).tiny)  # (..., L, N)
    tol = max(_TOL, 2.0 * torch.finfo(weights.dtype).eps)
    k = (cum < threshold - tol).sum(-1) + 1  # (..., L)
    if kmask is not None:  # never more than the number of real keys (guards rounding)
        k = torch.minimum(k, (~kmask).sum(-1))
    if qmask is not None:
        k = k.masked_fill(qmask, 0)
    return k


def classify_ratio(ratio: torch.Tensor | float) -> torch.Tensor:
    """Class index 0..3 (= I..IV) from k̄/N: I > 1/2 ≥ II > 1/8 ≥ III > 1/32 ≥ IV."""
    r = torch.as_tensor(ratio, dtype=torch.float64)
    cls = torch.full(r.shape, 0, dtype=torch.long, device=r.device)
    cls = torch.where(r <= _BOUNDS[2], 1, cls)
    cls = torch.where(r <= _BOUNDS[1], 2, cls)
    cls = torch.where(r <= _BOUNDS[0], 3, cls)
    return cls


def median(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """The usual median (mean of the two middle values for an even count), unlike torch.median."""
    return torch.quantile(x.to(torch.float64), 0.5, dim=dim, interpolation="midpoint")


@dataclass
class HeadClasses:
    """Per-head summary from :func:`head_classes`.

    Attributes:
        k_bar: (H,) median k over the real query tokens of all sequences.
        ratio: (H,) median of k / N_real (what the class is decided on).
        n_median: (H,) median N_real of the queries (same for every head of one input).
        classes: (H,) class index 0..3, i.e. I..IV (names in :data:`CLASS_NAMES`).
        n_queries: number of real query tokens per head that entered the medians.
    """

    k_bar: torch.Tensor
    ratio: torch.Tensor
    n_median: torch.Tensor
    classes: torch.Tensor
    n_queries: int

    @property
    def names(self) -> list[str]:
        return [CLASS_NAMES[int(c)] for c in self.classes]


def head_values(
    weights: torch.Tensor,
    mask: torch.Tensor | None = None,
    threshold: float = 0.9,
    *,
    query_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """k and N_real of every real query, per head: (B, H, L, N) → two (H, Q) float64 tensors.

    Q is the number of real queries (the same for every head). Used to pool many batches.
    """
    check_tensor(weights, "weights", ndim=4, layout="(B, H, L, N)")
    k = metastable_k(weights, mask, threshold, query_mask=query_mask)  # (B, H, L)
    kmask = _key_mask(mask, weights)
    n_real = (torch.full(k.shape, weights.shape[-1], device=k.device) if kmask is None
              else (~kmask).sum(-1))  # (B, H, L)
    valid = k > 0  # masked queries have k = 0
    H = weights.shape[1]
    per_head = valid.transpose(0, 1).flatten(1).sum(-1)  # (H,) real queries per head
    if bool((per_head != per_head[0]).any()):
        raise ValueError("query_mask must mask the same queries in every head (the medians pool "
                         f"one set of real queries per head), got {per_head.tolist()} real "
                         "queries per head")
    k_h = k.transpose(0, 1)[valid.transpose(0, 1)].reshape(H, -1)  # (H, Q)
    n_h = n_real.transpose(0, 1)[valid.transpose(0, 1)].reshape(H, -1)  # (H, Q)
    return k_h.to(torch.float64), n_h.to(torch.float64)


def summarize_heads(k: torch.Tensor, n: torch.Tensor) -> HeadClasses:
    """Medians and classes from pooled per-query k and N_real, both (H, Q)."""
    if k.shape[-1] == 0:
        raise ValueError("no real query tokens to summarise (every query is masked)")
    ratio = median(k / n, dim=-1)  # (H,)
    return HeadClasses(k_bar=median(k, dim=-1), ratio=ratio, n_median=median(n, dim=-1),
                       classes=classify_ratio(ratio), n_queries=int(k.shape[-1]))


def head_classes(
    weights: torch.Tensor,
    mask: torch.Tensor | None = None,
    threshold: float = 0.9,
    *,
    query_mask: torch.Tensor | None = None,
) -> HeadClasses:
    """Class I–IV of every head of one layer from its attention weights.

    Args:
        weights: (B, H, L, N) or (H, L, N) association weights.
        mask: optional bool key mask, True = padded key: (B, N) (key padding per sequence) or
            anything broadcastable to (B, H, L, N); for 3-D weights (N,) or (H, L, N).
        threshold: see :func:`metastable_k`.
        query_mask: optional bool (B, L) or (B, H, L), True = padded query ((L,) for 3-D weights).

    k̄ is the median of k over all real queries of all sequences; the class comes from the median
    of k / N_real (see the module docstring for why, and why it equals the paper's rule for
    equal lengths).
    """
    if isinstance(weights, torch.Tensor) and weights.dim() == 3:
        weights = weights.unsqueeze(0)  # (H, L, N) → (1, H, L, N); masks (N,) / (L,) broadcast
    elif isinstance(mask, torch.Tensor) and mask.dim() == 2:
        mask = mask[:, None, None, :]  # (B, N) key padding → (B, 1, 1, N)
    if isinstance(query_mask, torch.Tensor) and query_mask.dim() == 2:
        query_mask = query_mask[:, None, :]  # (B, L) → (B, 1, L)
    k, n = head_values(weights, mask, threshold, query_mask=query_mask)
    return summarize_heads(k, n)
