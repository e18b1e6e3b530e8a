"""Hopular (Schäfl et al. 2022, "Hopular: Modern Hopfield Networks for Tabular Data"):
``HopularClassifier`` and ``HopularRegressor``.

Shape legend: B query rows, N stored rows (the training set), F feature tokens (the input columns
plus the target), E embedding size per feature, H heads, Dh head size, K_j categories of column j.

Plain-math reference of what the network computes (paper §3; the code line is named in brackets)::

    e_j   = w_j x_j + b_j              numeric column j (a learned m_j if x_j is missing/masked)
    e_j   = T_j[c_j]                   categorical column j (rows: K_j categories, missing, unknown)
    t_j   = P_j(LN(GELU(e_j + type[τ_j] + pos[j])))     (F, E) tokens           [_Embedding]
    X0    = (t_1, ..., t_F)            the embedded sample, also the feature-feature memory
    M     = embed(training set)        (N, F·E) stored patterns, targets visible      [memory]
    for each of the L Hopular blocks                                                [_Block]:
        x ← x + Hopfield_s(state = LN_s(x), stored = LN_s(M) \\ {x's own row})   sample–sample
        x ← x + Hopfield_f(state = LN_f(x_j), stored = LN_f(X0_j))  per token    feature–feature
    ŷ_j   = [Linear(LN(GELU(x)))]_j    reconstruct every column and the target    [_Head]

where ``Hopfield`` is :class:`hopfield.nn.Hopfield` (one update ξ ← softmax(β ξ Kᵀ) V, β = 1/√Dh,
multi-head, dropout on the association weights). Training (paper §3.2): every step masks each
non-missing feature of the query rows with probability ``mask_probability`` (BERT-style; a masked
entry uses the column's learned *missing* embedding; 1 in 10 masked categorical entries uses the
*unknown* embedding instead, so that embedding is trained) and always masks the target; the loss is

    γ · L_features + (1 − γ) · L_target,     γ = ½(1 + cos(π · min(1, t / T)))  (1 → 0),

with L = cross-entropy for categorical and mean squared error (standardised) for numeric columns,
T = ``anneal_iter`` epochs. Optimiser: LAMB wrapped in Lookahead (``pytorch-optimizer``; k = 5,
α = 0.8 as in the reference code), early stopping on the target loss of a held-out validation
split evaluated with the slow (Lookahead) weights.

Sample–sample retrieval at scale: during training each step uses the whole training set as
memory when it has at most ``memory_size`` rows (the paper's setting), else a fresh random subset
of ``memory_size`` rows (the reference code's ``memory_ratio``); the query's own row is masked
out. For validation and prediction every block retrieves from **all** N stored rows, streamed in
chunks of ``chunk_size`` with the online softmax of :mod:`hopfield.streaming`
(:class:`~hopfield.streaming.SoftmaxPartial` merges chunk partials exactly), so the extra memory
is O(chunk_size · B) scores plus the cached projected keys/values, 2 · L · N · H · Dh floats —
never a B × N matrix. After ``fit`` the memory holds every row passed to ``fit`` (training and
validation rows).

Inputs: numpy arrays or pandas DataFrames; ``category`` / ``object`` / ``string`` / ``bool``
columns (or ``categorical_features=``) are categorical. Missing values (NaN / None / pd.NA) use
the learned missing embedding — never imputed. A category not seen in ``fit`` uses the learned
*unknown* embedding (documented behaviour, no error). See :mod:`._hopular_data` for the rest.
"""

from __future__ import annotations

import math
import os
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from ..nn import Hopfield
from ..streaming import SoftmaxPartial
from ._hopular_data import TabularEncoder, _is_frame

__all__ = ["HopularClassifier", "HopularNet", "HopularRegressor"]


# ============================================================================ network


class _Embedding(nn.Module):
    """Per-feature embedding: numeric (linear) / categorical (table) + type + position.

    Categorical column j owns rows ``offset_j .. offset_j + K_j + 1`` of one shared table:
    K_j categories, then *missing* (code K_j), then *unknown* (code K_j + 1).
    """

    def __init__(self, n_num: int, cards: list[int], E: int, dropout: float):
        super().__init__()
        F_ = n_num + len(cards)
        self.n_num, self.E = n_num, E
        bound = 1.0 / math.sqrt(E)
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

    def forward(self, num: torch.Tensor, absent: torch.Tensor, cat: torch.Tensor) -> torch.Tensor:
        """num (B, Fn) float, absent (B, Fn) bool (missing or masked), cat (B, Fc) codes ->
        tokens (B, F, E)."""
        e_num = num.unsqueeze(-1) * self.num_w + self.num_b  # (B, Fn, E)
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
    ``mem_absent``, ``mem_cat`` (saved with the weights).
    """

    def __init__(self, n_num: int, cards: list[int], target: int, *, embedding_size: int = 32,
                 num_blocks: int = 4, num_heads: int = 4, head_size: int = 32,
                 dropout: float = 0.1):
        super().__init__()
        self.n_num, self.cards, self.target = n_num, list(cards), target
        F_ = n_num + len(cards)
        E = embedding_size
        self.embed = _Embedding(n_num, self.cards, E, dropout)
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
            parts = [([], []) for _ in self.blocks]
            for s in range(0, len(self.mem_num), chunk_size):
                m = self.embed(self.mem_num[s:s + chunk_size], self.mem_absent[s:s + chunk_size],
                               self.mem_cat[s:s + chunk_size]).flatten(1)
                for (ks, vs), blk in zip(parts, self.blocks):
                    k, v = blk.sample_kv(m)
                    ks.append(k)
                    vs.append(v)
            self._kv = [(torch.cat(k), torch.cat(v)) for k, v in parts]
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


# ============================================================================ estimators


def _param_error(cls: str, name: str, expected: str, value) -> ValueError:
    return ValueError(f"The {name!r} parameter of {cls} must be {expected}. Got {value!r} instead.")


class _HopularBase(BaseEstimator):
    """Shared fit / predict of the Hopular estimators (see the module docstring)."""

    _is_classifier = False

    def __init__(self, *, embedding_size: int = 32, num_blocks: int = 4, num_heads: int = 4,
                 head_size: int = 32, dropout: float = 0.1, mask_probability: float = 0.1,
                 learning_rate: float = 1e-3, weight_decay: float = 0.0,
                 batch_size: int | str = "auto", max_iter: int = 100, anneal_iter: int = 20,
                 n_iter_no_change: int = 10, tol: float = 1e-4, early_stopping: bool = True,
                 validation_fraction: float = 0.1, memory_size: int = 2048,
                 chunk_size: int = 4096, categorical_features=None,
                 random_state: int | None = None, device: str | None = None,
                 verbose: bool = False):
        self.embedding_size = embedding_size
        self.num_blocks = num_blocks
        self.num_heads = num_heads
        self.head_size = head_size
        self.dropout = dropout
        self.mask_probability = mask_probability
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.anneal_iter = anneal_iter
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.memory_size = memory_size
        self.chunk_size = chunk_size
        self.categorical_features = categorical_features
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.categorical = True
        tags.input_tags.string = True
        tags.non_deterministic = self.random_state is None
        return tags

    # ------------------------------------------------------------------ checks
    def _check_params(self) -> None:
        cls = type(self).__name__
        for name in ("embedding_size", "num_blocks", "num_heads", "head_size", "max_iter",
                     "n_iter_no_change", "memory_size", "chunk_size", "anneal_iter"):
            v = getattr(self, name)
            lo = 0 if name == "anneal_iter" else 1
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise _param_error(cls, name, f"an int >= {lo}", v)
        bs = self.batch_size
        if not (bs == "auto" or (isinstance(bs, (int, np.integer)) and not isinstance(bs, bool)
                                 and bs >= 1)):
            raise _param_error(cls, "batch_size", "an int >= 1 or 'auto'", bs)
        for name, hi in (("dropout", 1.0), ("mask_probability", 1.0),
                         ("validation_fraction", 1.0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v < hi:
                raise _param_error(cls, name, f"a float in [0, {hi})", v)
        for name, pos in (("learning_rate", True), ("weight_decay", False), ("tol", False)):
            v = getattr(self, name)
            if (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                    or v < 0 or (pos and v == 0)):
                raise _param_error(cls, name, "a finite float > 0" if pos else
                                   "a finite float >= 0", v)

    def _validate_X(self, X, reset: bool):
        """Feature-count / name bookkeeping (scikit-learn) + the tabular encoder."""
        if _is_frame(X):
            validate_data(self, X, skip_check_array=True, reset=reset)
            if X.shape[0] == 0:
                raise ValueError("X must have at least 1 sample, got 0 rows")
            return X
        arr = np.asarray(X) if not hasattr(X, "toarray") else X
        numeric = getattr(arr, "dtype", np.dtype(object)).kind in "biuf"
        return validate_data(self, X, reset=reset, dtype=np.float64 if numeric else None,
                             ensure_all_finite="allow-nan" if numeric else False)

    # ------------------------------------------------------------------ fit
    def _fit(self, X, y_target: np.ndarray, target_card: int):
        """y_target: (n,) int codes (classification, ``target_card`` classes) or standardised
        float (regression, ``target_card`` = 0)."""
        self._check_params()
        enc = TabularEncoder(self.categorical_features)
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            enc.fit(X)
        num, miss, cat = enc.transform(X)
        if target_card:  # the target is the last categorical token
            cat = np.concatenate([cat, y_target[:, None].astype(np.int64)], 1)
            cards, n_num, target = enc.cardinalities + [target_card], enc.n_numeric, -1
        else:  # the target is the last numeric token
            num = np.concatenate([num, y_target[:, None].astype(np.float32)], 1)
            miss = np.concatenate([miss, np.zeros((len(num), 1), bool)], 1)
            cards, n_num, target = enc.cardinalities, enc.n_numeric + 1, enc.n_numeric
        self.encoder_ = enc
        seed = int(check_random_state(self.random_state).randint(0, 2**31 - 1))
        dev = torch.device(self.device) if self.device else torch.device(
            "cuda" if torch.cuda.is_available() else "cpu")
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            torch.manual_seed(seed)
            net = HopularNet(n_num, cards, target, embedding_size=self.embedding_size,
                             num_blocks=self.num_blocks, num_heads=self.num_heads,
                             head_size=self.head_size, dropout=self.dropout).to(dev)
            self._arch_ = {"n_num": n_num, "cards": cards, "target": target}
            self.module_ = net
            self._train(net, num, miss, cat, seed, dev)
        return self

    def _split(self, n: int, y_codes: np.ndarray | None, rng) -> np.ndarray:
        if not self.early_stopping or self.validation_fraction == 0 or n < 4:
            return np.empty(0, np.int64)
        if y_codes is None:
            return np.sort(rng.permutation(n)[:max(1, int(round(self.validation_fraction * n)))])
        val = []
        for c in np.unique(y_codes):
            idx = rng.permutation(np.flatnonzero(y_codes == c))
            if len(idx) >= 2:
                val.append(idx[:max(1, min(len(idx) - 1,
                                           int(round(self.validation_fraction * len(idx)))))])
        return np.sort(np.concatenate(val)) if val else np.empty(0, np.int64)

    def _losses(self, net, out, num, absent, cat, masked):
        """(feature loss, target loss) on the masked entries of one batch."""
        pred_num, logits = out  # (B, Fn), (B, Fc, Kmax)
        t = net.target
        n_num = net.n_num
        m_num = masked[:, :n_num] & ~absent  # (B, Fn) masked and present
        m_cat = masked[:, n_num:]  # categorical entries are never "absent" in the data codes
        cards = torch.as_tensor(net.cards, device=cat.device)
        m_cat = m_cat & (cat < cards)  # skip missing/unknown codes
        se = (pred_num - num) ** 2  # (B, Fn)
        Kmax = logits.shape[-1]
        ce = F.cross_entropy(logits.reshape(-1, Kmax), cat.clamp(max=Kmax - 1).reshape(-1),
                             reduction="none").view(cat.shape)  # (B, Fc)
        ce = torch.where(m_cat, ce, torch.zeros_like(ce))
        if self._is_classifier:
            tgt = ce[:, t].mean()
            feat_num, feat_cat = m_num, m_cat.clone()
            feat_cat[:, t] = False
        else:
            tgt = se[:, t].mean()
            feat_num, feat_cat = m_num.clone(), m_cat
            feat_num[:, t] = False
        n_feat = feat_num.sum() + feat_cat.sum()
        feat = ((se * feat_num).sum() + (ce * feat_cat).sum()) / n_feat.clamp_min(1)
        return feat, tgt

    def _train(self, net: HopularNet, num, miss, cat, seed: int, dev):
        from pytorch_optimizer import Lamb, Lookahead

        rng = np.random.RandomState(seed)
        n = len(num)
        t_codes = cat[:, -1] if self._is_classifier else None
        val = self._split(n, t_codes, rng)
        train = np.setdiff1d(np.arange(n), val)
        T = lambda a: torch.as_tensor(a, device=dev)  # noqa: E731
        num_t, miss_t, cat_t = T(num), T(miss), T(cat)
        net.set_memory(num_t[train], miss_t[train], cat_t[train])
        n_tr = len(train)
        bs = (int(np.clip(n_tr // 8, 32, 512)) if self.batch_size == "auto"
              else int(self.batch_size))
        bs = min(bs, n_tr)
        opt = Lookahead(Lamb(net.parameters(), lr=self.learning_rate,
                             weight_decay=self.weight_decay), k=5, alpha=0.8)
        F_ = net.n_num + len(net.cards)
        target_tok = net.target % F_
        cards = torch.as_tensor(net.cards, device=dev)
        gen = torch.Generator().manual_seed(seed)
        anneal = max(1, min(self.anneal_iter, self.max_iter))
        best, best_state, bad, history = math.inf, None, 0, []
        epoch_seconds = []
        step, steps_per_epoch = 0, math.ceil(n_tr / bs)
        for epoch in range(1, self.max_iter + 1):
            t0 = time.perf_counter()
            net.train()
            perm = torch.randperm(n_tr, generator=gen).to(dev)
            for i in range(0, n_tr, bs):
                b = perm[i:i + bs]  # positions in the memory (= training rows)
                gamma = 0.5 * (1 + math.cos(math.pi * min(1.0, step / (anneal * steps_per_epoch))))
                step += 1
                if n_tr > self.memory_size:
                    mem_idx = torch.randperm(n_tr, generator=gen)[:self.memory_size].to(dev)
                else:
                    mem_idx = None
                bn, ba, bc = net.mem_num[b], net.mem_absent[b], net.mem_cat[b]
                masked = torch.rand(len(b), F_, generator=gen).to(dev) < self.mask_probability
                masked[:, target_tok] = True
                q_absent = ba | masked[:, :net.n_num]
                m_cat = masked[:, net.n_num:]
                unknown = torch.rand(m_cat.shape, generator=gen).to(dev) < 0.1
                q_cat = torch.where(m_cat, torch.where(unknown, cards + 1, cards), bc)
                # the query never retrieves its own stored row (needs >= 2 stored rows)
                out = net(bn, q_absent, q_cat, mem_idx, self_idx=b if n_tr > 1 else None)
                lf, lt = self._losses(net, out, bn, ba, bc, masked)
                loss = gamma * lf + (1 - gamma) * lt
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"the training loss became non-finite at epoch "
                                             f"{epoch}; lower learning_rate")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            epoch_seconds.append(time.perf_counter() - t0)
            if not len(val):
                continue
            opt.backup_and_load_cache()  # evaluate the slow weights
            net.eval()
            vloss = self._val_loss(net, num_t[val], miss_t[val], cat_t[val], target_tok)
            history.append(vloss)
            if self.verbose:
                print(f"epoch {epoch}: val target loss {vloss:.4f} ({epoch_seconds[-1]:.1f} s)")
            if vloss < best - self.tol:
                best, bad = vloss, 0
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()
                              if not k.startswith("mem_")}
                self.best_iter_ = epoch
            elif epoch > anneal:
                bad += 1
            opt.clear_and_load_backup()
            if bad >= self.n_iter_no_change:
                break
        if best_state is not None:
            net.load_state_dict(best_state, strict=False)
        else:
            opt.backup_and_load_cache()
            self.best_iter_ = epoch
        net.set_memory(num_t, miss_t, cat_t)  # predictions retrieve from every fitted row
        net.eval()
        self.n_iter_, self.validation_scores_ = epoch, history
        self.best_validation_loss_ = best if history else None
        self.epoch_seconds_ = epoch_seconds

    @torch.no_grad()
    def _val_loss(self, net, num, miss, cat, target_tok) -> float:
        tot = 0.0
        for s in range(0, len(num), 1024):
            n_, m_, c_ = num[s:s + 1024], miss[s:s + 1024].clone(), cat[s:s + 1024].clone()
            if self._is_classifier:
                y = c_[:, -1].clone()
                c_[:, -1] = net.cards[-1]  # masked target
                _, logits = net.predict_stream(n_, m_, c_, self.chunk_size)
                tot += float(F.cross_entropy(logits[:, -1], y, reduction="sum"))
            else:
                y = n_[:, target_tok].clone()
                m_[:, target_tok] = True
                pred, _ = net.predict_stream(n_, m_, c_, self.chunk_size)
                tot += float(((pred[:, target_tok] - y) ** 2).sum())
        return tot / len(num)

    # ------------------------------------------------------------------ predict
    @torch.no_grad()
    def _predict_raw(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        num, miss, cat = self.encoder_.transform(X)
        net = self.module_
        dev = net.mem_num.device
        n = len(num)
        if self._is_classifier:
            cat = np.concatenate([cat, np.full((n, 1), net.cards[-1], np.int64)], 1)
        else:
            num = np.concatenate([num, np.zeros((n, 1), np.float32)], 1)
            miss = np.concatenate([miss, np.ones((n, 1), bool)], 1)
        net.eval()
        outs = []
        for s in range(0, n, 1024):
            args = [torch.as_tensor(a[s:s + 1024], device=dev) for a in (num, miss, cat)]
            pred, logits = net.predict_stream(*args, chunk_size=self.chunk_size)
            outs.append((logits[:, -1].softmax(-1) if self._is_classifier
                         else pred[:, net.target]).double().cpu().numpy())
        if not outs:
            shape = (0, net.cards[-1]) if self._is_classifier else (0,)
            return np.zeros(shape)
        return np.concatenate(outs)

    # ------------------------------------------------------------------ save / load
    def save(self, path: str | os.PathLike) -> None:
        """Save to directory ``path`` (``config.json`` + ``weights.safetensors``, atomic). The
        stored training rows (the sample memory) are part of the weights file."""
        import json

        from ._io import save_state

        check_is_fitted(self)
        params = self.get_params()
        cf = params["categorical_features"]
        if cf is not None and not isinstance(cf, str):
            params["categorical_features"] = np.asarray(cf).tolist()
        config = {"estimator": type(self).__name__, "params": params, "arch": self._arch_,
                  "encoder": self.encoder_.to_config(), "extra": self._extra_config(),
                  "n_features_in": int(self.n_features_in_),
                  "feature_names_in": (list(map(str, self.feature_names_in_))
                                       if hasattr(self, "feature_names_in_") else None),
                  "n_iter": int(self.n_iter_), "best_iter": int(self.best_iter_)}
        json.dumps(config)  # fail before writing anything
        save_state(path, config, dict(self.module_.state_dict()))

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None):
        """Load a model written by :meth:`save` (safetensors, no pickle)."""
        from ._io import load_state

        config, tensors = load_state(path)
        if config.get("estimator") != cls.__name__:
            raise ValueError(f"path must hold a saved {cls.__name__}, got "
                             f"{config.get('estimator')!r}")
        params = dict(config["params"])
        if device is not None:
            params["device"] = device
        est = cls(**params)
        est.encoder_ = TabularEncoder.from_config(config["encoder"])
        est.n_features_in_ = config["n_features_in"]
        if config.get("feature_names_in") is not None:
            est.feature_names_in_ = np.asarray(config["feature_names_in"], dtype=object)
        est.n_iter_, est.best_iter_ = config["n_iter"], config["best_iter"]
        est._arch_ = config["arch"]
        a = est._arch_
        net = HopularNet(a["n_num"], a["cards"], a["target"], embedding_size=est.embedding_size,
                         num_blocks=est.num_blocks, num_heads=est.num_heads,
                         head_size=est.head_size, dropout=est.dropout)
        net.load_state_dict(tensors)
        dev = torch.device(device or est.device or "cpu")
        est.module_ = net.to(dev).eval()
        est._load_extra(config["extra"])
        return est


class HopularClassifier(ClassifierMixin, _HopularBase):
    """Hopular for classification (see the module docstring for the network and training).

    Parameters:
        embedding_size: width E of each feature's embedding token (the network is F·E wide).
        num_blocks: Hopular blocks (paper: 4).
        num_heads, head_size: heads and per-head size of both Hopfield modules.
        dropout: dropout on embeddings, association weights and the head.
        mask_probability: BERT-style masking probability of each feature during training.
        learning_rate, weight_decay: LAMB settings (wrapped in Lookahead, k=5, α=0.8).
        batch_size: rows per step; ``"auto"`` = clip(n_train // 8, 32, 512).
        max_iter: maximum epochs; anneal_iter: epochs over which γ falls from 1 to 0.
        n_iter_no_change, tol, early_stopping, validation_fraction: early stopping on the target
            loss of a stratified held-out split (patience counts only after the annealing).
        memory_size: stored rows per training step (all rows when the training set is smaller;
            prediction always retrieves from all rows).
        chunk_size: stored rows per chunk of the streamed retrieval at prediction.
        categorical_features: column indices / names / bool mask of categorical columns (besides
            pandas categorical/object/string/bool columns).
        random_state: seed; ``None`` = not reproducible. device: torch device (default CUDA if
            available). verbose: print the validation loss per epoch.
    """

    _is_classifier = True

    def fit(self, X, y):
        """Fit on ``X`` (n, d) — array or DataFrame — and labels ``y`` (n,). Returns ``self``."""
        X = self._validate_X(X, reset=True)
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            warnings.warn("y should be 1-D; a column vector was passed and is raveled",
                          UserWarning, stacklevel=2)
            y = y.ravel()
        if y.ndim != 1 or len(y) != X.shape[0]:
            raise ValueError(f"y must be 1-D with one label per row of X ({X.shape[0]}), got "
                             f"shape {y.shape}")
        kind = type_of_target(y)
        if kind not in ("binary", "multiclass"):
            raise ValueError(f"Unknown label type: y must hold class labels (binary or "
                             f"multiclass), got {kind!r} targets; use HopularRegressor for a "
                             f"continuous target")
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"y must contain at least 2 classes, got 1 class "
                             f"({self.classes_[0]!r})")
        return self._fit(X, codes, len(self.classes_))

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (n, C), columns in the order of ``classes_``."""
        return self._predict_raw(X)

    def predict(self, X) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def _extra_config(self) -> dict:
        kind = "str" if self.classes_.dtype.kind in "UO" else self.classes_.dtype.str
        return {"classes": self.classes_.tolist(), "classes_dtype": kind}

    def _load_extra(self, extra: dict) -> None:
        kind = extra["classes_dtype"]
        self.classes_ = np.asarray(extra["classes"], dtype=None if kind == "str" else kind)


class HopularRegressor(RegressorMixin, _HopularBase):
    """Hopular for regression (one continuous target); parameters as :class:`HopularClassifier`.

    The target is standardised with its training mean and standard deviation; predictions are
    returned on the original scale.
    """

    def fit(self, X, y):
        """Fit on ``X`` (n, d) — array or DataFrame — and targets ``y`` (n,). Returns ``self``."""
        X = self._validate_X(X, reset=True)
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.ravel()
        if y.ndim != 1 or len(y) != X.shape[0]:
            raise ValueError(f"y must be 1-D with one target per row of X ({X.shape[0]}), got "
                             f"shape {y.shape}")
        try:
            y = y.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError("y must hold numbers for HopularRegressor, got non-numeric "
                             "values") from None
        if not np.isfinite(y).all():
            raise ValueError("y must be finite (no NaN or infinity) for HopularRegressor")
        if np.abs(y).max(initial=0) > np.finfo(np.float32).max:
            raise ValueError("y has values beyond the float32 range the network computes in")
        self.y_mean_, s = float(y.mean()), float(y.std())
        self.y_scale_ = s if s > 1e-12 * max(1.0, abs(self.y_mean_)) else 1.0
        return self._fit(X, (y - self.y_mean_) / self.y_scale_, 0)

    def predict(self, X) -> np.ndarray:
        """Predicted targets (n,) on the original scale."""
        return self._predict_raw(X) * self.y_scale_ + self.y_mean_

    def _extra_config(self) -> dict:
        return {"y_mean": self.y_mean_, "y_scale": self.y_scale_}

    def _load_extra(self, extra: dict) -> None:
        self.y_mean_, self.y_scale_ = extra["y_mean"], extra["y_scale"]
