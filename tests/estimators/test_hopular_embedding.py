"""Hopular's ``numeric_embedding="auto"``: in its row range the estimator fits the ensemble with
both numeric embeddings and keeps the one with the lower mean best validation target loss. Checked
against two explicit fits (``"linear"`` and ``"piecewise"`` with the same seed): the scores are
theirs, the kept model predicts exactly as the better one, and outside the range ``"auto"`` is
bit-identical to ``"linear"``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.datasets import make_classification, make_regression

import hopfield.estimators._hopular_train as train
from hopfield.estimators.hopular import HopularClassifier, HopularRegressor

TINY = {"embedding_size": 8, "num_blocks": 1, "num_heads": 2, "head_size": 4, "max_iter": 4,
        "anneal_iter": 1, "n_iter_no_change": 2, "random_state": 0, "n_members": 2}


def _data(cls, n=150, seed=0):
    if cls is HopularClassifier:
        X, y = make_classification(n_samples=n, n_features=4, n_informative=3, n_redundant=0,
                                   random_state=seed)
    else:
        X, y = make_regression(n_samples=n, n_features=4, noise=5.0, random_state=seed)
    return X[:120], y[:120], X[120:]


def _out(est, X):
    return est.predict_proba(X) if isinstance(est, HopularClassifier) else est.predict(X)


@pytest.fixture
def in_range(monkeypatch):
    """Put the tiny fits (108 training rows per network) inside the "auto" range."""
    monkeypatch.setattr(train, "_SMALL_DATA_ROWS", 50)
    monkeypatch.setattr(train, "_AUTO_EMBEDDING_ROWS", 200)


@given(emb=st.sampled_from(["auto", "linear", "piecewise"]), n_inputs=st.integers(0, 50),
       n_tr=st.integers(1, 20_000), validated=st.booleans())
def test_candidates(emb, n_inputs, n_tr, validated):
    got = train._embedding_candidates(emb, n_inputs, n_tr, validated)
    if emb != "auto":
        assert got == [emb]
    elif validated and n_inputs > 0 and 1024 < n_tr <= 4096:
        assert got == ["linear", "piecewise"]
    else:
        assert got == ["linear"]


@pytest.mark.parametrize("cls", [HopularClassifier, HopularRegressor])
def test_auto_keeps_the_better_of_two_explicit_fits(cls, in_range):
    X, y, Xnew = _data(cls)
    auto = cls(**TINY, numeric_embedding="auto").fit(X, y)
    ref = {e: cls(**TINY, numeric_embedding=e).fit(X, y) for e in ("linear", "piecewise")}
    assert set(auto.numeric_embedding_scores_) == {"linear", "piecewise"}
    for e, est in ref.items():
        assert auto.numeric_embedding_scores_[e] == pytest.approx(est.best_validation_score_,
                                                                  rel=0, abs=0)
    want = max(ref, key=lambda e: (ref[e].best_validation_score_, e == "linear"))
    assert auto.numeric_embedding_ == want
    assert auto.best_validation_score_ == ref[want].best_validation_score_
    np.testing.assert_array_equal(_out(auto, Xnew), _out(ref[want], Xnew))
    assert auto.arch_.get("n_bins", 0) == (16 if want == "piecewise" else 0)


def test_auto_chooses_each_embedding_when_it_is_better(in_range, monkeypatch):
    """Force the piecewise fit's validation loss up / down: the choice follows it."""
    X, y, Xnew = _data(HopularClassifier)
    member = train.HopularTraining._train_member

    for worse, want in (("piecewise", "linear"), ("linear", "piecewise")):
        def biased(self, *a, _worse=worse, **k):
            net, log = member(self, *a, **k)
            emb = "piecewise" if net.embed.n_bins else "linear"
            if emb == _worse:
                log["best_score"] -= 10.0
            return net, log

        monkeypatch.setattr(train.HopularTraining, "_train_member", biased)
        est = HopularClassifier(**TINY, numeric_embedding="auto").fit(X, y)
        assert est.numeric_embedding_ == want
        assert est.numeric_embedding_scores_[worse] < est.numeric_embedding_scores_[want]
        ref = HopularClassifier(**TINY, numeric_embedding=want).fit(X, y)
        np.testing.assert_array_equal(est.predict_proba(Xnew), ref.predict_proba(Xnew))


@pytest.mark.parametrize("cls", [HopularClassifier, HopularRegressor])
def test_auto_outside_its_range_is_linear_bit_identically(cls):
    """Small data (108 training rows per network, at most 1,024): exactly the linear fit."""
    X, y, Xnew = _data(cls)
    auto = cls(**TINY, numeric_embedding="auto").fit(X, y)
    lin = cls(**TINY, numeric_embedding="linear").fit(X, y)
    default = cls(**TINY).fit(X, y)  # the default is "auto"
    assert auto.numeric_embedding_ == "linear" and list(auto.numeric_embedding_scores_) == ["linear"]
    assert default.numeric_embedding == "auto" and default.numeric_embedding_ == "linear"
    np.testing.assert_array_equal(_out(auto, Xnew), _out(lin, Xnew))
    np.testing.assert_array_equal(_out(default, Xnew), _out(lin, Xnew))


def test_auto_needs_numeric_inputs_and_a_validation_split(in_range):
    rng = np.random.RandomState(0)
    # a regressor whose only numeric column is the target: nothing to embed piecewise
    X = pd.DataFrame({"c": pd.Categorical(rng.choice(list("abc"), 120))})
    y = (X["c"].cat.codes.to_numpy() + rng.randn(120) * 0.1).astype(float)
    est = HopularRegressor(**TINY, numeric_embedding="auto").fit(X, y)
    assert list(est.numeric_embedding_scores_) == ["linear"]
    Xn, yn, _ = _data(HopularClassifier)
    est = HopularClassifier(**TINY, numeric_embedding="auto", early_stopping=False).fit(Xn, yn)
    assert est.numeric_embedding_ == "linear" and est.numeric_embedding_scores_ == {}


@pytest.mark.parametrize("cls", [HopularClassifier, HopularRegressor])
def test_auto_choice_is_saved(cls, in_range, tmp_path):
    X, y, Xnew = _data(cls)
    est = cls(**TINY, numeric_embedding="auto").fit(X, y)
    est.save(tmp_path / "m")
    back = cls.load(tmp_path / "m")
    assert back.numeric_embedding_ == est.numeric_embedding_
    assert back.numeric_embedding_scores_ == est.numeric_embedding_scores_
    np.testing.assert_array_equal(_out(back, Xnew), _out(est, Xnew))


def test_models_saved_without_the_choice_load_it_from_their_bins(tmp_path):
    X, y, _ = _data(HopularClassifier)
    for emb in ("linear", "piecewise"):
        est = HopularClassifier(**TINY, numeric_embedding=emb).fit(X, y)
        for key in ("numeric_embedding", "numeric_embedding_scores"):
            del est.arch_[key]  # as saved before "auto" existed
        est.save(tmp_path / emb)
        back = HopularClassifier.load(tmp_path / emb)
        assert back.numeric_embedding_ == emb and back.numeric_embedding_scores_ == {}


def test_bad_embedding_names_the_parameter():
    X, y, _ = _data(HopularClassifier)
    with pytest.raises(ValueError, match="numeric_embedding"):
        HopularClassifier(**TINY, numeric_embedding="spline").fit(X, y)
