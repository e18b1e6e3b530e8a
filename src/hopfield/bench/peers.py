"""Reference peers the benchmarks compare against.

``MaterializedAttention`` is a minimal, faithful re-implementation of how the reference package
(``hflayers``, not installable here) computes a Hopfield association: sequence-first projections as
in torch 1.6's ``multi_head_attention_forward``, then an explicit (B·H, L, N) association matrix
built with ``bmm``, softmax, and ``bmm`` with the values — repeated for every update step, with the
per-head convergence test on ``‖ξ_new − ξ_old‖``. It exists so the benchmark can show what
materialising the weights costs next to the fused path.

Shape legend: B batch, L state patterns, N stored patterns, D embedding, H heads, Dh = D / H.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MaterializedAttention", "weights_bytes"]


def weights_bytes(batch: int, heads: int, length: int, stored: int, itemsize: int = 4) -> int:
    """Bytes of one (B, H, L, N) association matrix."""
    return batch * heads * length * stored * itemsize


class MaterializedAttention(nn.Module):
    """Self-association with the association matrix materialised, hflayers-style.

    Args:
        embed_dim: D, split over ``num_heads`` heads.
        num_heads: H.
        max_steps: extra update steps ξ ← softmax(β ξ Kᵀ) K before the final association
            with the values (0 = one step, the attention case).
        tol: a head stops updating once ‖ξ_new − ξ_old‖ < tol.

    The old names ``update_steps_max`` / ``update_steps_eps`` are accepted with a
    ``FutureWarning`` for one release.
    """

    def __init__(self, embed_dim: int, num_heads: int, max_steps: int = 0, tol: float = 1e-4,
                 **deprecated: Any) -> None:
        super().__init__()
        for old, new in (("update_steps_max", "max_steps"), ("update_steps_eps", "tol")):
            if old in deprecated:
                warnings.warn(f"MaterializedAttention: {old} is deprecated, use {new}",
                              FutureWarning, stacklevel=2)
                if new == "max_steps":
                    max_steps = deprecated.pop(old)
                else:
                    tol = deprecated.pop(old)
        if deprecated:
            raise TypeError(f"MaterializedAttention got unexpected keyword arguments {sorted(deprecated)}")
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim must be divisible by num_heads ({num_heads}), got "
                             f"{embed_dim}")
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.max_steps = max_steps
        self.tol = tol
        self.in_proj = nn.Linear(embed_dim, 3 * embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, L, D) → (output (B, L, D), association weights (B, H, L, N))."""
        x = x.transpose(0, 1)  # (L, B, D): the reference works sequence-first
        length, batch, dim = x.shape
        h, dh = self.num_heads, self.head_dim
        beta = 1.0 / math.sqrt(dh)
        q, k, v = self.in_proj(x).chunk(3, dim=-1)  # (L, B, D) each
        q = q.contiguous().view(length, batch * h, dh).transpose(0, 1)  # (B·H, L, Dh)
        k = k.contiguous().view(-1, batch * h, dh).transpose(0, 1)  # (B·H, N, Dh)
        v = v.contiguous().view(-1, batch * h, dh).transpose(0, 1)  # (B·H, N, Dh)
        xi = q
        active = torch.ones(batch * h, 1, 1, dtype=torch.bool, device=x.device)
        for step in range(self.max_steps + 1):
            weights = F.softmax(torch.bmm(xi * beta, k.transpose(1, 2)), dim=-1)  # (B·H, L, N)
            if step == self.max_steps:
                break
            xi_new = torch.bmm(weights, k)  # (B·H, L, Dh)
            delta = (xi_new - xi).norm(dim=(1, 2), keepdim=True)  # (B·H, 1, 1)
            xi = torch.where(active, xi_new, xi)
            active = active & (delta >= self.tol)
            if not bool(active.any()):
                weights = F.softmax(torch.bmm(xi * beta, k.transpose(1, 2)), dim=-1)
                break
        out = torch.bmm(weights, v)  # (B·H, L, Dh)
        out = out.transpose(0, 1).contiguous().view(length, batch, dim)  # (L, B, D)
        out = self.out_proj(out).transpose(0, 1)  # (B, L, D)
        return out, weights.view(batch, h, length, -1)
