"""hopfield.ood: the Hopfield-energy detector and Hopfield Boosting against plain references."""

import math

import numpy as np
import pytest
import torch

from hopfield import PatternStore
from hopfield import functional as HF
from hopfield.ood import (
    HopfieldOODDetector,
    boundary_energy,
    hopfield_boosting_loss,
    hopfield_boosting_weights,
    lse_scores,
)


def _blobs(n=60, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * 0.3 + np.repeat(np.eye(d)[:2] * 3, n // 2, axis=0)
    y = np.repeat([0, 1], n // 2)
    return X, y


def test_score_is_negative_hopfield_energy():
    X, _ = _blobs()
    Q = np.random.default_rng(1).normal(size=(7, 4))
    det = HopfieldOODDetector(beta=2.0, normalize=False).fit(X)
    want = -HF.energy(torch.tensor(Q), torch.tensor(X), 2.0).numpy()
    np.testing.assert_allclose(det.score_samples(Q), want, rtol=1e-5, atol=1e-5)


def test_per_class_is_max_over_class_memories_and_aux_difference():
    X, y = _blobs()
    Q = np.random.default_rng(2).normal(size=(5, 4))
    det = HopfieldOODDetector(beta=1.5, per_class=True, normalize=False).fit(X, y)
    e = [-HF.energy(torch.tensor(Q), torch.tensor(X[y == c]), 1.5).numpy() for c in (0, 1)]
    np.testing.assert_allclose(det.score_samples(Q), np.maximum(*e), rtol=1e-5, atol=1e-5)
    A = np.random.default_rng(3).normal(size=(9, 4))
    det = HopfieldOODDetector(beta=1.5, normalize=False).fit(X, X_aux=A)
    want = (-HF.energy(torch.tensor(Q), torch.tensor(X), 1.5)
            + HF.energy(torch.tensor(Q), torch.tensor(A), 1.5)).numpy()
    np.testing.assert_allclose(det.score_samples(Q), want, rtol=1e-5, atol=1e-5)


def test_lse_scores_streams_exactly_and_excludes():
    g = torch.Generator().manual_seed(0)
    X, Q = torch.randn(50, 3, generator=g), torch.randn(9, 3, generator=g)
    want = torch.logsumexp(2.0 * Q.double() @ X.double().T, -1)
    for chunk in (1, 7, 64):
        got = lse_scores(Q, X, 2.0, chunk_size=chunk)
        assert torch.allclose(got, want, atol=1e-5)
    excl = torch.tensor([0, 5, -1, 49, 3, 3, 10, 20, 30])
    s = 2.0 * Q.double() @ X.double().T
    for i, j in enumerate(excl.tolist()):
        if j >= 0:
            s[i, j] = -math.inf
    assert torch.allclose(lse_scores(Q, X, 2.0, exclude=excl, chunk_size=8),
                          torch.logsumexp(s, -1), atol=1e-5)


def test_predict_threshold_from_contamination_and_recall():
    X, _ = _blobs(n=400)
    for c in (0.05, 0.2, 0.5):
        det = HopfieldOODDetector(contamination=c, random_state=0).fit(X)
        frac = float((det.predict(X) == -1).mean())
        assert abs(frac - c) < 0.08, (c, frac)
    det = HopfieldOODDetector(target_recall=0.9, random_state=0).fit(X)
    assert abs(float((det.predict(X) == 1).mean()) - 0.9) < 0.08
    np.testing.assert_allclose(det.decision_function(X), det.score_samples(X) - det.offset_)
    assert set(np.unique(det.predict(X))) <= {-1, 1}


def test_detects_far_queries_and_beta_rule():
    X, y = _blobs(n=200)
    rng = np.random.default_rng(5)
    near = X[:20] + rng.normal(size=(20, 4)) * 0.05
    far = rng.normal(size=(20, 4)) * 0.3 + np.array([0, 0, 3, 3])
    for pc in (False, True):
        det = HopfieldOODDetector(per_class=pc, random_state=0).fit(X, y)
        assert det.beta_ == max(det.beta_scores_, key=det.beta_scores_.get)
        assert det.score_samples(near).min() > det.score_samples(far).max()
        assert (det.predict(far) == -1).all()


def test_pattern_store_memory_matches_in_memory(tmp_path):
    X, _ = _blobs(n=120)
    X = X.astype(np.float32)
    with PatternStore.create(tmp_path / "mem", dim=4) as st:
        st.append(X)
    store = PatternStore.open(tmp_path / "mem")
    Q = np.random.default_rng(6).normal(size=(11, 4))
    a = HopfieldOODDetector(beta=3.0, normalize=False, chunk_size=16).fit(store)
    b = HopfieldOODDetector(beta=3.0, normalize=False).fit(X)
    np.testing.assert_allclose(a.score_samples(Q), b.score_samples(Q), rtol=1e-5, atol=1e-5)
    assert a.offset_ == pytest.approx(b.offset_, rel=1e-4, abs=1e-4)
    with pytest.raises(ValueError, match="normalize must be False"):
        HopfieldOODDetector().fit(store)
    with pytest.raises(ValueError, match="per_class"):
        HopfieldOODDetector(normalize=False, per_class=True).fit(store)


def test_bad_input():
    X, y = _blobs()
    with pytest.raises(ValueError, match="at least 2"):
        HopfieldOODDetector().fit(X[:1])
    with pytest.raises(ValueError, match="at least 2"):
        HopfieldOODDetector().fit(np.zeros((0, 4)))
    with pytest.raises(ValueError, match=r"shape \(n_samples, n_features\)"):
        HopfieldOODDetector().fit(X[0])
    for c in (0.0, -0.1, 0.51, 1.0, float("nan"), True):
        with pytest.raises(ValueError, match=r"contamination must be a float in \(0, 0.5\]"):
            HopfieldOODDetector(contamination=c).fit(X)
    for r in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="target_recall"):
            HopfieldOODDetector(target_recall=r).fit(X)
    for b in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="beta must be > 0"):
            HopfieldOODDetector(beta=b).fit(X)
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="X must be finite"):
        HopfieldOODDetector().fit(bad)
    det = HopfieldOODDetector(beta=1.0).fit(X)
    with pytest.raises(ValueError, match="X has 3 features, but HopfieldOODDetector was fitted "
                                         "with 4"):
        det.score_samples(X[:, :3])
    with pytest.raises(ValueError, match="X must be finite"):
        det.predict(bad)
    with pytest.raises(ValueError, match="not fitted"):
        HopfieldOODDetector().score_samples(X)
    with pytest.raises(ValueError, match="needs the class labels"):
        HopfieldOODDetector(per_class=True).fit(X)
    with pytest.raises(ValueError, match="at least 2 samples of every class"):
        HopfieldOODDetector(per_class=True).fit(X[:31], y[:31])
    with pytest.raises(ValueError, match="X_aux must have 4 features"):
        HopfieldOODDetector().fit(X, X_aux=X[:, :2])
    with pytest.raises(TypeError, match="numeric"):
        HopfieldOODDetector().fit(np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(ValueError, match="(?i)invalid parameter"):
        HopfieldOODDetector().set_params(gamma=1)
    from sklearn.base import clone

    c = clone(HopfieldOODDetector(beta=2.0, per_class=True))
    assert c.get_params()["beta"] == 2.0 and c.per_class
    assert (det.fit_predict(X) != 0).all()
    assert det.score_samples(np.zeros((0, 4))).shape == (0,)


# ----------------------------------------------------------------------------- boosting


def _ref_boundary(q, X, O, beta, skip=None):
    """E_b from the formula with plain Python loops (float64)."""
    def lse(vals):  # lse_β(v) = β⁻¹ log Σ exp(β v)
        m = max(vals)
        return m + math.log(sum(math.exp(beta * (v - m)) for v in vals)) / beta
    out = []
    for i, xi in enumerate(q):
        sx = [float(xi @ x) for j, x in enumerate(X) if skip is None or j != i]
        so = [float(xi @ o) for j, o in enumerate(O) if skip is None or j + len(X) != i]
        out.append(-2 * lse(sx + so) + lse(sx) + lse(so))
    return out


def _unit(t):
    return t / t.norm(dim=-1, keepdim=True)


def test_boundary_energy_and_loss_match_reference():
    g = torch.Generator().manual_seed(0)
    X, O = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(4, 3, generator=g,
                                                                           dtype=torch.float64)
    q = torch.randn(6, 3, generator=g, dtype=torch.float64)
    got = boundary_energy(q, X, O, 3.0)
    want = _ref_boundary(_unit(q), _unit(X), _unit(O), 3.0)
    assert np.allclose(got.numpy(), want, atol=1e-9)
    assert float(got.max()) <= -2 * math.log(2) / 3.0 + 1e-12  # maximal on the boundary
    loss = hopfield_boosting_loss(X, O, 3.0)
    Q = torch.cat([X, O])
    want = np.mean(_ref_boundary(_unit(Q), _unit(X), _unit(O), 3.0, skip=True))
    assert abs(float(loss) - want) <= 1e-9
    Xg, Og = X.clone().requires_grad_(True), O.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: hopfield_boosting_loss(a, b, 3.0), (Xg, Og))


def test_boosting_weights_prefer_boundary_outliers():
    X = torch.tensor([[1.0, 0.0], [0.9, 0.1]])
    O = torch.tensor([[-1.0, 0.0], [-0.9, -0.1], [0.7, 0.7], [0.0, 1.0]])
    w = hopfield_boosting_weights(O, X, beta=4.0, sampling_beta=4.0)
    assert torch.allclose(w.sum(), torch.tensor(1.0))
    assert int(w.argmax()) in (2, 3) and float(w[0]) < float(w[2])


def test_boosting_bad_input():
    X, O = torch.randn(4, 3), torch.randn(3, 3)
    with pytest.raises(ValueError, match="same dim"):
        hopfield_boosting_loss(X, O[:, :2])
    with pytest.raises(ValueError, match="beta must be > 0"):
        hopfield_boosting_loss(X, O, 0.0)
    with pytest.raises(ValueError, match="at least 2"):
        hopfield_boosting_loss(X[:1], O)
    bad = X.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="in_embeddings must be finite"):
        hopfield_boosting_loss(bad, O)
    with pytest.raises(ValueError, match="at least 2 samples"):
        hopfield_boosting_weights(O[:1], X)


def test_bench_suite_runs_small():
    from hopfield.bench import ood as B

    (case,) = B.cases(quick=True)
    assert case.peers == ("ood_score", "retrieve_1step") and case.config["L"] == 10_000
    cfg = {"N": 300, "L": 7, "D": 8, "seed": 0}
    x, q = B._data(cfg)
    scores = B.setup(cfg, "ood_score", (x, q)).fn()
    want = -HF.energy(q.double(), x.double(), 1 / math.sqrt(8)).numpy()
    np.testing.assert_allclose(scores, want, rtol=1e-4, atol=1e-4)
    assert B.setup(cfg, "retrieve_1step", (x, q)).fn().shape == (7, 8)
    rec = {"config": cfg, "time": {"ood_score": {"median": 0.5}}}
    assert B.derive(case, rec)["ood_score scores/s"] == 14.0
    with pytest.raises(ValueError, match="unknown peer"):
        B.setup(cfg, "faiss", (x, q))
