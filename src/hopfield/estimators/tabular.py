"""``HopfieldClassifier``: a scikit-learn classifier for small tabular data built on a Hopfield
layer.

Shape legend: B samples in a batch, D input features, E embedding size (= H * Dh), H heads,
Dh head size, K stored patterns per head (``quantity``), C outputs (classes), M ensemble members.

What is implemented (the setting of Ramsauer et al. 2020, appendix "Hopfield layers on small UCI
datasets": a sample is the state pattern of a Hopfield layer whose stored patterns are learned
prototypes, followed by a linear read-out; trained with early stopping)::

    z   = x_std W_in + b_in                               # (M, B, E) embedding (state patterns R)
    o_h = softmax(beta * z_h Y_hᵀ) V_h   for each head h  # (M, B, Dh) Hopfield lookup:
                                                          #   Y_h (K, Dh) learned stored patterns
                                                          #   (initialised to the embeddings of K
                                                          #   random training samples),
                                                          #   V_h (K, Dh) learned pattern
                                                          #   projections
    h   = LayerNorm(z + concat_h o_h)                     # (M, B, E) residual + normalisation
    p   = mean_m softmax(h W_out + b_out)                 # (B, C) ensemble-averaged probabilities

``x_std`` is x standardised (in float64) with the training mean/std. The lookup is one Hopfield
update ξ ← V softmax(β Yᵀ ξ) — the update of ``hopfield.HopfieldLayer`` with learned stored patterns
and targets, without its projections — computed by
``torch.nn.functional.scaled_dot_product_attention`` with ``scale=β``. The M = ``n_members`` members
are independent networks (own initialisation, own validation part) trained side by side as one
batched network whose parameters carry the member dimension; their probabilities are averaged.
Training (shared with every estimator, :mod:`hopfield.estimators._base`): AdamW on the cross-entropy
summed over members, all members on the same mini-batches with each member's own validation samples
weighted 0, dropout on the association weights, per-member early stopping on the member's stratified
``validation_fraction`` of the data, keeping each member's best epoch (so the ensemble as a whole
sees every training sample, as in bagging).

Why hand-batched and not ``torch.func`` over ``HopfieldLayer`` copies: measured in
``docs/uci.md`` ("Ensemble mechanism").
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import ClassVar

import torch
import torch.nn.functional as F
from sklearn.base import ClassifierMixin
from sklearn.utils._param_validation import Interval, StrOptions
from torch import nn

from ._base import DEPRECATED, ClassifierTargetMixin, HopfieldEstimator

__all__ = ["TUNING_GRID", "HopfieldClassifier"]

#: The documented tuning grid (used by ``hopfield reproduce uci``; 8 points).
TUNING_GRID: dict[str, list] = {
    "quantity": [8, 32],
    "dropout": [0.1, 0.25],
    "learning_rate": [1e-3, 3e-3],
}


class _HopfieldNet(nn.Module):
    """M batched networks: embedding -> Hopfield lookup over learned patterns -> linear read-out."""

    def __init__(self, d_in: int, n_out: int, embedding_size: int, num_heads: int,
                 quantity: int, beta: float | None, n_members: int, dropout: float = 0.0,
                 generator: torch.Generator | None = None):
        super().__init__()
        M, D, E, H, K, C = n_members, d_in, embedding_size, num_heads, quantity, n_out
        dh = E // H
        self.H, self.dh, self.dropout = H, dh, float(dropout)
        self.beta = float(beta) if beta is not None else 1.0 / math.sqrt(dh)
        gen = {"generator": generator} if generator is not None else {}

        def uniform(*shape, fan_in):
            bound = 1.0 / math.sqrt(fan_in)
            return nn.Parameter(torch.rand(*shape, **gen).mul_(2 * bound).sub_(bound))

        self.w_in = uniform(M, D, E, fan_in=D)
        self.b_in = uniform(M, 1, E, fan_in=D)
        self.patterns = nn.Parameter(torch.randn(M, H, K, dh, **gen))  # Y
        self.targets = nn.Parameter(torch.randn(M, H, K, dh, **gen) / math.sqrt(dh))  # V
        self.w_out = uniform(M, E, C, fan_in=E)
        self.b_out = uniform(M, 1, C, fan_in=E)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """x (M, B, D) standardised -> z (M, B, E)."""
        return torch.baddbmm(self.b_in, x, self.w_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (M, B, D) -> outputs (M, B, C)."""
        z = self.embed(x)  # (M, B, E)
        M, B, E = z.shape
        q = z.view(M, B, self.H, self.dh).transpose(1, 2)  # (M, H, B, Dh)
        p = self.dropout if self.training else 0.0
        o = F.scaled_dot_product_attention(q, self.patterns, self.targets, dropout_p=p,
                                           scale=self.beta)  # (M, H, B, Dh)
        h = F.layer_norm(z + o.transpose(1, 2).reshape(M, B, E), (E,))
        return torch.baddbmm(self.b_out, h, self.w_out)  # (M, B, C)


class _HopfieldTabular(HopfieldEstimator):
    """Parameters, input handling and network shared by the tabular classifier and regressor."""

    _parameter_constraints: ClassVar[dict] = {
        **HopfieldEstimator._parameter_constraints,
        "embedding_size": [Interval(Integral, 1, None, closed="left")],
        "num_heads": [Interval(Integral, 1, None, closed="left")],
        "quantity": [Interval(Integral, 1, None, closed="left")],
        "beta": [Interval(Real, 0, None, closed="neither"), None],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "hidden_size": [Interval(Integral, 1, None, closed="left"), StrOptions({DEPRECATED})],
        "lr": [Interval(Real, 0, None, closed="neither"), StrOptions({DEPRECATED})],
        "max_epochs": [Interval(Integral, 1, None, closed="left"), StrOptions({DEPRECATED})],
        "patience": [Interval(Integral, 1, None, closed="left"), StrOptions({DEPRECATED})],
        "n_ensemble": [Interval(Integral, 1, None, closed="left"), StrOptions({DEPRECATED})],
    }
    _deprecated_aliases: ClassVar[dict[str, str]] = {
        "hidden_size": "embedding_size", "lr": "learning_rate", "max_epochs": "max_iter",
        "patience": "n_iter_no_change", "n_ensemble": "n_members"}
    #: the members share their input: one mini-batch of all samples per step, each member's
    #: validation samples weighted 0 (cheaper than per-member batches; reproduces the previous
    #: release's UCI accuracies exactly, see docs/uci.md)
    _shared_batches = True

    def __init__(self, embedding_size: int = 64, num_heads: int = 4, quantity: int = 32,
                 beta: float | None = None, dropout: float = 0.1, *,
                 learning_rate: float = 1e-3, weight_decay: float = 1e-3, batch_size: int = 32,
                 max_iter: int = 200, tol: float = 1e-6, n_iter_no_change: int = 20,
                 early_stopping: bool = True, validation_fraction: float = 0.15,
                 n_members: int = 5, random_state=None, device: str | None = "cpu",
                 hidden_size=DEPRECATED, lr=DEPRECATED, max_epochs=DEPRECATED,
                 patience=DEPRECATED, n_ensemble=DEPRECATED):
        self._store_params(locals())

    def _check_params(self) -> None:
        hp = self._hp
        if hp.embedding_size % hp.num_heads:
            raise self._param_error("embedding_size", f"divisible by num_heads={hp.num_heads}",
                                    hp.embedding_size)

    def _check_input(self, X, y=None, *, reset: bool):
        return self._check_table(X, y, reset=reset)

    def _collate(self, data, idx, *, train, generator):
        return (torch.from_numpy(data[idx]).to(self._torch_device),)  # (M, B, D)

    def _build_module(self, data, n_outputs, generator):
        hp = self._hp
        net = _HopfieldNet(self.n_features_in_, n_outputs, hp.embedding_size, hp.num_heads,
                           hp.quantity, hp.beta, hp.n_members, hp.dropout, generator)
        if data is not None:  # stored patterns start at the embeddings of random samples
            with torch.no_grad():
                pick = torch.randint(0, len(data), (hp.n_members, hp.quantity), generator=generator)
                z = net.embed(torch.from_numpy(data)[pick])  # (M, K, E)
                net.patterns.copy_(z.view(hp.n_members, hp.quantity, net.H, net.dh).transpose(1, 2))
        return net


class HopfieldClassifier(ClassifierTargetMixin, ClassifierMixin, _HopfieldTabular):
    """Tabular classifier: an ensemble of small Hopfield-layer networks (see the module docstring).

    Parameters:
        embedding_size: embedding size E (state/stored pattern dimension, split over heads).
        num_heads: Hopfield heads H (``embedding_size`` must be divisible by it).
        quantity: learned stored patterns (prototypes) per head K.
        beta: inverse temperature β; ``None`` = 1/sqrt(embedding_size / num_heads).
        dropout: dropout on the association weights during training.
        learning_rate, weight_decay: AdamW settings.
        batch_size: mini-batch size.
        max_iter: maximum number of epochs.
        tol, n_iter_no_change: a member's validation log-loss must improve by more than ``tol``
            within ``n_iter_no_change`` epochs, else it stops improving (training ends once every
            member has stopped).
        early_stopping, validation_fraction: hold out a stratified ``validation_fraction`` per
            member and keep its best epoch (``early_stopping=False`` or fraction 0: train
            ``max_iter`` epochs on everything). Too small a split raises, as in scikit-learn.
        n_members: independently initialised members whose probabilities are averaged.
        random_state: ``None`` (default, scikit-learn convention) = fresh randomness on every
            fit; an int = reproducible fits (initialisation, splits, batches, dropout).
        device: ``"cpu"`` (default), ``"cuda"`` or ``"auto"`` (CUDA when available).
        hidden_size, lr, max_epochs, patience, n_ensemble: deprecated aliases of embedding_size,
            learning_rate, max_iter, n_iter_no_change, n_members (FutureWarning in fit).

    Defaults work untuned; :data:`TUNING_GRID` is the documented grid for tuning on a validation
    set. Numpy in, numpy out; ``predict_proba`` columns follow ``classes_``. Fitted attributes:
    ``classes_``, ``n_features_in_`` (``feature_names_in_`` for DataFrames), ``module_``,
    ``n_iter_``, ``best_iteration_`` (per member), ``loss_curve_``, ``validation_scores_``,
    ``best_validation_score_``, ``scaler_``.
    """
