"""Target mixins of the Hopfield estimators: :class:`ClassifierTargetMixin` (class labels,
cross-entropy, member-averaged probabilities, accuracy) and :class:`RegressorTargetMixin` (one
standardised continuous target, squared error, R²). They supply ``_encode_y``, ``_loss``,
``predict*`` and ``score`` on top of :class:`~hopfield.estimators._base.HopfieldEstimator`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from ._utils import Standardizer

__all__ = ["ClassifierTargetMixin", "RegressorTargetMixin", "cross_entropy"]


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-member, per-sample cross-entropy: logits (M, B, C), y (B,) or (M, B) -> (M, B)."""
    M = logits.shape[0]
    return F.cross_entropy(logits.transpose(1, 2), y.expand(M, -1), reduction="none")



class ClassifierTargetMixin:
    """Class labels: cross-entropy, member-averaged probabilities, accuracy."""

    _stratify = True

    def _encode_y(self, y) -> np.ndarray:
        y = np.asarray(y)
        check_classification_targets(y)
        self.classes_, y_enc = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"y must contain at least 2 classes, got 1 class "
                             f"({self.classes_.tolist()[0]!r})")
        self._n_outputs = len(self.classes_)
        return y_enc.astype(np.int64)

    def _loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return cross_entropy(out, y)

    def predict_proba(self, X, **input_kw) -> np.ndarray:
        """Class probabilities (n, C), the mean of the members'; columns follow ``classes_``."""
        return self._outputs(X, **input_kw).softmax(-1).mean(0).numpy()

    def predict_log_proba(self, X, **input_kw) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X, **input_kw))

    def decision_function(self, X, **input_kw) -> np.ndarray:
        """Log-probability margin: (n,) ``log p_1 - log p_0`` for two classes, else (n, C) log p."""
        logp = torch.log_softmax(self._outputs(X, **input_kw), -1)   # (M, n, C)
        logp = torch.logsumexp(logp, 0) - math.log(logp.shape[0])   # log of the member mean
        z = logp.numpy()
        return z[:, 1] - z[:, 0] if z.shape[1] == 2 else z

    def predict(self, X, **input_kw) -> np.ndarray:
        """Predicted labels (n,) from ``classes_``."""
        check_is_fitted(self, "module_")
        return self.classes_[np.argmax(self.predict_proba(X, **input_kw), axis=1)]

    def score(self, X, y, sample_weight=None, **input_kw) -> float:
        """Accuracy; labels never seen in ``fit`` raise ``ValueError``."""
        check_is_fitted(self, "module_")
        unseen = np.setdiff1d(np.unique(np.asarray(y)), self.classes_)
        if unseen.size:
            raise ValueError(f"y must only contain labels seen in fit {self.classes_.tolist()}, "
                             f"got unseen labels {unseen.tolist()}")
        return float(accuracy_score(y, self.predict(X, **input_kw), sample_weight=sample_weight))


class RegressorTargetMixin:
    """Real-valued target: standardised in float64, squared error, member-averaged prediction."""

    _stratify = False
    _n_outputs = 1

    def _encode_y(self, y) -> np.ndarray:
        y = np.asarray(y)
        try:
            if y.dtype.kind not in "biufO":
                raise TypeError
            y = y.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"Unknown label type: y must be numeric for {type(self).__name__}, "
                             f"got dtype {y.dtype}") from None
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D (one target per sample), got shape {y.shape}")
        if not np.isfinite(y).all():
            raise ValueError("y must be finite, got NaN or infinite targets")
        self.target_scaler_ = Standardizer().fit(y[:, None])
        return self.target_scaler_.transform(y[:, None], what="y")[:, 0]

    def _loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (out[..., 0] - y) ** 2                                     # (M, B)

    def predict(self, X, **input_kw) -> np.ndarray:
        """Predicted targets (n,), the mean of the members'."""
        z = self._outputs(X, **input_kw)[..., 0].mean(0).numpy()
        s = self.target_scaler_
        return z * s.scale[0] + s.mean[0]
