"""Functional core of modern Hopfield networks: pure, differentiable functions of tensors.

Shape legend (rows are patterns):
    ...  leading batch dimensions (batch, heads, ...), broadcast between arguments
    L    number of state (query) patterns
    N    number of stored patterns
    D    pattern dimension (Dv for the pattern projections / values)

Notation follows Ramsauer et al. (2020), "Hopfield Networks is All You Need": stored patterns
X = (x_1, ..., x_N), state ξ, inverse temperature β.

    energy   E(ξ) = -β⁻¹ log Σ_i exp(β x_iᵀ ξ) + ½ ξᵀξ + β⁻¹ log N + ½ M²,   M = max_i ‖x_i‖
    update   ξ ← X sep(β Xᵀ ξ)           (sep = softmax for the paper's network)

With row-major batches of states ``state`` (..., L, D) the update is
``sep(beta * state @ patterns.mT) @ patterns``: exactly one head of transformer attention with
``scale=beta``. When no weights are requested and ``sep`` is softmax, it runs through
:func:`torch.nn.functional.scaled_dot_product_attention` (the fused path); otherwise the math path
materialises the association weights.

``beta`` is a positive float or a tensor broadcastable against the leading dims ``...`` of the
state (for example ``(H,)`` for per-head β with states of shape ``(B, H, L, D)``); it may require
grad. ``mask`` is boolean with **True = ignore that stored pattern** (PyTorch's key_padding_mask
convention) and shape ``(..., N)`` or ``(..., L, N)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ._validation import (
    check_beta,
    check_mask,
    check_positive_float,
    check_positive_int,
    check_probability,
    check_tensor,
    shape_str,
)
from .separations import Separation, get_separation

__all__ = [
    "RetrievalInfo",
    "associate",
    "energy",
    "retrieve",
    "separation",
    "similarity",
    "update",
]

Beta = float | torch.Tensor


@dataclass
class RetrievalInfo:
    """Diagnostics of :func:`retrieve`.

    Attributes:
        steps: (..., L) number of updates applied to each state.
        converged: (..., L) whether ‖ξ_new − ξ‖ < tol was reached within ``max_steps``.
        energy: (T + 1, ..., L) energy of each state before the first and after every update
            (softmax separation only; ``None`` otherwise).
        weights: (..., L, N) association weights sep(β Xᵀ ξ) of the retrieved states.
    """

    steps: torch.Tensor
    converged: torch.Tensor
    energy: torch.Tensor | None
    weights: torch.Tensor


# ----------------------------------------------------------------------------- helpers


def _lead(state: torch.Tensor, patterns: torch.Tensor) -> tuple[int, ...]:
    try:
        return tuple(torch.broadcast_shapes(state.shape[:-2], patterns.shape[:-2]))
    except RuntimeError:
        raise ValueError(
            f"leading dimensions of state {shape_str(state.shape)} and patterns "
            f"{shape_str(patterns.shape)} must broadcast"
        ) from None


def _beta_grid(beta: Beta, lead: tuple[int, ...]) -> Beta:
    """Reshape a tensor β to (..., 1, 1) so it scales (..., L, N) scores; floats pass through."""
    if not isinstance(beta, torch.Tensor):
        return beta
    if beta.dim() > len(lead):
        raise ValueError(
            f"beta must be a float or a tensor broadcastable to the leading dims {shape_str(lead)}, "
            f"got shape {shape_str(beta.shape)}"
        )
    try:
        torch.broadcast_shapes(beta.shape, lead)
    except RuntimeError:
        raise ValueError(
            f"beta must be a float or a tensor broadcastable to the leading dims {shape_str(lead)}, "
            f"got shape {shape_str(beta.shape)}"
        ) from None
    return beta.reshape(*beta.shape, 1, 1)


def _check_pair(state: object, patterns: object, state_name: str = "state",
                patterns_name: str = "patterns") -> tuple[int, ...]:
    check_tensor(state, state_name, min_ndim=2, layout="(..., L, D)")
    check_tensor(patterns, patterns_name, min_ndim=2, layout="(..., N, D)")
    if state.shape[-1] != patterns.shape[-1]:
        raise ValueError(
            f"{state_name} must have the same last dimension D as {patterns_name} "
            f"(D == {patterns.shape[-1]}), got {shape_str(state.shape)}"
        )
    if patterns.shape[-2] == 0:
        raise ValueError(f"{patterns_name} must hold at least one pattern, got shape "
                         f"{shape_str(patterns.shape)}")
    if patterns.shape[-1] == 0:
        raise ValueError(f"{patterns_name} must have at least one dimension D, got shape "
                         f"{shape_str(patterns.shape)}")
    if state.dtype != patterns.dtype:
        raise TypeError(f"{state_name} and {patterns_name} must share a dtype, got "
                        f"{state.dtype} and {patterns.dtype}")
    return _lead(state, patterns)


# ----------------------------------------------------------------------------- core (unchecked)


def _associate(
    query: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    beta: Beta,
    mask: torch.Tensor | None = None,
    sep: Separation | None = None,
    need_weights: bool = False,
    dropout_p: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Unchecked association ``sep(beta * query @ keys.mT) @ values``.

    ``beta`` is a float or already shaped (..., 1, 1); ``mask`` is bool (..., L, N) or None with
    True = ignore. Layers validate once at their entry and call this on the hot path.
    """
    sep = sep or _SOFTMAX
    if sep.is_softmax and not need_weights:
        # Fused path: softmax(q kᵀ * scale) v. A tensor β scales q so it stays differentiable.
        lead = torch.broadcast_shapes(query.shape[:-2], keys.shape[:-2], values.shape[:-2])
        if isinstance(beta, torch.Tensor):
            lead = torch.broadcast_shapes(lead, beta.shape[:-2])
            q, scale = query * beta.to(query.dtype), 1.0
        else:
            q, scale = query, float(beta)
        attn_mask = None if mask is None else ~mask
        out = _sdpa(q, keys, values, attn_mask, lead, dropout_p, scale)
        return out, None
    scores = beta * (query @ keys.mT)  # (..., L, N)
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    weights = sep(scores)
    attn = F.dropout(weights, p=dropout_p) if dropout_p > 0 else weights
    return attn @ values, (weights if need_weights else None)


_SOFTMAX = get_separation("softmax")


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None,
          lead: tuple[int, ...], dropout_p: float, scale: float) -> torch.Tensor:
    """``scaled_dot_product_attention`` on inputs with any leading dims ``lead``.

    The fused CPU/GPU kernels expect (B, H, T, D); other ranks fall back to a math kernel that
    forms the whole (L, N) matrix, so inputs are viewed as 4-D. States that share one set of
    stored patterns (2-D keys and values, no mask) are folded into a single (1, 1, ·L, D) query.
    """
    if len(lead) == 2:
        return F.scaled_dot_product_attention(
            q.expand(*lead, *q.shape[-2:]), k.expand(*lead, *k.shape[-2:]),
            v.expand(*lead, *v.shape[-2:]), attn_mask=attn_mask, dropout_p=dropout_p, scale=scale)
    if k.dim() == 2 and v.dim() == 2 and attn_mask is None:
        q = q.expand(*lead, *q.shape[-2:])
        out = F.scaled_dot_product_attention(q.reshape(1, 1, -1, q.shape[-1]), k[None, None],
                                             v[None, None], dropout_p=dropout_p, scale=scale)
        return out.reshape(*lead, q.shape[-2], v.shape[-1])

    def flat(t: torch.Tensor) -> torch.Tensor:  # (*lead, T, ·) -> (prod(lead), 1, T, ·)
        return t.expand(*lead, *t.shape[-2:]).reshape(-1, 1, *t.shape[-2:])

    out = F.scaled_dot_product_attention(
        flat(q), flat(k), flat(v), attn_mask=None if attn_mask is None else flat(attn_mask),
        dropout_p=dropout_p, scale=scale)
    return out.reshape(*lead, *out.shape[-2:])


def _energy(state: torch.Tensor, patterns: torch.Tensor, beta: Beta,
            mask: torch.Tensor | None = None) -> torch.Tensor:
    scores = beta * (state @ patterns.mT)  # (..., L, N)
    norms = patterns.norm(dim=-1)  # (..., N)
    if mask is None:
        n = patterns.shape[-2]
        log_n = math.log(n)
        m = norms.max(dim=-1).values.unsqueeze(-1)  # (..., 1)
    else:
        scores = scores.masked_fill(mask, float("-inf"))
        log_n = (~mask).sum(dim=-1).to(state.dtype).log()  # (..., L)
        m = norms.unsqueeze(-2).masked_fill(mask, float("-inf")).max(dim=-1).values  # (..., L)
    lse = torch.logsumexp(scores, dim=-1)  # (..., L)
    inv_beta = 1.0 / beta if not isinstance(beta, torch.Tensor) else 1.0 / beta.squeeze(-1)
    return -inv_beta * lse + 0.5 * (state * state).sum(-1) + inv_beta * log_n + 0.5 * m * m


# ----------------------------------------------------------------------------- public API


def similarity(state: torch.Tensor, patterns: torch.Tensor, beta: Beta = 1.0) -> torch.Tensor:
    """Scaled similarities ``beta * state @ patterns.mT`` of shape (..., L, N)."""
    lead = _check_pair(state, patterns)
    beta = _beta_grid(check_beta(beta), lead)
    return beta * (state @ patterns.mT)


def associate(
    query: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    beta: Beta,
    *,
    mask: torch.Tensor | None = None,
    separation: str | Separation = "softmax",
    need_weights: bool = False,
    dropout_p: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Heteroassociation: ``sep(beta * query @ keys.mT) @ values``.

    Args:
        query: (..., L, D) state patterns R.
        keys: (..., N, D) stored patterns Y.
        values: (..., N, Dv) pattern projections V.
        beta: inverse temperature, float or tensor broadcastable to ``...``.
        mask: bool (..., N) or (..., L, N), True = ignore that stored pattern.
        separation: name in :func:`hopfield.separations.available_separations` or an instance.
        need_weights: also return the (..., L, N) association weights (math path).
        dropout_p: dropout on the association weights.

    Returns:
        ``(output (..., L, Dv), weights (..., L, N) or None)``.

    Reference (plain math)::

        w = sep(beta * query @ keys.mT).masked_fill(mask, 0);  out = w @ values
    """
    lead = _check_pair(query, keys, "query", "keys")
    check_tensor(values, "values", min_ndim=2, layout="(..., N, Dv)")
    if values.shape[-2] != keys.shape[-2]:
        raise ValueError(f"values must have shape (..., N, Dv) with N == {keys.shape[-2]}, "
                         f"got {shape_str(values.shape)}")
    if values.dtype != keys.dtype:
        raise TypeError(f"values and keys must share a dtype, got {values.dtype} and {keys.dtype}")
    dropout_p = check_probability(dropout_p, "dropout_p")
    lead = _lead(query, values) if values.dim() > keys.dim() else lead
    beta = _beta_grid(check_beta(beta), lead)
    if mask is not None:
        mask = check_mask(mask, "mask", lead=lead, L=query.shape[-2], N=keys.shape[-2])
    return _associate(query, keys, values, beta, mask, get_separation(separation), need_weights,
                      dropout_p)


def update(
    state: torch.Tensor,
    patterns: torch.Tensor,
    beta: Beta,
    mask: torch.Tensor | None = None,
    *,
    separation: str | Separation = "softmax",
    return_weights: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """One Hopfield update ξ ← X sep(β Xᵀ ξ), for all states at once.

    Args:
        state: (..., L, D) state patterns ξ (one per row).
        patterns: (..., N, D) stored patterns X (one per row).
        beta: inverse temperature β > 0 (float or tensor broadcastable to ``...``).
        mask: optional bool (..., N) or (..., L, N); True = ignore that stored pattern.
        separation: ``"softmax"`` (default), ``"sparsemax"``, ``"entmax"`` or an instance.
        return_weights: also return the association weights (..., L, N).

    Reference (plain math, float64 in the tests)::

        p = softmax(beta * state @ patterns.mT, dim=-1)   # (..., L, N)
        new_state = p @ patterns                          # (..., L, D)
    """
    lead = _check_pair(state, patterns)
    beta = _beta_grid(check_beta(beta), lead)
    if mask is not None:
        mask = check_mask(mask, "mask", lead=lead, L=state.shape[-2], N=patterns.shape[-2])
    out, weights = _associate(state, patterns, patterns, beta, mask, get_separation(separation),
                              need_weights=return_weights)
    return (out, weights) if return_weights else out


def retrieve(
    state: torch.Tensor,
    patterns: torch.Tensor,
    beta: Beta,
    max_steps: int = 100,
    tol: float = 1e-5,
    mask: torch.Tensor | None = None,
    *,
    separation: str | Separation = "softmax",
    return_info: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, RetrievalInfo]:
    """Iterate :func:`update` until ‖ξ_new − ξ‖ < ``tol`` for every state, or ``max_steps``.

    Each state stops (is frozen) at its own convergence step, the paper's per-state criterion.

    Returns:
        The retrieved states (..., L, D); with ``return_info=True`` also a :class:`RetrievalInfo`.

    Reference::

        for _ in range(max_steps):
            new = update(state, patterns, beta)
            done = (new - state).norm(dim=-1) < tol
            state = new
            if done.all(): break
    """
    lead = _check_pair(state, patterns)
    beta = _beta_grid(check_beta(beta), lead)
    max_steps = check_positive_int(max_steps, "max_steps")
    tol = check_positive_float(tol, "tol")
    if mask is not None:
        mask = check_mask(mask, "mask", lead=lead, L=state.shape[-2], N=patterns.shape[-2])
    sep = get_separation(separation)

    xi = state.expand(*lead, *state.shape[-2:]) if state.shape[:-2] != lead else state
    converged = torch.zeros(xi.shape[:-1], dtype=torch.bool, device=xi.device)
    steps = torch.zeros(xi.shape[:-1], dtype=torch.long, device=xi.device)
    track_energy = return_info and sep.is_softmax
    trace = [_energy(xi, patterns, beta, mask)] if track_energy else []
    for _ in range(max_steps):
        new, _ = _associate(xi, patterns, patterns, beta, mask, sep)
        active = ~converged
        delta = (new - xi).norm(dim=-1)
        xi = torch.where(active.unsqueeze(-1), new, xi)
        steps = steps + active.long()
        converged = converged | (delta < tol)
        if track_energy:
            trace.append(_energy(xi, patterns, beta, mask))
        if bool(converged.all()):
            break
    if not return_info:
        return xi
    _, weights = _associate(xi, patterns, patterns, beta, mask, sep, need_weights=True)
    info = RetrievalInfo(
        steps=steps,
        converged=converged,
        energy=torch.stack(trace) if track_energy else None,
        weights=weights,
    )
    return xi, info


def energy(
    state: torch.Tensor,
    patterns: torch.Tensor,
    beta: Beta,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The modern Hopfield energy of each state, shape (..., L).

    E(ξ) = -β⁻¹ log Σ_i exp(β x_iᵀξ) + ½ ξᵀξ + β⁻¹ log N + ½ M²,   M = max_i ‖x_i‖.
    With a ``mask``, the sum, N and M run over the stored patterns that are not masked.
    It is bounded below by 0 and never increases under the softmax :func:`update` (CCCP).
    """
    lead = _check_pair(state, patterns)
    beta = _beta_grid(check_beta(beta), lead)
    if mask is not None:
        mask = check_mask(mask, "mask", lead=lead, L=state.shape[-2], N=patterns.shape[-2])
    return _energy(state, patterns, beta, mask)


def separation(patterns: torch.Tensor) -> torch.Tensor:
    """Separation of each stored pattern, Δ_i = x_iᵀx_i − max_{j≠i} x_iᵀx_j, shape (..., N).

    Large Δ_i means x_i is retrieved in one update (the paper's Theorems 4 and 5).
    With a single stored pattern Δ is +inf.
    """
    check_tensor(patterns, "patterns", min_ndim=2, layout="(..., N, D)")
    if patterns.shape[-2] == 0:
        raise ValueError(f"patterns must hold at least one pattern, got shape "
                         f"{shape_str(patterns.shape)}")
    gram = patterns @ patterns.mT  # (..., N, N)
    self_sim = gram.diagonal(dim1=-2, dim2=-1)
    eye = torch.eye(gram.shape[-1], dtype=torch.bool, device=gram.device)
    others = gram.masked_fill(eye, float("-inf")).max(dim=-1).values
    return self_sim - others
