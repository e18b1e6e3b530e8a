"""The DeepRC network: CNN sequence embedding -> multi-head Hopfield pooling -> output network.

Shape legend: M sequences (of one repertoire, or a chunk of it), L padded sequence length,
T = L - k + 1 convolution windows (k = ``kernel_size``), K kernels, E embedding size,
H heads, Dh head size, Q query patterns (1), C classes, B repertoires in a batch.

Plain-math reference (Widrich et al. 2020, with HopfieldPooling in place of the attention net)::

    x_m       one-hot of sequence m (L, 20 amino acids + unknown) ++ 3 positional features
    h_m       = max_t SELU(conv1d_k(x_m))_t                   (K,)   max over valid windows
    e_m       = W_e [h_m ; log(1 + count_m)] + b_e             (E,)   (count only if use_counts)
    z         = HopfieldPooling(e_1..e_N)                      (E,)   softmax over all N sequences
    x         = standardise(z)                                 (E,)   training-set statistics
    logits    = W_s x + b_s + W_2 SELU(W_1 x + b_1) + b_2      (C,)   linear read-out + MLP

The convolution over a one-hot input is a sum of table lookups, ``conv(x)_t = Σ_o T_o[a_{t+o}] +
P_ℓ[t]``, which is what :class:`SequenceEmbedding` computes (no one-hot tensor is built); the
positional term depends only on the sequence length ℓ and is looked up per length.

The pooling over all N sequences is evaluated chunk by chunk with the online softmax of
:mod:`hopfield.streaming` (:class:`~hopfield.streaming.SoftmaxPartial`, exact merge), so its
memory is bounded by the chunk size however large the repertoire is (:func:`pool_partial`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..nn import HopfieldPooling
from ..streaming import SoftmaxPartial
from .data import N_TOKENS

__all__ = ["DeepRCNet", "SequenceEmbedding", "length_groups", "pool_finish", "pool_partial",
           "pool_scores"]


def position_features(length: torch.Tensor, L: int) -> torch.Tensor:
    """(M,) lengths -> (M, L, 3) DeepRC positional features: start / middle / end ramps, 0 on
    padding."""
    pos = torch.arange(L, device=length.device, dtype=torch.float32)  # (L,)
    ell = length.to(torch.float32).unsqueeze(1)  # (M, 1)
    r = pos / (ell - 1).clamp(min=1)  # (M, L) relative position in [0, 1]
    start = (1 - 2 * r).clamp(min=0)
    end = (2 * r - 1).clamp(min=0)
    feats = torch.stack([start, 1 - start - end, end], -1)  # (M, L, 3)
    return feats * (pos < ell).unsqueeze(-1)


LengthGroups = tuple  # (order (M,) int64 ndarray, [(length, count), ...] ascending)


def length_groups(lengths) -> LengthGroups:
    """Host-side grouping of sequences by length: a stable sort order and the (length, count)
    runs, ascending (what :class:`SequenceEmbedding` needs; computed from numpy lengths, so the
    forward pass reads nothing back from the device)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(lengths, kind="stable")
    ls, counts = np.unique(lengths, return_counts=True)
    return order, list(zip(ls.tolist(), counts.tolist()))


class SequenceEmbedding(nn.Module):
    """Codes (M, L) int + lengths (M,) -> (M, K): 1-D CNN over one-hot + positional features, SELU,
    max over windows."""

    def __init__(self, n_kernels: int, kernel_size: int, max_length: int) -> None:
        super().__init__()
        self.k, self.K, self.max_length = kernel_size, n_kernels, max_length
        # T_o[a] for every offset o: one (N_TOKENS, k*K) table; row 0 (padding) stays 0
        self.tokens = nn.Embedding(N_TOKENS, kernel_size * n_kernels, padding_idx=0)
        self.position = nn.Conv1d(3, n_kernels, kernel_size, bias=True)
        nn.init.normal_(self.tokens.weight, std=(kernel_size * 4) ** -0.5)
        with torch.no_grad():
            self.tokens.weight[0].zero_()
        self._cache = None

    def _position_table(self) -> torch.Tensor:
        """(max_length + 1, T, K): positional conv term per sequence length (recomputed per call
        in training; cached in eval mode)."""
        if not self.training and self._cache is not None:
            return self._cache
        Lp = max(self.max_length, self.k)
        lens = torch.arange(self.max_length + 1, device=self.position.weight.device)
        feats = position_features(lens, Lp)  # (ℓ, Lp, 3)
        table = self.position(feats.transpose(1, 2)).transpose(1, 2)  # (ℓ, T, K)
        self._cache = None if self.training else table.detach()
        return table

    def train(self, mode: bool = True) -> SequenceEmbedding:
        self._cache = None
        return super().train(mode)

    def _tables(self) -> list[tuple[int, int, torch.Tensor]]:
        """Offsets grouped by up to 3: [(first offset, width j, (22**j, K) summed table)]."""
        k, K = self.k, self.K
        W = self.tokens.weight.view(N_TOKENS, k, K)  # (tokens, k, K)
        out = []
        for o0 in range(0, k, 3):
            j = min(3, k - o0)
            t = W[:, o0]
            for i in range(1, j):  # outer sum over the group's offsets
                t = t.unsqueeze(-2) + W[:, o0 + i].view(*([1] * i), N_TOKENS, K)
            out.append((o0, j, t.reshape(-1, K)))
        return out

    def forward(self, codes: torch.Tensor, lengths: torch.Tensor,
                groups: LengthGroups | None = None) -> torch.Tensor:
        """``groups``: the grouping by length computed on the host from the same lengths
        (:func:`length_groups`); without it the lengths are read back from the device (host
        syncs on a GPU)."""
        M, L = codes.shape
        k, K = self.k, self.K
        if groups is None:
            groups = length_groups(lengths.cpu().numpy())
        order_np, bounds = groups
        if M and bounds[-1][0] > self.max_length:
            raise ValueError(f"sequences must have at most max_length={self.max_length} amino "
                             f"acids, got {bounds[-1][0]}")
        if L < k:
            codes = F.pad(codes, (0, k - L))
        codes = codes.long()
        pos = self._position_table()  # (max_length + 1, T_max, K)
        tables = self._tables()
        # Sequences of one length ℓ need exactly T = ℓ - k + 1 windows (no padding, no mask), and
        # max_t SELU(h_t) = SELU(max_t h_t) (SELU is increasing): one group per length.
        order = torch.from_numpy(order_np).to(codes.device)
        outs, s = [], 0
        for ell, n in bounds:
            idx = order[s:s + n]
            s += n
            T = max(ell - k + 1, 1)
            c = codes[idx]  # (n, L)
            h = pos[ell, :T]  # (T, K), broadcast
            for o0, j, tab in tables:
                key = c[:, o0:o0 + T]
                for i in range(1, j):
                    key = key * N_TOKENS + c[:, o0 + i:o0 + i + T]
                h = h + F.embedding(key, tab)  # (n, T, K)
            outs.append(h.amax(1))  # (n, K)
        if not outs:
            return codes.new_zeros((0, K), dtype=self.tokens.weight.dtype)
        h = torch.cat(outs) if len(outs) > 1 else outs[0]
        inv = np.empty_like(order_np)
        inv[order_np] = np.arange(M)
        return F.selu(h[torch.from_numpy(inv).to(codes.device)])  # (M, K)


class DeepRCNet(nn.Module):
    """Sequence embedding -> HopfieldPooling (H heads, one learned query) -> output network."""

    def __init__(self, n_classes: int, *, n_kernels: int, kernel_size: int, max_length: int,
                 embedding_size: int, num_heads: int, head_size: int, beta: float | None,
                 use_counts: bool, dropout: float) -> None:
        super().__init__()
        self.use_counts = use_counts
        self.embed = SequenceEmbedding(n_kernels, kernel_size, max_length)
        self.project = nn.Linear(n_kernels + int(use_counts), embedding_size)
        self.pool = HopfieldPooling(embedding_size, head_size, embedding_size, num_heads,
                                    beta=beta, normalize_stored=True, normalize_projection=True,
                                    dropout=dropout)
        self.head = nn.Sequential(nn.Linear(embedding_size, embedding_size), nn.SELU(),
                                  nn.Dropout(dropout), nn.Linear(embedding_size, n_classes))
        nn.init.zeros_(self.head[-1].weight)  # starts as the linear read-out `skip` alone
        nn.init.zeros_(self.head[-1].bias)
        self.skip = nn.Linear(embedding_size, n_classes)  # linear read-out beside the MLP
        # auxiliary sequence-level classifier (training only: bag labels inherited by sequences)
        self.sequence_head = nn.Linear(embedding_size, n_classes)
        # standardisation of the pooled vector (set from the training repertoires after the
        # warm start: pooled vectors of different repertoires can differ by only ~1e-3)
        self.register_buffer("pooled_mean", torch.zeros(embedding_size))
        self.register_buffer("pooled_scale", torch.ones(embedding_size))

    def sequences(self, codes: torch.Tensor, lengths: torch.Tensor,
                  counts: torch.Tensor | None = None,
                  groups: LengthGroups | None = None) -> torch.Tensor:
        """(M, L) codes, (M,) lengths, (M,) counts -> (M, E) sequence embeddings (``groups``:
        :func:`length_groups` of the lengths, computed on the host)."""
        h = self.embed(codes, lengths, groups)
        if self.use_counts:
            c = torch.log1p(counts.to(h.dtype)) if counts is not None else h.new_zeros(len(h))
            h = torch.cat([h, c.unsqueeze(1)], 1)
        return self.project(h)

    def sequence_logits(self, emb: torch.Tensor) -> torch.Tensor:
        """(M, E) -> (M, C) auxiliary per-sequence logits, on the pooling's key normalisation (so
        the sequence score can seed the association scores, :meth:`seed_attention`)."""
        norm = self.pool.hopfield.norm_stored
        return self.sequence_head(norm(emb) if norm is not None else emb)

    @torch.no_grad()
    def seed_attention(self, scale: float = 4.0, spread: float = 1.0) -> None:
        """Set the pooling so that head h's association score of a sequence equals
        ``scale * spread ** (h - H + 1)`` × its sequence-level log-odds (class C-1 vs 0) from
        :attr:`sequence_head`: the pooling then starts out attending to the sequences that the
        sequence-level classifier finds most indicative of the positive class. With
        ``spread > 1`` the heads get a geometric range of temperatures: the sharpest one puts all
        its weight on the top sequences, the softer ones weight them in proportion to how many
        there are (a softmax pooling alone is blind to the count). Other key dimensions keep a
        small random part."""
        hop = self.pool.hopfield
        H, Dh = hop.num_heads, _head_size(hop)
        w = self.sequence_head.weight[-1] - self.sequence_head.weight[0]  # (E,)
        hop.k_proj.weight.mul_(0.1)
        hop.q_proj.weight.zero_()
        if hop.q_proj.bias is not None:
            hop.q_proj.bias.zero_()
        if hop.k_proj.bias is not None:
            hop.k_proj.bias.zero_()
        beta = hop.beta.detach()
        for h in range(H):
            hop.k_proj.weight[h * Dh] = w
            if hop.q_proj.bias is not None:
                hop.q_proj.bias[h * Dh] = scale * spread ** (h - H + 1) / float(beta[h])

    def classify(self, z: torch.Tensor) -> torch.Tensor:
        """(B, E) pooled vectors -> (B, C) logits (standardised, then the output network)."""
        x = self.standardize(z)
        return self.skip(x) + self.head(x)

    def standardize(self, z: torch.Tensor) -> torch.Tensor:
        """Pooled vectors standardised with the training statistics, soft-clipped at ±5."""
        return 5 * torch.tanh((z - self.pooled_mean) / self.pooled_scale / 5)

    def forward(self, emb: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, M, E) embedded sequences (mask (B, M), True = padding) -> (B, C) logits."""
        return self.classify(self.pool(emb, mask=mask))


# ----------------------------------------------------------------------------- streaming pooling


def _head_size(hop: nn.Module) -> int:
    return int(getattr(hop, "head_size", None) or hop.hidden_size)


def _query(pool: HopfieldPooling) -> torch.Tensor:
    """β-scaled projected query (H, Q, Dh)."""
    hop = pool.hopfield
    r = pool.query
    if hop.norm_state is not None:
        r = hop.norm_state(r)
    q = hop.q_proj(r).unflatten(-1, (hop.num_heads, _head_size(hop))).transpose(0, 1)  # (H, Q, Dh)
    return q * hop.beta.to(q.dtype).view(-1, 1, 1)


def _keys_values(pool: HopfieldPooling, emb: torch.Tensor, values: bool = True):
    """(M, E) -> keys (H, M, Dh) and values (H, M, Dh) (or None)."""
    hop = pool.hopfield
    shape = (hop.num_heads, _head_size(hop))
    y = hop.norm_stored(emb) if hop.norm_stored is not None else emb
    k = hop.k_proj(y).unflatten(-1, shape).transpose(0, 1)
    if not values:
        return k, None
    v = hop.norm_projection(emb) if hop.norm_projection is not None else emb
    w, b = hop._value_projection()         # v_proj, or W_v W_k with HeadSpace(connected=True)
    return k, F.linear(v, w, b).unflatten(-1, shape).transpose(0, 1)


def pool_scores(pool: HopfieldPooling, emb: torch.Tensor) -> torch.Tensor:
    """Association scores β qᵀk of every sequence: (M, E) -> (H, Q, M) (softmax over M gives the
    pooling weights)."""
    k, _ = _keys_values(pool, emb, values=False)
    return _query(pool) @ k.transpose(1, 2)


def pool_partial(pool: HopfieldPooling, emb: torch.Tensor,
                 scores: torch.Tensor | None = None) -> SoftmaxPartial:
    """Online-softmax partial of the pooling over one chunk of sequences (M, E); lead (H, Q)."""
    k, v = _keys_values(pool, emb)
    a = _query(pool) @ k.transpose(1, 2) if scores is None else scores  # (H, Q, M)
    m = a.amax(-1)  # (H, Q)
    p = torch.exp(a - m.unsqueeze(-1))
    return SoftmaxPartial(m.double(), p.sum(-1).double(), (p @ v).double())  # o (H, Q, Dh)


def pool_finish(pool: HopfieldPooling, part: SoftmaxPartial) -> torch.Tensor:
    """Merged partial -> pooled vector (Q * O,) exactly as ``pool`` would return it."""
    hop = pool.hopfield
    heads = part.result(torch.float32)  # (H, Q, Dh)
    out = hop.out_proj(heads.transpose(0, 1).flatten(1))  # (Q, O)
    return out.flatten()
