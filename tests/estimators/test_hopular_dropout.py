"""Hopular's row-count rules: ``dropout="auto"`` resolves on the rows a network trains on
(the count ``max_iter="auto"`` uses), explicit floats are kept, bad values raise, and the value
used survives save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification

import hopfield.estimators._hopular_train as train
from hopfield.estimators.hopular import HopularClassifier, HopularRegressor
from hopfield.nn import Hopfield

TINY = {"embedding_size": 8, "num_blocks": 1, "num_heads": 2, "head_size": 4, "max_iter": 2,
        "anneal_iter": 1, "n_iter_no_change": 2, "random_state": 0, "n_members": 1}


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(n_samples=160, n_features=5, n_informative=3, n_redundant=0,
                               n_classes=2, random_state=0)
    return X[:120], y[:120], X[120:]


def _rates(est) -> set[float]:
    """Every dropout rate inside the fitted network(s)."""
    mods = list(est.module_.modules())
    return ({m.p for m in mods if isinstance(m, torch.nn.Dropout)}
            | {m.dropout for m in mods if isinstance(m, Hopfield)})


def test_resolve_dropout_threshold():
    assert train._resolve_dropout("auto", train._AUTO_DROPOUT_ROWS) == 0.1
    assert train._resolve_dropout("auto", train._AUTO_DROPOUT_ROWS + 1) == 0.0
    assert train._resolve_dropout(0.25, 10**6) == 0.25
    assert train._resolve_dropout(0, 10) == 0.0
    assert HopularClassifier().dropout == "auto" and HopularRegressor().dropout == "auto"


def test_auto_dropout_counts_the_networks_training_rows(data, monkeypatch):
    """120 rows passed, stratified validation 12 -> each network trains on 108 rows: the rule
    compares 108 (not 120) with the threshold."""
    Xtr, ytr, Xte = data
    small = HopularClassifier(**TINY).fit(Xtr, ytr)  # 108 <= 1,024: the small-data 0.1
    assert small.dropout_ == 0.1 and _rates(small) == {0.1} and small.arch_["dropout"] == 0.1
    explicit = HopularClassifier(**{**TINY, "dropout": 0.1}).fit(Xtr, ytr)
    np.testing.assert_array_equal(small.predict_proba(Xte), explicit.predict_proba(Xte))
    monkeypatch.setattr(train, "_AUTO_DROPOUT_ROWS", 108)
    assert HopularClassifier(**TINY).fit(Xtr, ytr).dropout_ == 0.1
    monkeypatch.setattr(train, "_AUTO_DROPOUT_ROWS", 107)
    large = HopularClassifier(**{**TINY, "n_members": 2}).fit(Xtr, ytr)
    assert large.dropout_ == 0.0 and _rates(large) == {0.0}
    reg = HopularRegressor(**TINY).fit(Xtr, Xtr[:, 0])  # regression split: also 12 rows
    assert reg.dropout_ == 0.0
    for d in (0.1, 0.3, 0):  # explicit values are used as given on either side
        est = HopularClassifier(**{**TINY, "dropout": d}).fit(Xtr, ytr)
        assert est.dropout_ == d and _rates(est) == {float(d)}
        assert est.get_params()["dropout"] == d


@pytest.mark.parametrize("bad", ["high", "AUTO", 1.0, -0.1, True, None])
def test_bad_dropout_raises_naming_it(data, bad):
    Xtr, ytr, _ = data
    with pytest.raises(ValueError, match="'dropout' parameter"):
        HopularClassifier(**{**TINY, "dropout": bad}).fit(Xtr, ytr)


def test_dropout_used_is_saved_and_loaded(data, tmp_path, monkeypatch):
    Xtr, ytr, Xte = data
    monkeypatch.setattr(train, "_AUTO_DROPOUT_ROWS", 10)
    est = HopularClassifier(**TINY).fit(Xtr, ytr)
    assert est.dropout_ == 0.0
    est.save(tmp_path / "m")
    monkeypatch.setattr(train, "_AUTO_DROPOUT_ROWS", 1024)  # load reads arch_, not the rule
    back = HopularClassifier.load(tmp_path / "m")
    assert back.dropout == "auto" and back.dropout_ == 0.0 and _rates(back) == {0.0}
    np.testing.assert_allclose(back.predict_proba(Xte), est.predict_proba(Xte), atol=1e-6)
    # a model saved before dropout="auto" (no arch_["dropout"], a float parameter) still loads
    cfg_path = tmp_path / "m" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    del cfg["fitted"]["arch_"]["dropout"]
    cfg["params"]["dropout"] = 0.2
    cfg_path.write_text(json.dumps(cfg))
    old = HopularClassifier.load(tmp_path / "m")
    assert old.dropout_ == 0.2 and _rates(old) == {0.2}
