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

``beta`` is a positive float (a numpy scalar or 0-d array is accepted) or a tensor broadcastable
against the leading dims ``...`` of the state (for example ``(H,)`` for per-head β with states of
shape ``(B, H, L, D)``); it may require grad. A 0-d tensor β stays 0-d, so a CPU β works with
CUDA states.

``mask`` is boolean with **True = ignore that stored pattern**. One reading for every entry point
(:func:`update`, :func:`retrieve`, :func:`energy`, :func:`associate`, :func:`lse`), whatever the
batch size (state (*lead, L, D), scores (*lead, L, N)):

* a mask with as many dims as the scores, ``(..., L, N)``, is an association mask broadcast
  (right-aligned, as PyTorch's ``attn_mask``) to (*lead, L, N);
* a 1-D mask ``(N,)`` applies to every state;
* a mask with one dim fewer than the scores is **key padding** ``(*lead, N)`` (one row per batch
  item, shared by its L states) when it can only be that, and an ``(L, N)``-style mask when it can
  only be that; when both readings fit (its second-to-last dim equals both L > 1 and the last
  leading dim) it is ambiguous and raises ``ValueError``: pass ``mask[..., None, :]`` for key
  padding or ``mask.expand(*lead, L, N)`` for a per-state mask.

Numerics: the association math path (weights, sparsemax/entmax) and the energy compute scores in
float32 for float16/bfloat16 inputs; the validated entry points compute in float64 when
β·|ξ|·|x|·D could overflow the input dtype (results are cast back: retrieved states are convex
combinations of stored patterns), and :func:`energy`/:func:`lse`/:func:`separation_margin` raise
``ValueError`` when the true value does not fit the output dtype. Never a silent NaN, inf or 0.

This module holds the checked public functions; the unchecked kernels and the argument checks
they share with the layers, memories and streaming are in :mod:`hopfield._functional_core`.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ._driver import RetrievalInfo, iterate

# the unchecked kernels; memory/, nn/ and streaming also use them as HF._name
from ._functional_core import (
    Beta,
    _associate,
    _beta_grid,
    _beta_rows,
    _check_beta,
    _check_mask,
    _check_output,
    _check_pair,
    _compute_dtype,
    _energy,
    _energy_from,  # noqa: F401 (re-exported)
    _fold_beta,  # noqa: F401 (re-exported)
    _lead,
    _log_mean_exp,
    _max_abs,  # noqa: F401 (re-exported)
    _safe_dtype,
    _scale,
    _tiny_beta,
    _warn_renamed,
)
from ._validation import (
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
    "hopfield_forward",
    "lse",
    "retrieve",
    "separation",
    "separation_margin",
    "similarity",
    "update",
]



# ----------------------------------------------------------------------------- public API


def similarity(state: torch.Tensor, patterns: torch.Tensor, beta: Beta = 1.0) -> torch.Tensor:
    """Scaled similarities ``beta * state @ patterns.mT`` of shape (..., L, N)."""
    state, patterns, beta, _, dtype = _prepare(state, patterns, beta, None)
    return _check_output(_scale(beta, state.dtype) * (state @ patterns.mT), "similarity", dtype)


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
        mask: bool, True = ignore that stored pattern; shapes as in the module docstring.
        separation: name in :func:`hopfield.separations.available_separations` or an instance.
        need_weights: also return the (..., L, N) association weights (math path).
        dropout_p: dropout on the association weights.

    Returns:
        ``(output (..., L, Dv), weights (..., L, N) or None)``.

    Reference (plain math)::

        w = sep(beta * query @ keys.mT).masked_fill(mask, 0);  out = w @ values
    """
    lead = _check_pair(query, keys, "query", "keys")
    check_tensor(values, "values", min_ndim=2, layout="(..., N, Dv)", finite=False)
    if values.shape[-2] != keys.shape[-2]:
        raise ValueError(f"values must have shape (..., N, Dv) with N == {keys.shape[-2]}, "
                         f"got {shape_str(values.shape)}")
    if values.dtype != keys.dtype:
        raise TypeError(f"values and keys must share a dtype, got {values.dtype} and {keys.dtype}")
    if values.shape[-1] == 0:
        raise ValueError(f"values must have at least one dimension Dv, got shape "
                         f"{shape_str(values.shape)}")
    dropout_p = check_probability(dropout_p, "dropout_p")
    lead = _lead(query, values) if values.dim() > keys.dim() else lead
    beta = _beta_grid(_check_beta(beta), lead)
    work = _safe_dtype({"query": query, "keys": keys, "values": values}, beta)
    if mask is not None:
        mask = _check_mask(mask, "mask", lead=lead, L=query.shape[-2], N=keys.shape[-2])
    dtype = query.dtype
    if work != dtype:
        query, keys, values = query.to(work), keys.to(work), values.to(work)
    out, w = _associate(query, keys, values, beta, mask, get_separation(separation), need_weights,
                        dropout_p)
    return out.to(dtype), (None if w is None else w.to(dtype))


def _prepare(state: Any, patterns: Any, beta: Any, mask: Any
             ) -> tuple[torch.Tensor, torch.Tensor, Beta, torch.Tensor | None, torch.dtype]:
    """Validate a (state, patterns, β, mask) call; returns them in the dtype to compute in and
    the caller's dtype to cast the result back to."""
    lead = _check_pair(state, patterns)
    beta = _beta_grid(_check_beta(beta), lead)
    work = _safe_dtype({"state": state, "patterns": patterns}, beta)
    if mask is not None:
        mask = _check_mask(mask, "mask", lead=lead, L=state.shape[-2], N=patterns.shape[-2])
    dtype = state.dtype
    if work != dtype:
        state, patterns = state.to(work), patterns.to(work)
    return state, patterns, beta, mask, dtype


def _info_flag(return_info: bool, return_weights: bool | None, fn: str) -> bool:
    if return_weights is None:
        return return_info
    _warn_renamed(f"{fn}(return_weights=...)", f"{fn}(return_info=...)")
    return bool(return_weights)


def update(
    state: torch.Tensor,
    patterns: torch.Tensor,
    beta: Beta,
    mask: torch.Tensor | None = None,
    *,
    separation: str | Separation = "softmax",
    return_info: bool = False,
    return_weights: bool | None = None,
) -> torch.Tensor | tuple[torch.Tensor, Any]:
    """One Hopfield update ξ ← X sep(β Xᵀ ξ), for all states at once.

    Args:
        state: (..., L, D) state patterns ξ (one per row).
        patterns: (..., N, D) stored patterns X (one per row).
        beta: inverse temperature β > 0 (float or tensor broadcastable to ``...``).
        mask: optional bool, True = ignore that stored pattern; shapes in the module docstring.
        separation: ``"softmax"`` (default), ``"sparsemax"``, ``"entmax"`` or an instance.
        return_info: also return a :class:`RetrievalInfo` of this one step: ``steps`` all 1,
            ``converged`` = ‖ξ_new − ξ‖ < 1e-5 (``retrieve``'s default ``tol``), ``weights`` the
            (..., L, N) association weights (math path), ``energy`` (2, ..., L) before/after
            (softmax only), ``iterations`` 1.
        return_weights: deprecated alias (FutureWarning): ``(new, weights)`` as before.

    Reference (plain math, float64 in the tests)::

        p = softmax(beta * state @ patterns.mT, dim=-1)   # (..., L, N)
        new_state = p @ patterns                          # (..., L, D)
    """
    legacy = return_weights is not None
    want = _info_flag(return_info, return_weights, "update")
    state, patterns, beta, mask, dtype = _prepare(state, patterns, beta, mask)
    sep = get_separation(separation)
    out, weights = _associate(state, patterns, patterns, beta, mask, sep, need_weights=want)
    if not want:
        return out.to(dtype)
    if legacy:
        return out.to(dtype), weights.to(dtype)
    lead_l = out.shape[:-1]
    info = RetrievalInfo(
        steps=torch.ones(lead_l, dtype=torch.long, device=out.device),
        converged=(out - state.expand_as(out)).norm(dim=-1) < 1e-5,
        energy=(torch.stack([_energy(state, patterns, beta, mask).expand(lead_l),
                             _energy(out, patterns, beta, mask)]) if sep.is_softmax else None),
        weights=weights.to(dtype), iterations=1)
    return out.to(dtype), info


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
    The loop is :func:`hopfield._driver.iterate`, shared with streaming and sharded retrieval.

    Returns:
        The retrieved states (..., L, D); with ``return_info=True`` also a :class:`RetrievalInfo`.

    Reference::

        for _ in range(max_steps):
            new = update(state, patterns, beta)
            done = (new - state).norm(dim=-1) < tol
            state = new
            if done.all(): break
    """
    state, patterns, beta, mask, dtype = _prepare(state, patterns, beta, mask)
    max_steps = check_positive_int(max_steps, "max_steps")
    tol = check_positive_float(tol, "tol")
    sep = get_separation(separation)
    lead = _lead(state, patterns)
    xi = state.expand(*lead, *state.shape[-2:]) if state.shape[:-2] != lead else state

    def step(s: torch.Tensor, _: bool) -> tuple[torch.Tensor, None]:
        return _associate(s, patterns, patterns, beta, mask, sep)[0], None

    xi, info = iterate(step, xi, max_steps=max_steps, tol=tol,
                       energy=lambda s: _energy(s, patterns, beta, mask),
                       need_energy=return_info and sep.is_softmax)
    if not return_info:
        return xi.to(dtype)
    _, info.weights = _associate(xi, patterns, patterns, beta, mask, sep, need_weights=True)
    info.weights = info.weights.to(dtype)
    return xi.to(dtype), info


def lse(
    state: torch.Tensor,
    patterns: torch.Tensor,
    beta: Beta,
    mask: torch.Tensor | None = None,
    *,
    mean: bool = False,
) -> torch.Tensor:
    """β⁻¹-scaled log-sum-exp of the similarities, shape (..., L): the energy's first term.

        lse(ξ) = β⁻¹ log Σ_i exp(β x_iᵀ ξ)              (mean=False)
        lme(ξ) = β⁻¹ log ((1/N) Σ_i exp(β x_iᵀ ξ))       (mean=True; = lse − β⁻¹ log N)

    so ``energy = -lse + ½ξᵀξ + β⁻¹ log N + ½M² = -lme + ½ξᵀξ + ½M²``. It tends to max_i x_iᵀξ as
    β → ∞ and (``mean=True``) to the mean similarity as β → 0. Computed without overflow or
    cancellation (see :func:`energy`), differentiable in all arguments, float32 for half inputs.
    With a ``mask`` the sum (and N) run over the unmasked patterns. Streaming and sharded variants:
    :func:`hopfield.streaming.stream_lse`, :func:`hopfield.distributed.distributed_lse`.

    Reference::

        torch.logsumexp(beta * state @ patterns.mT, dim=-1) / beta
    """
    state, patterns, beta, mask, dtype = _prepare(state, patterns, beta, mask)
    work = _compute_dtype(state.dtype)
    if _tiny_beta(beta, work):
        work = torch.float64
    s, p = state.to(work), patterns.to(work)
    out = _log_mean_exp(s @ p.mT, beta, mask)
    if not mean:
        n = patterns.shape[-2] if mask is None else (~mask).sum(-1).to(work)
        log_n = math.log(n) if isinstance(n, int) else n.log()
        out = out + log_n / _scale(_beta_rows(beta), work)
    return _check_output(out, "lse", _compute_dtype(dtype))


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

    Computed as −lme + ½ξᵀξ + ½M² (:func:`lse` with ``mean=True``), so it stays finite and exact
    for tiny β (β → 0: ½ξᵀξ − mean_i x_iᵀξ + ½M²); half-precision states give float32 energies.
    Raises ``ValueError`` when the energy itself exceeds the range of that dtype.
    """
    state, patterns, beta, mask, dtype = _prepare(state, patterns, beta, mask)
    return _check_output(_energy(state, patterns, beta, mask), "energy", _compute_dtype(dtype))


def separation_margin(patterns: torch.Tensor) -> torch.Tensor:
    """Separation of each stored pattern, Δ_i = x_iᵀx_i − max_{j≠i} x_iᵀx_j, shape (..., N).

    Large Δ_i means x_i is retrieved in one update (the paper's Theorems 4 and 5).
    With a single stored pattern Δ is +inf. The Gram matrix is formed in float64 when it would
    overflow the input dtype (float32 for half inputs, returned as float32); a margin beyond the
    output dtype's range raises ``ValueError``.
    """
    check_tensor(patterns, "patterns", min_ndim=2, layout="(..., N, D)")
    if patterns.shape[-2] == 0:
        raise ValueError(f"patterns must hold at least one pattern, got shape "
                         f"{shape_str(patterns.shape)}")
    out_dtype = _compute_dtype(patterns.dtype)
    work = _safe_dtype({"patterns": patterns}, 1.0)
    work = work if torch.finfo(work).bits >= torch.finfo(out_dtype).bits else out_dtype
    x = patterns.to(work)
    gram = x @ x.mT  # (..., N, N)
    self_sim = gram.diagonal(dim1=-2, dim2=-1)
    eye = torch.eye(gram.shape[-1], dtype=torch.bool, device=gram.device)
    others = gram.masked_fill(eye, float("-inf")).amax(dim=-1)
    delta = self_sim - others
    if patterns.shape[-2] == 1:
        return delta.to(out_dtype)  # +inf by definition
    return _check_output(delta, "separation_margin", out_dtype)


def separation(patterns: torch.Tensor) -> torch.Tensor:
    """Deprecated alias of :func:`separation_margin` (FutureWarning); the name ``separation`` now
    only means the normalisation parameter (``separation="softmax"``)."""
    _warn_renamed("hopfield.functional.separation", "hopfield.functional.separation_margin")
    return separation_margin(patterns)


# The public layer core (multi-head association with projections) lives in hopfield.nn.functional,
# which imports this module: re-exported here at the bottom to avoid the import cycle.
from .nn.functional import hopfield_forward
