"""hopfield.losses against float64 loops written from the formulas of the module docstring."""

import math

import pytest
import torch

from hopfield import losses as HL

# ----------------------------------------------------------------------------- references


def _unit(v):
    n = math.sqrt(sum(a * a for a in v))
    return [a / n for a in v]


def _dot(a, b):
    return sum(p * q for p, q in zip(a, b))


def _lse(vals):
    m = max(vals)
    return m + math.log(sum(math.exp(v - m) for v in vals))


def _retrieve(state, stored, beta):
    """One Hopfield update ξ ← X softmax(β Xᵀ ξ) for one state, renormalised."""
    scores = [beta * _dot(x, state) for x in stored]
    z = _lse(scores)
    p = [math.exp(s - z) for s in scores]
    out = [sum(p[i] * stored[i][d] for i in range(len(stored))) for d in range(len(state))]
    return _unit(out)


def ref_loss(x, y, inv_tau, *, loo, beta=None, mask=None):
    """The module docstring's formulas as Python loops over floats."""
    x = [_unit(r) for r in x.tolist()]
    y = [_unit(r) for r in y.tolist()]
    n = len(x)
    if beta is None:
        a, b, c, d = x, y, x, y
    else:
        a = [_retrieve(xi, x, beta) for xi in x]  # U_x
        b = [_retrieve(yi, x, beta) for yi in y]  # U_y
        c = [_retrieve(xi, y, beta) for xi in x]  # V_x
        d = [_retrieve(yi, y, beta) for yi in y]  # V_y
    m = (lambda i, j: False) if mask is None else (lambda i, j: bool(mask[i, j]))
    t1 = t2 = 0.0
    for i in range(n):
        neg1 = [inv_tau * _dot(a[i], b[j]) for j in range(n)
                if not (loo and j == i) and not m(i, j)]
        neg2 = [inv_tau * _dot(c[j], d[i]) for j in range(n)
                if not (loo and j == i) and not m(j, i)]
        t1 += _lse(neg1) - inv_tau * _dot(a[i], b[i])
        t2 += _lse(neg2) - inv_tau * _dot(c[i], d[i])
    return t1 / n + t2 / n


def _pairs(n=6, d=5, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g, dtype=dtype),
            torch.randn(n, d, generator=g, dtype=dtype))


CASES = [
    ("info_nce", {"loo": False}),
    ("info_loob", {"loo": True}),
    ("nce_hopfield", {"loo": False, "beta": 3.0}),
    ("cloob", {"loo": True, "beta": 3.0}),
]


def _call(name, x, y, inv_tau, **kw):
    if name == "info_nce":
        return HL.info_nce(x, y, inv_tau, **kw)
    if name == "info_loob":
        return HL.info_loob(x, y, inv_tau, **kw)
    if name == "nce_hopfield":
        return HL.info_nce(x, y, inv_tau, beta=3.0, **kw)
    return HL.cloob(x, y, inv_tau, 3.0, **kw)


@pytest.mark.parametrize("name,ref", CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_float64_reference(name, ref, seed):
    x, y = _pairs(seed=seed)
    got = float(_call(name, x, y, 7.0))
    want = ref_loss(x, y, 7.0, **ref)
    assert abs(got - want) <= 1e-6, (name, got, want, got - want)


@pytest.mark.parametrize("name,ref", CASES)
def test_float32_close_to_reference(name, ref):
    x, y = _pairs(seed=3)
    got = float(_call(name, x.float(), y.float(), 14.3))
    want = ref_loss(x, y, 14.3, **ref)
    assert abs(got - want) <= 1e-4 * max(1.0, abs(want)), (got, want)


@pytest.mark.parametrize("name,ref", CASES)
def test_masked_pairs_match_reference(name, ref):
    x, y = _pairs(n=5, seed=4)
    mask = torch.zeros(5, 5, dtype=torch.bool)
    mask[0, 3] = mask[2, 1] = mask[4, 0] = True
    got = float(_call(name, x, y, 5.0, mask=mask))
    want = ref_loss(x, y, 5.0, mask=mask, **ref)
    assert abs(got - want) <= 1e-6, (got, want)
    assert abs(got - float(_call(name, x, y, 5.0))) > 1e-6  # the mask changes the loss


def test_cloob_defaults_and_retrieval_orientation():
    x, y = _pairs(n=4, d=3, seed=5)
    got = float(HL.cloob(x, y))
    assert abs(got - ref_loss(x, y, 14.3, loo=True, beta=14.3)) <= 1e-6
    ux, uy, vx, vy = HL.hopfield_retrieval(x, y, 2.0)
    xn = torch.nn.functional.normalize(x, dim=-1)
    yn = torch.nn.functional.normalize(y, dim=-1)
    # U_y: y-queries over the x memory -> a convex combination of x rows (renormalised)
    w = torch.softmax(2.0 * yn @ xn.T, -1)
    assert torch.allclose(uy, torch.nn.functional.normalize(w @ xn, dim=-1))
    w = torch.softmax(2.0 * xn @ yn.T, -1)
    assert torch.allclose(vx, torch.nn.functional.normalize(w @ yn, dim=-1))
    for t in (ux, uy, vx, vy):
        assert torch.allclose(t.norm(dim=-1), torch.ones(4, dtype=t.dtype))


def test_duplicates_in_batch_are_finite_and_match_reference():
    x, y = _pairs(n=4, seed=6)
    x[1], y[1] = x[0], y[0]  # pair 1 duplicates pair 0
    for name, ref in CASES:
        got = _call(name, x, y, 10.0)
        assert torch.isfinite(got)
        assert abs(float(got) - ref_loss(x, y, 10.0, **ref)) <= 1e-6
    # masking the duplicate as a negative removes the false-negative penalty
    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[0, 1] = mask[1, 0] = True
    assert float(HL.info_loob(x, y, 10.0, mask=mask)) < float(HL.info_loob(x, y, 10.0))


@pytest.mark.parametrize("name", ["info_nce", "info_loob", "nce_hopfield", "cloob"])
def test_gradcheck(name):
    x, y = _pairs(n=4, d=3, seed=7)
    x.requires_grad_(True)
    y.requires_grad_(True)
    t = torch.tensor(4.0, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, s: _call(name, a, b, s), (x, y, t))


def test_gradcheck_learnable_beta():
    x, y = _pairs(n=4, d=3, seed=8)
    x.requires_grad_(True)
    b = torch.tensor(2.5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, beta: HL.cloob(a, y, 6.0, beta), (x, b))


def test_modules_learn_temperature_and_beta():
    x, y = _pairs(n=6, d=4, seed=9)
    for mod in (HL.InfoNCE(), HL.InfoLOOB(), HL.InfoNCE(beta=14.3), HL.CLOOBLoss(learn_beta=True)):
        loss = mod(x, y)
        loss.backward()
        assert mod.log_inverse_temperature.grad is not None
        assert abs(float(mod.inverse_temperature.detach()) - 14.3) < 1e-5
    mod = HL.CLOOBLoss(learn_beta=True)
    mod(x, y).backward()
    assert mod.log_beta.grad is not None and float(mod.beta.detach()) == pytest.approx(14.3)
    fixed = HL.CLOOBLoss(learn_temperature=False)
    assert [n for n, _ in fixed.named_parameters()] == []
    assert float(fixed(x, y).detach()) == pytest.approx(float(HL.cloob(x, y)), abs=1e-6)
    assert float(HL.InfoLOOB(3.0)(x, y).detach()) == pytest.approx(float(HL.info_loob(x, y, 3.0)), abs=1e-6)
    assert "beta=14.3" in repr(HL.CLOOBLoss())


def test_normalize_false_uses_raw_embeddings():
    x, y = _pairs(n=3, d=2, seed=10)
    s = x @ y.T
    want = (torch.logsumexp(s, 1) - s.diagonal()).mean() + (torch.logsumexp(s, 0)
                                                            - s.diagonal()).mean()
    assert float(HL.info_nce(x, y, 1.0, normalize=False)) == pytest.approx(float(want))


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("fn", [HL.info_nce, HL.info_loob, HL.cloob])
def test_bad_input(fn):
    x, y = _pairs(n=4, d=3)
    with pytest.raises(ValueError, match="same embedding dim"):
        fn(x, y[:, :2])
    with pytest.raises(ValueError, match="same number of pairs"):
        fn(x, y[:3])
    with pytest.raises(ValueError, match="at least 2 pairs"):
        fn(x[:1], y[:1])
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="x must be finite"):
        fn(bad, y)
    bad[0, 0] = float("inf")
    with pytest.raises(ValueError, match="y must be finite"):
        fn(x, bad)
    for v in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="inverse_temperature must be > 0"):
            fn(x, y, v)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        fn(x.numpy(), y)
    with pytest.raises(ValueError, match=r"x must have shape \(N, D\)"):
        fn(x[None], y)
    with pytest.raises(TypeError, match="share a dtype"):
        fn(x, y.float())
    with pytest.raises(TypeError, match="floating-point"):
        fn(x.long(), y.long())
    with pytest.raises(ValueError, match="diagonal"):
        fn(x, y, mask=torch.eye(4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask must have shape \(4, 4\)"):
        fn(x, y, mask=torch.zeros(4, dtype=torch.bool))
    with pytest.raises(TypeError, match="torch.bool"):
        fn(x, y, mask=torch.zeros(4, 4))


def test_bad_beta_and_loob_without_negatives():
    x, y = _pairs(n=3, d=3)
    for v in (0.0, -2.0, float("inf")):
        with pytest.raises(ValueError, match="beta must be > 0"):
            HL.cloob(x, y, 14.3, v)
        with pytest.raises(ValueError, match="beta must be > 0"):
            HL.info_nce(x, y, beta=v)
    with pytest.raises(TypeError, match="beta must be a float"):
        HL.cloob(x, y, 14.3, None)
    with pytest.raises(ValueError, match="0-d tensor"):
        HL.info_nce(x, y, torch.ones(2, dtype=torch.float64))
    mask = ~torch.eye(3, dtype=torch.bool)
    with pytest.raises(ValueError, match="without any negative"):
        HL.info_loob(x, y, mask=mask)
    assert torch.isfinite(HL.info_nce(x, y, mask=mask))  # InfoNCE keeps the positive
    with pytest.raises(ValueError, match="inverse_temperature must be > 0"):
        HL.InfoNCE(0.0)
    with pytest.raises(ValueError, match="<= 100"):
        HL.InfoNCE(1000.0)
    with pytest.raises(ValueError, match="beta must be > 0"):
        HL.CLOOBLoss(beta=-1.0)
    with pytest.raises(ValueError, match="learn_beta"):
        HL.InfoNCE(learn_beta=True)
    with pytest.raises(TypeError, match="CLOOBLoss"):
        HL.CLOOBLoss(beta=None)
