"""MIL ensembles as one batched network (issue 10, build item 1): ``_BatchedMILNet`` against the
ordinary ``MILNet`` of each member (float64, outputs, association weights and gradients), for
every pooling; padded bags and bags of one instance; the K = 1 path; save/load; and a fit with the
loop vs the batched network on the same draws."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hopfield.estimators import HopfieldMILClassifier
from hopfield.estimators._ensemble import StackedEnsemble
from hopfield.estimators.mil import _BatchedMILNet, pad_bags
from hopfield.reproduce.mil_baselines import MILNetClassifier

POOLINGS = ("hopfield", "attention", "gated", "mean", "max")
SMALL = {"embedding_size": 12, "n_layers": 2, "max_iter": 1, "batch_size": 4}


def estimator(pooling, **kw):
    kw = {**SMALL, **kw}
    if pooling.startswith("hopfield"):      # "hopfield-plain": no LayerNorms (normalize=False)
        return HopfieldMILClassifier(num_heads=3, head_size=4, normalize=pooling == "hopfield",
                                     **kw)
    return MILNetClassifier(pooling=pooling, attention_size=5, **kw)


def bags_of(lengths, d=5, seed=0):
    rng = np.random.RandomState(seed)
    return [rng.randn(n, d) for n in lengths]


def built(pooling, k=3, n_classes=2, d=5, seed=0, **kw):
    """A K-member module as fit builds it (own seed per member), in float64 eval mode."""
    est = estimator(pooling, n_members=k, random_state=seed, **kw)
    est._resolve_params(warn=False)
    est.n_features_in_ = d
    net = est._build_module(None, n_classes, torch.Generator().manual_seed(seed)).double().eval()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():    # move every weight off its initial value (LayerNorm γ = 1, β = 0, ...)
        for p in net.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return net


def padded(lengths, d=5, seed=0, extra=0):
    X, mask = pad_bags([b.astype(np.float32) for b in bags_of(lengths, d, seed)])
    if extra:   # more padding columns with garbage values: must not change anything
        X = np.concatenate([X, np.full((len(X), extra, d), 7.0, np.float32)], 1)
        mask = np.concatenate([mask, np.ones((len(X), extra), bool)], 1)
    return torch.from_numpy(X).double(), torch.from_numpy(mask)


def tol(what):
    return {"atol": 1e-10, "rtol": 1e-9} if what == "float64" else {"atol": 1e-5, "rtol": 1e-4}


@pytest.mark.parametrize("lengths", [[1, 4, 2, 7, 3], [3, 3]])      # padded (packed) / none
@pytest.mark.parametrize("pooling", [*POOLINGS, "hopfield-plain"])
def test_every_pooling_is_batched_and_member_m_is_milnet_m(pooling, lengths):
    net = built(pooling, k=3)
    assert type(net) is _BatchedMILNet and net.n_members == 3
    X, mask = padded(lengths)                                  # incl. a bag of one instance
    Xs, Ms = X.expand(3, *X.shape).clone().requires_grad_(True), mask.expand(3, *mask.shape)
    out = net(Xs, Ms, return_weights=pooling not in ("mean", "max"))
    out, w = out if isinstance(out, tuple) else (out, None)
    g = torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(1))
    (out * g).sum().backward()
    stacked = dict(net.named_parameters())
    for m in range(3):
        ref_net = net.member(m).double().eval()
        x = X.clone().requires_grad_(True)
        ref, rw = ref_net(x, mask, True)
        torch.testing.assert_close(out[m], ref, **tol("float64"))
        if w is not None:
            torch.testing.assert_close(w[m], rw, **tol("float64"))
            assert torch.allclose(rw.sum(-1), torch.ones((), dtype=rw.dtype))
        (ref * g[m]).sum().backward()
        torch.testing.assert_close(Xs.grad[m], x.grad, **tol("float64"))
        for name, p in ref_net.named_parameters():
            torch.testing.assert_close(stacked[name.replace(".", "__")].grad[m], p.grad,
                                       **tol("float64"), msg=lambda s, n=name: f"{n}: {s}")
    assert not torch.allclose(out[0], out[1])                  # members differ (own seeds)


def test_padding_and_a_bag_of_one():
    net = built("hopfield", k=2)
    X, mask = padded([1, 3, 1])
    Xp, maskp = padded([1, 3, 1], extra=4)
    a = net(X.expand(2, *X.shape), mask.expand(2, *mask.shape))
    b = net(Xp.expand(2, *Xp.shape), maskp.expand(2, *maskp.shape))
    torch.testing.assert_close(a, b, **tol("float64"))
    one = net(X[:1, :1].expand(2, 1, 1, 5), mask[:1, :1].expand(2, 1, 1))   # B = N = 1
    torch.testing.assert_close(one, a[:, :1], **tol("float64"))
    assert torch.isfinite(a).all()


@settings(max_examples=15, deadline=None)
@given(lengths=st.lists(st.integers(1, 6), min_size=1, max_size=5), k=st.integers(2, 4),
       seed=st.integers(0, 2**16), pooling=st.sampled_from(POOLINGS))
def test_members_equal_milnets_property(lengths, k, seed, pooling):
    """Any bag lengths, member counts and seeds; each member sees its own bags (different inputs
    and masks per member, as the training loop's own mini-batches; members' kept instances are
    packed to the largest member's count)."""
    net = built(pooling, k=k, seed=seed % 7)
    per = [padded(lengths, seed=seed + m) for m in range(k)]
    n = max(x.shape[1] for x, _ in per)
    X = torch.stack([torch.nn.functional.pad(x, (0, 0, 0, n - x.shape[1])) for x, _ in per])
    M = torch.stack([torch.nn.functional.pad(m, (0, n - m.shape[1]), value=True) for _, m in per])
    out = net(X, M)
    for m in range(k):
        torch.testing.assert_close(out[m], net.member(m).double().eval()(*per[m]),
                                   **tol("float64"))


def test_dropout_masks_are_per_member():
    """Identical members in training mode: own dropout (embedding, association, head) masks,
    so outputs differ; without dropout they are equal (and equal to eval mode)."""
    for dropout, same in ((0.5, False), (0.0, True)):
        net = built("hopfield", k=3, dropout=dropout)
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(p[:1].expand_as(p))
        X, mask = padded([3, 5, 2, 4])
        out = net.train()(X.expand(3, *X.shape), mask.expand(3, *mask.shape))
        assert torch.allclose(out[0], out[1]) is same and torch.allclose(out[1], out[2]) is same


def test_which_module_runs_the_members():
    assert type(built("hopfield", k=1)) is StackedEnsemble          # K = 1: today's path
    assert type(built("hopfield", k=2)) is _BatchedMILNet
    est = estimator("hopfield", n_members=3, random_state=0)
    est._resolve_params(warn=False)
    est.n_features_in_ = 5
    for mode, cls in (("loop", StackedEnsemble), ("batched", _BatchedMILNet)):
        est._ensemble_forward = mode
        assert type(est._build_module(None, 2, None)) is cls
    est._ensemble_forward = "vmap"
    assert est._build_module(None, 2, None).vectorize is True
    est._ensemble_forward = "bogus"
    with pytest.raises(ValueError, match="_ensemble_forward must be 'auto', 'batched', 'loop' or "
                                         "'vmap', got 'bogus'"):
        est._build_module(None, 2, None)
    # same parameter names and (M, ...) shapes as StackedEnsemble's stacked state
    est._ensemble_forward = "loop"
    loop = est._build_module(None, 2, torch.Generator().manual_seed(0))
    est._ensemble_forward = "batched"
    bat = est._build_module(None, 2, torch.Generator().manual_seed(0))
    assert {k: v.shape for k, v in loop.state_dict().items()} == \
        {k: v.shape for k, v in bat.state_dict().items()}
    for a, b in zip(loop.state_dict().values(), bat.state_dict().values()):
        torch.testing.assert_close(a, b, atol=0, rtol=0)            # same seeds, same weights


def make_task(n_bags=36, d=4, seed=0):
    rng = np.random.RandomState(seed)
    bags, y = [], np.arange(n_bags) % 2
    for c in y:
        b = rng.randn(rng.randint(1, 7), d)
        if c:
            b[rng.randint(len(b)), 0] += 4.0
        bags.append(b)
    return bags, y


@pytest.mark.parametrize("pooling", ["hopfield", "attention"])
def test_loop_and_batched_fits_agree(pooling):
    """Same seeds, no dropout: the loop and the batched network see the same initialisation,
    validation parts, batches and stopping rule, so they fit the same model (up to float32
    rounding) with the same best epoch per member."""
    bags, y = make_task()
    fits = []
    for mode in ("loop", "batched"):
        est = estimator(pooling, n_members=3, max_iter=6, n_iter_no_change=6, dropout=0.0,
                        bag_dropout=0.0, learning_rate=3e-3, scoring="loss", random_state=0)
        est._ensemble_forward = mode
        fits.append(est.fit(bags, y))
    a, b = fits
    assert type(a.module_) is StackedEnsemble and type(b.module_) is _BatchedMILNet
    np.testing.assert_array_equal(a.best_iteration_, b.best_iteration_)
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-4)
    np.testing.assert_allclose(a.predict_proba(bags), b.predict_proba(bags), atol=1e-4)


def test_batched_fit_save_load_round_trip(tmp_path):
    bags, y = make_task()
    clf = HopfieldMILClassifier(embedding_size=12, num_heads=2, head_size=4, max_iter=5,
                                n_members=3, random_state=0).fit(bags, y)
    assert type(clf.module_) is _BatchedMILNet and clf.best_iteration_.shape == (3,)
    ref = clf.predict_proba(bags)
    X, mask = pad_bags([((b - clf.scaler_.mean) / clf.scaler_.scale).astype(np.float32)
                        for b in bags])
    with torch.no_grad():
        probs = [torch.softmax(clf.module_.member(m).eval()(torch.from_numpy(X),
                                                             torch.from_numpy(mask)).double(), -1)
                 for m in range(3)]
    np.testing.assert_allclose(ref, torch.stack(probs).mean(0).numpy(), atol=1e-6)  # mean of members
    clf.save(tmp_path / "m")
    back = HopfieldMILClassifier.load(tmp_path / "m")
    assert type(back.module_) is _BatchedMILNet
    np.testing.assert_array_equal(back.predict_proba(bags), ref)
    w, wb = clf.instance_weights(bags[:4]), back.instance_weights(bags[:4])
    for a, b in zip(w, wb):
        np.testing.assert_array_equal(a, b)
    # a K = 3 model saved by the loop (StackedEnsemble) loads into the batched network
    loop = HopfieldMILClassifier(embedding_size=12, num_heads=2, head_size=4, max_iter=5,
                                 n_members=3, random_state=1)
    loop._ensemble_forward = "loop"
    loop.fit(bags, y)
    loop.save(tmp_path / "loop")
    back = HopfieldMILClassifier.load(tmp_path / "loop")
    assert type(back.module_) is _BatchedMILNet
    np.testing.assert_allclose(back.predict_proba(bags), loop.predict_proba(bags), atol=1e-6)
