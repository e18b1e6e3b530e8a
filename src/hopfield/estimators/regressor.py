"""``HopfieldRegressor``: the tabular Hopfield network of :mod:`hopfield.estimators.tabular` with
one output, trained on the squared error of the standardised target.

Everything else — parameters, input checks, members, early stopping, save/load — is shared with
:class:`~hopfield.estimators.HopfieldClassifier` through :mod:`hopfield.estimators._base`.
"""

from __future__ import annotations

from sklearn.base import RegressorMixin

from ._base import RegressorTargetMixin
from .tabular import _HopfieldTabular

__all__ = ["HopfieldRegressor"]


class HopfieldRegressor(RegressorTargetMixin, RegressorMixin, _HopfieldTabular):
    """Tabular regressor: an ensemble of small Hopfield-layer networks with one linear output.

    Parameters are those of :class:`~hopfield.estimators.HopfieldClassifier`; the early-stopping
    loss is the mean squared error of the standardised target (random, not stratified, validation
    parts). ``predict`` returns the members' mean prediction; ``score`` is R². Fitted attributes
    as for the classifier, plus ``target_scaler_`` (target mean and standard deviation).
    """
