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
    assert reg.arch_["n_train"] == 108 and reg.n_members_ == 3  # rule NJ (test below)
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


def test_auto_batch_size_caps_the_feature_attention_of_wide_tables():
    """The score-entry cap (rows x heads x blocks x tokens^2 <= 2^27) leaves the narrow rule as it
    was and only shrinks the steps of wide tables."""
    from hopfield.estimators._hopular_train import _AUTO_SCORE_ENTRIES, _auto_batch_size

    assert _AUTO_SCORE_ENTRIES == 2 ** 27
    # narrow: the old rule, clip(n // 8, 32, 512) up to 4,096 rows, 256 above
    assert [_auto_batch_size(n, 11, 4, 4) for n in (100, 1000, 4096, 4097, 40_000)] == \
        [32, 125, 512, 256, 256]
    assert _auto_batch_size(2008, 181, 4, 4) == 251    # dna (181 tokens): just under the cap
    for n, tokens, heads, blocks in [(10_000, 501, 4, 4), (500, 2001, 8, 4), (10**6, 5001, 4, 4)]:
        bs = _auto_batch_size(n, tokens, heads, blocks)
        assert bs >= 1 and (bs == 1 or bs * heads * blocks * tokens ** 2 <= 2 ** 27)
        assert (bs + 1) * heads * blocks * tokens ** 2 > 2 ** 27
    assert _auto_batch_size(10_000, 501, 4, 4) == 33


def test_wide_table_trains_in_capped_steps_and_explicit_batch_size_wins(monkeypatch):
    """End to end: with the cap lowered, a 20-column table trains in the capped steps (seen
    inside the network's forward); an explicit batch_size is used as given."""
    import hopfield.estimators._hopular_train as tr
    from hopfield.estimators._hopular_net import HopularNet

    rng = np.random.RandomState(0)
    X = rng.randn(200, 20)
    y = (X[:, 0] > 0).astype(int)
    seen, forward = [], HopularNet.forward

    def spy(self, num, *a, **k):
        seen.append(len(num))
        return forward(self, num, *a, **k)

    monkeypatch.setattr(HopularNet, "forward", spy)
    monkeypatch.setattr(tr, "_AUTO_SCORE_ENTRIES", 2 * 1 * 1 * 21 ** 2 * 7)  # 7 rows of 21 tokens
    kw = {**TINY, "max_iter": 1, "n_members": 1}
    HopularClassifier(**kw).fit(X, y)              # 180 training rows: 32 -> capped to 7
    assert seen and max(seen) == 7 and seen[:-1] == [7] * (len(seen) - 1)
    seen.clear()
    HopularClassifier(**{**kw, "batch_size": 40}).fit(X, y)
    assert max(seen) == 40


def test_auto_members_regressor_trains_four_networks_above_small_data(data, monkeypatch):
    """Rule NK: n_members="auto" is 4 for a regressor whose networks train on more than
    _SMALL_DATA_ROWS (and at most 4,096) rows, 2 up to it and for a classifier; member m has
    seed + m, so the first two are the 2-member fit's networks, and the prediction is the mean
    of the four networks' predictions."""
    Xtr, ytr, Xte = data
    y = Xtr[:, 0] - 2.0 * Xtr[:, 1]
    monkeypatch.setattr(hop, "_SMALL_DATA_ROWS", 108)  # 108 rows train: still small data
    assert HopularRegressor(**TINY).fit(Xtr, y).n_members_ == 2
    monkeypatch.setattr(hop, "_SMALL_DATA_ROWS", 107)  # 108 > 107: the mid-size setting
    assert HopularClassifier(**TINY).fit(Xtr, ytr).n_members_ == 2
    reg = HopularRegressor(**TINY).fit(Xtr, y)
    assert reg.n_members_ == 4 and len(reg.module_.members) == 4
    assert reg.arch_["n_members"] == 4 and reg.best_iteration_.shape == (4,)
    two = HopularRegressor(**{**TINY, "n_members": 2}).fit(Xtr, y)
    for a, b in zip(reg.module_.members[:2], two.module_.members):
        for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(v, w), k
    out = reg._outputs(Xte)[..., 0].double().numpy()  # (4, n): each network, standardised
    assert out.shape == (4, len(Xte))
    s = reg.target_scaler_
    np.testing.assert_allclose(reg.predict(Xte), out.mean(0) * s.scale[0] + s.mean[0],
                               rtol=1e-5, atol=1e-5)
    assert HopularRegressor(**{**TINY, "n_members": 3}).fit(Xtr, y).n_members_ == 3


def test_auto_members_regressor_trains_three_networks_above_one_thread_rows(data, monkeypatch):
    """Rule NJ: above _ONE_THREAD_ROWS rows per network n_members="auto" is 3 for a regressor
    (1 for a classifier); member 0 is the 1-network fit's network, and the prediction is the
    mean of the three networks' predictions."""
    Xtr, ytr, Xte = data
    y = Xtr[:, 0] - 2.0 * Xtr[:, 1]
    monkeypatch.setattr(hop, "_ONE_THREAD_ROWS", 108)  # 108 rows train: not above it
    assert HopularRegressor(**TINY).fit(Xtr, y).n_members_ == 2
    monkeypatch.setattr(hop, "_ONE_THREAD_ROWS", 107)
    assert HopularClassifier(**TINY).fit(Xtr, ytr).n_members_ == 1
    reg = HopularRegressor(**TINY).fit(Xtr, y)
    assert reg.n_members_ == 3 and reg.arch_["n_members"] == 3
    assert len(reg.module_.members) == 3 and reg.best_iteration_.shape == (3,)
    one = HopularRegressor(**{**TINY, "n_members": 1}).fit(Xtr, y)
    for (k, v), w in zip(reg.module_.members[0].state_dict().items(),
                         one.module_.state_dict().values()):
        assert torch.equal(v, w), k
    out = reg._outputs(Xte)[..., 0].double().numpy()  # (3, n): each network, standardised
    s = reg.target_scaler_
    np.testing.assert_allclose(reg.predict(Xte), out.mean(0) * s.scale[0] + s.mean[0],
                               rtol=1e-5, atol=1e-5)
