"""HopfieldMILClassifier: learning, sklearn contract (own clone/refit/determinism checks since bags
are not 2-D), persistence, association weights and bad input."""

import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from hopfield.estimators import HopfieldMILClassifier
from hopfield.estimators.mil import check_bags, pad_bags

FAST = {"embedding_size": 16, "num_heads": 2, "head_size": 8, "max_iter": 40,
        "n_iter_no_change": 40, "batch_size": 8, "learning_rate": 5e-3, "dropout": 0.0,
        "bag_dropout": 0.0}


def make_bags(n_bags=64, d=4, seed=0, n_classes=2):
    """Synthetic MIL: a bag of class c > 0 contains one 'key' instance at +4 on feature c-1;
    the others are N(0, 1). Returns bags, labels and the index of the key instance (-1 if none)."""
    rng = np.random.RandomState(seed)
    bags, y, key = [], [], []
    for i in range(n_bags):
        c = i % n_classes
        b = rng.randn(rng.randint(3, 9), d)
        k = -1
        if c > 0:
            k = rng.randint(len(b))
            b[k, c - 1] += 5.0
        bags.append(b)
        y.append(c)
        key.append(k)
    return bags, np.array(y), np.array(key)


@pytest.fixture(scope="module")
def fitted():
    bags, y, _key = make_bags()
    return HopfieldMILClassifier(**FAST, random_state=0).fit(bags, y), make_bags(seed=1)


def test_learns_key_instance_task(fitted):
    clf, (bags, y, _key) = fitted
    assert roc_auc_score(y, clf.decision_function(bags)) > 0.95
    assert clf.score(bags, y) > 0.85
    assert clf.n_features_in_ == 4 and clf.classes_.tolist() == [0, 1]
    assert 1 <= clf.best_iteration_[0] <= clf.n_iter_ == len(clf.loss_curve_)
    assert len(clf.validation_scores_) == clf.n_iter_


def test_instance_weights_point_at_key_instance(fitted):
    clf, (bags, y, key) = fitted
    w = clf.instance_weights(bags)
    assert clf.instance_weights_ is w and len(w) == len(bags)
    for wi, b in zip(w, bags):
        assert wi.shape == (len(b),) and np.all(wi >= 0)
        np.testing.assert_allclose(wi.sum(), 1.0, atol=1e-5)
    pos = np.flatnonzero(y == 1)
    hits = np.mean([np.argmax(w[i]) == key[i] for i in pos])
    assert hits > 0.8, f"key instance had the largest weight in only {hits:.0%} of positive bags"
    wh = clf.instance_weights(bags[:3], average_heads=False)
    assert wh[0].shape == (2, len(bags[0]))


def test_probabilities_and_decision(fitted):
    clf, (bags, _y, _) = fitted
    p = clf.predict_proba(bags)
    assert p.shape == (len(bags), 2)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-10)
    d = clf.decision_function(bags)
    assert d.shape == (len(bags),)
    np.testing.assert_array_equal(d > 0, p[:, 1] > 0.5)
    np.testing.assert_array_equal(clf.predict(bags), clf.classes_[p.argmax(1)])


def test_padded_array_with_mask_equals_list(fitted):
    clf, (bags, _, _) = fitted
    X, mask = pad_bags([b.astype(np.float32) for b in bags])
    X[mask] = 1e3                       # padding content must not matter
    np.testing.assert_allclose(clf.predict_proba(X, mask=mask), clf.predict_proba(bags), atol=1e-6)


@settings(max_examples=15)
@given(st.integers(0, 2**31 - 1))
def test_invariant_to_instance_order(fitted, seed):
    clf, (bags, _, _) = fitted
    rng = np.random.RandomState(seed)
    perm = [b[rng.permutation(len(b))] for b in bags[:8]]
    np.testing.assert_allclose(clf.decision_function(perm), clf.decision_function(bags[:8]), atol=1e-5)


def test_multiclass_string_labels():
    bags, y, _ = make_bags(n_bags=60, n_classes=3)
    names = np.array(["cat", "dog", "eel"])[y]
    clf = HopfieldMILClassifier(**FAST, random_state=0).fit(bags, names)
    assert clf.classes_.tolist() == ["cat", "dog", "eel"]
    tb, ty, _ = make_bags(n_bags=60, n_classes=3, seed=1)
    assert clf.predict_proba(tb).shape == (60, 3) and clf.decision_function(tb).shape == (60, 3)
    assert set(clf.predict(tb)) <= {"cat", "dog", "eel"}
    assert clf.score(tb, np.array(["cat", "dog", "eel"])[ty]) > 0.6


def test_thread_setting_restored():
    bags, y, _ = make_bags(n_bags=10)
    before = torch.get_num_threads()
    HopfieldMILClassifier(**{**FAST, "max_iter": 1}, num_threads=1).fit(bags, y).predict(bags)
    assert torch.get_num_threads() == before


def test_determinism_clone_and_refit():
    bags, y, _ = make_bags()
    tb = make_bags(seed=2)[0]
    a = HopfieldMILClassifier(**{**FAST, "max_iter": 5}, random_state=3).fit(bags, y)
    b = HopfieldMILClassifier(**{**FAST, "max_iter": 5}, random_state=3).fit(bags, y)
    np.testing.assert_array_equal(a.predict_proba(tb), b.predict_proba(tb))
    c = clone(a)
    assert not hasattr(c, "module_") and c.get_params() == a.get_params()
    np.testing.assert_array_equal(c.fit(bags, y).predict_proba(tb), a.predict_proba(tb))
    a.fit(bags, y)                                          # refit gives the same model
    np.testing.assert_array_equal(a.predict_proba(tb), b.predict_proba(tb))
    other = HopfieldMILClassifier(**{**FAST, "max_iter": 5}, random_state=4).fit(bags, y)
    assert not np.array_equal(other.predict_proba(tb), a.predict_proba(tb))
    state = torch.random.get_rng_state()                    # fit does not touch the global RNG
    HopfieldMILClassifier(**{**FAST, "max_iter": 1}, random_state=0).fit(bags, y)
    assert torch.equal(state, torch.random.get_rng_state())


def test_sklearn_tags_declare_bags():
    tags = HopfieldMILClassifier().__sklearn_tags__()
    assert tags.input_tags.two_d_array is False and tags.input_tags.three_d_array is True
    assert tags.estimator_type == "classifier"


def test_param_grid_uses_real_parameters():
    grid = HopfieldMILClassifier.param_grid()
    assert set(grid) <= set(HopfieldMILClassifier().get_params())
    HopfieldMILClassifier(**{k: v[-1] for k, v in grid.items()})._resolve_params()


def test_pickle_and_save_load_round_trip(fitted, tmp_path):
    clf, (bags, _, _) = fitted
    ref = clf.predict_proba(bags)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(clf)).predict_proba(bags), ref)
    clf.save(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["config.json", "weights.safetensors"]
    loaded = HopfieldMILClassifier.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict_proba(bags), ref)
    assert loaded.get_params() == clf.get_params()
    np.testing.assert_array_equal(loaded.instance_weights(bags[:4])[2], clf.instance_weights(bags[:4])[2])
    with pytest.raises(ValueError, match="pass overwrite=True"):
        clf.save(tmp_path / "model")
    clf.save(tmp_path / "model", overwrite=True)            # replace in place
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_save_load_string_classes(tmp_path):
    bags, y, _ = make_bags(n_bags=20)
    clf = HopfieldMILClassifier(**{**FAST, "max_iter": 2}, random_state=0).fit(bags, np.array(["no", "yes"])[y])
    clf.save(tmp_path / "m")
    loaded = HopfieldMILClassifier.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict(bags), clf.predict(bags))
    assert loaded.classes_.dtype == clf.classes_.dtype


def test_load_errors(tmp_path, fitted):
    with pytest.raises(FileNotFoundError, match="no saved model"):
        HopfieldMILClassifier.load(tmp_path / "nothing")
    clf = fitted[0]
    clf.save(tmp_path / "m")
    (tmp_path / "m" / "weights.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="does not match the checksum"):
        HopfieldMILClassifier.load(tmp_path / "m")
    clf.save(tmp_path / "m", overwrite=True)
    (tmp_path / "m" / "config.json").write_text("{broken")
    with pytest.raises(ValueError, match="not valid JSON"):
        HopfieldMILClassifier.load(tmp_path / "m")
    import json
    with pytest.raises(ValueError, match="not empty and is not a saved model"):
        clf.save(tmp_path / "m", overwrite=True)                # a broken config: not ours
    (tmp_path / "m" / "config.json").unlink()
    with pytest.raises(ValueError, match=r"not a saved model \(it holds weights.safetensors\)"):
        clf.save(tmp_path / "m", overwrite=True)
    (tmp_path / "m" / "weights.safetensors").unlink()
    clf.save(tmp_path / "m")                                    # empty folder: fine
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps({**cfg, "class": "os.system"}))
    with pytest.raises(ValueError, match="is not part of hopfield"):
        HopfieldMILClassifier.load(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text(json.dumps({**cfg, "params": {**cfg["params"],
                                                                              "embedding_size": 7}}))
    with pytest.raises(ValueError, match="do not match its config.json"):
        HopfieldMILClassifier.load(tmp_path / "m")
    clf.save(tmp_path / "m", overwrite=True)
    (tmp_path / "m" / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="missing config.json"):
        HopfieldMILClassifier.load(tmp_path / "m")


# ----------------------------------------------------------------------------- bad input


def test_bad_bags():
    clf = HopfieldMILClassifier(**{**FAST, "max_iter": 1})
    y = np.array([0, 1])
    with pytest.raises(ValueError, match=r"X\[1\] has 3 features, expected 4"):
        clf.fit([np.zeros((2, 4)), np.zeros((2, 3))], y)
    with pytest.raises(ValueError, match=r"X\[0\] is an empty bag"):
        clf.fit([np.zeros((0, 4)), np.zeros((2, 4))], y)
    with pytest.raises(ValueError, match=r"X\[1\] contains NaN"):
        clf.fit([np.zeros((2, 4)), np.full((2, 4), np.nan)], y)
    with pytest.raises(ValueError, match=r"X\[0\] must be a 2-D \(n_i, D\) array"):
        clf.fit([np.zeros(4), np.zeros((2, 4))], y)
    with pytest.raises(ValueError, match="at least one bag"):
        clf.fit([], [])
    with pytest.raises(TypeError, match="X must be a list"):
        clf.fit("bags", y)
    with pytest.raises(ValueError, match=r"padded array of shape \(B, N, D\)"):
        clf.fit(np.zeros((2, 4)), y)
    with pytest.raises(ValueError, match="mask must be a boolean array of shape"):
        clf.fit(np.zeros((2, 3, 4)), y, mask=np.zeros((2, 4), bool))
    with pytest.raises(ValueError, match="mask is only accepted with a padded 3-D array"):
        clf.fit([np.zeros((2, 4))] * 2, y, mask=np.zeros((2, 2), bool))


def test_bad_labels():
    bags, y, _ = make_bags(n_bags=10)
    clf = HopfieldMILClassifier(**{**FAST, "max_iter": 1})
    with pytest.raises(ValueError, match=r"at least 2 classes, got 1 class \(1\)"):
        clf.fit(bags, np.ones(10, dtype=int))
    with pytest.raises(ValueError, match="one label per bag"):
        clf.fit(bags, y[:5])


def test_predict_errors(fitted):
    clf, (bags, _y, _) = fitted
    with pytest.raises(NotFittedError):
        HopfieldMILClassifier().predict(bags)
    with pytest.raises(ValueError, match=r"X\[0\] has 5 features, expected 4"):
        clf.predict([np.zeros((3, 5))])
    with pytest.raises(ValueError, match=r"unseen labels \[7\]"):
        clf.score(bags[:3], [0, 1, 7])


@pytest.mark.parametrize("name, value, expected", [
    ("beta", -1.0, r"a float in the range \(0.0, inf\) or None"),
    ("num_heads", 0, r"an int in the range \[1, inf\)"),
    ("dropout", 1.0, r"a float in the range \[0.0, 1.0\)"),
    ("learning_rate", 0.0, r"a float in the range \(0.0, inf\)"),
    ("embedding_size", 2.5, r"an int in the range \[1, inf\)"),
    ("validation_fraction", 1.5, r"a float in the range \[0.0, 1.0\)"),
    ("num_threads", 0, r"an int in the range \[1, inf\) or None"),
    ("n_members", 0, r"an int in the range \[1, inf\)"),
    ("scoring", "auc", r"a str among \{('loss', 'roc_auc'|'roc_auc', 'loss')\}"),
])
def test_bad_parameters(name, value, expected):
    bags, y, _ = make_bags(n_bags=6)
    with pytest.raises(ValueError, match=rf"The '{name}' parameter of HopfieldMILClassifier must be "
                                         rf"{expected}\. Got {value!r} instead\."):
        HopfieldMILClassifier(**{**FAST, name: value}).fit(bags, y)


def test_check_bags_accepts_tensors():
    out = check_bags([torch.ones(2, 3), np.zeros((1, 3), dtype=np.int64)])
    assert [b.dtype for b in out] == [np.float64, np.float64]   # float64 until standardised


# ----------------------------------------------------------------------------- ensembles (issue 10)


def test_members_train_as_one_module_and_average():
    bags, y, _ = make_bags(n_bags=40)
    clf = HopfieldMILClassifier(**{**FAST, "max_iter": 6}, n_members=3, random_state=0).fit(bags, y)
    assert clf.module_.n_members == 3 and clf.best_iteration_.shape == (3,)
    net = clf.module_
    assert all(p.shape[0] == 3 for p in net.parameters())        # stacked (M, ...) parameters
    X, mask = pad_bags([((b - clf.scaler_.mean) / clf.scaler_.scale).astype(np.float32) for b in bags])
    X, mask = torch.from_numpy(X), torch.from_numpy(mask)
    with torch.no_grad():
        probs = [torch.softmax(net.member(m).eval()(X, mask).double(), -1) for m in range(3)]
    np.testing.assert_allclose(clf.predict_proba(bags), torch.stack(probs).mean(0).numpy(), atol=1e-5)
    w = clf.instance_weights(bags[:3])
    np.testing.assert_allclose([wi.sum() for wi in w], 1.0, atol=1e-6)
    import copy
    ref = clf.predict_proba(bags)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(clf)).predict_proba(bags), ref)
    np.testing.assert_array_equal(copy.deepcopy(clf).predict_proba(bags), ref)
    one = HopfieldMILClassifier(**{**FAST, "max_iter": 6}, n_members=1, random_state=0).fit(bags, y)
    assert not np.allclose(one.predict_proba(bags), clf.predict_proba(bags))


def test_odd_bag_sets():
    """Issue 10's bad input: bags of one instance, one bag per class, bags of equal length, and a
    padded 3-D input whose mask empties a bag: each works (with finite output) or names the cause."""
    rng = np.random.RandomState(0)
    single = [rng.randn(1, 3) for _ in range(12)]                 # bags of one instance
    clf = HopfieldMILClassifier(**{**FAST, "max_iter": 2}).fit(single, np.arange(12) % 2)
    assert np.isfinite(clf.predict_proba(single)).all()
    np.testing.assert_allclose(np.concatenate(clf.instance_weights(single[:3])), 1.0, atol=1e-6)
    padded1 = np.stack(single)                                    # the same as a (12, 1, 3) array
    np.testing.assert_allclose(clf.predict_proba(padded1), clf.predict_proba(single), atol=1e-6)
    equal = rng.randn(12, 4, 3)                                   # all bags of equal length
    clf = HopfieldMILClassifier(**{**FAST, "max_iter": 2}).fit(equal, np.arange(12) % 2)
    np.testing.assert_allclose(clf.predict_proba(equal), clf.predict_proba(list(equal)), atol=1e-6)
    with pytest.raises(ValueError, match="no class has 2 samples"):      # one bag per class
        HopfieldMILClassifier(**{**FAST, "max_iter": 2}).fit(single[:2], [0, 1])
    with pytest.raises(ValueError, match="no class has 2 samples"):      # ... also with 3 classes
        HopfieldMILClassifier(**{**FAST, "max_iter": 2}).fit(single[:3], ["a", "b", "c"])
    one = HopfieldMILClassifier(**{**FAST, "max_iter": 2}, early_stopping=False).fit(single[:2], [0, 1])
    assert one.predict(single[:2]).shape == (2,)
    mask = np.zeros((12, 4), bool)
    mask[5] = True                                                # the mask empties bag 5
    with pytest.raises(ValueError, match=r"X\[5\] is an empty bag \(0 instances\): mask\[5\] marks "
                                         r"all 4 positions as padding"):
        HopfieldMILClassifier(**FAST).fit(equal, np.arange(12) % 2, mask=mask)
    with pytest.raises(ValueError, match=r"X\[5\] is an empty bag .*mask\[5\]"):   # and in predict
        clf.predict_proba(equal, mask=mask)


def test_scoring_stopping_losses():
    """scoring="roc_auc": per member 1 - ROC AUC of its own validation bags + 0.01 x its loss; a
    member whose validation bags hold one class keeps the loss; NaN outputs give NaN; with
    scoring="loss" or a multiclass target early stopping watches the loss."""
    y = torch.tensor([0, 0, 1, 1, 0, 1])
    hold = torch.tensor([[1, 1, 1, 1, 0, 0],            # ranks its bags perfectly
                         [1, 1, 1, 1, 0, 0],            # ranks them the wrong way round
                         [1, 0, 0, 0, 1, 0],            # validation part of one class: AUC undefined
                         [0, 0, 1, 1, 1, 1]], dtype=torch.bool)
    margin = np.array([[-2, -1, 1, 2, 0, 0], [2, 1, -1, -2, 0, 0], [0.0] * 6,
                       [0, 0, np.nan, 1, 0, 1]])
    out = torch.stack([torch.zeros(4, 6, dtype=torch.float64), torch.as_tensor(margin)], -1)
    vloss = torch.tensor([0.5, 0.6, 0.7, 0.8])
    est = HopfieldMILClassifier()
    est._resolve_params()
    got = est._stopping_losses(vloss, out, y, hold).numpy()
    np.testing.assert_allclose(got[:3], [0.005, 1.006, 0.7], rtol=1e-6)
    assert np.isnan(got[3])
    est.set_params(scoring="loss")._resolve_params()
    assert est._stopping_losses(vloss, out, y, hold) is vloss
    est.set_params(scoring="roc_auc")._resolve_params()
    assert est._stopping_losses(vloss, torch.zeros(4, 6, 3), y, hold) is vloss


def test_scoring_auc_matches_sklearn_with_ties():
    """The on-device Mann-Whitney AUC equals sklearn's roc_auc_score, ties included."""
    from sklearn.metrics import roc_auc_score

    g = torch.Generator().manual_seed(0)
    est = HopfieldMILClassifier()
    est._resolve_params()
    for _ in range(20):
        n = int(torch.randint(4, 40, (1,), generator=g))
        y = torch.randint(0, 2, (n,), generator=g)
        y[:2] = torch.tensor([0, 1])
        hold = torch.rand(3, n, generator=g) < 0.7
        hold[:, :2] = True
        margin = torch.randint(-3, 4, (3, n), generator=g).double()  # many ties
        out = torch.stack([torch.zeros_like(margin), margin], -1)
        got = est._stopping_losses(torch.zeros(3), out, y, hold).numpy()
        for m in range(3):
            own = hold[m].numpy()
            ref = 1 - roc_auc_score(y.numpy()[own], margin[m].numpy()[own])
            assert abs(got[m] - ref) < 1e-12


def test_scoring_in_fit():
    kw = {**FAST, "max_iter": 8, "n_iter_no_change": 3}
    bags, y, _ = make_bags(n_bags=60, n_classes=3)          # multiclass: ROC AUC falls back to the loss
    a = HopfieldMILClassifier(**kw, random_state=0).fit(bags, y)
    b = HopfieldMILClassifier(**kw, scoring="loss", random_state=0).fit(bags, y)
    np.testing.assert_array_equal(a.predict_proba(bags), b.predict_proba(bags))
    bags, y, _ = make_bags(n_bags=60)
    c = HopfieldMILClassifier(**kw, n_members=2, random_state=0).fit(bags, y)
    assert np.isfinite(c.validation_scores_).all() and c.best_validation_score_ <= 0
    assert ((1 <= c.best_iteration_) & (c.best_iteration_ <= c.n_iter_)).all()
