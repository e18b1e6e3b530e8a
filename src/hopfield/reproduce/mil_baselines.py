"""Baselines for the MIL reproduction, run on the same folds as :class:`HopfieldMILClassifier`.

- :class:`MILNetClassifier` — the same instance-embedding network and training loop as the Hopfield
  estimator, with a different bag pooling:
    ``"attention"``  Ilse et al. 2018:  a_k = softmax_k(wᵀ tanh(V h_k)),            z = Σ_k a_k h_k
    ``"gated"``      Ilse et al. 2018:  a_k = softmax_k(wᵀ (tanh(V h_k) ⊙ σ(U h_k))), z = Σ_k a_k h_k
    ``"mean"``       z = mean_k h_k;    ``"max"``  z = max_k h_k (per feature)
- :class:`BagStatsClassifier` — per-bag statistics (mean, min and max of every feature, 3·D values)
  fed to a random forest (``"rf"``) or an RBF SVM (``"svm"``) after standardisation.

Shape legend: B bags, N instances (padded), E embedding size, A attention size.
"""

from __future__ import annotations

from numbers import Integral
from typing import ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ..estimators._base import DEPRECATED
from ..estimators.mil import BaseMILClassifier, check_bags

__all__ = ["BagStatsClassifier", "MILNetClassifier", "bag_statistics"]

POOLINGS = ("attention", "gated", "mean", "max")


class _AttentionPool(nn.Module):
    """Ilse et al. (2018) attention pooling, plain or gated; weights (B, 1, N) like one head."""

    def __init__(self, size, attention_size, gated):
        super().__init__()
        self.V = nn.Linear(size, attention_size)
        self.U = nn.Linear(size, attention_size) if gated else None
        self.w = nn.Linear(attention_size, 1)

    def forward(self, h, mask, return_weights):                # h (B, N, E), mask (B, N)
        a = torch.tanh(self.V(h))                               # (B, N, A)
        if self.U is not None:
            a = a * torch.sigmoid(self.U(h))
        s = self.w(a).squeeze(-1).masked_fill(mask, float("-inf"))   # (B, N)
        w = torch.softmax(s, dim=-1)
        z = torch.einsum("bn,bne->be", w, h)                    # (B, E)
        return z, (w.unsqueeze(1) if return_weights else None)


class _SimplePool(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.kind = kind

    def forward(self, h, mask, return_weights):
        keep = (~mask).unsqueeze(-1).to(h.dtype)                # (B, N, 1)
        if self.kind == "mean":
            z = (h * keep).sum(1) / keep.sum(1)
        else:
            z = h.masked_fill(mask.unsqueeze(-1), float("-inf")).amax(1)
        return z, None


class MILNetClassifier(BaseMILClassifier):
    """Instance MLP -> ``pooling`` ("attention", "gated", "mean", "max") -> linear head.

    Same parameters and training as :class:`~hopfield.estimators.HopfieldMILClassifier` (minus the
    Hopfield ones), plus ``attention_size`` for the attention poolings. ``scoring`` is the same
    early-stopping rule with the same default (``"roc_auc"``: the best epoch by the validation
    ROC AUC, ties broken by the cross-entropy; ``"loss"``: the cross-entropy, these baselines'
    rule before this release, bit-identical), so every network in the benchmark stops alike.
    """

    _parameter_constraints: ClassVar[dict] = {
        **BaseMILClassifier._parameter_constraints,
        "pooling": [StrOptions(set(POOLINGS))],
        "attention_size": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, pooling="attention", attention_size=64, embedding_size=128, n_layers=2,
                 dropout=0.1, bag_dropout=0.1, *, learning_rate=1e-3, learning_rate_decay=0.98,
                 weight_decay=1e-3, max_iter=100, batch_size=8, tol=1e-4, n_iter_no_change=15,
                 early_stopping=True, validation_fraction=0.15, scoring="roc_auc", n_members=1,
                 random_state=None, device="cpu", num_threads=1, hidden_size=DEPRECATED,
                 lr=DEPRECATED, lr_decay=DEPRECATED, max_epochs=DEPRECATED, patience=DEPRECATED):
        self._store_params(locals())

    @property
    def _pool_name(self):
        return self.pooling

    def _build_pooling(self, size):
        if self.pooling in ("attention", "gated"):
            return _AttentionPool(size, self.attention_size, self.pooling == "gated"), size
        return _SimplePool(self.pooling), size

    @staticmethod
    def param_grid() -> dict[str, list]:
        """Tuning grid of the same size as the Hopfield one
        (``reproduce.mil.run(mode="tuned")``)."""
        return {"learning_rate": [1e-3, 3e-4], "embedding_size": [64, 128, 256], "n_layers": [1, 2],
                "attention_size": [32, 128], "dropout": [0.0, 0.1, 0.5],
                "bag_dropout": [0.0, 0.1, 0.5], "weight_decay": [1e-4, 1e-3, 1e-2]}


def bag_statistics(bags: list[np.ndarray]) -> np.ndarray:
    """(B, 3·D) per-bag mean, min and max of every feature."""
    return np.stack([np.concatenate([b.mean(0), b.min(0), b.max(0)]) for b in bags])


class BagStatsClassifier(ClassifierMixin, BaseEstimator):
    """Bag statistics (:func:`bag_statistics`) -> StandardScaler -> random forest or RBF SVM."""

    def __init__(self, model="rf", n_estimators=500, max_features="sqrt", min_samples_leaf=1, C=1.0,
                 gamma="scale", random_state=None):
        self.model = model
        self.n_estimators = n_estimators
        self.max_features = max_features
        self.min_samples_leaf = min_samples_leaf
        self.C = C
        self.gamma = gamma
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        return tags

    def fit(self, X, y):
        bags = check_bags(X)
        if self.model == "rf":
            clf = RandomForestClassifier(n_estimators=self.n_estimators,
                                         max_features=self.max_features,
                                         min_samples_leaf=self.min_samples_leaf,
                                         random_state=self.random_state, n_jobs=1)
        elif self.model == "svm":
            clf = SVC(C=self.C, gamma=self.gamma, random_state=self.random_state)
        else:
            raise ValueError("The 'model' parameter of BagStatsClassifier must be one of ['rf', "
                             f"'svm']. Got {self.model!r} instead.")
        self.pipeline_ = make_pipeline(StandardScaler(), clf).fit(bag_statistics(bags),
                                                                  np.asarray(y))
        self.classes_ = self.pipeline_.classes_
        self.n_features_in_ = bags[0].shape[1]
        return self

    def decision_function(self, X):
        """Score for the positive class (binary): RF P(class 1), SVM signed margin."""
        check_is_fitted(self, "pipeline_")
        F = bag_statistics(check_bags(X, n_features=self.n_features_in_))
        if self.model == "rf":
            p = self.pipeline_.predict_proba(F)
            return p[:, 1] if p.shape[1] == 2 else p
        return self.pipeline_.decision_function(F)

    def predict(self, X):
        check_is_fitted(self, "pipeline_")
        return self.pipeline_.predict(bag_statistics(check_bags(X, n_features=self.n_features_in_)))

    @staticmethod
    def param_grid(model="rf") -> dict[str, list]:
        if model == "rf":
            return {"max_features": ["sqrt", 0.1, 0.3], "min_samples_leaf": [1, 3]}
        return {"C": [0.1, 1.0, 10.0, 100.0], "gamma": ["scale", 0.1, 0.01, 0.001]}
