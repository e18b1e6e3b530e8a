"""Hopular's numeric_transform: the quantile-normal transform against scikit-learn and an exact
reference distribution, its properties (monotone per column, finite and bounded on any finite
input, NaN stays missing), save/load of the quantile table, and bad values."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm
from sklearn.preprocessing import QuantileTransformer

from hopfield.estimators._hopular_data import TabularEncoder, quantile_normal
from hopfield.estimators.hopular import HopularClassifier, HopularRegressor

TINY = {"embedding_size": 8, "num_blocks": 1, "num_heads": 2, "head_size": 4, "max_iter": 3,
        "anneal_iter": 1, "n_iter_no_change": 2, "random_state": 0, "n_members": 1,
        "numeric_transform": "quantile"}
CLIP = 5.2  # Φ⁻¹(1 − 1e-7) ≈ 5.199: scikit-learn's clip of the normal output


def _skewed(n=400, seed=0):
    rng = np.random.RandomState(seed)
    X = np.column_stack([rng.lognormal(0, 2, n), rng.standard_cauchy(n),
                         rng.randint(0, 4, n).astype(float),  # ties
                         np.full(n, 3.0)])  # constant
    X[rng.rand(n) < 0.1, 0] = np.nan
    return X


def test_quantile_normal_matches_sklearn():
    """Same formula as QuantileTransformer(output_distribution='normal').transform, on the same
    quantiles, including ties, NaN and values outside the training range."""
    X = _skewed()
    qt = QuantileTransformer(n_quantiles=300, output_distribution="normal").fit(X)
    new = np.vstack([X, [[1e30, -1e30, -5, 3.0], [-1e30, 1e30, 99, 2.0], [np.nan] * 4]])
    want = qt.transform(new)
    got = np.column_stack([quantile_normal(new[:, j], qt.quantiles_[:, j]) for j in range(4)])
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_quantile_normal_approaches_the_exact_normal_scores():
    """Independent reference: for Exp(1) data the transform is Φ⁻¹(1 − e^(−x)) (the exact
    normal scores), up to the quantile estimate's error."""
    x = np.random.RandomState(1).exponential(size=20000)
    enc = TabularEncoder(numeric_transform="quantile").fit(x[:, None], random_state=0)
    assert enc.quantiles.shape == (1000, 1)
    grid = np.linspace(0.05, 3.0, 60)
    num, miss, _ = enc.transform(grid[:, None])
    assert not miss.any()
    np.testing.assert_allclose(num[:, 0], norm.ppf(1 - np.exp(-grid)), atol=0.06)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 60), scale=st.sampled_from([1e-9, 1.0, 1e30]))
def test_encoder_quantile_is_monotone_finite_and_bounded(seed, n, scale):
    """Per column: non-decreasing in the input, finite and within ±5.2 on any finite input up to
    the float32 range (training extremes, unseen extremes, constant or all-missing columns); NaN
    is flagged missing and encoded 0."""
    rng = np.random.RandomState(seed)
    X = np.column_stack([np.clip(rng.standard_cauchy(n) * scale, -3e38, 3e38), np.full(n, 2.5),
                         np.full(n, np.nan), rng.randint(0, 3, n) * scale])
    X[rng.rand(n) < 0.2, 0] = np.nan
    with pytest.warns(UserWarning, match="missing in every row"):
        enc = TabularEncoder(numeric_transform="quantile").fit(X, random_state=0)
    grid = np.sort(np.r_[-3e38, -1e20, np.clip(rng.standard_cauchy(50) * scale, -3e38, 3e38),
                         0.0, 2.5, 1e20, 3e38])
    G = np.repeat(grid[:, None], 4, 1)
    num, miss, _ = enc.transform(G)
    assert np.isfinite(num).all() and np.abs(num).max() <= CLIP
    assert (np.diff(num, axis=0) >= 0).all()
    assert not miss.any()
    G[::3] = np.nan
    num2, miss2, _ = enc.transform(G)
    assert miss2[::3].all() and (num2[::3] == 0).all()
    np.testing.assert_array_equal(num2[~miss2], num[~miss2])


def test_quantiles_use_at_most_1000_levels_and_are_seeded():
    X = np.random.RandomState(0).lognormal(size=(12000, 2))
    a = TabularEncoder(numeric_transform="quantile").fit(X, random_state=3).quantiles
    b = TabularEncoder(numeric_transform="quantile").fit(X, random_state=3).quantiles
    c = TabularEncoder(numeric_transform="quantile").fit(X, random_state=4).quantiles
    assert a.shape == (1000, 2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)  # 12,000 rows > 10,000: a seeded subsample
    small = TabularEncoder(numeric_transform="quantile").fit(X[:37], random_state=0).quantiles
    assert small.shape == (37, 2)


@pytest.mark.parametrize("cls", [HopularClassifier, HopularRegressor])
def test_quantile_model_saves_and_loads_bit_identically(tmp_path, cls):
    X = _skewed(120)
    y = (np.nan_to_num(X[:, 0]) > 1).astype(int)
    est = cls(**{**TINY, "n_members": 2}).fit(X, y if cls is HopularClassifier else y * 2.0 + X[:, 2])
    assert est.encoder_config_["numeric_transform"] == "quantile"
    assert est.arch_["quantile_shape"] == [120, 4]
    new = np.vstack([X[:20], [[1e38, -1e38, 1e9, -4.0], [np.nan, 0.0, -1e9, 3.0]]])
    pred = est.predict_proba(new) if cls is HopularClassifier else est.predict(new)
    assert np.isfinite(pred).all()
    est.save(tmp_path / "m")
    back = cls.load(tmp_path / "m")
    assert back.numeric_transform == "quantile"
    again = back.predict_proba(new) if cls is HopularClassifier else back.predict(new)
    np.testing.assert_array_equal(again, pred)
    np.testing.assert_array_equal(back._get_encoder().quantiles, est._get_encoder().quantiles)
    # a failed save (overwrite not given) leaves the saved files as they were
    before = {p.name: p.read_bytes() for p in (tmp_path / "m").iterdir()}
    with pytest.raises(ValueError, match="overwrite"):
        est.save(tmp_path / "m")
    assert {p.name: p.read_bytes() for p in (tmp_path / "m").iterdir()} == before


def test_standard_models_saved_before_the_option_still_load(tmp_path):
    """A config without numeric_transform (saved before it existed) loads as 'standard'."""
    X = _skewed(80)
    y = (X[:, 2] > 1).astype(int)
    est = HopularClassifier(**{**TINY, "numeric_transform": "standard"}).fit(X, y)
    assert "quantile_shape" not in est.arch_
    est.save(tmp_path / "m")
    cfg_path = tmp_path / "m" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    del cfg["params"]["numeric_transform"], cfg["fitted"]["encoder_config_"]["numeric_transform"]
    cfg_path.write_text(json.dumps(cfg))
    back = HopularClassifier.load(tmp_path / "m")
    assert back.numeric_transform == "standard"
    np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))


def test_quantile_differs_from_standard_and_bad_values_are_refused():
    X = _skewed(80)
    y = (X[:, 2] > 1).astype(int)
    std = TabularEncoder().fit(X).transform(X)[0]
    qnt = TabularEncoder(numeric_transform="quantile").fit(X, random_state=0).transform(X)[0]
    assert np.abs(std).max() > 5.2 >= np.abs(qnt).max()  # the Cauchy column's outliers shrink
    for bad in ("quantiles", "Standard", None, 1):
        with pytest.raises(ValueError, match="numeric_transform"):
            HopularClassifier(**{**TINY, "numeric_transform": bad}).fit(X, y)
    with pytest.raises(ValueError, match="numeric_transform must be one of"):
        TabularEncoder(numeric_transform="rank").fit(X)
    cfg = TabularEncoder(numeric_transform="quantile").fit(X).to_config()
    with pytest.raises(ValueError, match="needs quantiles"):
        TabularEncoder.from_config(cfg)
    with pytest.raises(ValueError, match="non-decreasing"):
        TabularEncoder.from_config(cfg, np.tile([[2.0], [1.0]], (1, 4)))


# ----------------------------------------------------------------------------- piecewise embedding


def test_piecewise_embedding_matches_a_plain_reference():
    """e_j = Σ_t clip((x − b_{t−1}) / (b_t − b_{t−1}), 0, 1) W_{j,t} + b_j (Gorishniy et al. 2022),
    written out with numpy; a zero-width bin is a step (1 above its edge); ±3e38 stays finite."""
    from hopfield.estimators._hopular_net import _Embedding

    torch.manual_seed(0)
    emb = _Embedding(2, [], 4, 0.0, n_bins=3)
    edges = np.array([[-1.0, 0.0, 0.5, 2.0], [0.0, 1.0, 1.0, 3.0]], np.float32)
    emb.num_edges.copy_(torch.from_numpy(edges))
    x = np.array([[-5.0, 0.0], [0.25, 1.0], [1.0, 2.0], [3e38, -3e38]], np.float32)
    W, b = emb.num_ple.detach().numpy(), emb.num_b.detach().numpy()
    want = np.zeros((4, 2, 4))
    for r in range(4):
        for j in range(2):
            for t in range(3):
                lo, hi = float(edges[j, t]), float(edges[j, t + 1])  # float64: no overflow
                xr = float(x[r, j])
                u = 1.0 * (xr > hi) if hi == lo else min(max((xr - lo) / (hi - lo), 0), 1)
                want[r, j] += u * W[j, t]
            want[r, j] += b[j]
    absent = torch.zeros(4, 2, dtype=torch.bool)
    num = torch.from_numpy(x)
    got = emb.numeric(num)
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-5, atol=1e-6)
    assert torch.isfinite(emb(num, absent, torch.zeros(4, 0, dtype=torch.long))).all()


@pytest.mark.parametrize("cls", [HopularClassifier, HopularRegressor])
def test_piecewise_model_saves_and_loads_bit_identically(tmp_path, cls):
    X = _skewed(100)
    y = (np.nan_to_num(X[:, 0]) > 1).astype(int)
    est = cls(**{**TINY, "numeric_transform": "standard", "numeric_embedding": "piecewise"})
    est.fit(X, y if cls is HopularClassifier else y * 2.0 + X[:, 2])
    edges = est.module_.embed.num_edges.numpy()
    assert est.arch_["n_bins"] == 16 and edges.shape == (est.arch_["n_num"], 17)
    assert (np.diff(edges, axis=1) >= 0).all()
    new = np.vstack([X[:10], [[3e38, -3e38, 1e9, -4.0]]])
    pred = est.predict_proba(new) if cls is HopularClassifier else est.predict(new)
    assert np.isfinite(pred).all()
    est.save(tmp_path / "m")
    back = cls.load(tmp_path / "m")
    again = back.predict_proba(new) if cls is HopularClassifier else back.predict(new)
    np.testing.assert_array_equal(again, pred)
    with pytest.raises(ValueError, match="numeric_embedding"):
        cls(**{**TINY, "numeric_embedding": "spline"}).fit(X, y)
