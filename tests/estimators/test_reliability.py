"""Reliability of the estimators (issue 8): saving never destroys user files, values beyond
float32 never turn into NaN predictions silently, hand-edited saved models fail clearly, one
random_state convention, complex input and continuous targets rejected everywhere."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification

from hopfield.estimators import HopfieldClassifier, HopfieldMILClassifier, HopfieldRegressor
from hopfield.reproduce.mil_baselines import MILNetClassifier

TAB = {"embedding_size": 8, "num_heads": 2, "quantity": 4, "max_iter": 3, "n_members": 2,
       "random_state": 0}
MIL = {"embedding_size": 8, "num_heads": 2, "head_size": 4, "max_iter": 2, "random_state": 0}


@pytest.fixture(scope="module")
def table():
    X, y = make_classification(n_samples=80, n_features=5, n_informative=3, random_state=0)
    return X, y


@pytest.fixture(scope="module")
def clf(table):
    return HopfieldClassifier(**TAB).fit(*table)


def _bags(n=12, d=3, seed=0):
    rng = np.random.RandomState(seed)
    return [rng.randn(rng.randint(2, 5), d) for _ in range(n)], np.arange(n) % 2


def _snapshot(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


# ------------------------------------------------------------------ item 1: save never deletes
def test_save_refuses_a_folder_with_other_files(tmp_path, clf):
    models = tmp_path / "models"
    (models / "old_model").mkdir(parents=True)
    (models / "notes.txt").write_text("mine")
    (models / "old_model" / "weights.bin").write_bytes(b"\x00" * 10)
    before = _snapshot(tmp_path)
    for overwrite in (False, True):
        with pytest.raises(ValueError, match=rf"cannot save a model to {models}: the folder is "
                                             r"not empty and is not a saved model"):
            clf.save(models, overwrite=overwrite)
    assert _snapshot(tmp_path) == before
    assert [p.name for p in tmp_path.iterdir()] == ["models"]      # no temporary leftovers


def test_save_refuses_an_existing_file_and_a_model_of_another_kind(tmp_path, clf, table):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ValueError, match="it is an existing file"):
        clf.save(f, overwrite=True)
    assert f.read_text() == "x"
    reg = HopfieldRegressor(**TAB).fit(table[0], table[1].astype(float))
    reg.save(tmp_path / "reg")
    before = _snapshot(tmp_path)
    with pytest.raises(ValueError, match="holds a saved .*HopfieldRegressor; nothing was changed"):
        clf.save(tmp_path / "reg", overwrite=True)
    assert _snapshot(tmp_path) == before


def test_replacing_a_saved_model_needs_overwrite(tmp_path, clf, table):
    clf.save(tmp_path / "m")
    with pytest.raises(ValueError, match="already holds a saved HopfieldClassifier; pass "
                                         "overwrite=True"):
        clf.save(tmp_path / "m")
    other = HopfieldClassifier(**{**TAB, "random_state": 1}).fit(*table)
    other.save(tmp_path / "m", overwrite=True)
    back = HopfieldClassifier.load(tmp_path / "m")
    np.testing.assert_array_equal(back.predict_proba(table[0]), other.predict_proba(table[0]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    (tmp_path / "empty").mkdir()
    clf.save(tmp_path / "empty")                      # an empty folder is fine


# ------------------------------------------------------------------ item 5: beyond float32
def test_huge_training_cell_is_standardised_in_float64(table):
    X, y = table[0].copy(), table[1]
    X[3, 1] = 1e200
    est = HopfieldClassifier(**TAB).fit(X, y)
    p = est.predict_proba(X)
    assert np.isfinite(p).all() and np.isfinite(est.scaler_.scale).all()
    reg = HopfieldRegressor(**TAB).fit(X, np.linspace(0, 1e200, len(y)))
    assert np.isfinite(reg.predict(X)).all()


def test_huge_value_at_predict_is_refused_naming_the_column(clf, table):
    X = table[0][:4].copy()
    X[2, 3] = 1e200
    with pytest.raises(ValueError, match=r"X column 3 holds a value \(1e\+200\)"):
        clf.predict(X)
    import pandas as pd
    cols = [f"f{i}" for i in range(5)]
    est = HopfieldClassifier(**TAB).fit(pd.DataFrame(table[0], columns=cols), table[1])
    with pytest.raises(ValueError, match="X column 'f3' holds a value"):
        est.predict(pd.DataFrame(X, columns=cols))


def test_mil_huge_values():
    bags, y = _bags()
    bags[0][0, 1] = 1e200
    est = HopfieldMILClassifier(**MIL).fit(bags, y)
    assert np.isfinite(est.predict_proba(bags)).all()
    test = [b.copy() for b in bags[:2]]
    test[1][0, 2] = 1e200
    with pytest.raises(ValueError, match=r"X\[1\] column 2 holds a value"):
        est.predict(test)


# ------------------------------------------------------------------ item 13: hand-edited models
@pytest.fixture
def saved(tmp_path, clf):
    clf.save(tmp_path / "m")
    return tmp_path / "m"


def _edit(path, fn):
    cfg = json.loads((path / "config.json").read_text())
    fn(cfg)
    (path / "config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize("edit, msg", [
    (lambda c: c["fitted"].pop("n_features_in"), r"missing fitted\['n_features_in'\]"),
    (lambda c: c["fitted"].update(n_features_in="5"), "n_features_in'] has type str"),
    (lambda c: c["fitted"].update(classes=[0]), "classes must be a list of >= 2"),
    (lambda c: c.pop("params"), r"missing config\['params'\]"),
    (lambda c: c["params"].update(num_heads=0), "bad params: The 'num_heads' parameter"),
    (lambda c: c["params"].update(bogus=1), "bad params: .*bogus"),
    (lambda c: c["params"].update(embedding_size=10**6, num_heads=1), "do not match its config"),
    (lambda c: c["params"].update(quantity=10**9), "do not match its config"),
    (lambda c: c.update(format_version=None), "format_version must be 1"),
    (lambda c: c.update({"class": "hopfield.estimators.tabular.Nope"}), "unknown class"),
])
def test_hand_edited_config_is_a_clear_value_error(saved, edit, msg):
    _edit(saved, edit)
    with pytest.raises(ValueError, match=msg):
        HopfieldClassifier.load(saved)


def test_nan_weights_are_refused(saved):
    from safetensors.torch import load_file, save_file

    w = load_file(saved / "weights.safetensors")
    w["module.w_in"][0, 0, 0] = float("nan")
    save_file(w, saved / "weights.safetensors")
    _edit(saved, lambda c: c.pop("weights_sha256"))   # also without the checksum
    with pytest.raises(ValueError, match="tensor 'module.w_in' holds NaN"):
        HopfieldClassifier.load(saved)


def test_mil_loader_validates_the_same_way(tmp_path):
    bags, y = _bags()
    est = HopfieldMILClassifier(**MIL).fit(bags, y)
    est.save(tmp_path / "m")
    _edit(tmp_path / "m", lambda c: c["params"].update(embedding_size=10**6))
    with pytest.raises(ValueError, match="do not match its config"):
        HopfieldMILClassifier.load(tmp_path / "m")
    with pytest.raises(ValueError, match="not a HopfieldClassifier"):
        HopfieldClassifier.load(tmp_path / "m")


# ------------------------------------------------------------------ item 18: conventions
@pytest.mark.parametrize("cls", [HopfieldClassifier, HopfieldRegressor, HopfieldMILClassifier,
                                 MILNetClassifier])
def test_random_state_defaults_to_none_and_device_to_cpu(cls):
    params = inspect.signature(cls).parameters
    assert params["random_state"].default is None
    assert params["device"].default == "cpu"


def test_mil_rejects_complex_input_and_continuous_targets():
    bags, y = _bags()
    cbags = [b.astype(complex) for b in bags]
    cbags[0][0, 0] += 1j
    with pytest.raises(ValueError, match=r"X\[0\] holds complex values"):
        HopfieldMILClassifier(**MIL).fit(cbags, y)
    with pytest.raises(ValueError, match="Unknown label type"):
        HopfieldMILClassifier(**MIL).fit(bags, np.linspace(0, 1, len(bags)))
    with pytest.raises(ValueError, match="Complex data not supported"):
        HopfieldClassifier(**TAB).fit(np.ones((10, 2)) * 1j, np.arange(10) % 2)


def test_deprecated_names_warn_and_round_trip(table):
    from sklearn.base import clone

    est = HopfieldClassifier(**{**TAB, "max_iter": 200}, max_epochs=2, lr=1e-2)
    assert clone(est).get_params()["max_epochs"] == 2
    with pytest.warns(FutureWarning, match="'max_epochs' is deprecated.*use 'max_iter'"):
        est.fit(*table)
    assert est.n_iter_ <= 2
    with pytest.warns(FutureWarning, match="'hidden_size' is deprecated"):
        HopfieldMILClassifier(**{k: v for k, v in MIL.items() if k != "embedding_size"},
                              hidden_size=8).fit(*_bags())


def test_fit_leaves_global_rng_and_threads_alone(table):
    state, threads = torch.random.get_rng_state(), torch.get_num_threads()
    HopfieldClassifier(**TAB).fit(*table)
    HopfieldMILClassifier(**MIL).fit(*_bags())
    assert torch.equal(state, torch.random.get_rng_state())
    assert torch.get_num_threads() == threads
