"""Separation registry: every entry maps scores to probability rows; naive float64 references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hopfield import separations as S
from hopfield.separations import (
    Entmax,
    Separation,
    Softmax,
    Sparsemax,
    available_separations,
    get_separation,
    register_separation,
)


def naive_sparsemax(z: np.ndarray) -> np.ndarray:
    """Euclidean projection of each row onto the simplex (Martins & Astudillo, 2016), float64."""
    out = np.zeros_like(z, dtype=np.float64)
    for r, row in enumerate(z):
        srt = np.sort(row)[::-1]
        cssv = np.cumsum(srt)
        k = max(j for j in range(1, len(row) + 1) if 1 + j * srt[j - 1] > cssv[j - 1])
        tau = (cssv[k - 1] - 1) / k
        out[r] = np.maximum(row - tau, 0.0)
    return out


def naive_entmax(z: np.ndarray, alpha: float, iters: int = 200) -> np.ndarray:
    """α-entmax by bisection on τ: p_i = [(α−1) z_i − τ]_+^(1/(α−1)), Σ p_i = 1 (float64)."""
    out = np.zeros_like(z, dtype=np.float64)
    for r, row in enumerate((alpha - 1) * np.asarray(z, dtype=np.float64)):
        lo, hi = row.max() - 1.0, row.max()  # Σ p(lo) ≥ 1 ≥ Σ p(hi)
        for _ in range(iters):
            tau = (lo + hi) / 2
            total = (np.maximum(row - tau, 0) ** (1 / (alpha - 1))).sum()
            lo, hi = (tau, hi) if total >= 1 else (lo, tau)
        p = np.maximum(row - (lo + hi) / 2, 0) ** (1 / (alpha - 1))
        out[r] = p / p.sum()
    return out


ALL = [get_separation(n) for n in available_separations()] + [Entmax(1.3), Entmax(2.0)]


def test_registry_lists_the_built_ins():
    assert {"softmax", "sparsemax", "entmax"} <= set(available_separations())
    assert available_separations() == sorted(available_separations())
    assert get_separation().is_softmax and isinstance(get_separation(), Softmax)
    assert not Sparsemax().is_softmax and not Entmax().is_softmax


@pytest.mark.parametrize("sep", ALL, ids=repr)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 20), scale=st.floats(0.01, 50.0))
def test_every_entry_gives_probability_rows(sep, seed, n, scale):
    g = torch.Generator().manual_seed(seed)
    z = scale * torch.randn(4, n, generator=g, dtype=torch.float64)
    p = sep(z)
    assert p.shape == z.shape and bool((p >= 0).all())
    torch.testing.assert_close(p.sum(-1), torch.ones(4, dtype=torch.float64), atol=1e-6, rtol=0)
    # shift invariance and permutation equivariance
    torch.testing.assert_close(sep(z + 3.0), p, atol=1e-6, rtol=0)
    perm = torch.randperm(n, generator=g)
    torch.testing.assert_close(sep(z[:, perm]), p[:, perm], atol=1e-6, rtol=0)
    # the largest score gets the largest weight (monotone map)
    top = p.gather(-1, z.argmax(-1, keepdim=True))
    assert bool((top == p.max(-1, keepdim=True).values).all())


@pytest.mark.parametrize("sep", ALL, ids=repr)
def test_minus_inf_scores_get_zero_weight_and_zero_gradient(sep):
    z = torch.tensor([[1.0, float("-inf"), 0.5, 0.2]], dtype=torch.float64, requires_grad=True)
    p = sep(z)
    assert p[0, 1] == 0 and bool(torch.isfinite(p).all())
    p[0, 0].backward()
    assert bool(torch.isfinite(z.grad).all()) and z.grad[0, 1] == 0


def test_softmax_matches_naive():
    z = np.random.default_rng(0).normal(size=(5, 7)) * 4
    e = np.exp(z - z.max(-1, keepdims=True))
    np.testing.assert_allclose(Softmax()(torch.from_numpy(z)).numpy(), e / e.sum(-1, keepdims=True),
                               rtol=1e-12)


def test_sparsemax_matches_naive_and_is_sparse():
    z = np.random.default_rng(1).normal(size=(20, 9)) * 2
    got = Sparsemax()(torch.from_numpy(z)).numpy()
    np.testing.assert_allclose(got, naive_sparsemax(z), atol=1e-12)
    assert (got == 0).mean() > 0.3
    np.testing.assert_allclose(Entmax(2.0)(torch.from_numpy(z)).numpy(), got, atol=1e-12)


@pytest.mark.parametrize("alpha", [1.5, 1.3, 1.8])
def test_entmax_matches_naive_bisection(alpha):
    z = np.random.default_rng(2).normal(size=(10, 8)) * 2
    got = Entmax(alpha)(torch.from_numpy(z)).numpy()
    np.testing.assert_allclose(got, naive_entmax(z, alpha), atol=1e-6)
    assert (got == 0).any()


def test_entmax_interpolates_towards_softmax():
    z = torch.randn(6, 10, dtype=torch.float64)
    near_softmax = Entmax(1.01)(z)
    err_101 = (near_softmax - torch.softmax(z, -1)).abs().max()
    err_15 = (Entmax(1.5)(z) - torch.softmax(z, -1)).abs().max()
    assert err_101 < 0.02 and err_101 < err_15


def test_gradients_match_finite_differences():
    z = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    for sep in (Softmax(), Sparsemax(), Entmax(1.5)):  # bisection entmax: tolerance-limited
        assert torch.autograd.gradcheck(sep, (z,))


def test_get_separation_and_registration_errors():
    assert get_separation("entmax", alpha=1.3) == Entmax(1.3)
    assert repr(get_separation("entmax", alpha=1.3)) == "Entmax(alpha=1.3)"
    inst = Entmax(1.7)
    assert get_separation(inst) is inst
    assert hash(Entmax(1.7)) == hash(inst) and Entmax(1.7) != Entmax(1.6)
    with pytest.raises(ValueError, match=r"separation must be one of \['entmax', 'softmax', "
                                         r"'sparsemax'.*\], got 'gumbel'"):
        get_separation("gumbel")
    with pytest.raises(TypeError, match="separation must be a name or a Separation instance, got int"):
        get_separation(1)
    with pytest.raises(TypeError, match="keyword arguments are only accepted with a separation name"):
        get_separation(inst, alpha=1.2)
    with pytest.raises(ValueError, match=r"alpha must be in \(1, 2\], got 1"):
        Entmax(1.0)
    with pytest.raises(ValueError, match=r"alpha must be in \(1, 2\], got 2.5"):
        get_separation("entmax", alpha=2.5)
    with pytest.raises(TypeError, match="alpha must be a float, got str"):
        Entmax("1.5")
    with pytest.raises(ValueError, match="separation 'softmax' is already registered"):
        register_separation("softmax")(Softmax)


def test_registering_a_new_entry_makes_it_available():
    @register_separation("_test_hardmax")
    class Hardmax(Separation):
        def __call__(self, scores):
            return torch.nn.functional.one_hot(scores.argmax(-1), scores.shape[-1]).to(scores.dtype)

    try:
        assert "_test_hardmax" in available_separations()
        from hopfield import functional as HF

        x = torch.eye(3, dtype=torch.float64)
        out = HF.update(x + 0.1, x, 1.0, separation="_test_hardmax")
        torch.testing.assert_close(out, x)
    finally:
        S._REGISTRY.pop("_test_hardmax")
