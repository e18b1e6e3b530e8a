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

Files: this module holds the estimators (input checks, target token, ensembles, prediction);
the network is :mod:`._hopular_net`, the training loop :mod:`._hopular_train`, the column
encoding :mod:`._hopular_data`, the optimiser :mod:`._hopular_optim` and the parameters'
documentation :mod:`._hopular_doc`.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
import torch
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.exceptions import DataConversionWarning
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import validate_data

from ._base import (
    ClassifierTargetMixin,
    HopfieldEstimator,
    RegressorTargetMixin,
    Standardizer,
    _threads,
)
from ._hopular_data import NUMERIC_TRANSFORMS, TabularEncoder, _is_frame
from ._hopular_doc import PARAMS_DOC
from ._hopular_net import HopularEnsemble, HopularNet
from ._hopular_train import (
    _N_BINS,
    _SMALL_DATA_ROWS,
    HopularTraining,
    _embedding_candidates,
    _ensemble_scores,
    _member_bins,
    _resolve_dropout,
    _resolve_schedule,
    _set_embedding,
)

__all__ = ["HopularClassifier", "HopularEnsemble", "HopularNet", "HopularRegressor"]

#: ``num_threads=None``: one torch thread when a network trains on at most this many rows;
#: ``n_members="auto"``: ``_AUTO_MEMBERS`` networks up to this many training rows (a regressor's
#: ``_AUTO_MEMBERS_REGRESSION`` above ``_SMALL_DATA_ROWS``: rule NK), above it one (a regressor's
#: ``_AUTO_MEMBERS_LARGE_REGRESSION``: rule NJ). Rows: each network's, as in every "auto" rule
_ONE_THREAD_ROWS = 4096
_AUTO_MEMBERS, _AUTO_MEMBERS_REGRESSION, _AUTO_MEMBERS_LARGE_REGRESSION = 2, 4, 3


class _HopularBase(HopularTraining, HopfieldEstimator):
    """Shared input handling, training loop and prediction of the Hopular estimators.

    Built on :class:`hopfield.estimators._base.HopfieldEstimator` (parameter validation, seeding,
    device, threads, versioned save/load, target encoding via the target mixins); Hopular brings
    its own ``_train`` (masking, γ annealing, memory sampling, Lookahead slow-weight evaluation)
    and a streamed ``_forward``.
    """

    _parameter_constraints: ClassVar[dict] = {
        **{k: v for k, v in HopfieldEstimator._parameter_constraints.items()
           if k not in ("batch_size", "n_members", "max_iter")},
        "max_iter": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "n_members": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "batch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "embedding_size": [Interval(Integral, 1, None, closed="left")],
        "num_blocks": [Interval(Integral, 1, None, closed="left")],
        "num_heads": [Interval(Integral, 1, None, closed="left")],
        "head_size": [Interval(Integral, 1, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left"), StrOptions({"auto"})],
        "mask_probability": [Interval(Real, 0, 1, closed="left")],
        "anneal_iter": [Interval(Integral, 0, None, closed="left")],
        "memory_size": [Interval(Integral, 2, None, closed="left")],
        "epoch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "chunk_size": [Interval(Integral, 1, None, closed="left")],
        "num_threads": [Interval(Integral, 1, None, closed="left"), None],
        "categorical_features": ["array-like", str, None],
        "numeric_transform": [StrOptions(set(NUMERIC_TRANSFORMS))],
        "numeric_embedding": [StrOptions({"auto", "linear", "piecewise", "both"})],
        "learning_rate_schedule": [StrOptions({"auto", "constant", "cosine", "cooldown"})],
        "verbose": ["boolean"],
    }
    _extra_fitted = ("encoder_config_", "arch_", "n_memory_")
    _is_classifier = False

    def __init__(self, *, embedding_size: int = 32, num_blocks: int = 4, num_heads: int = 4,
                 head_size: int = 32, dropout: float | str = "auto", mask_probability: float = 0.1,
                 learning_rate: float = 1e-3, weight_decay: float = 0.0,
                 batch_size: int | str = "auto", max_iter: int | str = "auto",
                 anneal_iter: int = 20, n_iter_no_change: int = 10, tol: float = 1e-4,
                 early_stopping: bool = True, validation_fraction: float = 0.1,
                 memory_size: int = 1024, epoch_size: int | str = "auto", chunk_size: int = 4096,
                 n_members: int | str = "auto", categorical_features=None,
                 numeric_transform: str = "standard", numeric_embedding: str = "auto",
                 learning_rate_schedule: str = "auto", random_state: int | None = None,
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
        self.numeric_transform = numeric_transform
        self.numeric_embedding = numeric_embedding
        self.learning_rate_schedule = learning_rate_schedule
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
            enc = TabularEncoder(self._hp.categorical_features,
                                 numeric_transform=self._hp.numeric_transform)
            enc.fit(X, random_state=self.random_state)
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
        if enc is None:  # loaded: the quantile table (if any) is saved with the weights
            net = self.module_
            net = net.members[0] if isinstance(net, HopularEnsemble) else net
            q = getattr(net, "num_quantiles", None)
            try:
                enc = TabularEncoder.from_config(self.encoder_config_,
                                                 None if q is None else q.cpu().numpy())
            except (KeyError, TypeError, ValueError) as err:
                raise ValueError(f"the saved encoder_config_ is not valid: {err}") from None
            self._encoder = enc
        return enc

    def _new_net(self, n_bins: int | None = None) -> HopularNet:
        a, hp = self.arch_, self._hp
        q = a.get("quantile_shape")  # absent in models saved before numeric_transform
        # the dropout used (dropout="auto" resolved in fit); models saved before "auto" existed
        # have no arch_["dropout"], and their dropout parameter is a float
        return HopularNet(a["n_num"], a["cards"], a["target"], embedding_size=hp.embedding_size,
                          num_blocks=hp.num_blocks, num_heads=hp.num_heads,
                          head_size=hp.head_size, dropout=a.get("dropout", hp.dropout),
                          quantile_shape=None if q is None else tuple(q),
                          n_bins=a.get("n_bins", 0) if n_bins is None else n_bins)

    def _build_module(self, data, n_outputs: int, generator):
        """The fitted module's skeleton for :meth:`load` (memory buffers sized as saved)."""
        a, N = self.arch_, int(self.n_memory_)
        nets = []
        # models saved before n_members existed hold one network (arch_ has no "n_members")
        self.n_members_ = int(a.get("n_members", 1))
        self.dropout_ = float(a.get("dropout", self._hp.dropout))
        # models saved before the schedule existed trained with a constant learning rate
        self.learning_rate_schedule_ = a.get("learning_rate_schedule", "constant")
        # models saved before numeric_embedding="auto" existed: known from n_bins
        self.numeric_embedding_ = a.get("numeric_embedding",
                                        "piecewise" if a.get("n_bins") else "linear")
        self.numeric_embedding_scores_ = a.get("numeric_embedding_scores", {})
        for m in range(self.n_members_):
            net = self._new_net(_member_bins(self.numeric_embedding_, m, self.n_members_))
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
    def _train(self, data, y_enc: np.ndarray, seed: int, dev: torch.device) -> None:
        hp = self._hp
        num, miss, cat = self._with_target(data, y_enc)
        enc = self._get_encoder()
        a = {"n_num": num.shape[1], "cards": enc.cardinalities, "target": -1}
        if enc.quantiles is not None:  # saved with each network's weights (see HopularNet)
            a["quantile_shape"] = list(enc.quantiles.shape)
        if self._is_classifier:
            a["cards"] = a["cards"] + [len(self.classes_)]
        else:
            a["target"] = num.shape[1] - 1
        self.arch_ = a
        self.n_memory_ = len(num)
        # rows each network trains on: the rows passed to fit minus its validation split, whose
        # size does not depend on the member's seed; saved with arch_ for predict's thread rule
        # (the count the "auto" rules of max_iter, epoch_size, batch_size and dropout use)
        n_tr = len(num) - len(self._split(len(num), y_enc if self._is_classifier else None,
                                          np.random.RandomState(0)))
        a["n_train"] = n_tr
        self.dropout_ = _resolve_dropout(hp.dropout, n_tr)
        a["dropout"] = self.dropout_  # saved with arch_; read by _new_net
        self.learning_rate_schedule_ = _resolve_schedule(hp.learning_rate_schedule, n_tr)
        a["learning_rate_schedule"] = self.learning_rate_schedule_  # saved with arch_
        T = lambda x: torch.as_tensor(x, device=dev)
        full = (T(num), T(miss), T(cat))
        # num_threads=None: one thread for small training sets, whose tiny ops only pay the
        # threads' synchronisation (several times slower on a busy machine), else torch's setting
        small = hp.num_threads is None and n_tr <= _ONE_THREAD_ROWS
        reg = not self._is_classifier
        auto = ((_AUTO_MEMBERS_LARGE_REGRESSION if reg else 1) if n_tr > _ONE_THREAD_ROWS
                else _AUTO_MEMBERS_REGRESSION if reg and n_tr > _SMALL_DATA_ROWS
                else _AUTO_MEMBERS)
        self.n_members_ = a["n_members"] = auto if hp.n_members == "auto" else int(hp.n_members)
        n_inputs = num.shape[1] - reg  # numeric input columns (a regressor's target is one)
        cands = _embedding_candidates(hp.numeric_embedding, n_inputs, n_tr, bool(
            hp.early_stopping and hp.validation_fraction), self._is_classifier)
        if "piecewise" in cands:  # bin edges: quantiles of the encoded fit rows
            levels = np.linspace(0.0, 1.0, _N_BINS + 1)
            self._bin_edges = np.stack([
                np.quantile(num[~miss[:, j], j].astype(np.float64), levels)
                if (~miss[:, j]).any() else np.zeros(_N_BINS + 1) for j in range(num.shape[1])
            ]).reshape(num.shape[1], _N_BINS + 1)
        fits = {}  # embedding -> (nets, logs); "auto" in its range fits both, same seeds
        with _threads(1 if small else None):
            for emb in cands:
                _set_embedding(a, emb)
                fits[emb] = self._train_members(full, y_enc, seed, dev, enc)
        if len(fits) > 1:  # "both" = every network, outputs averaged like any ensemble's
            fits["both"] = tuple(fits["linear"][i] + fits["piecewise"][i] for i in (0, 1))
        scores = _ensemble_scores(fits, full, self.arch_, self._is_classifier)
        # "auto": the ensemble whose mean in-fit validation target loss is lowest (ties: the
        # first of linear, piecewise, both); linear_m and piecewise_m share their validation rows
        chosen = (hp.numeric_embedding if hp.numeric_embedding == "both"
                  else max(scores, key=scores.get) if len(fits) > 1 else cands[0])
        _set_embedding(a, chosen)
        self.numeric_embedding_ = a["numeric_embedding"] = chosen  # saved with arch_
        self.numeric_embedding_scores_ = a["numeric_embedding_scores"] = scores
        nets, logs = fits[chosen]
        self.n_members_ = a["n_members"] = len(nets)  # "both": the networks of both embeddings
        if chosen == "both":  # piecewise member 0 shares the stored rows with linear member 0
            nets[len(nets) // 2].set_memory(*(t.clone() for t in full))
        first = logs[0]
        self.loss_curve_, self.validation_scores_ = first["loss"], first["val"]
        self.epoch_seconds_ = first["seconds"]
        self.best_iteration_ = np.array([lg["best_iter"] for lg in logs], np.int64)
        self.n_iter_ = max(lg["n_iter"] for lg in logs)
        best = [lg["best_score"] for lg in logs if lg["best_score"] is not None]
        self.best_validation_score_ = float(np.mean(best)) if best else None
        self.module_ = (nets[0] if len(nets) == 1 else HopularEnsemble(nets)).eval()

    def _train_members(self, full, y_enc, seed: int, dev, enc):
        """Train ``n_members_`` networks (member m: seed + m) -> (nets, logs)."""
        nets, logs = [], []
        for m in range(self.n_members_):
            net, log = self._train_member(full, y_enc, seed + m, dev)
            if m:  # each member owns its copy of the stored rows (safetensors refuses sharing)
                net.set_memory(*(t.clone() for t in full))
            if enc.quantiles is not None:
                net.num_quantiles.copy_(torch.from_numpy(enc.quantiles))
            nets.append(net)
            logs.append(log)
        return nets, logs

    # ------------------------------------------------------------------ prediction
    @torch.no_grad()
    def _forward(self, net, data, n: int, chunk: int = 1024) -> torch.Tensor:
        """(M, n, K): target logits (classifier) or standardised prediction (regressor)."""
        net.eval()
        num, miss, cat = self._with_masked_target(data)
        members = list(net.members) if isinstance(net, HopularEnsemble) else [net]
        dev = members[0].mem_num.device
        # the fit's count (models saved before arch_["n_train"] existed: the stored rows)
        rows = self.arch_.get("n_train", len(members[0].mem_num))
        small = self._hp.num_threads is None and rows <= _ONE_THREAD_ROWS
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


class HopularClassifier(ClassifierTargetMixin, ClassifierMixin, _HopularBase):
    __doc__ = ("Hopular for classification (see the module docstring for network and training)."
               "\n" + PARAMS_DOC + "    ``predict_proba`` columns follow ``classes_``.\n")
    _is_classifier = True


class HopularRegressor(RegressorTargetMixin, RegressorMixin, _HopularBase):
    __doc__ = ("Hopular for regression (one continuous target, standardised in fit and returned "
               "on the original scale).\n" + PARAMS_DOC)
