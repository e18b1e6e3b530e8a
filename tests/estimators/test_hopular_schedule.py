"""Hopular's learning-rate schedules: ``"constant"`` (today's fit), ``"cosine"`` (the reference
code's: held for the first half of ``max_iter``, then annealed) and ``"cooldown"`` (constant until
the patience runs out, then a cosine cool-down instead of stopping). The learning rate of every
epoch is recorded from the optimiser and compared with a float64 closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import make_classification

import hopfield.estimators._hopular_optim as optim
import hopfield.estimators._hopular_train as train
from hopfield.estimators.hopular import HopularClassifier, HopularRegressor

TINY = {"embedding_size": 8, "num_blocks": 1, "num_heads": 2, "head_size": 4, "anneal_iter": 1,
        "random_state": 0, "n_members": 1, "learning_rate": 3e-3}


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(n_samples=160, n_features=5, n_informative=3, n_redundant=0,
                               n_classes=2, random_state=0)
    return X[:120], y[:120], X[120:]


@pytest.fixture
def lr_log(monkeypatch):
    """Records the learning rate of every optimiser step (one list per fitted network)."""
    runs = []
    make = optim.lamb_lookahead

    def spy(params, **kw):
        opt, seen = make(params, **kw), []
        runs.append(seen)
        step = opt.step

        def logged(*a, **k):
            seen.append(opt.param_groups[0]["lr"])
            return step(*a, **k)

        opt.step = logged
        return opt

    monkeypatch.setattr(optim, "lamb_lookahead", spy)
    return runs


def _per_epoch(steps: list[float], n_epochs: int) -> list[float]:
    k = len(steps) // n_epochs
    assert k * n_epochs == len(steps)
    per = [steps[i * k:(i + 1) * k] for i in range(n_epochs)]
    assert all(len(set(p)) == 1 for p in per)  # the rate changes between epochs only
    return [p[0] for p in per]


def test_cosine_closed_form():
    assert train._cosine(0.0) == 1.0 and train._cosine(1.0) == pytest.approx(0.0, abs=1e-16)
    assert train._cosine(0.5) == pytest.approx(0.5)
    assert train._cosine(-1.0) == 1.0 and train._cosine(2.0) == train._cosine(1.0)


@given(st.floats(0, 1), st.floats(0, 1))
def test_cosine_falls_within_unit_range(a, b):
    lo, hi = min(a, b), max(a, b)
    assert 0.0 <= train._cosine(hi) <= train._cosine(lo) <= 1.0


@given(st.integers(1, 500), st.integers(1, 50), st.integers(1, 600))
def test_cooldown_length_rule(trigger, patience, max_iter):
    n = train._cooldown_epochs(trigger, patience, max_iter)
    assert 0 <= n <= max(0, max_iter - trigger)
    if max_iter - trigger >= max(patience, math.ceil(trigger / 2)):
        assert n == max(patience, math.ceil(trigger / 2))


def test_resolve_schedule_threshold():
    n = train._AUTO_SCHEDULE_ROWS
    assert n == train._SMALL_DATA_ROWS == 1024  # the small-data setting ends there
    assert train._resolve_schedule("auto", n) == "constant"
    assert train._resolve_schedule("auto", n + 1) == "cooldown"
    for s in ("constant", "cosine", "cooldown"):
        assert train._resolve_schedule(s, 10) == s == train._resolve_schedule(s, 10**6)
    assert HopularClassifier().learning_rate_schedule == "auto"
    assert HopularRegressor().learning_rate_schedule == "auto"


def test_auto_is_constant_for_small_data(data):
    """108 training rows per network: "auto" is today's constant-rate fit, bit for bit."""
    Xtr, ytr, Xte = data
    a = HopularClassifier(**TINY, max_iter=6).fit(Xtr, ytr)
    b = HopularClassifier(**TINY, max_iter=6, learning_rate_schedule="constant").fit(Xtr, ytr)
    assert a.learning_rate_schedule_ == "constant" == a.arch_["learning_rate_schedule"]
    np.testing.assert_array_equal(a.predict_proba(Xte), b.predict_proba(Xte))


def test_auto_is_cooldown_above_the_threshold_and_survives_save_load(data, monkeypatch, tmp_path):
    Xtr, ytr, Xte = data
    monkeypatch.setattr(train, "_AUTO_SCHEDULE_ROWS", 107)  # the networks train on 108 rows
    p = {**TINY, "max_iter": 30, "n_iter_no_change": 1}
    a = HopularClassifier(**p).fit(Xtr, ytr)
    b = HopularClassifier(**p, learning_rate_schedule="cooldown").fit(Xtr, ytr)
    assert a.learning_rate_schedule_ == "cooldown"
    np.testing.assert_array_equal(a.predict_proba(Xte), b.predict_proba(Xte))
    a.save(tmp_path / "m")
    back = HopularClassifier.load(tmp_path / "m")
    assert back.learning_rate_schedule_ == "cooldown"
    np.testing.assert_array_equal(back.predict_proba(Xte), a.predict_proba(Xte))


def test_cosine_schedule_learning_rates(data, lr_log):
    Xtr, ytr, _ = data
    T = 7
    est = HopularClassifier(**TINY, max_iter=T, n_iter_no_change=1,
                            learning_rate_schedule="cosine").fit(Xtr, ytr)
    assert est.n_iter_ == T  # patience never stops a cosine fit
    half = T // 2
    want = [1.0 if e <= half else 0.5 * (1 + math.cos(math.pi * (e - half) / (T - half + 1)))
            for e in range(1, T + 1)]
    np.testing.assert_allclose(_per_epoch(lr_log[0], T), 3e-3 * np.array(want), rtol=1e-12)


def test_cooldown_learning_rates_and_length(data, lr_log):
    """Patience 1 after a 1-epoch annealing runs out early on this noisy tiny problem; the fit then
    cools down over max(1, ceil(e / 2)) epochs with the rates of the closed form, and stops."""
    Xtr, _, _ = data
    est = HopularRegressor(**TINY, max_iter=60, n_iter_no_change=1,
                           learning_rate_schedule="cooldown").fit(Xtr, Xtr[:, 0] - Xtr[:, 1])
    n = est.n_iter_
    rates = _per_epoch(lr_log[0], n)
    e = next(i for i, r in enumerate(rates) if r < 3e-3)  # epochs at the full rate
    L = math.ceil(e / 2)
    assert n == e + L < 60
    want = [1.0] * e + [0.5 * (1 + math.cos(math.pi * k / (L + 1))) for k in range(1, L + 1)]
    np.testing.assert_allclose(rates, 3e-3 * np.array(want), rtol=1e-12)


@settings(max_examples=5, deadline=None)
@given(st.integers(0, 10**6))
def test_cooldown_only_extends_the_constant_fit(seed):
    """Up to the epoch the patience runs out both fits are the same computation; the cool-down
    only adds epochs, so its best validation loss is never worse."""
    X, y = make_classification(n_samples=80, n_features=4, n_informative=3, n_redundant=0,
                               random_state=seed % 1000)
    p = {**TINY, "random_state": seed, "max_iter": 30, "n_iter_no_change": 2}
    a = HopularClassifier(**p).fit(X, y)
    b = HopularClassifier(**p, learning_rate_schedule="cooldown").fit(X, y)
    assert b.n_iter_ >= a.n_iter_
    np.testing.assert_array_equal(b.validation_scores_[:a.n_iter_], a.validation_scores_)
    assert b.best_validation_score_ >= a.best_validation_score_


@pytest.mark.parametrize("bad", ["linear", "Cosine", 1])
def test_bad_schedule_names_the_parameter(data, bad):
    Xtr, ytr, _ = data
    with pytest.raises(ValueError, match="learning_rate_schedule"):
        HopularClassifier(**TINY, max_iter=1, learning_rate_schedule=bad).fit(Xtr, ytr)
