"""The Hopular network (Schäfl et al. 2022): per-feature embedding, Hopular blocks (sample–sample
and feature–feature Hopfield retrieval), summarisation head, and the streamed eval path.

Shape legend and the plain-math reference: :mod:`hopfield.estimators.hopular`, whose estimators
train these modules (training loop: :mod:`._hopular_train`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..nn import Hopfield
from ..streaming import SoftmaxPartial

__all__ = ["HopularEnsemble", "HopularNet"]


class _Embedding(nn.Module):
    """Per-feature embedding: numeric (linear) / categorical (table) + type + position.

    Categorical column j owns rows ``offset_j .. offset_j + K_j + 1`` of one shared table:
    K_j categories, then *missing* (code K_j), then *unknown* (code K_j + 1).

    ``n_bins`` = T > 0: numeric column j is embedded piecewise-linearly (Gorishniy et al. 2022,
    "On Embeddings for Numerical Features in Tabular Deep Learning", PLE):
    e_j = Σ_t clip((x_j − b_{j,t−1}) / (b_{j,t} − b_{j,t−1}), 0, 1) · W_{j,t} + b_j over the bin
    edges ``num_edges`` (Fn, T + 1) (training quantiles, set by the estimator; saved buffer).
    """

    def __init__(self, n_num: int, cards: list[int], E: int, dropout: float, n_bins: int = 0):
        super().__init__()
        F_ = n_num + len(cards)
        self.n_num, self.E, self.n_bins = n_num, E, int(n_bins)
        bound = 1.0 / math.sqrt(E)
        if self.n_bins:  # in num_w's place in the parameter order
            self.num_ple = nn.Parameter(torch.empty(n_num, n_bins, E).uniform_(-1.0, 1.0)
                                        / math.sqrt(n_bins))
            self.register_buffer("num_edges", torch.zeros(n_num, n_bins + 1))
        else:
            self.num_w = nn.Parameter(torch.empty(n_num, E).uniform_(-1.0, 1.0))
        self.num_b = nn.Parameter(torch.empty(n_num, E).uniform_(-bound, bound))
        self.num_missing = nn.Parameter(torch.randn(n_num, E) * bound)
        offsets = np.concatenate([[0], np.cumsum([k + 2 for k in cards])]).astype(np.int64)
        self.register_buffer("cat_offset", torch.as_tensor(offsets[:-1]))  # (Fc,)
        self.table = nn.Embedding(max(int(offsets[-1]), 1), E)
        nn.init.normal_(self.table.weight, std=bound)
        types = torch.tensor([0] * n_num + [1] * len(cards))
        self.register_buffer("types", types)  # (F,)
        self.type_emb = nn.Parameter(torch.randn(2, E) * bound)
        self.pos_emb = nn.Parameter(torch.randn(F_, E) * bound)
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(E)
        self.proj_w = nn.Parameter(torch.empty(F_, E, E).uniform_(-bound, bound))  # per feature
        self.proj_b = nn.Parameter(torch.zeros(F_, E))

    def numeric(self, num: torch.Tensor) -> torch.Tensor:
        """num (B, Fn) -> (B, Fn, E): linear w_j x_j + b_j, or piecewise-linear (``n_bins``)."""
        if not self.n_bins:
            return num.unsqueeze(-1) * self.num_w + self.num_b
        lo, hi = self.num_edges[:, :-1], self.num_edges[:, 1:]  # (Fn, T)
        # a zero-width bin is a step (1 above its edge); an overflow to ±inf (|x| ~ 3e38 over a
        # width of 1e-6) clips to 0 / 1, never NaN
        enc = ((num.unsqueeze(-1) - lo) / (hi - lo).clamp_min(1e-6)).clamp(0.0, 1.0)
        return torch.einsum("bft,fte->bfe", enc, self.num_ple) + self.num_b

    def forward(self, num: torch.Tensor, absent: torch.Tensor, cat: torch.Tensor) -> torch.Tensor:
        """num (B, Fn) float, absent (B, Fn) bool (missing or masked), cat (B, Fc) codes ->
        tokens (B, F, E)."""
        e_num = self.numeric(num)  # (B, Fn, E)
        e_num = torch.where(absent.unsqueeze(-1), self.num_missing.expand_as(e_num), e_num)
        e_cat = self.table(cat + self.cat_offset)  # (B, Fc, E)
        t = torch.cat([e_num, e_cat], dim=1) + self.type_emb[self.types] + self.pos_emb
        t = self.norm(self.drop(F.gelu(t)))
        return torch.einsum("bfe,fed->bfd", t, self.proj_w) + self.proj_b  # (B, F, E)


class _Block(nn.Module):
    """One Hopular block: sample–sample then feature–feature Hopfield retrieval, residuals."""

    def __init__(self, n_tokens: int, E: int, num_heads: int, head_size: int, dropout: float):
        super().__init__()
        FE = n_tokens * E
        self.norm_s = nn.LayerNorm(FE)
        # positional (input_size, head_size, output_size, num_heads): robust to keyword renames
        self.sample = Hopfield(FE, head_size, FE, num_heads, dropout=dropout)
        self.norm_f = nn.LayerNorm(E)
        self.feature = Hopfield(E, head_size, E, num_heads, dropout=dropout)

    def sample_kv(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected keys and values (N, H, Dh) of flat memory rows (N, F·E), β folded in K."""
        layer, m = self.sample, self.norm_s(memory)
        H, Dh = layer.num_heads, layer.q_proj.out_features // layer.num_heads
        k = layer.k_proj(m).view(-1, H, Dh) * layer.beta.to(m.dtype).view(1, H, 1)
        return k, layer.v_proj(m).view(-1, H, Dh)

    def stream_sample(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor],
                      chunk_size: int) -> torch.Tensor:
        """Exact sample–sample retrieval (eval, no mask) over cached (N, H, Dh) keys/values,
        streamed in chunks with the online softmax. x (B, F·E) -> (B, F·E)."""
        layer = self.sample
        H = layer.num_heads
        q = layer.q_proj(self.norm_s(x)).view(x.shape[0], H, -1).transpose(0, 1)  # (H, B, Dh)
        k_all, v_all = kv
        acc = SoftmaxPartial.empty((H, x.shape[0]), v_all.shape[-1], q)
        for s in range(0, k_all.shape[0], chunk_size):
            k, v = k_all[s:s + chunk_size], v_all[s:s + chunk_size]  # (C, H, Dh)
            scores = torch.einsum("hbd,chd->hbc", q, k)  # (H, B, C)
            m = scores.amax(dim=-1)  # (H, B)
            p = scores.sub_(m.unsqueeze(-1)).exp_()
            o = torch.einsum("hbc,chd->hbd", p, v)  # (H, B, Dh)
            acc = acc.merge(SoftmaxPartial(m, p.sum(-1), o))
        out = acc.result(x.dtype).transpose(0, 1).reshape(x.shape[0], -1)  # (B, H·Dh)
        return layer.out_proj(out)

    def forward(self, x: torch.Tensor, x0: torch.Tensor, memory: torch.Tensor | None = None,
                assoc_mask: torch.Tensor | None = None, kv=None, chunk_size: int = 4096):
        """x, x0 (B, F, E); memory (Nm, F·E) with assoc_mask (B, Nm) bool (True = ignore), or
        cached ``kv`` for streaming. Returns (B, F, E)."""
        B, F_, E = x.shape
        flat = x.reshape(B, F_ * E)
        if kv is not None:
            flat = flat + self.stream_sample(flat, kv, chunk_size)
        else:
            mem = self.norm_s(memory).unsqueeze(0)  # (1, Nm, F·E)
            flat = flat + self.sample((mem, self.norm_s(flat).unsqueeze(0), mem),
                                      association_mask=assoc_mask)[0]
        t = flat.view(B, F_, E)
        mem_f = self.norm_f(x0)  # (B, F, E): the sample's own original embeddings
        return t + self.feature((mem_f, self.norm_f(t), mem_f))


class HopularNet(nn.Module):
    """Embedding -> ``num_blocks`` Hopular blocks -> summarisation head (see module docstring).

    Columns: ``n_num`` numeric then ``len(cards)`` categorical tokens; the target is one of them
    (``target`` = its token index). The stored training set lives in the buffers ``mem_num``,
    ``mem_absent``, ``mem_cat`` (saved with the weights). ``quantile_shape`` (Q, Fn): the
    estimator's ``numeric_transform="quantile"`` table, kept in the float64 buffer
    ``num_quantiles`` so that it is saved with the weights (the network does not use it).
    ``n_bins`` > 0: piecewise-linear numeric embedding (see ``_Embedding``; set the edges with
    :meth:`set_bin_edges`).
    """

    def __init__(self, n_num: int, cards: list[int], target: int, *, embedding_size: int = 32,
                 num_blocks: int = 4, num_heads: int = 4, head_size: int = 32,
                 dropout: float = 0.1, quantile_shape: tuple[int, int] | None = None,
                 n_bins: int = 0):
        super().__init__()
        if quantile_shape is not None:  # no buffer otherwise: older saved models load unchanged
            self.register_buffer("num_quantiles",
                                 torch.zeros(tuple(quantile_shape), dtype=torch.float64))
        self.n_num, self.cards, self.target = n_num, list(cards), target
        F_ = n_num + len(cards)
        E = embedding_size
        self.embed = _Embedding(n_num, self.cards, E, dropout, n_bins)
        self.blocks = nn.ModuleList(_Block(F_, E, num_heads, head_size, dropout)
                                    for _ in range(num_blocks))
        self.head = nn.Sequential(nn.GELU(), nn.Dropout(dropout), nn.LayerNorm(F_ * E),
                                  nn.Linear(F_ * E, n_num + sum(self.cards)))
        kmax = max(self.cards, default=1)
        offs = np.concatenate([[0], np.cumsum(self.cards)])[:-1]
        idx = np.full((len(self.cards), kmax), sum(self.cards), np.int64)  # pad -> -inf column
        for j, (o, k) in enumerate(zip(offs, self.cards)):
            idx[j, :k] = np.arange(o, o + k)
        self.register_buffer("cat_index", torch.as_tensor(idx))  # (Fc, Kmax)
        for name, shape, dt in (("mem_num", (0, n_num), torch.float32),
                                ("mem_absent", (0, n_num), torch.bool),
                                ("mem_cat", (0, len(cards)), torch.int64)):
            self.register_buffer(name, torch.zeros(shape, dtype=dt))
        self._kv = None

    def set_bin_edges(self, edges) -> None:
        """Bin edges (n_num, n_bins + 1), non-decreasing per row, of the piecewise embedding."""
        self.embed.num_edges.copy_(torch.as_tensor(edges, dtype=self.embed.num_edges.dtype))
        self._kv = None

    def set_memory(self, num, absent, cat) -> None:
        self.mem_num, self.mem_absent, self.mem_cat = num, absent, cat
        self._kv = None

    def train(self, mode: bool = True):
        self._kv = None  # cached keys/values are only valid for frozen weights
        return super().train(mode)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("mem_num", "mem_absent", "mem_cat"):  # memory size is data-dependent
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name]))
        self._kv = None
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Head: x (B, F, E) -> (numeric predictions (B, Fn), padded logits (B, Fc, Kmax))."""
        out = self.head(x.flatten(1))  # (B, Fn + ΣK)
        logits = out[:, self.n_num:]
        pad = torch.full_like(logits[:, :1], float("-inf"))
        return out[:, :self.n_num], torch.cat([logits, pad], 1)[:, self.cat_index]

    def forward(self, num, absent, cat, mem_idx: torch.Tensor | None = None,
                self_idx: torch.Tensor | None = None):
        """Training path: memory = stored rows ``mem_idx`` (embedded with gradients); a query
        never sees its own stored row ``self_idx`` (B,). Returns :meth:`outputs`."""
        x0 = self.embed(num, absent, cat)  # (B, F, E)
        if mem_idx is None:
            mem_idx = torch.arange(len(self.mem_num), device=num.device)
        mem = self.embed(self.mem_num[mem_idx], self.mem_absent[mem_idx],
                         self.mem_cat[mem_idx]).flatten(1)  # (Nm, F·E)
        mask = None if self_idx is None else self_idx.unsqueeze(1) == mem_idx.unsqueeze(0)
        x = x0
        for blk in self.blocks:
            x = blk(x, x0, mem, mask)
        return self.outputs(x)

    @torch.no_grad()
    def cache_memory(self, chunk_size: int = 4096) -> list:
        """Projected sample-memory keys/values of every block over all stored rows, computed in
        chunks (eval mode)."""
        if self._kv is None:
            N, kv = len(self.mem_num), []
            for blk in self.blocks:  # preallocated: no list + cat copy of the cache
                H = blk.sample.num_heads
                Dh = blk.sample.q_proj.out_features // H
                like = self.mem_num
                kv.append((like.new_empty(N, H, Dh), like.new_empty(N, H, Dh)))
            for s in range(0, N, chunk_size):
                m = self.embed(self.mem_num[s:s + chunk_size], self.mem_absent[s:s + chunk_size],
                               self.mem_cat[s:s + chunk_size]).flatten(1)
                for (k_all, v_all), blk in zip(kv, self.blocks):
                    k, v = blk.sample_kv(m)
                    k_all[s:s + chunk_size], v_all[s:s + chunk_size] = k, v
            self._kv = kv
        return self._kv

    @torch.no_grad()
    def predict_stream(self, num, absent, cat, chunk_size: int = 4096):
        """Eval path over all stored rows (streamed); returns :meth:`outputs`."""
        kv = self.cache_memory(chunk_size)
        x0 = self.embed(num, absent, cat)
        x = x0
        for blk, kvb in zip(self.blocks, kv):
            x = blk(x, x0, kv=kvb, chunk_size=chunk_size)
        return self.outputs(x)


class HopularEnsemble(nn.Module):
    """``n_members`` independently trained :class:`HopularNet` (own seed, validation split and
    copy of the stored rows); the estimators average their predicted probabilities / values."""

    def __init__(self, members: list[HopularNet]):
        super().__init__()
        self.members = nn.ModuleList(members)


# ============================================================================ estimators
