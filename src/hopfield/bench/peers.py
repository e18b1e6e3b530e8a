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
        update_steps_max: extra update steps ξ ← softmax(β ξ Kᵀ) K before the final association
            with the values (0 = one step, the attention case).
        update_steps_eps: a head stops updating once ‖ξ_new − ξ_old‖ < eps.
    """

    def __init__(self, embed_dim: int, num_heads: int, update_steps_max: int = 0,
                 update_steps_eps: float = 1e-4) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim must be divisible by num_heads ({num_heads}), got "
                             f"{embed_dim}")
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.update_steps_max = update_steps_max
        self.update_steps_eps = update_steps_eps
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
        for step in range(self.update_steps_max + 1):
            weights = F.softmax(torch.bmm(xi * beta, k.transpose(1, 2)), dim=-1)  # (B·H, L, N)
            if step == self.update_steps_max:
                break
            xi_new = torch.bmm(weights, k)  # (B·H, L, Dh)
            delta = (xi_new - xi).norm(dim=(1, 2), keepdim=True)  # (B·H, 1, 1)
            xi = torch.where(active, xi_new, xi)
            active = active & (delta >= self.update_steps_eps)
            if not bool(active.any()):
                weights = F.softmax(torch.bmm(xi * beta, k.transpose(1, 2)), dim=-1)
                break
        out = torch.bmm(weights, v)  # (B·H, L, Dh)
        out = out.transpose(0, 1).contiguous().view(length, batch, dim)  # (L, B, D)
        out = self.out_proj(out).transpose(0, 1)  # (B, L, D)
        return out, weights.view(batch, h, length, -1)
