"""The early-stopping criterion hook of HopfieldEstimator (``_stopping_losses``)."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import make_classification

from hopfield.estimators import HopfieldClassifier

X, Y = make_classification(120, 5, random_state=0)
KW = {"max_iter": 12, "n_iter_no_change": 3, "random_state": 0, "n_members": 2}


class _FlatStop(HopfieldClassifier):
    """Stops on a constant: only the first epoch improves (0 < inf - tol), never again."""

    def _stopping_losses(self, vloss, out_val, y_val, holdout_val):
        assert out_val.shape[:2] == (2, len(y_val)) and holdout_val.shape == (2, len(y_val))
        assert holdout_val.any(1).all()  # every member has its own validation samples
        return torch.zeros_like(vloss)


class _LastStop(HopfieldClassifier):
    """Stops on a number that falls every call: every epoch improves, the last one is kept."""

    def _stopping_losses(self, vloss, out_val, y_val, holdout_val):
        self._calls = getattr(self, "_calls", 0) + 1
        return torch.full_like(vloss, -float(self._calls))


def test_default_criterion_is_the_validation_loss():
    """One member: the kept epoch is the last one whose validation loss beat every earlier one by
    more than tol (a plain reference loop over validation_scores_ = -loss)."""
    est = HopfieldClassifier(**{**KW, "n_members": 1, "max_iter": 30}).fit(X, Y)
    best, kept = np.inf, 0
    for epoch, loss in enumerate(-np.asarray(est.validation_scores_), start=1):
        if loss < best - est.tol:
            best, kept = loss, epoch
    assert est.best_iteration_.tolist() == [kept]
    assert np.isclose(est.best_validation_score_, -best)


def test_hook_decides_which_epoch_is_kept():
    flat = _FlatStop(**KW).fit(X, Y)
    assert flat.best_iteration_.tolist() == [1, 1]
    assert flat.n_iter_ == 1 + KW["n_iter_no_change"]
    # the reported score stays the validation loss (of the kept epoch), not the hook's number
    assert np.isclose(flat.best_validation_score_, flat.validation_scores_[0])
    last = _LastStop(**KW).fit(X, Y)
    assert last.n_iter_ == KW["max_iter"]
    assert last.best_iteration_.tolist() == [KW["max_iter"]] * 2
    assert np.isclose(last.best_validation_score_, last.validation_scores_[-1])
    assert not np.allclose(flat.predict_proba(X), last.predict_proba(X))
