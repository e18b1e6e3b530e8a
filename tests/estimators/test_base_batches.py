"""The shared training loop's mini-batches (length buckets) and its host reads (one per epoch)."""

from __future__ import annotations

import traceback

import numpy as np
import pytest
import torch

from hopfield.estimators import HopfieldMILClassifier


def _est(**kw):
    est = HopfieldMILClassifier(batch_size=4, random_state=0, **kw)
    est._resolve_params()
    return est


def _batches(est, lengths, n_members=1, seed=0):
    n = len(lengths)
    holdout = np.zeros((n_members, n), dtype=bool)
    train_idx = [np.arange(n)] * n_members
    rng = np.random.RandomState(seed)
    return [idx for idx, _ in est._epoch_batches(train_idx, holdout, rng, None, lengths)]


def _padding_share(batches, lengths):
    real = sum(lengths[b].sum() for b in batches)
    padded = sum(lengths[b].max(axis=1).sum() * b.shape[1] for b in batches)
    return real / padded


@pytest.mark.parametrize("n_members", [1, 3])
def test_buckets_cover_every_sample_once_and_pad_less(n_members):
    lengths = np.random.RandomState(1).lognormal(2.0, 1.5, size=64).astype(np.int64) + 1
    est = _est(n_members=n_members)
    bucketed = _batches(est, lengths, n_members)
    est._length_buckets = 0
    plain = _batches(est, lengths, n_members)
    for batches in (bucketed, plain):
        seen = np.concatenate(batches, axis=1)            # (M, n)
        assert all(sorted(row) == list(range(64)) for row in seen)
    assert _padding_share(bucketed, lengths) > 1.5 * _padding_share(plain, lengths)


def test_buckets_are_seeded_and_vary_between_epochs():
    lengths = np.arange(1, 41)
    est = _est()
    a, b = _batches(est, lengths, seed=3), _batches(est, lengths, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    rng = np.random.RandomState(3)
    holdout = np.zeros((1, 40), dtype=bool)
    e1 = [i for i, _ in est._epoch_batches([np.arange(40)], holdout, rng, None, lengths)]
    e2 = [i for i, _ in est._epoch_batches([np.arange(40)], holdout, rng, None, lengths)]
    assert not all(np.array_equal(x, y) for x, y in zip(e1, e2))   # not one fixed batch order


def test_equal_lengths_keep_batches_random():
    """Jitter only reorders by length: equal-length bags are batched as randomly as without it."""
    lengths = np.full(40, 7)
    est = _est()
    groups = {tuple(sorted(b[0])) for seed in range(5) for b in _batches(est, lengths, seed=seed)}
    assert len(groups) > 30


def _mil_data(n=24, seed=0):
    rng = np.random.RandomState(seed)
    bags = [rng.normal(size=(rng.randint(1, 9), 3)) for _ in range(n)]
    y = np.array([i % 2 for i in range(n)])
    for b, t in zip(bags, y):
        b[0, 0] += 3.0 * t
    return bags, y


def test_fit_is_deterministic_with_buckets():
    bags, y = _mil_data()
    kw = {"embedding_size": 8, "head_size": 4, "num_heads": 1, "max_iter": 4, "random_state": 5}
    p1 = HopfieldMILClassifier(**kw).fit(bags, y).predict_proba(bags)
    p2 = HopfieldMILClassifier(**kw).fit(bags, y).predict_proba(bags)
    np.testing.assert_array_equal(p1, p2)


@pytest.mark.parametrize(("early_stopping", "scoring"),
                         [(True, "loss"), (False, "loss"), (True, "roc_auc"), (False, "roc_auc")])
def test_one_host_read_per_epoch(monkeypatch, early_stopping, scoring):
    """The loop sums the losses on the device; reads back once per epoch (loss + validation +
    the early-stopping numbers, e.g. the validation ROC AUC computed on the device)."""
    bags, y = _mil_data()
    reads = []
    original = {n: getattr(torch.Tensor, n) for n in ("item", "__float__", "tolist", "numpy")}

    def counted(name):
        def f(self, *a, **k):
            caller = traceback.extract_stack(limit=2)[0]
            # torch.optim reads its step counters, which live on the host even for CUDA
            # parameters (not a device sync); _build_module draws the member seeds from a CPU
            # generator once, before training.
            if "torch/optim" not in caller.filename and caller.name != "_build_module":
                reads.append(f"{name} in {caller.name} ({caller.filename}:{caller.lineno})")
            return original[name](self, *a, **k)
        return f

    est = HopfieldMILClassifier(embedding_size=8, head_size=4, num_heads=1, max_iter=5,
                                n_iter_no_change=50, early_stopping=early_stopping, random_state=0,
                                scoring=scoring)
    for name in original:
        monkeypatch.setattr(torch.Tensor, name, counted(name))
    est.fit(bags, y)
    monkeypatch.undo()
    assert est.n_iter_ == 5
    assert len(reads) == 5, reads


def test_buckets_only_where_padding_dominates():
    """Random batches of bags of similar length are mostly real entries: no buckets, and the fit
    is bit-identical to one with buckets switched off (the random stream is not touched)."""
    from hopfield.estimators._base import _random_batch_share

    assert _random_batch_share(np.full(20, 5), 4) == 1.0
    assert _random_batch_share(np.array([1] * 30 + [100] * 2), 8) < 0.25
    bags, y = _mil_data()                       # 1-8 instances: share above the 0.25 threshold
    kw = {"embedding_size": 8, "head_size": 4, "num_heads": 1, "max_iter": 3, "random_state": 2}
    a = HopfieldMILClassifier(**kw)
    b = HopfieldMILClassifier(**kw)
    b._length_buckets = 0
    np.testing.assert_array_equal(a.fit(bags, y).predict_proba(bags), b.fit(bags, y).predict_proba(bags))
    c = HopfieldMILClassifier(**kw)
    c._length_buckets_below = 1.01              # force buckets: another batch draw
    assert not np.array_equal(c.fit(bags, y).predict_proba(bags), a.predict_proba(bags))
