"""Online-softmax partial results of exact streaming retrieval (see :mod:`hopfield.streaming`
for the math): :class:`SoftmaxPartial` (running max m, sum s, weighted sum o; merges exactly),
:class:`TopK`, and the per-chunk kernels :func:`chunk_partial` (fused CPU flash kernel when
available) and the tiled top-k pass.

Shape legend: ... leading batch dims, L states, C rows of a chunk, D dims, k kept patterns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import functional as HF

Beta = float | torch.Tensor


@dataclass
class SoftmaxPartial:
    """Online-softmax partial over a subset of the stored patterns.

    Attributes:
        m: (..., L) running max of the scores (-inf when the subset is empty).
        s: (..., L) Σ exp(a_i − m).
        o: (..., L, D) Σ exp(a_i − m) x_i.
    """

    m: torch.Tensor
    s: torch.Tensor
    o: torch.Tensor

    @classmethod
    def empty(cls, lead_l: tuple[int, ...], dim: int, like: torch.Tensor) -> SoftmaxPartial:
        """The identity of :meth:`merge`; accumulates in float64 (merging thousands of float32
        chunk partials otherwise drifts by ~1e-5)."""
        dt = torch.float64 if like.dtype != torch.float64 else like.dtype
        m = torch.full(lead_l, float("-inf"), dtype=dt, device=like.device)
        return cls(m, torch.zeros_like(m), torch.zeros(*lead_l, dim, dtype=dt, device=like.device))

    def merge(self, other: SoftmaxPartial) -> SoftmaxPartial:
        """Exact combination of two partials over disjoint pattern sets."""
        m = torch.maximum(self.m, other.m)
        safe = torch.where(torch.isfinite(m), m, torch.zeros_like(m))  # both empty -> weights 0
        a, b = torch.exp(torch.stack([self.m, other.m.to(m.dtype)]) - safe)  # 2 x (..., L)
        return SoftmaxPartial(m, self.s * a + other.s * b,
                              self.o * a.unsqueeze(-1) + other.o * b.unsqueeze(-1))

    def result(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The update ξ_new = o / s, shape (..., L, D)."""
        return (self.o / self.s.unsqueeze(-1)).to(dtype or self.o.dtype)

    def lse(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """log Σ_i exp(a_i), shape (..., L)."""
        return (self.m + torch.log(self.s)).to(dtype or self.m.dtype)


@dataclass
class TopK:
    """The k most associated stored patterns of each state.

    Attributes:
        weights: (..., L, k) exact softmax association weights p_i (normalised over all N).
        indices: (..., L, k) int64 row indices into the stored patterns, by decreasing weight.
    """

    weights: torch.Tensor
    indices: torch.Tensor


def _flash_cpu(q: torch.Tensor, x: torch.Tensor, scale: float) -> SoftmaxPartial | None:
    """Fused CPU kernel returning (out, lse); ``None`` if unavailable for these inputs."""
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is None or q.device.type != "cpu" or q.requires_grad or x.requires_grad:
        return None
    lead, (L, D) = q.shape[:-2], q.shape[-2:]
    b = math.prod(lead)
    if b * L == 0 or x.shape[0] == 0:  # the kernel dies with SIGFPE on empty inputs
        return None
    try:
        q4 = q.reshape(b, 1, L, D)  # (B, 1, L, D)
        x4 = x.reshape(1, 1, *x.shape).expand(b, 1, *x.shape)  # (B, 1, C, D)
        out, lse = op(q4, x4, x4, 0.0, False, scale=scale)[:2]
    except (RuntimeError, TypeError):
        return None
    lse = lse.reshape(*lead, L).to(q.dtype)
    return SoftmaxPartial(lse, torch.ones_like(lse), out.reshape(*lead, L, D))


def chunk_partial(state: torch.Tensor, chunk: torch.Tensor, beta: Beta, k: int = 0,
                  fused: bool = True) -> tuple[SoftmaxPartial, tuple | None]:
    """Partial (m, s, o) of ``state`` (..., L, D) over one ``chunk`` (C, D); unchecked.

    ``beta`` is a float or shaped (..., 1, 1). With ``k > 0`` also returns the chunk's top-k
    ``(scores, local indices)``, each (..., L, min(k, C)). The fused CPU kernel gives (m, s, o)
    when available (``fused=False`` forces the two-matmul path); top-k then adds one matmul.
    """
    q, scale = HF._fold_beta(state, beta)
    part = _flash_cpu(q, chunk, scale) if fused else None
    if part is not None:
        if not k:
            return part, None
        scores = (q * scale) @ chunk.mT  # (..., L, C)
        return part, tuple(scores.topk(min(k, chunk.shape[0]), dim=-1))
    scores = (q * scale) @ chunk.mT  # (..., L, C)
    top = scores.topk(min(k, chunk.shape[0]), dim=-1) if k else None
    m = scores.amax(dim=-1)  # (..., L)
    if scores.requires_grad:  # keep autograd intact
        p = torch.exp(scores - m.unsqueeze(-1))  # (..., L, C)
    else:  # in place: saves one (..., L, C) buffer per chunk
        p = scores.sub_(m.unsqueeze(-1)).exp_()
    return SoftmaxPartial(m, p.sum(dim=-1), p @ chunk), (tuple(top) if k else None)


#: score-block budget of the top-k pass: at most this many (L × rows) scores per tile (64 MiB of
#: float32, the (256, 65,536) block the top-k always materialised). Smaller, cache-sized tiles were
#: 2.5x faster with one thread but 4x slower with two threads on a loaded machine (many small
#: parallel regions), so a default chunk at L <= 256 is one tile.
_TOPK_TILE_SCORES = 1 << 24
_TOPK_MIN_TILE = 4096  # rows: fewer would mean many small parallel regions at large L


def _topk_partial(state: torch.Tensor, chunk: torch.Tensor, beta: Beta,
                  k: int) -> tuple[SoftmaxPartial, tuple]:
    """The top-k pass over one ``chunk`` (C, D): ``(partial, (scores, local indices))`` with the
    chunk's top-k each (..., L, min(k, C)) and a partial whose ``o`` is zero (the top-k needs only
    the log-sum-exp ``m + log s``, not the weighted sum).

    One score matmul per tile of rows (at most :data:`_TOPK_TILE_SCORES` scores), then its top-k,
    max and in-place exp-sum, instead of the fused kernel (which also computes the unused weighted
    sum) plus a separate (L, C) score matmul for the top-k: per 65,536-row chunk at L = 256,
    D = 64, k = 1, 504 vs 787 ms with two threads and 557 vs 866 ms with one (``/tmp/g1/micro.py``,
    median of 15, shared machine at load ~13). Differentiable in the states and the chunk (no
    in-place exp when a gradient is needed)."""
    q, scale = HF._fold_beta(state, beta)
    qs = q * scale
    grad = torch.is_grad_enabled() and (qs.requires_grad or chunk.requires_grad)
    rows = max(1, math.prod(qs.shape[:-1]))
    tile = max(_TOPK_MIN_TILE, _TOPK_TILE_SCORES // rows)
    ms, ss, vals, idxs = [], [], [], []
    for c in range(0, chunk.shape[0], tile):
        scores = qs @ chunk[c:c + tile].mT  # (..., L, T)
        kk = min(k, scores.shape[-1])
        v, i = scores.topk(kk, dim=-1) if kk > 1 else scores.max(dim=-1, keepdim=True)
        m = v[..., 0]  # the tile's max: topk is sorted
        if grad:
            e = torch.exp(scores - m.unsqueeze(-1)).sum(dim=-1)
        else:  # in place: no second (..., L, T) buffer
            e = scores.sub_(m.unsqueeze(-1)).exp_().sum(dim=-1)
        ms.append(m)
        ss.append(e)
        vals.append(v)
        idxs.append(i + c)
    if len(ms) == 1:
        m, s = ms[0], ss[0]
        top = (vals[0], idxs[0])
    else:
        mt = torch.stack(ms, -1)  # (..., L, J) per-tile maxima
        m = mt.amax(dim=-1)
        s = (torch.stack(ss, -1) * torch.exp(mt - m.unsqueeze(-1))).sum(dim=-1)
        v, pos = torch.cat(vals, -1).topk(min(k, chunk.shape[0]), dim=-1)
        top = (v, torch.cat(idxs, -1).gather(-1, pos))
    o = m.new_zeros(()).expand(*m.shape, state.shape[-1])
    return SoftmaxPartial(m, s, o), top
