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
import time
import warnings
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.exceptions import DataConversionWarning
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import validate_data
from torch import nn

from ..nn import Hopfield
from ..streaming import SoftmaxPartial
from ._base import (ClassifierTargetMixin, HopfieldEstimator, RegressorTargetMixin, Standardizer,
                    _threads)
from ._hopular_data import TabularEncoder, _is_frame

__all__ = ["HopularClassifier", "HopularEnsemble", "HopularNet", "HopularRegressor"]

#: ``epoch_size="auto"``: training rows per epoch beyond which an epoch is a slice of a running
#: permutation (the cost of an epoch stops growing with N)
_AUTO_EPOCH_SIZE = 4096
#: above ``_AUTO_EPOCH_SIZE`` training rows, ``epoch_size="auto"`` = ``_AUTO_SLICE`` rows per
#: epoch (a slice) and ``batch_size="auto"`` = ``_AUTO_BATCH_LARGE`` rows per step. Chosen on the
#: validation loss of the 50,000 x 50 benchmark (benchmarks/hopular_50k.py; docs/hopular.md,
#: "Cost at scale"): with 4,096-row slices and 512-row steps the default schedule took 74 epochs
#: (≈ 900 CPU-s); 2,048-row slices of 256-row steps reach a lower validation loss than 2,048-row
#: slices of 512-row steps in the same ≈ 400 CPU-s (more updates per row seen)
_AUTO_SLICE = 2048
_AUTO_BATCH_LARGE = 256
#: stored rows that per-epoch validation retrieves from (a fixed seeded subset of the training
#: rows when there are more); prediction always retrieves from all stored rows
_VAL_MEMORY = 4096
#: validation rows scored per epoch (a fixed seeded subset of the validation split when it is
#: larger; only large training sets have more than this many validation rows)
_VAL_ROWS = 2048
#: ``num_threads=None``: fit with one torch thread up to this many rows; ``n_members="auto"``:
#: ``_AUTO_MEMBERS`` networks up to this many rows, one above
_ONE_THREAD_ROWS = 4096
_AUTO_MEMBERS = 2


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


class _HopularBase(HopfieldEstimator):
    """Shared input handling, training loop and prediction of the Hopular estimators.

    Built on :class:`hopfield.estimators._base.HopfieldEstimator` (parameter validation, seeding,
    device, threads, versioned save/load, target encoding via the target mixins); Hopular brings
    its own ``_train`` (masking, γ annealing, memory sampling, Lookahead slow-weight evaluation)
    and a streamed ``_forward``.
    """

    _parameter_constraints: ClassVar[dict] = {
        **{k: v for k, v in HopfieldEstimator._parameter_constraints.items()
           if k not in ("batch_size", "n_members")},
        "n_members": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "batch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "embedding_size": [Interval(Integral, 1, None, closed="left")],
        "num_blocks": [Interval(Integral, 1, None, closed="left")],
        "num_heads": [Interval(Integral, 1, None, closed="left")],
        "head_size": [Interval(Integral, 1, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "mask_probability": [Interval(Real, 0, 1, closed="left")],
        "anneal_iter": [Interval(Integral, 0, None, closed="left")],
        "memory_size": [Interval(Integral, 2, None, closed="left")],
        "epoch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "chunk_size": [Interval(Integral, 1, None, closed="left")],
        "num_threads": [Interval(Integral, 1, None, closed="left"), None],
        "categorical_features": ["array-like", str, None],
        "verbose": ["boolean"],
    }
    _extra_fitted = ("encoder_config_", "arch_", "n_memory_")
    _is_classifier = False

    def __init__(self, *, embedding_size: int = 32, num_blocks: int = 4, num_heads: int = 4,
                 head_size: int = 32, dropout: float = 0.1, mask_probability: float = 0.1,
                 learning_rate: float = 1e-3, weight_decay: float = 0.0,
                 batch_size: int | str = "auto", max_iter: int = 100, anneal_iter: int = 20,
                 n_iter_no_change: int = 10, tol: float = 1e-4, early_stopping: bool = True,
                 validation_fraction: float = 0.1, memory_size: int = 1024,
                 epoch_size: int | str = "auto", chunk_size: int = 4096, n_members: int | str = "auto",
                 categorical_features=None, random_state: int | None = None,
                 device: str | None = "cpu", num_threads: int | None = None,
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
        self.epoch_size = epoch_size
        self.n_members = n_members
        self.chunk_size = chunk_size
        self.categorical_features = categorical_features
        self.random_state = random_state
        self.device = device
        self.num_threads = num_threads
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.categorical = True
        tags.input_tags.string = True
        tags.non_deterministic = self.random_state is None
        return tags

    # ------------------------------------------------------------------ hooks
    def _check_input(self, X, y=None, *, reset: bool):
        """-> ((num, missing, cat) arrays, n, y); columns typed and encoded by TabularEncoder."""
        if _is_frame(X):
            validate_data(self, X, skip_check_array=True, reset=reset)
        else:
            kind = getattr(getattr(X, "dtype", None), "kind", None)
            if kind is None and not hasattr(X, "toarray"):
                kind = np.asarray(X).dtype.kind
            numeric = kind in tuple("biuf")
            X = validate_data(self, X, reset=reset, dtype=np.float64 if numeric else None,
                              ensure_all_finite="allow-nan" if numeric else False)
        n = X.shape[0]
        if n == 0:
            raise ValueError("X must have at least 1 sample, got 0 rows")
        if y is not None:
            y = np.asarray(y)
            if y.ndim == 2 and y.shape[1] == 1:
                warnings.warn("A column-vector y was passed when a 1d array was expected; it is "
                              "raveled", DataConversionWarning, stacklevel=4)
                y = y.ravel()
            if y.ndim != 1 or len(y) != n:
                raise ValueError(f"y must be 1-D with one value per row of X ({n} rows), got "
                                 f"shape {y.shape}")
        if reset:
            enc = TabularEncoder(self._hp.categorical_features)
            enc.fit(X)
            self.encoder_config_ = enc.to_config()
            self._encoder = enc
            # the base's saved-model format carries one (mean, scale) per column: numeric
            # columns' standardisation, (0, 1) for categorical ones (their codes live in
            # encoder_config_)
            mean, scale = np.zeros(enc.n_features), np.ones(enc.n_features)
            is_num = ~np.asarray(enc.is_categorical, bool)
            mean[is_num], scale[is_num] = enc.mean, enc.scale
            self.scaler_ = Standardizer(mean, scale)
        return self._get_encoder().transform(X), n, y

    def _get_encoder(self) -> TabularEncoder:
        enc = getattr(self, "_encoder", None)
        if enc is None:
            enc = self._encoder = TabularEncoder.from_config(self.encoder_config_)
        return enc

    def _new_net(self) -> HopularNet:
        a, hp = self.arch_, self._hp
        return HopularNet(a["n_num"], a["cards"], a["target"], embedding_size=hp.embedding_size,
                          num_blocks=hp.num_blocks, num_heads=hp.num_heads,
                          head_size=hp.head_size, dropout=hp.dropout)

    def _build_module(self, data, n_outputs: int, generator):
        """The fitted module's skeleton for :meth:`load` (memory buffers sized as saved)."""
        a, N = self.arch_, int(self.n_memory_)
        nets = []
        # models saved before n_members existed hold one network (arch_ has no "n_members")
        self.n_members_ = int(a.get("n_members", 1))
        for _ in range(self.n_members_):
            net = self._new_net()
            net.set_memory(torch.zeros(N, a["n_num"]), torch.zeros(N, a["n_num"], dtype=torch.bool),
                           torch.zeros(N, len(a["cards"]), dtype=torch.int64))
            nets.append(net)
        return nets[0] if len(nets) == 1 else HopularEnsemble(nets)

    def _with_target(self, data, y_enc: np.ndarray):
        """Append the target as the last categorical (classifier) / numeric (regressor) token."""
        num, miss, cat = data
        if self._is_classifier:
            return num, miss, np.concatenate([cat, y_enc[:, None].astype(np.int64)], 1)
        return (np.concatenate([num, y_enc[:, None].astype(np.float32)], 1),
                np.concatenate([miss, np.zeros((len(num), 1), bool)], 1), cat)

    def _with_masked_target(self, data):
        num, miss, cat = data
        n = len(num)
        if self._is_classifier:
            return num, miss, np.concatenate([cat, np.full((n, 1), self.arch_["cards"][-1])], 1)
        return (np.concatenate([num, np.zeros((n, 1), np.float32)], 1),
                np.concatenate([miss, np.ones((n, 1), bool)], 1), cat)

    # ------------------------------------------------------------------ training
    def _losses(self, net, out, num, absent, cat, masked):
        """(feature loss, target loss) on the masked entries of one batch."""
        pred_num, logits = out  # (B, Fn), (B, Fc, Kmax)
        t, n_num = net.target, net.n_num
        m_num = masked[:, :n_num] & ~absent  # (B, Fn) masked and present
        cards = torch.as_tensor(net.cards, dtype=torch.long, device=cat.device)
        m_cat = masked[:, n_num:] & (cat < cards)  # missing codes carry no label
        se = (pred_num - num) ** 2  # (B, Fn)
        kmax = logits.shape[-1]
        ce = F.cross_entropy(logits.reshape(-1, kmax), cat.clamp(max=kmax - 1).reshape(-1),
                             reduction="none").view(cat.shape)  # (B, Fc)
        ce = torch.where(m_cat, ce, torch.zeros_like(ce))
        feat_num, feat_cat = m_num.clone(), m_cat.clone()
        if self._is_classifier:
            tgt = ce[:, t].mean()
            feat_cat[:, t] = False
        else:
            tgt = se[:, t].mean()
            feat_num[:, t] = False
        n_feat = feat_num.sum() + feat_cat.sum()
        feat = ((se * feat_num).sum() + (ce * feat_cat).sum()) / n_feat.clamp_min(1)
        return feat, tgt

    def _train(self, data, y_enc: np.ndarray, seed: int, dev: torch.device) -> None:
        hp = self._hp
        num, miss, cat = self._with_target(data, y_enc)
        a = {"n_num": num.shape[1], "cards": self._get_encoder().cardinalities, "target": -1}
        if self._is_classifier:
            a["cards"] = a["cards"] + [len(self.classes_)]
        else:
            a["target"] = num.shape[1] - 1
        self.arch_ = a
        self.n_memory_ = len(num)
        T = lambda x: torch.as_tensor(x, device=dev)
        full = (T(num), T(miss), T(cat))
        # num_threads=None: one thread for small training sets, whose tiny ops only pay the
        # threads' synchronisation (several times slower on a busy machine), else torch's setting
        small = hp.num_threads is None and len(num) <= _ONE_THREAD_ROWS
        self.n_members_ = (int(hp.n_members) if hp.n_members != "auto"
                           else _AUTO_MEMBERS if len(num) <= _ONE_THREAD_ROWS else 1)
        a["n_members"] = self.n_members_  # saved with arch_
        # member m: seed + m (own initialisation, validation split, masks and memory subsets)
        nets, logs = [], []
        with _threads(1 if small else None):
            for m in range(self.n_members_):
                net, log = self._train_member(full, y_enc, seed + m, dev)
                if m:  # each member owns its copy of the stored rows (safetensors refuses sharing)
                    net.set_memory(*(t.clone() for t in full))
                nets.append(net)
                logs.append(log)
        first = logs[0]
        self.loss_curve_, self.validation_scores_ = first["loss"], first["val"]
        self.epoch_seconds_ = first["seconds"]
        self.best_iteration_ = np.array([lg["best_iter"] for lg in logs], np.int64)
        self.n_iter_ = max(lg["n_iter"] for lg in logs)
        scores = [lg["best_score"] for lg in logs if lg["best_score"] is not None]
        self.best_validation_score_ = float(np.mean(scores)) if scores else None
        self.module_ = (nets[0] if len(nets) == 1 else HopularEnsemble(nets)).eval()

    def _train_member(self, full, y_enc: np.ndarray, seed: int, dev: torch.device):
        """Train one network on all rows ``full`` = (num, missing, cat) tensors (target
        included) minus its own validation split; returns (net with every row as memory, log)."""
        from ._hopular_optim import lamb_lookahead

        hp = self._hp
        num_t, miss_t, cat_t = full
        rng = np.random.RandomState(seed)
        torch.manual_seed(seed)  # initialisation of this member
        n = len(num_t)
        val = self._split(n, y_enc if self._is_classifier else None, rng)
        train = np.setdiff1d(np.arange(n), val)
        net = self._new_net().to(dev)
        net.set_memory(num_t[train], miss_t[train], cat_t[train])
        n_tr = len(train)
        if hp.batch_size != "auto":
            bs = int(hp.batch_size)
        elif n_tr <= _AUTO_EPOCH_SIZE:
            bs = int(np.clip(n_tr // 8, 32, 512))
        else:  # large sets: more, smaller steps per row seen (see _AUTO_SLICE)
            bs = _AUTO_BATCH_LARGE
        bs = min(bs, n_tr)
        opt = lamb_lookahead(net.parameters(), lr=hp.learning_rate, weight_decay=hp.weight_decay)
        F_ = net.n_num + len(net.cards)
        target_tok = net.target % F_
        cards = torch.as_tensor(net.cards, dtype=torch.long, device=dev)
        gen = torch.Generator().manual_seed(seed)
        anneal = max(1, min(hp.anneal_iter, hp.max_iter))
        best, best_state, bad = math.inf, None, 0
        log = {"loss": [], "val": [], "seconds": [], "best_iter": 0}
        # rows per epoch: all training rows up to `epoch_size`, else the next `epoch_size` rows of
        # a running seeded permutation (every row is visited once per ceil(n_tr / epoch_size)
        # epochs), so an epoch's cost does not grow with N
        if hp.epoch_size == "auto":
            n_ep = n_tr if n_tr <= _AUTO_EPOCH_SIZE else _AUTO_SLICE
        else:
            n_ep = min(n_tr, int(hp.epoch_size))
        step, steps_per_epoch = 0, math.ceil(n_ep / bs)
        train_mem = (net.mem_num, net.mem_absent, net.mem_cat)
        val_mem = None
        if len(val) and n_tr > _VAL_MEMORY:
            sub = torch.as_tensor(np.sort(rng.permutation(n_tr)[:_VAL_MEMORY]), device=dev)
            val_mem = tuple(t[sub] for t in train_mem)
        # rows scored by the per-epoch validation (all of them up to _VAL_ROWS); drawn after every
        # other use of rng, so smaller sets train exactly as before
        val_rows = val if len(val) <= _VAL_ROWS else np.sort(rng.permutation(val)[:_VAL_ROWS])
        order, pos = torch.randperm(n_tr, generator=gen).to(dev), 0
        epoch = 0
        for epoch in range(1, hp.max_iter + 1):
            t0 = time.perf_counter()
            net.train()
            if pos + n_ep > n_tr:  # reshuffle when the running permutation is used up
                order, pos = torch.randperm(n_tr, generator=gen).to(dev), 0
            perm, pos = order[pos:pos + n_ep], pos + n_ep
            total = 0.0
            for i in range(0, n_ep, bs):
                b = perm[i:i + bs]  # rows of the memory (= training rows)
                gamma = 0.5 * (1 + math.cos(math.pi * min(1.0, step / (anneal * steps_per_epoch))))
                step += 1
                mem_idx = (torch.randperm(n_tr, generator=gen)[:hp.memory_size].to(dev)
                           if n_tr > hp.memory_size else None)
                bn, ba, bc = net.mem_num[b], net.mem_absent[b], net.mem_cat[b]
                masked = torch.rand(len(b), F_, generator=gen).to(dev) < hp.mask_probability
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
                total += float(lt.detach()) * len(b)
            log["loss"].append(total / n_ep)
            log["seconds"].append(time.perf_counter() - t0)
            if not len(val):
                continue
            opt.backup_and_load_cache()  # evaluate the slow (Lookahead) weights
            net.eval()
            if val_mem is not None:  # validation retrieves from a fixed subset of stored rows
                net.set_memory(*val_mem)
            vloss = self._val_loss(net, num_t[val_rows], miss_t[val_rows], cat_t[val_rows],
                                   target_tok)
            if val_mem is not None:
                net.set_memory(*train_mem)
            log["val"].append(-vloss)
            if hp.verbose:
                print(f"epoch {epoch}: validation target loss {vloss:.4f} "
                      f"({log['seconds'][-1]:.1f} s)")
            if vloss < best - hp.tol:
                best, bad = vloss, 0
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()
                              if not k.startswith("mem_")}
                log["best_iter"] = epoch
            elif epoch > anneal:
                bad += 1
            opt.clear_and_load_backup()
            if bad >= hp.n_iter_no_change:
                break
        if best_state is not None:
            net.load_state_dict(best_state, strict=False)
        else:
            opt.backup_and_load_cache()
            log["best_iter"] = epoch
        net.set_memory(num_t, miss_t, cat_t)  # predictions retrieve from every fitted row
        log["n_iter"] = epoch
        log["best_score"] = -best if log["val"] else None
        return net.eval(), log

    def _split(self, n: int, y_codes: np.ndarray | None, rng) -> np.ndarray:
        hp = self._hp
        if not hp.early_stopping or hp.validation_fraction == 0 or n < 4:
            return np.empty(0, np.int64)
        if y_codes is None:
            return np.sort(rng.permutation(n)[:max(1, round(hp.validation_fraction * n))])
        val = []
        for c in np.unique(y_codes):
            idx = rng.permutation(np.flatnonzero(y_codes == c))
            if len(idx) >= 2:
                k = round(hp.validation_fraction * len(idx))
                val.append(idx[:max(1, min(len(idx) - 1, k))])
        return np.sort(np.concatenate(val)) if val else np.empty(0, np.int64)

    @torch.no_grad()
    def _val_loss(self, net, num, miss, cat, target_tok) -> float:
        tot = 0.0
        for s in range(0, len(num), 1024):
            n_, m_, c_ = num[s:s + 1024], miss[s:s + 1024].clone(), cat[s:s + 1024].clone()
            if self._is_classifier:
                y = c_[:, -1].clone()
                c_[:, -1] = net.cards[-1]  # the target is masked
                _, logits = net.predict_stream(n_, m_, c_, self._hp.chunk_size)
                tot += float(F.cross_entropy(logits[:, -1, :net.cards[-1]], y, reduction="sum"))
            else:
                y = n_[:, target_tok].clone()
                m_[:, target_tok] = True
                pred, _ = net.predict_stream(n_, m_, c_, self._hp.chunk_size)
                tot += float(((pred[:, target_tok] - y) ** 2).sum())
        return tot / len(num)

    # ------------------------------------------------------------------ prediction
    @torch.no_grad()
    def _forward(self, net, data, n: int, chunk: int = 1024) -> torch.Tensor:
        """(M, n, K): target logits (classifier) or standardised prediction (regressor)."""
        net.eval()
        num, miss, cat = self._with_masked_target(data)
        members = list(net.members) if isinstance(net, HopularEnsemble) else [net]
        dev = members[0].mem_num.device
        small = self._hp.num_threads is None and len(members[0].mem_num) <= _ONE_THREAD_ROWS
        with _threads(1 if small else None):
            return self._forward_members(members, num, miss, cat, n, chunk, dev)

    def _forward_members(self, members, num, miss, cat, n, chunk, dev) -> torch.Tensor:
        res = []
        for member in members:
            outs = []
            for s in range(0, n, chunk):
                args = [torch.as_tensor(a[s:s + chunk], device=dev) for a in (num, miss, cat)]
                pred, logits = member.predict_stream(*args, chunk_size=self._hp.chunk_size)
                outs.append(logits[:, -1, :member.cards[-1]] if self._is_classifier  # no padding
                            else pred[:, member.target:member.target + 1])
            res.append(torch.cat(outs))
        return torch.stack(res)  # (M, n, K): the base averages the members


_PARAMS_DOC = """
    Parameters:
        embedding_size: width E of each feature's embedding token (the network is F·E wide for
            F = n_features + 1 tokens).
        num_blocks: Hopular blocks (paper: 4).
        num_heads, head_size: heads and per-head size of both Hopfield modules.
        dropout: dropout on embeddings, association weights and the head.
        mask_probability: BERT-style masking probability of each feature during training.
        learning_rate, weight_decay: LAMB settings (wrapped in Lookahead, k=5, α=0.8).
        batch_size: rows per step; ``"auto"`` = clip(n_train // 8, 32, 512) up to 4,096 training
            rows, 256 above.
        max_iter: maximum epochs; anneal_iter: epochs over which γ falls from 1 to 0.
        n_iter_no_change, tol, early_stopping, validation_fraction: early stopping on the target
            loss of a held-out split (stratified for classification); patience counts only
            after the annealing.
        memory_size: stored rows per training step (all rows when the training set is smaller;
            prediction always retrieves from all rows).
        chunk_size: stored rows per chunk of the streamed retrieval.
        categorical_features: column indices / names / bool mask of categorical columns (besides
            pandas category/object/string/bool columns).
        random_state: seed; ``None`` = not reproducible. device: ``"cpu"``, ``"cuda"``,
            ``"auto"``. verbose: print the validation loss per epoch.
        epoch_size: training rows per epoch; ``"auto"`` = all rows up to 4,096, else 2,048 rows
            of a running seeded permutation (every row once per ceil(n_train / 2,048) epochs), so
            an epoch's cost — and the annealing/early-stopping schedule counted in epochs (γ over
            20 × 2,048 rows, patience 10 × 2,048 rows with the defaults) — does not grow with N.
            Per-epoch validation then retrieves from a fixed seeded subset of 4,096 stored rows
            and scores at most 2,048 validation rows (a fixed seeded subset); prediction always
            retrieves from all rows.
        n_members: networks trained independently (seed + m: own initialisation, validation
            split, masks and memory subsets; each keeps its own copy of the stored rows) whose
            predicted probabilities / values are averaged; ``"auto"`` = 2 up to 4,096 rows (on
            the five small UCI sets' validation rows two members scored 74.4 % vs 72.1 / 73.8 %
            for either alone), 1 above (cost). The number used is ``n_members_``.
        num_threads: torch CPU threads during fit / predict (restored afterwards); ``None`` = one
            thread when at most 4,096 rows are stored (tiny operations only pay the threads'
            synchronisation), torch's current setting otherwise.

    Fitted attributes: ``module_`` (:class:`HopularNet` holding the stored rows, or a
    :class:`HopularEnsemble` of ``n_members`` of them), ``n_iter_`` (most epochs of any member),
    ``best_iteration_`` (one per member), ``loss_curve_`` (target loss per epoch),
    ``validation_scores_`` (−validation target loss per epoch) and ``epoch_seconds_`` (these three
    of member 0), ``n_features_in_``,
    ``feature_names_in_`` (DataFrames), ``encoder_config_`` (column types and categories).
"""


class HopularClassifier(ClassifierTargetMixin, ClassifierMixin, _HopularBase):
    __doc__ = ("Hopular for classification (see the module docstring for network and training)."
               "\n" + _PARAMS_DOC + "    ``predict_proba`` columns follow ``classes_``.\n")
    _is_classifier = True


class HopularRegressor(RegressorTargetMixin, RegressorMixin, _HopularBase):
    __doc__ = ("Hopular for regression (one continuous target, standardised in fit and returned "
               "on the original scale).\n" + _PARAMS_DOC)
