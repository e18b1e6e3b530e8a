"""HopfieldRegressor: scikit-learn contract, learning, persistence, bad targets."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_regression
from sklearn.utils.estimator_checks import parametrize_with_checks

from hopfield.estimators import HopfieldRegressor

FAST = {"embedding_size": 16, "num_heads": 2, "quantity": 8, "max_iter": 30,
        "n_iter_no_change": 10, "n_members": 2, "batch_size": 64}

# Checks expected to fail, with the reason (scikit-learn reports them as xfail).
EXPECTED_FAILED: dict[str, str] = {}   # none: the regressor passes the whole suite


def _expected_failed(est):
    return EXPECTED_FAILED


@parametrize_with_checks([HopfieldRegressor(**FAST)], expected_failed_checks=_expected_failed)
def test_sklearn_contract(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def data():
    X, y = make_regression(n_samples=240, n_features=6, n_informative=4, noise=5.0,
                           random_state=0)
    return X[:180], y[:180] * 1e3 + 5e4, X[180:], y[180:] * 1e3 + 5e4   # large offset/scale


def test_learns_scaled_target(data):
    Xtr, ytr, Xte, yte = data
    est = HopfieldRegressor(random_state=0).fit(Xtr, ytr)
    assert est.score(Xte, yte) > 0.8
    assert est.predict(Xte).shape == (len(Xte),)
    assert abs(est.target_scaler_.mean[0] - ytr.mean()) < 1e-6 * abs(ytr.mean())


def test_save_load_round_trip(tmp_path, data):
    Xtr, ytr, Xte, _ = data
    est = HopfieldRegressor(**FAST, random_state=1).fit(Xtr, ytr)
    est.save(tmp_path / "r")
    back = HopfieldRegressor.load(tmp_path / "r")
    np.testing.assert_array_equal(back.predict(Xte), est.predict(Xte))
    assert back.get_params() == est.get_params()


@pytest.mark.parametrize("y, msg", [
    (np.array(["a", "b"] * 90), "y must be numeric"),
    (np.r_[np.nan, np.zeros(179)], "Input y contains NaN"),
])
def test_bad_targets(data, y, msg):
    with pytest.raises(ValueError, match=msg):
        HopfieldRegressor(**FAST).fit(data[0], y)


def test_validation_split_too_small_raises():
    X, y = np.random.RandomState(0).randn(3, 2), np.arange(3.0)
    with pytest.raises(ValueError, match="validation_fraction=0.1 of 3 samples gives 0"):
        HopfieldRegressor(**FAST, validation_fraction=0.1).fit(X, y)
    HopfieldRegressor(**{**FAST, "max_iter": 2}, early_stopping=False).fit(X, y)
