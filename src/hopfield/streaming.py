"""Exact streaming retrieval over stored patterns that need not fit in memory.

Shape legend:
    ...  leading batch dims of the states (broadcast; the stored patterns are shared)
    L    number of state (query) patterns
    N    number of stored patterns (streamed in chunks of at most C)
    D    pattern dimension
    k    number of nearest stored patterns kept by the top-k

One Hopfield update ξ ← X softmax(β Xᵀ ξ) needs, for each state, only three running quantities
over the stored patterns x_i with scores a_i = β x_iᵀ ξ (the online softmax of flash attention):

    m = max_i a_i,    s = Σ_i exp(a_i − m),    o = Σ_i exp(a_i − m) x_i,    ξ_new = o / s.

Two partial results over disjoint sets of patterns merge exactly:

    m = max(m₁, m₂),  s = s₁ e^{m₁−m} + s₂ e^{m₂−m},  o = o₁ e^{m₁−m} + o₂ e^{m₂−m},

so one pass over the chunks gives the same update as the in-memory softmax, with peak extra memory
O(C × L) for the chunk's scores. ``m + log s`` is the log-sum-exp, which also gives the energy and
the exact association weights p_i = exp(a_i − lse) of the top-k patterns.

Only softmax streams exactly (sparsemax/entmax thresholds depend on all scores jointly); other
separations raise ``ValueError``. ``source`` is an (N, D) tensor, a :class:`hopfield.PatternStore`,
or any object with ``iter_chunks(chunk_size) -> iterable of (start, (C, D) tensor)`` and ``len``.

Files: the partials and per-chunk kernels are in :mod:`hopfield._online_softmax`, the chunk sources
(finiteness checks, prefetching, the pinned CUDA ring) in :mod:`hopfield._chunk_sources`; this
module prepares the inputs, runs the passes and holds the public ``stream_*`` functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from . import functional as HF
from ._chunk_sources import DEFAULT_CHUNK_SIZE, _iter_chunks, _source_info
from ._driver import iterate
from ._online_softmax import SoftmaxPartial, TopK, _topk_partial, chunk_partial
from ._validation import (
    check_positive_float,
    check_positive_int,
    check_tensor,
    shape_str,
    skip_data_checks,
)
from .separations import Separation, get_separation

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "SoftmaxPartial",
    "TopK",
    "chunk_partial",
    "stream_energy",
    "stream_lse",
    "stream_retrieve",
    "stream_topk",
    "stream_update",
    "stream_weights",
]

Beta = float | torch.Tensor


def _prepare(state: Any, source: Any, beta: Beta, chunk_size: int,
             separation: str | Separation = "softmax") -> tuple[int, Beta, int]:
    check_tensor(state, "state", min_ndim=2, layout="(..., L, D)")
    n, d = _source_info(source)
    if state.shape[-1] != d:
        raise ValueError(f"state must have shape (..., L, {d}) to match the stored patterns, got "
                         f"{shape_str(state.shape)}")
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    sep = get_separation(separation)
    if not sep.is_softmax:
        raise ValueError(f"separation must be 'softmax' for streaming retrieval (only the softmax "
                         f"merges exactly across chunks), got {sep.name!r}; load the patterns "
                         "into memory (e.g. store[:]) to use it")
    beta = HF._beta_grid(HF._check_beta(beta), tuple(state.shape[:-2]))
    return n, beta, chunk_size


def _pass(state: torch.Tensor, source: Any, beta: Beta, chunk_size: int, k: int = 0,
          max_norm: bool = False) -> tuple[SoftmaxPartial, tuple | None, torch.Tensor | None]:
    """One pass over ``source``: the merged partial, optional running top-k, optional max ‖x_i‖.

    With ``k > 0`` the partial carries the log-sum-exp only (``o`` is zero: see
    :func:`_topk_partial`); its callers (top-k) need nothing else."""
    lead_l = tuple(state.shape[:-1])
    acc = SoftmaxPartial.empty(lead_l, state.shape[-1], state)
    top, norm = None, None
    for start, chunk in _iter_chunks(source, chunk_size, state):  # chunk: (C, D)
        part, ctop = (_topk_partial(state, chunk, beta, k) if k
                      else chunk_partial(state, chunk, beta))
        acc = acc.merge(part)
        if k:
            vals, idx = ctop  # (..., L, k')
            idx = idx + start
            if top is not None:
                both = torch.cat([top[0], vals], -1)  # (..., L, k + k')
                vals, pos = both.topk(min(k, both.shape[-1]), dim=-1)
                idx = torch.cat([top[1], idx], -1).gather(-1, pos)
            top = (vals, idx)
        if max_norm:
            cn = chunk.norm(dim=-1).max()
            norm = cn if norm is None else torch.maximum(norm, cn)
    return acc, top, norm


# ----------------------------------------------------------------------------- operations on a pass
#
# Every softmax operation below is written once against a *pass function*
#     pass_fn(state, k, max_norm) -> (SoftmaxPartial over all N patterns, top-k or None, max ‖x‖)
# In memory it is one fused call over the whole tensor, chunked it is :func:`_pass` over the
# chunks, sharded (hopfield.distributed) the local pass plus two collectives. The loop is
# :func:`hopfield._driver.iterate`; the energy formula is
# :func:`hopfield._functional_core._energy_from`.

PassFn = Callable[[torch.Tensor, int, bool],
                  "tuple[SoftmaxPartial, tuple | None, torch.Tensor | None]"]


def source_pass(source: Any, beta: Beta, chunk_size: int) -> PassFn:
    """The pass function of an (N, D) tensor or a PatternStore streamed in chunks. It also
    carries ``lme_exact(state)`` (see :func:`_lme_exact`) for the energy at small β."""

    def pass_fn(state: torch.Tensor, k: int = 0, max_norm: bool = False):
        return _pass(state, source, beta, chunk_size, k, max_norm)

    pass_fn.lme_exact = lambda state: _lme_exact(state, source, beta, chunk_size)
    return pass_fn


def _lme(part: SoftmaxPartial, beta: Beta, n: int, dtype: torch.dtype) -> torch.Tensor:
    """β⁻¹ log((1/N) Σ_i exp(β x_iᵀξ)) from a merged partial (float64 arithmetic), (..., L).
    Its absolute error is ~eps(float32)·log(C)/β, so small β goes through :func:`_lme_exact`."""
    b = HF._beta_rows(beta)
    b = b.to(torch.float64) if isinstance(b, torch.Tensor) else b
    return ((part.lse(torch.float64) - math.log(n)) / b).to(HF._compute_dtype(dtype))


_SMALL_BETA = 1e-2  # below it the partials' log-sum-exp loses digits to the β⁻¹ scaling


def _small_beta(beta: Beta) -> bool:
    if isinstance(beta, torch.Tensor):
        return beta.dim() == 0 and float(beta) < _SMALL_BETA
    return float(beta) < _SMALL_BETA


def _lme_exact(state: torch.Tensor, source: Any, beta: Beta,
               chunk_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact β⁻¹ log mean exp(β x_iᵀξ) at any β (float64 scores per chunk, then the chunks'
    values merged by the same log-mean-exp with weights n_j / N), and max ‖x_i‖."""
    vals, counts, norm = [], [], None
    s64 = state.to(torch.float64)
    for _, chunk in _iter_chunks(source, chunk_size, state):
        c64 = chunk.to(torch.float64)
        vals.append(HF._log_mean_exp(s64 @ c64.mT, beta, None))  # (..., L)
        counts.append(chunk.shape[0])
        cn = chunk.norm(dim=-1).max()
        norm = cn if norm is None else torch.maximum(norm, cn)
    u = torch.stack(vals, -1)  # (..., L, J)
    return merge_lme(u, torch.tensor(counts, dtype=torch.float64, device=u.device), beta), norm


def merge_lme(u: torch.Tensor, counts: torch.Tensor, beta: Beta) -> torch.Tensor:
    """Exact log-mean-exp over disjoint parts: u (..., L, J) the parts' β⁻¹ log mean exp values,
    counts (J,) their sizes (0 = an empty part): β⁻¹ log Σ_j (n_j/N) exp(β u_j), float64."""
    w = counts.to(torch.float64) / counts.sum()
    u = torch.where(w > 0, u, u.new_zeros(()))  # empty parts carry weight 0 (and no -inf)
    m = torch.where(w > 0, u, u.new_full((), float("-inf"))).amax(-1, keepdim=True)
    b = HF._beta_rows(beta)
    b = b.to(torch.float64) if isinstance(b, torch.Tensor) else b
    x = (u - m) * (b.unsqueeze(-1) if isinstance(b, torch.Tensor) and b.dim() else b)
    x = torch.where(w > 0, x, x.new_zeros(()))
    big = (w * torch.exp(x)).sum(-1).log()
    small = torch.log1p((w * torch.expm1(x)).sum(-1))
    r = torch.where(x.amin(-1) > -1.0, small, big)
    return m.squeeze(-1) + r / b


def _energy_with(pass_fn: PassFn, state: torch.Tensor, beta: Beta, n: int) -> torch.Tensor:
    exact = getattr(pass_fn, "lme_exact", None)
    if exact is not None and _small_beta(beta):
        lme, norm = exact(state)
        return HF._energy_from(state, lme.to(HF._compute_dtype(state.dtype)), norm)
    part, _, norm = pass_fn(state, 0, True)
    return HF._energy_from(state, _lme(part, beta, n, state.dtype), norm)


def _lse_with(pass_fn: PassFn, state: torch.Tensor, beta: Beta, n: int,
              mean: bool) -> torch.Tensor:
    b = HF._beta_rows(beta)
    b = b.to(torch.float64) if isinstance(b, torch.Tensor) else b
    exact = getattr(pass_fn, "lme_exact", None)
    if exact is not None and _small_beta(beta):
        lme = exact(state)[0]
        out = lme if mean else lme + math.log(n) / b
        return out.to(HF._compute_dtype(state.dtype))
    part = pass_fn(state, 0, False)[0]
    if mean:
        return _lme(part, beta, n, state.dtype)
    return (part.lse(torch.float64) / b).to(HF._compute_dtype(state.dtype))


def _topk_with(pass_fn: PassFn, state: torch.Tensor, k: int) -> TopK:
    part, (vals, idx), _ = pass_fn(state, k, False)
    return TopK(weights=torch.exp(vals - part.lse(vals.dtype).unsqueeze(-1)), indices=idx)


def _retrieve_with(pass_fn: PassFn, state: torch.Tensor, beta: Beta, n: int, max_steps: int,
                   tol: float, return_info: bool) -> tuple[torch.Tensor, HF.RetrievalInfo]:
    """Multi-step retrieval through :func:`hopfield._driver.iterate`, one pass per step; the
    energy trace comes from the same passes (plus one final pass)."""
    norm: list[torch.Tensor] = []  # max ‖x_i‖, taken once from the first pass
    small = return_info and getattr(pass_fn, "lme_exact", None) is not None and _small_beta(beta)

    def step(xi: torch.Tensor, need_energy: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        part, _, cn = pass_fn(xi, 0, need_energy and not small and not norm)
        if cn is not None:
            norm.append(cn)
        e = None
        if need_energy and not small:
            e = HF._energy_from(xi, _lme(part, beta, n, xi.dtype), norm[0])
        return part.result(xi.dtype), e  # small β: the driver calls the exact energy instead

    return iterate(step, state, max_steps=max_steps, tol=tol, need_energy=return_info,
                   energy=lambda xi: _energy_with(pass_fn, xi, beta, n))


def _finite_result(x: torch.Tensor, what: str) -> torch.Tensor:
    if not skip_data_checks() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{what} is not finite: the scores β·xᵀξ overflow {x.dtype}; use "
                         "float64 inputs or a smaller beta / smaller norms")
    return x


# ----------------------------------------------------------------------------- public API


def stream_update(state: torch.Tensor, source: Any, beta: Beta, *,
                  chunk_size: int = DEFAULT_CHUNK_SIZE,
                  separation: str | Separation = "softmax") -> torch.Tensor:
    """One exact Hopfield update ξ ← X softmax(β Xᵀ ξ), streaming X in chunks.

    Args:
        state: (..., L, D) states.
        source: (N, D) tensor or :class:`hopfield.PatternStore`.
        beta: inverse temperature (float, or tensor broadcastable to ``...``).
        chunk_size: patterns per chunk C; peak extra memory is O(C × L).

    Returns:
        (..., L, D), equal to :func:`hopfield.functional.update` up to float rounding.

    Reference::

        p = softmax(beta * state @ X.mT, -1);  return p @ X
    """
    _, beta, chunk_size = _prepare(state, source, beta, chunk_size, separation)
    out = _pass(state, source, beta, chunk_size)[0].result(state.dtype)
    return _finite_result(out, "stream_update")


def stream_retrieve(state: torch.Tensor, source: Any, beta: Beta, max_steps: int = 100,
                    tol: float = 1e-5, *, chunk_size: int = DEFAULT_CHUNK_SIZE,
                    separation: str | Separation = "softmax", return_info: bool = False,
                    ) -> torch.Tensor | tuple[torch.Tensor, HF.RetrievalInfo]:
    """Multi-step :func:`stream_update` (one pass over ``source`` per step) until every state
    moves less than ``tol`` or ``max_steps``; states freeze at their own convergence step, as in
    :func:`hopfield.functional.retrieve` (the same driver, :func:`hopfield._driver.iterate`).

    With ``return_info`` also returns a :class:`hopfield.RetrievalInfo` whose ``energy`` trace is
    computed from the same passes (plus one final pass) and whose ``weights`` is ``None`` (the
    (L, N) matrix is what streaming avoids; use :func:`stream_topk`).
    """
    n, beta, chunk_size = _prepare(state, source, beta, chunk_size, separation)
    max_steps = check_positive_int(max_steps, "max_steps")
    tol = check_positive_float(tol, "tol")
    xi, info = _retrieve_with(source_pass(source, beta, chunk_size), state, beta, n, max_steps,
                              tol, return_info)
    return (xi, info) if return_info else xi


def stream_topk(state: torch.Tensor, source: Any, beta: Beta, k: int, *,
                chunk_size: int = DEFAULT_CHUNK_SIZE) -> TopK:
    """Indices and exact softmax weights of the ``k`` most associated stored patterns, in one pass.

    The weights are normalised by the global sum over all N patterns (so they equal the
    corresponding entries of ``functional.update(..., return_info=True)[1].weights``).
    """
    n, beta, chunk_size = _prepare(state, source, beta, chunk_size)
    k = check_positive_int(k, "k")
    if k > n:
        raise ValueError(f"k must be <= the number of stored patterns ({n}), got {k}")
    return _topk_with(source_pass(source, beta, chunk_size), state, k)


def stream_energy(state: torch.Tensor, source: Any, beta: Beta, *,
                  chunk_size: int = DEFAULT_CHUNK_SIZE) -> torch.Tensor:
    """The Hopfield energy of each state (..., L), as :func:`hopfield.functional.energy`."""
    n, beta, chunk_size = _prepare(state, source, beta, chunk_size)
    e = _energy_with(source_pass(source, beta, chunk_size), state, beta, n)
    return _finite_result(e, "stream_energy")


def stream_lse(state: torch.Tensor, source: Any, beta: Beta, *, mean: bool = False,
               chunk_size: int = DEFAULT_CHUNK_SIZE) -> torch.Tensor:
    """:func:`hopfield.functional.lse` streamed over ``source`` in one pass, shape (..., L):
    β⁻¹ log Σ_i exp(β x_iᵀξ) (``mean=True``: minus β⁻¹ log N)."""
    n, beta, chunk_size = _prepare(state, source, beta, chunk_size)
    out = _lse_with(source_pass(source, beta, chunk_size), state, beta, n, mean)
    return _finite_result(out, "stream_lse")


def stream_weights(state: torch.Tensor, source: Any, beta: Beta, *,
                   chunk_size: int = DEFAULT_CHUNK_SIZE) -> torch.Tensor:
    """The full (..., L, N) softmax association weights in two passes (log-sum-exp, then fill).

    The output itself is O(L × N); use it only when that fits in memory.
    """
    n, beta, chunk_size = _prepare(state, source, beta, chunk_size)
    lse = _pass(state, source, beta, chunk_size)[0].lse(state.dtype).unsqueeze(-1)  # (..., L, 1)
    out = state.new_empty(*state.shape[:-1], n)
    q, scale = HF._fold_beta(state, beta)
    for start, chunk in _iter_chunks(source, chunk_size, state):
        out[..., start:start + chunk.shape[0]] = torch.exp(scale * (q @ chunk.mT) - lse)
    return out
