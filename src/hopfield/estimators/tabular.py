"""``HopfieldClassifier``: a scikit-learn classifier for small tabular data built on a Hopfield layer.

Shape legend: B samples in a batch, D input features, E embedding size (= H * Dh), H heads,
Dh head size, K stored patterns per head (``quantity``), C classes, M ensemble members.

What is implemented (the setting of Ramsauer et al. 2020, appendix "Hopfield layers on small UCI
datasets": a sample is the state pattern of a Hopfield layer whose stored patterns are learned
prototypes, followed by a linear read-out; trained with early stopping)::

    z   = x_std W_in + b_in                                  # (M, B, E) embedding (state patterns R)
    o_h = softmax(beta * z_h Y_hᵀ) V_h      for each head h  # (M, B, Dh) Hopfield lookup:
                                                             #   Y_h (K, Dh) learned stored patterns
                                                             #   (initialised to the embeddings of K
                                                             #   random training samples),
                                                             #   V_h (K, Dh) learned pattern projections
    h   = LayerNorm(z + concat_h o_h)                        # (M, B, E) residual + normalisation
    p   = mean_m softmax(h W_out + b_out)                    # (B, C) ensemble-averaged probabilities

``x_std`` is x standardised with the training mean/std. The lookup runs through
:func:`hopfield.functional.associate` (the same update ξ ← Y softmax(β Yᵀ ξ) as
``hopfield.HopfieldLayer`` with learned stored patterns and targets). The M = ``n_ensemble``
members are independent networks (different initialisations) trained side by side in one batched
model on the same mini-batches; their predicted probabilities are averaged. Training: AdamW on the
cross-entropy summed over members, dropout on the association weights, and per-member early
stopping: member m holds out its own stratified random ``validation_fraction`` of the training
data, trains on the rest and keeps its weights of the epoch with the lowest log-loss on its
held-out samples (so the ensemble as a whole sees every training sample, as in bagging).
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from ..functional import _associate

__all__ = ["HopfieldClassifier", "TUNING_GRID"]

#: The documented tuning grid (used by ``hopfield reproduce uci``; 8 points).
TUNING_GRID: dict[str, list] = {
    "quantity": [8, 32],
    "dropout": [0.1, 0.25],
    "lr": [1e-3, 3e-3],
}


class _HopfieldNet(nn.Module):
    """M batched networks: embedding -> Hopfield lookup over learned patterns -> linear read-out."""

    def __init__(self, d_in: int, n_classes: int, hidden_size: int, num_heads: int,
                 quantity: int, beta: float | None, n_members: int, generator: torch.Generator):
        super().__init__()
        M, D, E, H, K, C = n_members, d_in, hidden_size, num_heads, quantity, n_classes
        dh = E // H
        self.H, self.dh = H, dh
        self.beta = float(beta) if beta is not None else 1.0 / math.sqrt(dh)

        def uniform(*shape, fan_in):
            bound = 1.0 / math.sqrt(fan_in)
            return nn.Parameter(torch.rand(*shape, generator=generator).mul_(2 * bound).sub_(bound))

        self.w_in = uniform(M, D, E, fan_in=D)
        self.b_in = uniform(M, 1, E, fan_in=D)
        self.patterns = nn.Parameter(torch.randn(M, H, K, dh, generator=generator))  # Y
        self.targets = nn.Parameter(torch.randn(M, H, K, dh, generator=generator) / math.sqrt(dh))
        self.w_out = uniform(M, E, C, fan_in=E)
        self.b_out = uniform(M, 1, C, fan_in=E)
        self.register_buffer("mean", torch.zeros(D))
        self.register_buffer("scale", torch.ones(D))

    def forward(self, x: torch.Tensor, dropout_p: float = 0.0) -> torch.Tensor:
        """x (B, D) -> logits (M, B, C)."""
        x = (x - self.mean) / self.scale  # (B, D)
        z = torch.baddbmm(self.b_in, x.expand(self.w_in.shape[0], -1, -1), self.w_in)  # (M, B, E)
        M, B, E = z.shape
        q = z.view(M, B, self.H, self.dh).transpose(1, 2)  # (M, H, B, Dh)
        o, _ = _associate(q, self.patterns, self.targets, self.beta, None, None, False, dropout_p)
        o = o.transpose(1, 2).reshape(M, B, E)  # (M, B, E)
        h = F.layer_norm(z + o, (E,))
        return torch.baddbmm(self.b_out, h, self.w_out)  # (M, B, C)


def _param_error(name: str, expected: str, value) -> ValueError:
    return ValueError(
        f"The {name!r} parameter of HopfieldClassifier must be {expected}. Got {value!r} instead."
    )


class HopfieldClassifier(ClassifierMixin, BaseEstimator):
    """Tabular classifier: an ensemble of small Hopfield-layer networks (see the module docstring).

    Parameters:
        hidden_size: embedding size E (state/stored pattern dimension, split over heads).
        num_heads: Hopfield heads H (``hidden_size`` must be divisible by it).
        quantity: learned stored patterns (prototypes) per head K.
        beta: inverse temperature β; ``None`` = 1/sqrt(hidden_size / num_heads).
        dropout: dropout on the association weights during training.
        lr, weight_decay: AdamW settings.
        batch_size: mini-batch size.
        max_epochs, patience: training length and early-stopping patience (epochs).
        validation_fraction: stratified share of the training data used for early stopping
            (0 = no early stopping, train ``max_epochs``).
        n_ensemble: independently initialised members whose probabilities are averaged.
        random_state: seed (int) for initialisation, the validation split, shuffling and dropout;
            ``None`` = not reproducible.
        device: torch device; ``None`` = CUDA when available, else CPU.

    Defaults work untuned; :data:`TUNING_GRID` is the documented grid for tuning on a validation
    set. Numpy in, numpy out; ``predict_proba`` columns follow ``classes_``.
    """

    def __init__(self, hidden_size: int = 64, num_heads: int = 4, quantity: int = 32,
                 beta: float | None = None, dropout: float = 0.1, lr: float = 1e-3,
                 weight_decay: float = 1e-3, batch_size: int = 32, max_epochs: int = 200,
                 patience: int = 20, validation_fraction: float = 0.15, n_ensemble: int = 5,
                 random_state: int | None = 0, device: str | None = None):
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.quantity = quantity
        self.beta = beta
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.n_ensemble = n_ensemble
        self.random_state = random_state
        self.device = device

    # ------------------------------------------------------------------ validation helpers
    def _check_params(self) -> None:
        for name in ("hidden_size", "num_heads", "quantity", "batch_size", "max_epochs",
                     "patience", "n_ensemble"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise _param_error(name, "an int >= 1", v)
        if self.hidden_size % self.num_heads:
            raise _param_error("hidden_size", f"divisible by num_heads={self.num_heads}",
                               self.hidden_size)
        if self.beta is not None and not (isinstance(self.beta, (int, float))
                                          and math.isfinite(self.beta) and self.beta > 0):
            raise _param_error("beta", "a float > 0 or None", self.beta)
        for name, lo, hi in (("dropout", 0.0, 1.0), ("validation_fraction", 0.0, 1.0)):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not lo <= v < hi:
                raise _param_error(name, f"a float in [{lo}, {hi})", v)
        for name in ("lr", "weight_decay"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 or (
                    name == "lr" and v == 0):
                raise _param_error(name, "a finite float > 0" if name == "lr" else
                                   "a finite float >= 0", v)

    def _device(self) -> torch.device:
        if self.device is not None:
            return torch.device(self.device)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    # ------------------------------------------------------------------ fit
    def fit(self, X, y):
        """Fit on ``X`` (n, D) and labels ``y`` (n,). Returns ``self``."""
        self._check_params()
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, y_enc = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"y must contain at least 2 classes, got 1 class ({self.classes_[0]!r})"
            )
        seed = int(check_random_state(self.random_state).randint(0, 2**31 - 1))
        dev = self._device()
        devices = [dev] if dev.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            self.module_, self.n_epochs_, self.best_val_loss_ = self._train(X, y_enc, seed, dev)
        return self

    def _split(self, y: np.ndarray, rng: np.random.RandomState) -> np.ndarray:
        """Stratified validation indices (``validation_fraction`` of each class with >= 2 samples)."""
        val = []
        for c in np.unique(y):
            idx = rng.permutation(np.flatnonzero(y == c))
            n_val = int(round(self.validation_fraction * len(idx)))
            if len(idx) >= 2:
                val.append(idx[: max(1, min(n_val, len(idx) - 1))])
        return np.sort(np.concatenate(val)) if val else np.empty(0, dtype=np.int64)

    def _train(self, X: np.ndarray, y: np.ndarray, seed: int, dev: torch.device):
        rng = np.random.RandomState(seed)
        M, n = self.n_ensemble, len(y)
        # holdout (M, n): True = sample is in member m's own validation subset
        holdout = np.zeros((M, n), dtype=bool)
        if self.validation_fraction > 0:
            for m in range(M):
                holdout[m, self._split(y, rng)] = True
        early = bool(holdout.any())
        gen = torch.Generator().manual_seed(seed)
        net = _HopfieldNet(X.shape[1], len(self.classes_), self.hidden_size, self.num_heads,
                           self.quantity, self.beta, M, gen)
        std = X.std(axis=0)
        net.mean.copy_(torch.as_tensor(X.mean(axis=0)))
        net.scale.copy_(torch.as_tensor(np.where(std > 1e-12, std, 1.0)))
        with torch.no_grad():  # stored patterns start at the embeddings of random samples
            pick = torch.randint(0, n, (M, self.quantity), generator=gen)  # (M, K)
            xs = (torch.tensor(X, dtype=torch.float32)[pick] - net.mean) / net.scale
            z = torch.baddbmm(net.b_in, xs, net.w_in)  # (M, K, E)
            net.patterns.copy_(z.view(M, self.quantity, net.H, net.dh).transpose(1, 2))
        net = net.to(dev)
        Xt = torch.tensor(X, dtype=torch.float32, device=dev)  # (n, D)
        yt = torch.as_tensor(y, dtype=torch.long, device=dev)  # (n,)
        w_train = torch.as_tensor(~holdout, dtype=torch.float32, device=dev)  # (M, n)
        w_val = torch.as_tensor(holdout, dtype=torch.float32, device=dev)  # (M, n)
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        bs = min(self.batch_size, n)
        best = torch.full((M,), math.inf, device=dev)
        best_epoch = np.full(M, self.max_epochs)
        bad = np.zeros(M, dtype=int)
        best_params = {k: v.detach().clone() for k, v in net.named_parameters()}
        epoch = 0
        for epoch in range(1, self.max_epochs + 1):
            net.train()
            perm = torch.randperm(n, generator=gen).to(dev)
            for i in range(0, n, bs):
                b = perm[i: i + bs]
                logits = net(Xt[b], self.dropout)  # (M, b, C)
                ce = F.cross_entropy(logits.transpose(1, 2), yt[b].expand(M, -1),
                                     reduction="none")  # (M, b)
                w = w_train[:, b]  # (M, b) each member skips its own validation samples
                loss = ((ce * w).sum(1) / w.sum(1).clamp_min(1.0)).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            if not early:
                continue
            net.eval()
            with torch.no_grad():
                ce = torch.cat([F.cross_entropy(net(Xt[i: i + 4096]).transpose(1, 2),
                                                yt[i: i + 4096].expand(M, -1), reduction="none")
                                for i in range(0, n, 4096)], dim=1)  # (M, n)
                vloss = (ce * w_val).sum(1) / w_val.sum(1).clamp_min(1.0)  # (M,)
                improved = vloss < best - 1e-6  # (M,)
                best = torch.where(improved, vloss, best)
                for k, v in net.named_parameters():
                    best_params[k][improved] = v[improved]
            imp = improved.cpu().numpy()
            best_epoch[imp] = epoch
            bad = np.where(imp, 0, bad + 1)
            if (bad >= self.patience).all():
                break
        if early:
            with torch.no_grad():
                for k, v in net.named_parameters():
                    v.copy_(best_params[k])
        net.eval()
        best_loss = float(best.mean()) if early else None
        return net, (best_epoch.tolist() if early else [epoch] * M), best_loss

    # ------------------------------------------------------------------ predict
    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (n, C), columns in the order of ``classes_``."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        p = []
        dev = next(self.module_.parameters()).device
        with torch.no_grad():
            for i in range(0, len(X), 4096):
                xb = torch.tensor(X[i: i + 4096], dtype=torch.float32, device=dev)
                p.append(self.module_(xb).softmax(-1).mean(0).double().cpu().numpy())
        return np.concatenate(p) if p else np.zeros((0, len(self.classes_)))

    def predict(self, X) -> np.ndarray:
        """Predicted labels (n,) from ``classes_``."""
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def score(self, X, y, sample_weight=None) -> float:
        """Accuracy; labels never seen in ``fit`` raise ``ValueError``."""
        check_is_fitted(self)
        unseen = np.setdiff1d(np.unique(np.asarray(y)), self.classes_)
        if unseen.size:
            raise ValueError(
                f"y must only contain labels seen in fit {self.classes_.tolist()}, got unseen "
                f"labels {unseen.tolist()}"
            )
        return super().score(X, y, sample_weight=sample_weight)

    # ------------------------------------------------------------------ save / load
    def save(self, path: str | os.PathLike) -> None:
        """Save to directory ``path`` (``config.json`` + ``weights.safetensors``, atomic)."""
        from ._io import save_state

        check_is_fitted(self)
        kind = "str" if self.classes_.dtype.kind in "UO" else self.classes_.dtype.str
        config = {
            "estimator": "HopfieldClassifier",
            "params": {k: v for k, v in self.get_params().items()},
            "classes": self.classes_.tolist(),
            "classes_dtype": kind,
            "n_features_in": int(self.n_features_in_),
            "n_epochs": [int(e) for e in self.n_epochs_],
            "best_val_loss": self.best_val_loss_,
        }
        json.dumps(config)  # fail before writing when a parameter is not JSON-serialisable
        save_state(path, config, dict(self.module_.state_dict()))

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> HopfieldClassifier:
        """Load a model written by :meth:`save` (weights via safetensors, no pickle)."""
        from ._io import load_state

        config, tensors = load_state(path)
        if config.get("estimator") != "HopfieldClassifier":
            raise ValueError(f"path must hold a saved HopfieldClassifier, got "
                             f"{config.get('estimator')!r}")
        params = dict(config["params"])
        if device is not None:
            params["device"] = device
        est = cls(**params)
        kind = config["classes_dtype"]
        est.classes_ = np.asarray(config["classes"], dtype=None if kind == "str" else kind)
        est.n_features_in_ = config["n_features_in"]
        est.n_epochs_, est.best_val_loss_ = config["n_epochs"], config["best_val_loss"]
        gen = torch.Generator().manual_seed(0)
        net = _HopfieldNet(est.n_features_in_, len(est.classes_), est.hidden_size, est.num_heads,
                           est.quantity, est.beta, est.n_ensemble, gen)
        net.load_state_dict(tensors)
        est.module_ = net.to(est._device()).eval()
        return est
