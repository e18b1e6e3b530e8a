"""Hopular's ``feed_forward`` option: 0 is the paper's block (no module, the same network and
fit as before the option existed), m > 0 adds a per-token MLP E -> m·E -> E to every block,
checked against a plain reimplementation; it trains, saves and loads; bad values raise."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import make_regression

from hopfield.estimators._hopular_net import HopularNet
from hopfield.estimators.hopular import HopularClassifier, HopularRegressor

TINY = {"embedding_size": 8, "num_blocks": 2, "num_heads": 2, "head_size": 4, "max_iter": 3,
        "anneal_iter": 1, "n_iter_no_change": 3, "random_state": 0, "n_members": 1}


@pytest.fixture(scope="module")
def data():
    X, y = make_regression(n_samples=140, n_features=4, noise=0.1, random_state=0)
    return X[:100], y[:100], X[100:]


def test_zero_is_the_papers_block(data):
    Xtr, ytr, Xte = data
    a = HopularRegressor(**TINY).fit(Xtr, ytr)
    b = HopularRegressor(**TINY, feed_forward=0).fit(Xtr, ytr)
    assert all(blk.ff is None for blk in a.module_.blocks)
    assert not any(".ff." in n for n, _ in a.module_.named_parameters())
    np.testing.assert_array_equal(a.predict(Xte), b.predict(Xte))


@pytest.mark.parametrize("m", [1, 4])
def test_block_output_matches_a_plain_mlp(m):
    torch.manual_seed(0)
    net = HopularNet(3, [2], target=3, embedding_size=6, num_blocks=1, num_heads=2,
                     head_size=4, dropout=0.0, feed_forward=m).eval()
    blk = net.blocks[0]
    assert blk.ff[1].weight.shape == (m * 6, 6) and blk.ff[4].weight.shape == (6, m * 6)
    x, x0, mem = torch.randn(5, 4, 6), torch.randn(5, 4, 6), torch.randn(7, 24)
    got = blk(x, x0, mem)
    ln, l1, l2 = blk.ff[0], blk.ff[1], blk.ff[4]
    blk.ff = None  # the same block without the MLP, then the MLP by hand in float64
    t = blk(x, x0, mem).double()
    h = torch.nn.functional.layer_norm(t, (6,), ln.weight.double(), ln.bias.double(), ln.eps)
    h = torch.nn.functional.gelu(h @ l1.weight.double().T + l1.bias.double())
    want = t + h @ l2.weight.double().T + l2.bias.double()
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)


def test_trains_saves_and_loads(data, tmp_path):
    Xtr, ytr, Xte = data
    est = HopularRegressor(**TINY, feed_forward=2).fit(Xtr, ytr)
    assert all(blk.ff is not None for blk in est.module_.blocks)
    pred = est.predict(Xte)
    assert np.isfinite(pred).all()
    est.save(tmp_path / "m")
    back = HopularRegressor.load(tmp_path / "m")
    assert back.feed_forward == 2
    np.testing.assert_allclose(back.predict(Xte), pred, rtol=1e-5, atol=1e-6)
    # the streamed prediction path (chunks smaller than the memory) uses the MLP as well
    np.testing.assert_allclose(est.set_params(chunk_size=7).predict(Xte), pred, rtol=1e-4,
                               atol=1e-5)


@pytest.mark.parametrize("bad", [-1, 1.5, "4", None])
def test_bad_feed_forward_raises_naming_it(data, bad):
    Xtr, ytr, _ = data
    with pytest.raises((ValueError, TypeError), match="feed_forward"):
        HopularClassifier(**{**TINY, "feed_forward": bad}).fit(Xtr, ytr > 0)
