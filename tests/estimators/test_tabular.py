"""HopfieldClassifier: scikit-learn contract, determinism, persistence, bad input."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.utils.estimator_checks import parametrize_with_checks

from hopfield.estimators.tabular import TUNING_GRID, HopfieldClassifier, _HopfieldNet

FAST = {"embedding_size": 16, "num_heads": 2, "quantity": 8, "max_iter": 30,
        "n_iter_no_change": 10, "n_members": 2, "batch_size": 64}

# Checks expected to fail, with the reason (scikit-learn >= 1.6 reports them as xfail).
EXPECTED_FAILED = {}


def _expected_failed(est):
    return EXPECTED_FAILED


@parametrize_with_checks([HopfieldClassifier(**FAST)], expected_failed_checks=_expected_failed)
def test_sklearn_contract(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(n_samples=240, n_features=8, n_informative=5, n_classes=3,
                               n_clusters_per_class=1, class_sep=1.5, random_state=0)
    return X[:180], y[:180], X[180:], y[180:]


@pytest.fixture(scope="module")
def fitted(data):
    Xtr, ytr, _, _ = data
    return HopfieldClassifier(**FAST, random_state=3).fit(Xtr, ytr)


def test_learns_better_than_chance_and_beats_majority(data, fitted):
    _, _, Xte, yte = data
    acc = fitted.score(Xte, yte)
    majority = np.bincount(yte).max() / len(yte)
    assert acc > majority + 0.3, (acc, majority)


def test_predict_proba_is_a_distribution(data, fitted):
    p = fitted.predict_proba(data[2])
    assert p.shape == (len(data[2]), 3)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-6)
    assert (p >= 0).all()
    np.testing.assert_array_equal(fitted.classes_[p.argmax(1)], fitted.predict(data[2]))


def test_ensemble_is_mean_of_member_probabilities(data, fitted):
    """predict_proba equals the average of independently computed member softmaxes (float64)."""
    X = data[2]
    net = fitted.module_
    x = (torch.as_tensor(X, dtype=torch.float64) - torch.as_tensor(fitted.scaler_.mean)) / \
        torch.as_tensor(fitted.scaler_.scale)
    probs = []
    for m in range(fitted.n_members):
        z = x @ net.w_in[m].double() + net.b_in[m].double()  # (B, E)
        outs = []
        for h in range(net.H):
            zh = z[:, h * net.dh:(h + 1) * net.dh]
            w = torch.softmax(net.beta * zh @ net.patterns[m, h].double().T, -1)  # (B, K)
            outs.append(w @ net.targets[m, h].double())
        hid = torch.nn.functional.layer_norm(z + torch.cat(outs, 1), (z.shape[1],))
        probs.append(torch.softmax(hid @ net.w_out[m].double() + net.b_out[m].double(), -1))
    ref = torch.stack(probs).mean(0).detach().numpy()
    np.testing.assert_allclose(fitted.predict_proba(X), ref, atol=1e-5)


def test_deterministic_for_a_seed_and_seed_matters(data):
    Xtr, ytr, Xte, _ = data
    a = HopfieldClassifier(**FAST, random_state=7).fit(Xtr, ytr).predict_proba(Xte)
    b = HopfieldClassifier(**FAST, random_state=7).fit(Xtr, ytr).predict_proba(Xte)
    c = HopfieldClassifier(**FAST, random_state=8).fit(Xtr, ytr).predict_proba(Xte)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_fit_does_not_touch_global_torch_rng(data):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    HopfieldClassifier(**FAST).fit(data[0], data[1])
    np.testing.assert_array_equal(torch.rand(3), expected)


def test_string_labels_and_pickle(data):
    Xtr, ytr, Xte, _ = data
    names = np.array(["cat", "dog", "eel"])[ytr]
    est = HopfieldClassifier(**FAST).fit(Xtr, names)
    assert set(est.predict(Xte)) <= set(names)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict_proba(Xte), est.predict_proba(Xte))


@pytest.mark.parametrize("labels", ["int", "str"])
def test_save_load_round_trip(tmp_path, data, labels):
    Xtr, ytr, Xte, _ = data
    y = ytr + 10 if labels == "int" else np.array(["a", "b", "c"])[ytr]
    est = HopfieldClassifier(**FAST).fit(Xtr, y)
    est.save(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [
        "config.json", "weights.safetensors"]
    back = HopfieldClassifier.load(tmp_path / "model")
    np.testing.assert_array_equal(back.predict_proba(Xte), est.predict_proba(Xte))
    np.testing.assert_array_equal(back.predict(Xte), est.predict(Xte))
    assert back.classes_.dtype == est.classes_.dtype
    assert back.get_params() == est.get_params()


def test_save_unfitted_raises(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        HopfieldClassifier().save(tmp_path / "m")


def test_load_wrong_estimator_raises(tmp_path, data):
    from hopfield.estimators import HopfieldRegressor

    HopfieldRegressor(**{**FAST, "max_iter": 2}).fit(data[0], data[1].astype(float)).save(
        tmp_path / "m")
    with pytest.raises(ValueError, match="HopfieldRegressor, not a HopfieldClassifier"):
        HopfieldClassifier.load(tmp_path / "m")


def test_no_validation_split_trains_max_iter(data):
    est = HopfieldClassifier(**{**FAST, "max_iter": 5}, validation_fraction=0.0)
    est.fit(data[0], data[1])
    assert est.n_iter_ == 5 and est.best_iteration_.tolist() == [5, 5]
    assert est.best_validation_score_ is None and est.validation_scores_ == []
    est = HopfieldClassifier(**{**FAST, "max_iter": 5}, early_stopping=False).fit(data[0], data[1])
    assert est.n_iter_ == 5 and est.best_validation_score_ is None


def test_tuning_grid_params_are_valid(data):
    for key, values in TUNING_GRID.items():
        for v in values:
            clone(HopfieldClassifier(**FAST)).set_params(**{key: v})._resolve_params()


# ------------------------------------------------------------------ bad input
def test_nan_features_rejected(data):
    X = data[0].copy()
    X[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        HopfieldClassifier(**FAST).fit(X, data[1])
    est = HopfieldClassifier(**FAST).fit(data[0], data[1])
    with pytest.raises(ValueError, match="NaN"):
        est.predict(X)


def test_single_class_rejected(data):
    with pytest.raises(ValueError, match="at least 2 classes, got 1 class"):
        HopfieldClassifier(**FAST).fit(data[0], np.zeros(len(data[0]), dtype=int))


def test_unseen_labels_at_score_time(data, fitted):
    y = data[3].copy()
    y[0] = 99
    with pytest.raises(ValueError, match=r"unseen labels \[99\]"):
        fitted.score(data[2], y)


def test_wrong_n_features_at_predict(data, fitted):
    with pytest.raises(ValueError, match="X has 7 features, but HopfieldClassifier is expecting 8"):
        fitted.predict(data[2][:, :7])


def test_regression_target_rejected(data):
    with pytest.raises(ValueError, match="Unknown label type"):
        HopfieldClassifier(**FAST).fit(data[0], np.linspace(0, 1, len(data[0])))


@pytest.mark.parametrize(
    ("param", "value", "expected"),
    [
        ("embedding_size", 0, r"an int in the range \[1, inf\)"),
        ("num_heads", 1.5, r"an int in the range \[1, inf\)"),
        ("embedding_size", 9, "divisible by num_heads=2"),
        ("beta", -1.0, r"a float in the range \(0.0, inf\) or None"),
        ("dropout", 1.0, r"a float in the range \[0.0, 1.0\)"),
        ("validation_fraction", -0.1, r"a float in the range \[0.0, 1.0\)"),
        ("learning_rate", 0.0, r"a float in the range \(0.0, inf\)"),
        ("weight_decay", float("nan"), r"a float in the range \[0.0, inf\)"),
        ("n_members", True, r"an int in the range \[1, inf\), not a bool"),
        ("device", 3, "an instance of 'str' or None"),
    ],
)
def test_bad_parameters(data, param, value, expected):
    est = HopfieldClassifier(**FAST).set_params(**{param: value})
    with pytest.raises(ValueError, match=rf"The '{param}' parameter of HopfieldClassifier must be "
                                         rf"{expected}. Got .* instead."):
        est.fit(data[0], data[1])


def test_net_shapes():
    net = _HopfieldNet(5, 3, embedding_size=8, num_heads=2, quantity=4, beta=None, n_members=3,
                       generator=torch.Generator().manual_seed(0))
    assert net(torch.randn(3, 7, 5)).shape == (3, 7, 3)
    assert net.beta == pytest.approx(0.5)
