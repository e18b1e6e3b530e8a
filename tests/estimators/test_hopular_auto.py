"""Hopular's "auto" rules count one number: the rows each network trains on (the rows passed to
``fit`` minus the network's validation split). ``n_members="auto"`` and ``num_threads=None``
use it like ``max_iter`` / ``epoch_size`` / ``batch_size="auto"``; the count is saved."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification

import hopfield.estimators.hopular as hop
from hopfield.estimators.hopular import HopularClassifier, HopularRegressor

TINY = {"embedding_size": 8, "num_blocks": 1, "num_heads": 2, "head_size": 4, "max_iter": 2,
        "anneal_iter": 1, "n_iter_no_change": 2, "random_state": 0}


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(n_samples=160, n_features=5, n_informative=3, n_redundant=0,
                               n_classes=2, random_state=0)
    return X[:120], y[:120], X[120:]


@pytest.fixture
def threads_seen(monkeypatch):
    """torch threads inside each network's training and inside prediction (2 outside)."""
    seen = {"fit": [], "predict": []}
    train_member, forward_members = hop._HopularBase._train_member, hop._HopularBase._forward_members

    def fit_spy(self, *a, **k):
        seen["fit"].append(torch.get_num_threads())
        return train_member(self, *a, **k)

    def predict_spy(self, *a, **k):
        seen["predict"].append(torch.get_num_threads())
        return forward_members(self, *a, **k)

    monkeypatch.setattr(hop._HopularBase, "_train_member", fit_spy)
    monkeypatch.setattr(hop._HopularBase, "_forward_members", predict_spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield seen
    torch.set_num_threads(before)


def test_auto_members_and_threads_count_the_networks_training_rows(data, monkeypatch,
                                                                   threads_seen):
    """120 rows passed, stratified validation 12 -> each network trains on 108 rows: the rules
    compare 108 (not 120) with the threshold, on both sides of it."""
    Xtr, ytr, Xte = data
    est = HopularClassifier(**TINY).fit(Xtr, ytr)
    assert est.arch_["n_train"] == 108 and est.n_members_ == 2
    threads_seen["fit"].clear()
    monkeypatch.setattr(hop, "_ONE_THREAD_ROWS", 108)  # 120 passed > 108, but 108 train
    est = HopularClassifier(**TINY).fit(Xtr, ytr)
    assert est.n_members_ == 2 and threads_seen["fit"] == [1, 1]
    est.predict(Xte)
    assert threads_seen["predict"] == [1]
    threads_seen["fit"].clear(), threads_seen["predict"].clear()
    monkeypatch.setattr(hop, "_ONE_THREAD_ROWS", 107)
    est = HopularClassifier(**TINY).fit(Xtr, ytr)
    assert est.n_members_ == 1 and threads_seen["fit"] == [2]
    est.predict(Xte)
    assert threads_seen["predict"] == [2]
    reg = HopularRegressor(**TINY).fit(Xtr, Xtr[:, 0])  # regression split: round(0.1 n) = 12
    assert reg.arch_["n_train"] == 108 and reg.n_members_ == 1
    # explicit values are used as given
    assert HopularClassifier(**{**TINY, "n_members": 3}).fit(Xtr, ytr).n_members_ == 3
    threads_seen["fit"].clear()
    HopularClassifier(**{**TINY, "n_members": 1, "num_threads": 1}).fit(Xtr, ytr)
    assert threads_seen["fit"] == [1]
    # no early stopping: no validation split, every row trains
    est = HopularClassifier(**{**TINY, "early_stopping": False}).fit(Xtr, ytr)
    assert est.arch_["n_train"] == 120 and est.n_members_ == 1


def test_training_row_count_is_saved(data, tmp_path, monkeypatch, threads_seen):
    Xtr, ytr, Xte = data
    monkeypatch.setattr(hop, "_ONE_THREAD_ROWS", 108)
    est = HopularClassifier(**{**TINY, "n_members": 1}).fit(Xtr, ytr)
    est.save(tmp_path / "m")
    P = est.predict_proba(Xte)
    back = HopularClassifier.load(tmp_path / "m")
    assert back.arch_["n_train"] == 108
    threads_seen["predict"].clear()
    np.testing.assert_allclose(back.predict_proba(Xte), P, atol=1e-6)
    assert threads_seen["predict"] == [1]
    # a model saved before arch_["n_train"] existed counts its stored rows (120 > 108)
    cfg_path = tmp_path / "m" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    del cfg["fitted"]["arch_"]["n_train"]
    cfg_path.write_text(json.dumps(cfg))
    old = HopularClassifier.load(tmp_path / "m")
    threads_seen["predict"].clear()
    np.testing.assert_allclose(old.predict_proba(Xte), P, atol=1e-6)
    assert threads_seen["predict"] == [2]
