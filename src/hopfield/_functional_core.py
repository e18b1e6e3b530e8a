"""Unchecked kernels and argument checks of :mod:`hopfield.functional` (the math and the shape
legend are in its docstring): β handling (``_check_beta``, ``_beta_grid``, ``_fold_beta``), mask
reading (``_check_mask``), overflow-safe dtypes, the association ``_associate`` (fused
``scaled_dot_product_attention`` or the math path), log-mean-exp and the energy. Layers and
memories validate once at their entry and call these on the hot path.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ._validation import (
    check_beta,
    check_finite,
    check_tensor,
    shape_str,
    skip_data_checks,
)
from .separations import Separation, get_separation

Beta = float | torch.Tensor
_HALF = (torch.float16, torch.bfloat16)

# ----------------------------------------------------------------------------- helpers


def _lead(state: torch.Tensor, patterns: torch.Tensor) -> tuple[int, ...]:
    try:
        return tuple(torch.broadcast_shapes(state.shape[:-2], patterns.shape[:-2]))
    except RuntimeError:
        raise ValueError(
            f"leading dimensions of state {shape_str(state.shape)} and patterns "
            f"{shape_str(patterns.shape)} must broadcast"
        ) from None


def _check_beta(beta: object, name: str = "beta") -> Beta:
    """:func:`check_beta` that also accepts numpy scalars and 0-d numpy arrays (as floats)."""
    if (isinstance(beta, np.ndarray) and beta.ndim == 0 and beta.dtype.kind in "iuf") or (
            isinstance(beta, np.generic) and not isinstance(beta, np.bool_)):
        beta = beta.item()
    return check_beta(beta, name)


def _beta_grid(beta: Beta, lead: tuple[int, ...]) -> Beta:
    """Reshape a tensor β to (..., 1, 1) so it scales (..., L, N) scores; floats pass through.

    A 0-d tensor stays 0-d: it then counts as a scalar for device checks (a CPU β with CUDA states).
    """
    if not isinstance(beta, torch.Tensor):
        return beta
    if beta.dim() == 0:
        return beta
    if beta.dim() > len(lead):
        raise ValueError(
            "beta must be a float or a tensor broadcastable to the leading dims "
            f"{shape_str(lead)}, got shape {shape_str(beta.shape)}"
        )
    try:
        torch.broadcast_shapes(beta.shape, lead)
    except RuntimeError:
        raise ValueError(
            "beta must be a float or a tensor broadcastable to the leading dims "
            f"{shape_str(lead)}, got shape {shape_str(beta.shape)}"
        ) from None
    return beta.reshape(*beta.shape, 1, 1)


def _beta_rows(beta: Beta) -> Beta:
    """β shaped to scale per-state values (..., L): (..., 1, 1) -> (..., 1); floats/0-d pass."""
    if isinstance(beta, torch.Tensor) and beta.dim() >= 2:
        return beta.squeeze(-1)
    return beta


def _check_pair(state: object, patterns: object, state_name: str = "state",
                patterns_name: str = "patterns") -> tuple[int, ...]:
    check_tensor(state, state_name, min_ndim=2, layout="(..., L, D)", finite=False)
    check_tensor(patterns, patterns_name, min_ndim=2, layout="(..., N, D)", finite=False)
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


def _max_abs(x: torch.Tensor) -> torch.Tensor:
    """max |x| as a 0-d float64 tensor (NaN if x holds NaN; 0 for an empty tensor)."""
    if x.numel() == 0:
        return torch.zeros((), dtype=torch.float64, device=x.device)
    return torch.linalg.vector_norm(x.detach(), float("inf")).to(torch.float64)


def _safe_dtype(named: dict[str, torch.Tensor], beta: Beta) -> torch.dtype:
    """Check that every tensor in ``named`` is finite and choose the dtype to compute in.

    One host sync for all of them. The scores β·ξᵀx are bounded by β·D·max|ξ|·max|x|; when that
    bound comes within 1e-3 of the dtype's largest value the computation moves to float32 (half
    inputs) or float64. Raises ``ValueError`` when even float64 would overflow.
    """
    tensors = list(named.values())
    dtype = tensors[0].dtype
    if skip_data_checks():  # validation off / tracing: no host sync, compute in the inputs' dtype
        return dtype
    stats = [_max_abs(t) for t in tensors]
    if isinstance(beta, torch.Tensor):
        stats.append(beta.detach().amax().to(device=stats[0].device, dtype=torch.float64))
    vals = torch.stack(stats).tolist()
    for (name, t), v in zip(named.items(), vals):
        if not math.isfinite(v):
            check_finite(t, name)  # names the argument and counts the bad values
    b = vals[-1] if isinstance(beta, torch.Tensor) else float(beta)
    other = vals[1] if len(tensors) > 1 else vals[0]  # (state, patterns, ...) or (patterns,)
    bound = b * tensors[0].shape[-1] * max(1.0, vals[0]) * max(1.0, other)
    for candidate in (dtype, torch.float32, torch.float64):
        if torch.finfo(candidate).bits < torch.finfo(dtype).bits:
            continue
        if bound < 1e-3 * torch.finfo(candidate).max:
            return candidate
    raise ValueError(f"{', '.join(named)} are too large: the scores β·ξᵀx may reach {bound:.3g}, "
                     "beyond the float64 range; rescale the inputs or use a smaller beta")


def _check_mask(mask: object, name: str, *, lead: tuple[int, ...], L: int, N: int
                ) -> torch.Tensor:
    """Validate a pattern mask (True = ignore) under the one documented reading (module
    docstring) and return it broadcastable to (*lead, L, N)."""
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name} must be a bool torch.Tensor, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(f"{name} must have dtype torch.bool (True = ignore), got {mask.dtype}")
    target = (*lead, L, N)
    expected = (f"(..., {N}) or (..., {L}, {N}) broadcastable to (*lead, L, N) = "
                f"{shape_str(target)}")
    if mask.dim() == 0 or mask.shape[-1] != N or mask.dim() > len(target):
        raise ValueError(f"{name} must have shape {expected}, got {shape_str(mask.shape)}")

    def fits(shape: tuple[int, ...]) -> bool:
        try:
            return tuple(torch.broadcast_shapes(shape, target)) == target
        except RuntimeError:
            return False

    if mask.dim() == len(target) or mask.dim() == 1:
        full = mask if mask.dim() > 1 else mask.unsqueeze(-2)  # (N,) -> (1, N)
        ok = fits(tuple(full.shape))
    else:  # one or more dims fewer than the scores
        as_padding = mask.dim() == len(lead) + 1 and fits((*mask.shape[:-1], 1, N))
        as_rows = fits(tuple(mask.shape))
        if as_padding and as_rows and L > 1 and mask.shape[-2] == L:
            raise ValueError(
                f"{name} of shape {shape_str(mask.shape)} is ambiguous for states with leading "
                f"dims {shape_str(lead)} and L = {L}: it reads both as key padding (*lead, N) and "
                f"as per-state rows (L, N); pass {name}[..., None, :] for key padding or "
                f"{name}.expand{shape_str(target)} for per-state rows")
        full = mask.unsqueeze(-2) if as_padding else mask
        ok = as_padding or as_rows
    if not ok:
        raise ValueError(f"{name} must have shape {expected}, got {shape_str(mask.shape)}")
    if not skip_data_checks() and bool(full.all(dim=-1).any()):
        raise ValueError(f"{name} hides every stored pattern for at least one state; "
                         "each state must see at least one pattern")
    return full


def _warn_renamed(old: str, new: str) -> None:
    warnings.warn(f"{old} is deprecated and will be removed in the next release; use {new}",
                  FutureWarning, stacklevel=3)


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

    ``beta`` is a float, a 0-d tensor or already shaped (..., 1, 1); ``mask`` is bool broadcastable
    to (..., L, N) or None with True = ignore. Layers validate once at their entry and call this on
    the hot path. The math path computes scores in float32 for half-precision inputs (as the fused
    kernels do), so both paths agree and neither overflows at |q·k| > 65504.
    """
    sep = sep or _SOFTMAX
    if sep.is_softmax and not need_weights:
        # Fused path: softmax(q kᵀ * scale) v. β is folded into q once (_fold_beta).
        lead = torch.broadcast_shapes(query.shape[:-2], keys.shape[:-2], values.shape[:-2])
        q, scale = _fold_beta(query, beta)
        if isinstance(beta, torch.Tensor):
            lead = torch.broadcast_shapes(lead, beta.shape[:-2])
        attn_mask = None if mask is None else ~mask
        out = _sdpa(q, keys, values, attn_mask, lead, dropout_p, scale)
        return out, None
    dtype = query.dtype
    if dtype in _HALF:  # scores and weights in float32, like the fused kernels
        query, keys, values = query.float(), keys.float(), values.float()
    scores = _scale(beta, query.dtype) * (query @ keys.mT)  # (..., L, N)
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    weights = sep(scores)
    attn = F.dropout(weights, p=dropout_p) if dropout_p > 0 else weights
    out = (attn @ values).to(dtype)
    return out, (weights.to(dtype) if need_weights else None)


def _scale(beta: Beta, dtype: torch.dtype) -> Beta:
    return beta.to(dtype) if isinstance(beta, torch.Tensor) else beta


def _fold_beta(query: torch.Tensor, beta: Beta) -> tuple[torch.Tensor, float]:
    """The one place β is folded into the query: ``(q, scale)`` with softmax(scale · q kᵀ) equal
    to softmax(β · query kᵀ). A tensor β multiplies the query (so it stays differentiable and
    per-head), a float β becomes the kernel's ``scale``."""
    if isinstance(beta, torch.Tensor):
        return query * beta.to(query.dtype), 1.0
    return query, float(beta)


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
        return t.expand(*lead, *t.shape[-2:]).reshape(b, 1, *t.shape[-2:])

    b = math.prod(lead)

    out = F.scaled_dot_product_attention(
        flat(q), flat(k), flat(v), attn_mask=None if attn_mask is None else flat(attn_mask),
        dropout_p=dropout_p, scale=scale)
    return out.reshape(*lead, *out.shape[-2:])



def _log_mean_exp(sims: torch.Tensor, beta: Beta, mask: torch.Tensor | None) -> torch.Tensor:
    """β⁻¹ log( (1/n) Σ_i exp(β s_i) ) over the unmasked entries of ``sims`` (..., L, N).

    Written as max_i s_i + β⁻¹ log mean exp(β (s_i − max)), so β⁻¹ never multiplies a large
    number. The log-sum-exp form has absolute error ~eps/β; for β < 1e-2 (or a tensor β), rows
    where β·(max − min) < 1 use log1p(mean(expm1(·))) instead (exact as β → 0, where the value tends
    to the mean of s). ``beta`` is a float, 0-d or (..., 1, 1) tensor.
    """
    if mask is not None:
        sims = sims.masked_fill(mask, float("-inf"))
    m = sims.amax(dim=-1, keepdim=True)  # (..., L, 1) finite: each state sees a pattern
    x = sims - m  # ≤ 0, -inf where masked
    if mask is not None:
        x = x.masked_fill(mask, 0.0)
    b = _scale(beta, sims.dtype)
    grad = sims.requires_grad or (isinstance(b, torch.Tensor) and b.requires_grad)
    x = x * b if grad else x.mul_(b)  # in place saves one (..., L, N) buffer
    p = torch.exp(x)
    if mask is None:
        n: Any = sims.shape[-1]
        r = p.sum(dim=-1).log() - math.log(n)  # max(x) = 0: no overflow
    else:
        n = (~mask).sum(dim=-1).to(sims.dtype)  # broadcast against (..., L)
        r = p.masked_fill(mask, 0.0).sum(dim=-1).log() - n.log()
    if isinstance(beta, torch.Tensor) or float(beta) < _SMALL_BETA:
        e = torch.expm1(x)
        if mask is not None:
            e = e.masked_fill(mask, 0.0)  # masked entries are 0 in x: never the min below -1
        r = torch.where(x.amin(dim=-1) > -1.0, torch.log1p(e.sum(dim=-1) / n), r)  # (..., L)
    return m.squeeze(-1) + r / _scale(_beta_rows(beta), sims.dtype)


_SMALL_BETA = 1e-2  # below it eps/β matters: the exact expm1 branch of _log_mean_exp


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in _HALF else dtype


def _tiny_beta(beta: Beta, dtype: torch.dtype) -> bool:
    """A float β so small that β·s or 1/β leaves ``dtype``'s normal range: compute in float64."""
    return (not isinstance(beta, torch.Tensor) and dtype != torch.float64
            and float(beta) < 1e4 * torch.finfo(dtype).tiny)


def _energy(state: torch.Tensor, patterns: torch.Tensor, beta: Beta,
            mask: torch.Tensor | None = None) -> torch.Tensor:
    """Unchecked energy (..., L); float32 for half inputs (the formula lives only here):

        E(ξ) = −lme(ξ) + ½ ξᵀξ + ½ M²,   lme = β⁻¹ log((1/n) Σ_i exp(β x_iᵀξ))

    which is −β⁻¹ lse + ½ ξᵀξ + β⁻¹ log n + ½ M² without the cancellation of the two β⁻¹ terms.
    """
    dtype = _compute_dtype(state.dtype)
    if _tiny_beta(beta, dtype):
        dtype = torch.float64
    state, patterns = state.to(dtype), patterns.to(dtype)
    norms = patterns.norm(dim=-1)  # (..., N)
    if mask is None:
        m = norms.amax(dim=-1).unsqueeze(-1)  # (..., 1)
    else:
        m = norms.unsqueeze(-2).masked_fill(mask, float("-inf")).amax(dim=-1)  # (..., L)
    lme = _log_mean_exp(state @ patterns.mT, beta, mask)  # (..., L)
    return _energy_from(state, lme, m)


def _energy_from(state: torch.Tensor, lme: torch.Tensor, max_norm: torch.Tensor) -> torch.Tensor:
    """E = −lme + ½‖ξ‖² + ½M², from the log-mean-exp ``lme`` (..., L) and M = max_i ‖x_i‖ (the
    one energy formula; streaming and sharded retrieval call it with their merged lme)."""
    max_norm = max_norm.to(lme.dtype)
    return -lme + 0.5 * (state.to(lme.dtype) ** 2).sum(-1) + 0.5 * max_norm * max_norm


def _check_output(x: torch.Tensor, what: str, dtype: torch.dtype) -> torch.Tensor:
    """Cast ``x`` to ``dtype``; raise when a value does not fit (never return inf silently)."""
    out = x.to(dtype)
    if not skip_data_checks() and not bool(torch.isfinite(out).all()):
        raise ValueError(f"{what} overflows {dtype} (the true values exceed its range); use "
                         "float64 inputs or rescale them")
    return out
