"""DenseAssociativeMemory: energies against naive float64 code, descent, capacity, numerics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hopfield.memory import ClassicalHopfield, DenseAssociativeMemory, NotStoredError


def random_bipolar(rng, n, d):
    return rng.choice([-1.0, 1.0], size=(n, d))


def flip(rng, x, frac):
    out = x.copy()
    k = round(frac * x.shape[1])
    for row in out:
        row[rng.choice(x.shape[1], size=k, replace=False)] *= -1
    return out


def naive_energy(p, s, interaction, degree):
    """E(σ) = −Σ_μ F(x_μᵀσ) in float64; exponential in the log form −log Σ exp (see dense.py)."""
    z = s @ p.T
    if interaction == "polynomial":
        return -(z ** degree).sum(-1)
    m = z.max(-1, keepdims=True)
    return -(m[:, 0] + np.log(np.exp(z - m).sum(-1)))


KINDS = [("polynomial", 2), ("polynomial", 3), ("polynomial", 4), ("exponential", 3)]


@pytest.mark.parametrize("interaction,degree", KINDS)
def test_energy_matches_naive_reference(interaction, degree):
    rng = np.random.default_rng(0)
    p, s = random_bipolar(rng, 9, 20), random_bipolar(rng, 5, 20)
    mem = DenseAssociativeMemory(interaction, degree).store(torch.tensor(p))
    got = mem.energy(torch.tensor(s)).numpy()
    np.testing.assert_allclose(got, naive_energy(p, s, interaction, degree), rtol=1e-12)


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 30), d=st.integers(3, 24),
       kind=st.sampled_from(KINDS))
def test_descent_reaches_a_local_minimum(seed, n, d, kind):
    """Energy never increases, and at the end no single flip lowers the energy (naive check)."""
    interaction, degree = kind
    rng = np.random.default_rng(seed)
    p, q = random_bipolar(rng, n, d), random_bipolar(rng, 4, d)
    mem = DenseAssociativeMemory(interaction, degree, random_state=seed % 97).store(torch.tensor(p))
    out, info = mem.retrieve(torch.tensor(q), return_info=True)
    e = info.energy
    assert bool((e[1:] <= e[:-1] + 1e-9 * e.abs().max().clamp_min(1)).all()), e
    assert bool(info.converged.all())
    s = out.numpy()
    base = naive_energy(p, s, interaction, degree)
    for i in range(d):
        s2 = s.copy()
        s2[:, i] *= -1
        assert np.all(naive_energy(p, s2, interaction, degree) >= base - 1e-9 * np.abs(base).max())


@pytest.mark.parametrize("interaction,degree", KINDS + [("polynomial", 5)])
def test_unit_field_equals_naive_energy_difference(interaction, degree):
    """The quantity whose sign sets unit i equals E(σ_i = −1) − E(σ_i = +1) from the naive energy
    (halved for the polynomial form, which drops the common factor 2)."""
    rng = np.random.default_rng(11)
    p, s = random_bipolar(rng, 40, 12), random_bipolar(rng, 30, 12)
    mem = DenseAssociativeMemory(interaction, degree).store(torch.tensor(p))
    x = torch.tensor(p)
    for i in range(12):
        plus, minus = s.copy(), s.copy()
        plus[:, i], minus[:, i] = 1.0, -1.0
        ref = naive_energy(p, minus, interaction, degree) - naive_energy(p, plus, interaction, degree)
        a = torch.tensor(s) @ x.T - torch.tensor(s[:, i:i + 1]) * x[:, i]  # overlaps without unit i
        got = mem._field(a, x[:, i]).numpy()
        scale = 0.5 if interaction == "polynomial" else 1.0
        np.testing.assert_allclose(got, scale * ref, rtol=1e-10, atol=1e-9)


def test_polynomial_degree_2_is_hebbian():
    """F(z) = z² gives the Hebbian network: same fixed points from the same order."""
    rng = np.random.default_rng(1)
    p, q = random_bipolar(rng, 6, 64), random_bipolar(rng, 20, 64)
    dense = DenseAssociativeMemory("polynomial", 2, random_state=3).store(p).retrieve(q)
    hebb = ClassicalHopfield("hebbian", random_state=3).store(p).retrieve(q)
    np.testing.assert_array_equal(dense, hebb)


def recall(mem, n, d, seed, frac=0.05, n_queries=40):
    rng = np.random.default_rng(seed)
    p = random_bipolar(rng, n, d)
    q = flip(rng, p[:n_queries], frac)
    return float((mem.store(p).retrieve(q) == p[:n_queries]).all(axis=1).mean())


def test_polynomial_capacity_grows_like_d_to_the_n_minus_1():
    poly3 = DenseAssociativeMemory("polynomial", 3, random_state=0)
    # same load N / D² at D = 50 and D = 100 -> similar recall; the same N at D = 50 fails
    r50, r100 = recall(poly3, 100, 50, seed=0), recall(poly3, 400, 100, seed=0)
    assert r100 >= 0.6 and abs(r50 - r100) <= 0.25, (r50, r100)
    assert recall(poly3, 400, 50, seed=0) <= 0.2
    # far beyond the Hebbian limit 0.138·D at the same D
    assert recall(ClassicalHopfield("hebbian", random_state=0), 400, 100, seed=0) == 0.0
    # a steeper interaction stores more
    poly4 = DenseAssociativeMemory("polynomial", 4, random_state=0)
    assert recall(poly4, 400, 50, seed=0) >= 0.8


def test_exponential_retrieves_far_more_patterns_than_dimensions():
    mem = DenseAssociativeMemory("exponential", random_state=0)
    assert recall(mem, 1000, 32, seed=0, frac=0.1) >= 0.95  # N ≈ 31·D


def test_exponential_is_stable_where_exp_overflows():
    """Overlaps of 1000 overflow exp() even in float64; the log-sum-exp form does not care."""
    rng = np.random.default_rng(2)
    p = random_bipolar(rng, 50, 1000).astype(np.float32)
    mem = DenseAssociativeMemory("exponential", random_state=0).store(p)
    q = flip(rng, p[:5], 0.3)
    out, info = mem.retrieve(q, return_info=True)
    np.testing.assert_array_equal(out, p[:5])
    assert bool(torch.isfinite(info.energy).all())
    e = mem.energy(p[:5])
    assert np.all(np.isfinite(e)) and np.allclose(e, -1000.0, atol=1e-3)


@pytest.mark.parametrize("interaction", ["polynomial", "exponential"])
def test_add_appends_and_equals_store_of_concatenation(interaction):
    rng = np.random.default_rng(3)
    a, b = random_bipolar(rng, 10, 30), random_bipolar(rng, 5, 30)
    q = flip(rng, np.vstack([a, b]), 0.1)
    m1 = DenseAssociativeMemory(interaction, random_state=1).store(a).add(b)
    m2 = DenseAssociativeMemory(interaction, random_state=1).store(np.vstack([a, b]))
    assert m1.n_patterns_ == 15
    torch.testing.assert_close(m1.patterns_, m2.patterns_)
    np.testing.assert_array_equal(m1.retrieve(q), m2.retrieve(q))


def test_numpy_and_torch_round_trip_and_single_query():
    rng = np.random.default_rng(4)
    p = random_bipolar(rng, 5, 16)
    mem = DenseAssociativeMemory(random_state=0).store(p)
    out = mem.retrieve(p[0])
    assert isinstance(out, np.ndarray) and out.shape == (16,) and out.dtype == np.float64
    np.testing.assert_array_equal(out, p[0])
    t = mem.retrieve(torch.tensor(p[:2], dtype=torch.float32))
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32 and t.shape == (2, 16)


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match=r"interaction must be one of \['polynomial', "
                                         r"'exponential'\], got 'cubic'"):
        DenseAssociativeMemory("cubic")
    with pytest.raises(ValueError, match="degree must be >= 2, got 1"):
        DenseAssociativeMemory(degree=1)
    with pytest.raises(TypeError, match="degree must be an int"):
        DenseAssociativeMemory(degree=2.5)
    mem = DenseAssociativeMemory()
    with pytest.raises(NotStoredError):
        mem.retrieve(np.ones(3))
    with pytest.raises(ValueError, match=r"patterns must have entries in \{-1, \+1\}"):
        mem.store(np.array([[1.0, 2.0]]))
    with pytest.raises(ValueError, match="patterns must be finite"):
        mem.store(torch.tensor([[1.0, float("inf")]]))
    mem.store(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"queries must have shape \(L, 3\) or \(3,\), got \(4\)"):
        mem.retrieve(np.ones(4))
    with pytest.raises(ValueError, match="queries must be finite"):
        mem.retrieve(np.array([1.0, np.nan, 1.0]))
    with pytest.raises(ValueError, match=r"states must have shape \(L, 3\)"):
        mem.energy(np.ones((1, 2)))
    assert repr(mem) == "DenseAssociativeMemory(interaction='polynomial', degree=3, n_patterns_=2)"


def test_max_iter_is_a_deprecated_alias_of_max_steps():
    with pytest.warns(FutureWarning, match="max_iter is deprecated.*use max_steps"):
        mem = DenseAssociativeMemory(max_iter=4)
    assert mem.max_steps == 4 and mem.max_iter == 4
