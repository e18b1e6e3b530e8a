"""The ``Hopfield`` layer: multi-head association of state patterns with stored patterns.

Shape legend:
    B  batch                      H   heads (``num_heads``)
    L  state patterns (queries)   Dh  head dimension (``hidden_size``), E = H * Dh
    N  stored patterns (keys)     Dq, Dk, Dv  feature sizes of state / stored / projection inputs

Plain-math reference for one head h (Ramsauer et al. 2020, eq. 10; one transformer attention head)::

    q = R W_qᵀ + b_q        (L, Dh)   state patterns R projected
    k = Y W_kᵀ + b_k        (N, Dh)   stored patterns Y projected
    v = V W_vᵀ + b_v        (N, Dh)   pattern projections V projected
    ξ = q;  repeat update_steps_max times (or until every ‖Δξ‖ < eps):  ξ ← sep(β_h ξ kᵀ) k
    head_h = sep(β_h ξ kᵀ) v            (L, Dh)
    out = concat_h(head_h) W_oᵀ + b_o   (L, output_size)

With softmax and no weights requested every association runs through
:func:`torch.nn.functional.scaled_dot_product_attention` (no B×H×L×N matrix). β is folded into the
query projection (one step) or into the projected stored patterns (several steps), so SDPA is
always called with ``scale=1``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .. import functional as HF
from .._validation import (
    check_beta,
    check_positive_float,
    check_positive_int,
    check_probability,
    is_compiling,
    shape_str,
)
from ..separations import Separation, get_separation
from ._inputs import check_masks, split_input
from .info import HopfieldInfo

__all__ = ["Hopfield"]


def _init_beta(module: nn.Module, beta: object, num_heads: int, head_dim: int,
               learnable: bool) -> None:
    """Register β as buffer ``fixed_beta`` (H,) or as parameter ``log_beta`` (H,)."""
    if beta is None:
        b = torch.full((num_heads,), 1.0 / math.sqrt(head_dim))
    elif isinstance(beta, torch.Tensor):
        check_beta(beta)
        if beta.dim() == 0:
            b = beta.detach().float().expand(num_heads).clone()
        elif beta.shape == (num_heads,):
            b = beta.detach().float().clone()
        else:
            raise ValueError(f"beta must be a float or a tensor of shape ({num_heads},) (one per "
                             f"head), got shape {shape_str(beta.shape)}")
    else:
        b = torch.full((num_heads,), check_beta(beta))
    b = b.to(torch.get_default_dtype())
    if learnable:
        module.log_beta = nn.Parameter(b.log())
    else:
        module.register_buffer("fixed_beta", b)


class Hopfield(nn.Module):
    """Multi-head modern Hopfield layer (heteroassociation; self-association with one tensor).

    Args:
        input_size: Dq, feature size of the state patterns R (and of Y, V unless given).
        hidden_size: Dh, per-head size of the association space (default input_size // num_heads).
        output_size: size of the output (default input_size).
        num_heads: H.
        stored_pattern_size: Dk of the stored patterns Y (default input_size).
        pattern_projection_size: Dv of the pattern projections V (default input_size).
        beta: inverse temperature. ``None`` → 1/sqrt(Dh) (transformer scaling); a float; or a
            tensor of shape (H,), one β per head.
        learnable_beta: learn β per head (stored as ``log_beta`` so it stays positive).
        update_steps_max: number of extra state updates in head space before the read-out
            (0 = one association, like attention).
        update_steps_eps: stop iterating when every state moved less than this (L2 norm).
        normalize_state, normalize_stored, normalize_projection: LayerNorm on R, Y, V inputs.
        separation: ``"softmax"`` (default), ``"sparsemax"``, ``"entmax"`` or a Separation.
        dropout: dropout probability on the association weights (training only).
        bias: biases in the four projections.
        batch_first: inputs and output are (B, T, D); otherwise (T, B, D).

    ``forward(input, *, mask=None, association_mask=None, return_info=False)``:
        input: one tensor (self-association) or a tuple ``(stored, state, projection)``
            = (Y, R, V), shapes (B, N, Dk), (B, L, Dq), (B, N, Dv).
        mask: bool (B, N), True = ignore that stored pattern (key_padding_mask convention).
        association_mask: bool (L, N) or 4-D broadcastable to (B, H, L, N), True = ignore.
            A state that can see no stored pattern gives NaN (as in nn.MultiheadAttention).
        return_info: also return a :class:`HopfieldInfo` (weights from the same pass).
    Returns (B, L, output_size) (or (L, B, ...)), and with return_info ``(out, info)``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int | None = None,
        output_size: int | None = None,
        num_heads: int = 1,
        *,
        stored_pattern_size: int | None = None,
        pattern_projection_size: int | None = None,
        beta: float | torch.Tensor | None = None,
        learnable_beta: bool = False,
        update_steps_max: int = 0,
        update_steps_eps: float = 1e-4,
        normalize_state: bool = False,
        normalize_stored: bool = False,
        normalize_projection: bool = False,
        separation: str | Separation = "softmax",
        dropout: float = 0.0,
        bias: bool = True,
        batch_first: bool = True,
    ) -> None:
        super().__init__()
        input_size = check_positive_int(input_size, "input_size")
        num_heads = check_positive_int(num_heads, "num_heads")
        if hidden_size is None:
            if input_size % num_heads:
                raise ValueError(f"hidden_size must be given when input_size ({input_size}) is not "
                                 f"divisible by num_heads ({num_heads})")
            hidden_size = input_size // num_heads
        self.input_size = input_size
        self.num_heads = num_heads
        self.hidden_size = check_positive_int(hidden_size, "hidden_size")
        def size(value: int | None, name: str) -> int:  # None → input_size; 0 is an error
            return check_positive_int(input_size if value is None else value, name)

        self.output_size = size(output_size, "output_size")
        self.stored_pattern_size = size(stored_pattern_size, "stored_pattern_size")
        self.pattern_projection_size = size(pattern_projection_size, "pattern_projection_size")
        self.update_steps_max = check_positive_int(update_steps_max, "update_steps_max", minimum=0)
        self.update_steps_eps = check_positive_float(update_steps_eps, "update_steps_eps")
        self.separation = get_separation(separation)
        self.dropout = check_probability(dropout, "dropout")
        self.batch_first = bool(batch_first)

        E = num_heads * self.hidden_size
        self.q_proj = nn.Linear(input_size, E, bias=bias)
        self.k_proj = nn.Linear(self.stored_pattern_size, E, bias=bias)
        self.v_proj = nn.Linear(self.pattern_projection_size, E, bias=bias)
        self.out_proj = nn.Linear(E, self.output_size, bias=bias)
        for lin in (self.q_proj, self.k_proj, self.v_proj, self.out_proj):
            nn.init.xavier_uniform_(lin.weight)
            if lin.bias is not None:
                nn.init.zeros_(lin.bias)
        self.norm_state = nn.LayerNorm(input_size) if normalize_state else None
        self.norm_stored = nn.LayerNorm(self.stored_pattern_size) if normalize_stored else None
        self.norm_projection = (nn.LayerNorm(self.pattern_projection_size)
                                if normalize_projection else None)
        _init_beta(self, beta, num_heads, self.hidden_size, bool(learnable_beta))

    # ------------------------------------------------------------------ properties

    @property
    def beta(self) -> torch.Tensor:
        """(H,) inverse temperature per head (differentiable when learnable)."""
        log_beta = getattr(self, "log_beta", None)
        return log_beta.exp() if log_beta is not None else self.fixed_beta

    @property
    def learnable_beta(self) -> bool:
        return getattr(self, "log_beta", None) is not None

    def extra_repr(self) -> str:
        b = self.beta.detach()
        beta = f"{float(b[0]):.4g}" if bool((b == b[0]).all()) else \
            "[" + ", ".join(f"{float(x):.4g}" for x in b) + "]"
        parts = [f"input_size={self.input_size}", f"hidden_size={self.hidden_size}",
                 f"output_size={self.output_size}", f"num_heads={self.num_heads}"]
        if self.stored_pattern_size != self.input_size:
            parts.append(f"stored_pattern_size={self.stored_pattern_size}")
        if self.pattern_projection_size != self.input_size:
            parts.append(f"pattern_projection_size={self.pattern_projection_size}")
        parts += [f"beta={beta}" + (" (learnable)" if self.learnable_beta else ""),
                  f"update_steps_max={self.update_steps_max}",
                  f"separation={self.separation.name}"]
        if self.update_steps_max:
            parts.append(f"update_steps_eps={self.update_steps_eps:g}")
        if self.dropout:
            parts.append(f"dropout={self.dropout}")
        parts.append(f"batch_first={self.batch_first}")
        return ", ".join(parts)

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_attention(cls, mha: nn.MultiheadAttention) -> Hopfield:
        """A ``Hopfield`` layer computing what ``mha`` computes (one update, β = 1/sqrt(Dh)).

        Weights are copied (not shared). ``key_padding_mask`` becomes ``mask`` and a bool
        ``attn_mask`` (L, S) becomes ``association_mask``; inputs go in the order
        ``(key, query, value)``.
        """
        if not isinstance(mha, nn.MultiheadAttention):
            raise TypeError(f"mha must be a torch.nn.MultiheadAttention, got {type(mha).__name__}")
        if mha.bias_k is not None or mha.bias_v is not None:
            raise ValueError("mha must not use add_bias_kv=True (learned extra key/value "
                             "patterns are not supported), got add_bias_kv=True")
        if mha.add_zero_attn:
            raise ValueError("mha must not use add_zero_attn=True, got add_zero_attn=True")
        E, H = mha.embed_dim, mha.num_heads
        weight = mha.in_proj_weight if mha._qkv_same_embed_dim else mha.q_proj_weight
        layer = cls(E, E // H, E, H, stored_pattern_size=mha.kdim, pattern_projection_size=mha.vdim,
                    dropout=mha.dropout, bias=mha.in_proj_bias is not None,
                    batch_first=mha.batch_first)
        layer = layer.to(device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            if mha._qkv_same_embed_dim:
                wq, wk, wv = mha.in_proj_weight.chunk(3)
            else:
                wq, wk, wv = mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight
            for lin, w in zip((layer.q_proj, layer.k_proj, layer.v_proj), (wq, wk, wv)):
                lin.weight.copy_(w)
            if mha.in_proj_bias is not None:
                for lin, b in zip((layer.q_proj, layer.k_proj, layer.v_proj),
                                  mha.in_proj_bias.chunk(3)):
                    lin.bias.copy_(b)
            layer.out_proj.weight.copy_(mha.out_proj.weight)
            if mha.out_proj.bias is not None and layer.out_proj.bias is not None:
                layer.out_proj.bias.copy_(mha.out_proj.bias)
        return layer.train(mha.training)

    # ------------------------------------------------------------------ forward

    def forward(
        self,
        input: torch.Tensor | Sequence[torch.Tensor],
        *,
        mask: torch.Tensor | None = None,
        association_mask: torch.Tensor | None = None,
        return_info: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, HopfieldInfo]:
        sizes = (self.stored_pattern_size, self.input_size, self.pattern_projection_size)
        stored, state, proj = split_input(input, sizes, self.batch_first, self.q_proj.weight.dtype)
        out, info = self._run(stored, state, proj, mask, association_mask, return_info)
        if not self.batch_first:
            out = out.transpose(0, 1)  # (L, B, output_size)
        return (out, info) if return_info else out

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, E) → (B, H, T, Dh) view."""
        return x.unflatten(-1, (self.num_heads, self.hidden_size)).transpose(1, 2)

    def _project(self, y: torch.Tensor, r: torch.Tensor, v: torch.Tensor,
                 q_scale: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Project (Y, R, V) into heads; one fused matmul when inputs coincide."""
        if self.norm_stored is not None:
            y = self.norm_stored(y)
        if self.norm_state is not None:
            r = self.norm_state(r)
        if self.norm_projection is not None:
            v = self.norm_projection(v)
        wq, bq = self.q_proj.weight, self.q_proj.bias
        if q_scale is not None:  # fold β into the query projection (per head rows)
            wq = wq * q_scale[:, None]
            bq = bq * q_scale if bq is not None else None
        wk, bk, wv, bv = self.k_proj.weight, self.k_proj.bias, self.v_proj.weight, self.v_proj.bias
        has_bias = bq is not None
        if r is y and y is v:  # self-association: one (B, L, 3E) matmul like nn.MultiheadAttention
            b = torch.cat([bq, bk, bv]) if has_bias else None
            qkv = F.linear(r, torch.cat([wq, wk, wv]), b)  # (B, L, 3E)
            q, k, v = qkv.unflatten(-1, (3, self.num_heads, self.hidden_size)).permute(
                2, 0, 3, 1, 4).unbind(0)  # 3 × (B, H, L, Dh)
            return q, k, v
        q = self._heads(F.linear(r, wq, bq))  # (B, H, L, Dh)
        if y is v:  # stored patterns are their own projections (pooling, lookup)
            kv = F.linear(y, torch.cat([wk, wv]), torch.cat([bk, bv]) if has_bias else None)
            k, v = kv.unflatten(-1, (2, self.num_heads, self.hidden_size)).permute(
                2, 0, 3, 1, 4).unbind(0)  # 2 × (B, H, N, Dh)
            return q, k, v
        return q, self._heads(F.linear(y, wk, bk)), self._heads(F.linear(v, wv, bv))

    def _run(
        self, y: torch.Tensor, r: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
        association_mask: torch.Tensor | None, return_info: bool,
    ) -> tuple[torch.Tensor, HopfieldInfo | None]:
        """Core on validated batch-first tensors; Y and V (or R) may have batch size 1."""
        B, L, N = max(r.shape[0], y.shape[0]), r.shape[1], y.shape[1]
        ignore = check_masks(mask, association_mask, (B, self.num_heads, L, N))
        allow = None if ignore is None else ~ignore
        sep, steps_max = self.separation, self.update_steps_max
        p = self.dropout if self.training else 0.0
        beta = self.beta.to(r.dtype)  # (H,)
        fused = sep.is_softmax and not return_info
        if fused and steps_max == 0:  # the hot path: β folded into W_q, one SDPA call
            q, k, v = self._project(y, r, v, beta.repeat_interleave(self.hidden_size))
            q, k, v = (t.expand(B, *t.shape[1:]) for t in (q, k, v))
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=allow, dropout_p=p, scale=1.0)
            return self.out_proj(out.transpose(1, 2).flatten(2)), None  # (B, L, output_size)

        q, k, v = self._project(y, r, v, None)
        q, k, v = (t.expand(B, *t.shape[1:]) for t in (q, k, v))  # (B, H, ·, Dh)
        bgrid = beta.view(-1, 1, 1)  # (H, 1, 1)
        kb = k * bgrid if sep.is_softmax and (steps_max or fused) else None  # β·K for SDPA
        trace = [HF._energy(q, k, bgrid, ignore)] if return_info and sep.is_softmax else None
        xi, steps, converged = q, 0, None
        for _ in range(steps_max):  # ξ ← sep(β ξ Kᵀ) K in head space
            if kb is not None:
                new = F.scaled_dot_product_attention(xi, kb, k, attn_mask=allow, scale=1.0)
            else:
                new, _ = HF._associate(xi, k, k, bgrid, ignore, sep)
            with torch.no_grad():
                converged = (new - xi).norm(dim=-1) < self.update_steps_eps  # (B, H, L)
            xi, steps = new, steps + 1
            if trace is not None:
                trace.append(HF._energy(xi, k, bgrid, ignore))
            if not is_compiling() and bool(converged.all()):
                break
        if fused:
            out = F.scaled_dot_product_attention(xi, kb, v, attn_mask=allow, dropout_p=p, scale=1.0)
            weights = None
        else:
            out, weights = HF._associate(xi, k, v, bgrid, ignore, sep, need_weights=return_info,
                                         dropout_p=p)
        out = self.out_proj(out.transpose(1, 2).flatten(2))  # (B, L, output_size)
        if not return_info:
            return out, None
        info = HopfieldInfo(weights=weights, steps=steps, converged=converged,
                            energy=torch.stack(trace) if trace is not None else None,
                            beta=beta.detach())
        return out, info
