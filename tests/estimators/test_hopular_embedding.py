"""Hopular's ``numeric_embedding="auto"``: in its row range the estimator fits the ensemble with
both numeric embeddings and keeps the best of three ensembles (the linear networks, the piecewise
ones, all of them averaged) by their mean in-fit validation target loss. Checked against explicit
fits (``"linear"``, ``"piecewise"``, ``"both"`` with the same seed): the scores are theirs, the
kept model predicts exactly as the best one; the "both" score against a float64 recomputation
from the networks themselves; outside the range ``"auto"`` is bit-identical to ``"linear"``."""

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


@given(emb=st.sampled_from(["auto", "linear", "piecewise", "both"]), n_inputs=st.integers(0, 50),
       n_tr=st.integers(1, 20_000), validated=st.booleans(), classifier=st.booleans())
def test_candidates(emb, n_inputs, n_tr, validated, classifier):
    got = train._embedding_candidates(emb, n_inputs, n_tr, validated, classifier)
    if emb == "both":
        assert got == ["linear", "piecewise"]
    elif emb != "auto":
        assert got == [emb]
    elif validated and n_inputs > 0 and 1024 < n_tr <= 4096:
        assert got == ["linear", "piecewise"]
    elif not classifier and n_inputs > 0 and n_tr > 4096:  # rule NF: large regression
        assert got == ["piecewise"]
    else:
        assert got == ["linear"]


@pytest.mark.parametrize("cls", [HopularClassifier, HopularRegressor])
def test_auto_keeps_the_best_of_three_explicit_fits(cls, in_range):
    X, y, Xnew = _data(cls)
    auto = cls(**TINY, numeric_embedding="auto").fit(X, y)
    ref = {e: cls(**TINY, numeric_embedding=e).fit(X, y) for e in ("linear", "piecewise", "both")}
    assert list(auto.numeric_embedding_scores_) == ["linear", "piecewise", "both"]
    assert ref["both"].numeric_embedding_scores_ == auto.numeric_embedding_scores_
    for e in ("linear", "piecewise"):
        assert auto.numeric_embedding_scores_[e] == ref[e].best_validation_score_
    sc = auto.numeric_embedding_scores_
    want = max(sc, key=sc.get)  # ties: the first of linear, piecewise, both
    assert auto.numeric_embedding_ == want
    np.testing.assert_array_equal(_out(auto, Xnew), _out(ref[want], Xnew))
    assert auto.n_members_ == (4 if want == "both" else 2)


@pytest.mark.parametrize("cls", [HopularClassifier, HopularRegressor])
def test_both_averages_the_linear_and_piecewise_networks(cls, in_range, tmp_path):
    """"both" holds the linear fit's networks, then the piecewise fit's, bit for bit, and
    predicts their mean; it survives save/load."""
    X, y, Xnew = _data(cls)
    both = cls(**TINY, numeric_embedding="both").fit(X, y)
    lin, pw = (cls(**TINY, numeric_embedding=e).fit(X, y) for e in ("linear", "piecewise"))
    assert both.numeric_embedding_ == "both" and both.n_members_ == 4
    assert [m.embed.n_bins for m in both.module_.members] == [0, 0, 16, 16]
    out = both._outputs(Xnew)
    np.testing.assert_array_equal(out, np.concatenate([lin._outputs(Xnew), pw._outputs(Xnew)]))
    if cls is HopularClassifier:
        want = np.concatenate([lin._outputs(Xnew), pw._outputs(Xnew)])
        want = np.exp(want - want.max(-1, keepdims=True))
        want = (want / want.sum(-1, keepdims=True)).mean(0)
        np.testing.assert_allclose(both.predict_proba(Xnew), want, rtol=1e-12)
    else:
        np.testing.assert_allclose(both.predict(Xnew), (lin.predict(Xnew) + pw.predict(Xnew)) / 2,
                                   rtol=1e-9)
    both.save(tmp_path / "m")
    back = cls.load(tmp_path / "m")
    assert back.numeric_embedding_ == "both" and back.n_members_ == 4
    np.testing.assert_array_equal(_out(back, Xnew), _out(both, Xnew))


@pytest.mark.parametrize("cls", [HopularClassifier, HopularRegressor])
def test_both_score_is_the_averaged_networks_validation_loss(cls, in_range, monkeypatch):
    """The "both" score recomputed in float64 from the fitted networks themselves: each one's
    best state predicting its in-fit validation rows from its training rows only."""
    member = train.HopularTraining._train_member
    logs = []

    def keep(self, *a, **k):
        net, log = member(self, *a, **k)
        logs.append(log)
        return net, log

    monkeypatch.setattr(train.HopularTraining, "_train_member", keep)
    X, y, _ = _data(cls)
    est = cls(**TINY, numeric_embedding="both").fit(X, y)
    nets = list(est.module_.members)
    outs, ys = [], []
    for net, log in zip(nets, logs):
        val = log["val_rows"]
        mem = (net.mem_num.clone(), net.mem_absent.clone(), net.mem_cat.clone())
        train_rows = np.setdiff1d(np.arange(len(mem[0])), val)
        net.set_memory(*(t[train_rows] for t in mem))
        num, absent, cat = (t[val].clone() for t in mem)
        if cls is HopularClassifier:
            ys.append(cat[:, -1].numpy().copy())
            cat[:, -1] = net.cards[-1]
            _, logits = net.predict_stream(num, absent, cat)
            o = logits[:, -1, :net.cards[-1]].double().softmax(-1).detach().numpy()
        else:
            ys.append(num[:, net.target].double().numpy().copy())
            absent[:, net.target] = True
            pred, _ = net.predict_stream(num, absent, cat)
            o = pred[:, net.target].double().detach().numpy()[:, None]
        net.set_memory(*mem)
        np.testing.assert_allclose(log["val_out"].double().numpy(), o, atol=1e-5)
        outs.append(o)
    losses = []
    for m in range(2):  # pair m: linear network m and piecewise network m (same rows)
        np.testing.assert_array_equal(logs[m]["val_rows"], logs[m + 2]["val_rows"])
        avg, t = (outs[m] + outs[m + 2]) / 2, ys[m]
        losses.append(-np.log(avg[np.arange(len(t)), t]).mean() if cls is HopularClassifier
                      else ((avg[:, 0] - t) ** 2).mean())
    assert est.numeric_embedding_scores_["both"] == pytest.approx(-np.mean(losses), rel=1e-5)


@pytest.mark.parametrize("want", ["linear", "piecewise", "both"])
def test_auto_chooses_each_ensemble_when_it_is_best(want, in_range, monkeypatch):
    """Raise one candidate's score above the others: the choice follows it."""
    from hopfield.estimators import hopular

    scores = hopular._ensemble_scores

    def biased(*a, **k):
        sc = scores(*a, **k)
        sc[want] += 10.0
        return sc

    monkeypatch.setattr(hopular, "_ensemble_scores", biased)
    X, y, Xnew = _data(HopularClassifier)
    est = HopularClassifier(**TINY, numeric_embedding="auto").fit(X, y)
    assert est.numeric_embedding_ == want
    assert max(est.numeric_embedding_scores_, key=est.numeric_embedding_scores_.get) == want
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


def test_auto_above_its_range_is_piecewise_for_a_regressor_only(monkeypatch):
    """Rule NF: above _AUTO_EMBEDDING_ROWS a regressor fits the piecewise networks (bit-identical
    to an explicit "piecewise" fit), a classifier the linear ones."""
    monkeypatch.setattr(train, "_AUTO_EMBEDDING_ROWS", 100)  # 108 training rows per network
    for cls, want in ((HopularRegressor, "piecewise"), (HopularClassifier, "linear")):
        X, y, Xnew = _data(cls)
        auto = cls(**TINY).fit(X, y)
        ref = cls(**TINY, numeric_embedding=want).fit(X, y)
        assert auto.numeric_embedding_ == want and list(auto.numeric_embedding_scores_) == [want]
        np.testing.assert_array_equal(_out(auto, Xnew), _out(ref, Xnew))


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
        assert back.n_members_ == 2


def test_bad_embedding_names_the_parameter():
    X, y, _ = _data(HopularClassifier)
    with pytest.raises(ValueError, match="numeric_embedding"):
        HopularClassifier(**TINY, numeric_embedding="spline").fit(X, y)
