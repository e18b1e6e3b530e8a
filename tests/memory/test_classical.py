"""ClassicalHopfield: learning rules against naive references, dynamics, capacity, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hopfield.memory import ClassicalHopfield, NotStoredError


def random_bipolar(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    return rng.choice([-1.0, 1.0], size=(n, d))


def flip(rng: np.random.Generator, x: np.ndarray, frac: float) -> np.ndarray:
    """Flip exactly round(frac * D) random bits of every row."""
    out = x.copy()
    k = round(frac * x.shape[1])
    for row in out:
        row[rng.choice(x.shape[1], size=k, replace=False)] *= -1
    return out


def naive_storkey(patterns: np.ndarray) -> np.ndarray:
    """Storkey (1997), element by element in float64: h_ij = Σ_{k≠i,j} w_ik x_k."""
    _n, d = patterns.shape
    w = np.zeros((d, d))
    for x in patterns:
        h = np.array([[sum(w[i, k] * x[k] for k in range(d) if k not in (i, j))
                       for j in range(d)] for i in range(d)])
        new = w.copy()
        for i in range(d):
            for j in range(d):
                if i != j:
                    new[i, j] = w[i, j] + (x[i] * x[j] - x[i] * h[j, i] - h[i, j] * x[j]) / d
        w = new
    return w


# ----------------------------------------------------------------------------- weights


def test_hebbian_weights_match_outer_product_sum():
    rng = np.random.default_rng(0)
    p = random_bipolar(rng, 7, 30)
    w = ClassicalHopfield().store(p).weights_.double().numpy()
    ref = p.T @ p / 30
    np.fill_diagonal(ref, 0)
    np.testing.assert_allclose(w, ref, atol=1e-6)
    assert np.all(np.diag(w) == 0) and np.allclose(w, w.T)


def test_storkey_weights_match_naive_reference():
    rng = np.random.default_rng(1)
    p = random_bipolar(rng, 4, 9)
    w = ClassicalHopfield("storkey").store(torch.tensor(p)).weights_.numpy()  # float64 in
    ref = naive_storkey(p)
    assert np.abs(w - ref).max() < 1e-12, np.abs(w - ref).max()
    assert np.all(np.diag(w) == 0) and np.allclose(w, w.T)


@pytest.mark.parametrize("rule", ["hebbian", "storkey"])
def test_add_is_incremental_and_equals_store_of_concatenation(rule):
    rng = np.random.default_rng(2)
    a, b = random_bipolar(rng, 5, 20), random_bipolar(rng, 3, 20)
    m = ClassicalHopfield(rule).store(torch.tensor(a)).add(torch.tensor(b))
    ref = ClassicalHopfield(rule).store(torch.tensor(np.vstack([a, b])))
    torch.testing.assert_close(m.weights_, ref.weights_, atol=1e-12, rtol=0)
    assert m.n_patterns_ == 8 and m.patterns_.shape == (8, 20)
    # add() on an empty memory stores
    assert ClassicalHopfield(rule).add(a).n_patterns_ == 5


# ----------------------------------------------------------------------------- dynamics


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 12), d=st.integers(4, 40),
       rule=st.sampled_from(["hebbian", "storkey"]))
def test_energy_never_increases_under_async_updates(seed, n, d, rule):
    rng = np.random.default_rng(seed)
    mem = ClassicalHopfield(rule, random_state=seed % 1000).store(random_bipolar(rng, n, d))
    q = random_bipolar(rng, 6, d)
    out, info = mem.retrieve(q, return_info=True)
    e = info.energy.double()
    assert bool((e[1:] <= e[:-1] + 1e-5).all()), e
    assert bool(info.converged.all())  # async dynamics always reach a fixed point
    np.testing.assert_allclose(mem.energy(out), e[-1].numpy(), atol=1e-5)
    # a fixed point: one more retrieval changes nothing
    np.testing.assert_array_equal(mem.retrieve(out), out)


def test_energy_matches_quadratic_form():
    rng = np.random.default_rng(3)
    p, s = random_bipolar(rng, 5, 16), random_bipolar(rng, 4, 16)
    mem = ClassicalHopfield().store(p)
    w = mem.weights_.double().numpy()
    np.testing.assert_allclose(mem.energy(s), -0.5 * np.einsum("li,ij,lj->l", s, w, s), rtol=1e-5)
    assert np.isscalar(mem.energy(s[0]).item())


def test_async_is_seeded_and_sync_is_deterministic():
    rng = np.random.default_rng(4)
    p, q = random_bipolar(rng, 20, 60), random_bipolar(rng, 30, 60)
    a = ClassicalHopfield(random_state=7).store(p).retrieve(q)
    b = ClassicalHopfield(random_state=7).store(p).retrieve(q)
    np.testing.assert_array_equal(a, b)
    s1 = ClassicalHopfield(update="sync").store(p).retrieve(q)
    s2 = ClassicalHopfield(update="sync").store(p).retrieve(q)
    np.testing.assert_array_equal(s1, s2)


def test_sync_one_step_is_sign_of_field_and_matches_async_on_stored_patterns():
    rng = np.random.default_rng(5)
    p = random_bipolar(rng, 3, 100)
    q = flip(rng, p, 0.1)
    sync = ClassicalHopfield(update="sync", max_steps=1).store(p)
    w = sync.weights_.double().numpy()
    np.testing.assert_array_equal(sync.retrieve(q), np.where(q @ w >= 0, 1.0, -1.0))
    asyn = ClassicalHopfield(random_state=0).store(p)
    np.testing.assert_array_equal(ClassicalHopfield(update="sync").store(p).retrieve(q), p)
    np.testing.assert_array_equal(asyn.retrieve(q), p)


def test_sync_can_two_cycle_and_reports_not_converged():
    # two anti-aligned units: W = [[0, -1], [-1, 0]] (storing [1, -1]); the state [1, 1] flips to
    # [-1, -1] and back under synchronous updates, but settles under asynchronous ones.
    p = np.array([[1.0, -1.0]])
    _, info = ClassicalHopfield(update="sync", max_steps=10).store(p).retrieve(
        np.array([1.0, 1.0]), return_info=True)
    assert not bool(info.converged.all()) and int(info.steps[0]) == 10
    out, info = ClassicalHopfield(random_state=0).store(p).retrieve(np.array([1.0, 1.0]),
                                                                     return_info=True)
    assert bool(info.converged.all()) and abs(out).sum() == 2 and out[0] == -out[1]


def test_numpy_in_numpy_out_and_torch_in_torch_out():
    rng = np.random.default_rng(6)
    p = random_bipolar(rng, 4, 32).astype(np.int8)
    mem = ClassicalHopfield(random_state=0).store(p)
    out = mem.retrieve(p)
    assert isinstance(out, np.ndarray) and out.dtype == np.int8 and out.shape == (4, 32)
    assert mem.retrieve(p[0]).shape == (32,)
    t = mem.retrieve(torch.tensor(p, dtype=torch.float64))
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float64
    assert isinstance(mem.energy(p), np.ndarray)


# ----------------------------------------------------------------------------- capacity


def recall_rate(rule: str, n: int, d: int, seed: int, frac: float = 0.05) -> float:
    rng = np.random.default_rng(seed)
    p = random_bipolar(rng, n, d)
    out = ClassicalHopfield(rule, random_state=seed).store(p).retrieve(flip(rng, p, frac))
    return float((out == p).all(axis=1).mean())


def test_hebbian_capacity_sanity():
    """Below 0.138·D random patterns are recalled from 5% flipped bits; far above they are not."""
    d = 200
    assert recall_rate("hebbian", int(0.05 * d), d, seed=0) >= 0.9
    assert recall_rate("hebbian", int(0.3 * d), d, seed=0) <= 0.1


def test_storkey_at_least_as_good_as_hebbian():
    d = 100
    for n in (14, 25):  # around and above the Hebbian limit 0.138·D
        assert recall_rate("storkey", n, d, seed=n) >= recall_rate("hebbian", n, d, seed=n)
    assert recall_rate("storkey", 25, d, seed=1) >= 0.9  # Storkey's capacity ~ D/sqrt(2 ln D)
    # correlated patterns (shared bias towards +1): Storkey degrades less than Hebbian
    rng = np.random.default_rng(9)
    p = np.where(rng.random((12, d)) < 0.7, 1.0, -1.0)
    q = flip(rng, p, 0.05)
    acc = {r: (ClassicalHopfield(r, random_state=0).store(p).retrieve(q) == p).all(1).mean()
           for r in ("hebbian", "storkey")}
    assert acc["storkey"] >= acc["hebbian"] and acc["storkey"] >= 0.8, acc


# ----------------------------------------------------------------------------- bad input


def test_bad_input_names_the_argument():
    mem = ClassicalHopfield()
    with pytest.raises(NotStoredError, match="store"):
        mem.retrieve(np.ones((1, 4)))
    with pytest.raises(NotStoredError):
        mem.energy(np.ones(4))
    with pytest.raises(ValueError, match=r"patterns must have entries in \{-1, \+1\}"):
        mem.store(np.array([[1.0, 0.5, -1.0]]))
    with pytest.raises(ValueError, match=r"patterns must have shape \(N, D\), got \(3\)"):
        mem.store(np.ones(3))
    with pytest.raises(ValueError, match="patterns must be finite"):
        mem.store(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="patterns must hold at least one pattern"):
        mem.store(np.ones((0, 3)))
    mem.store(np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"queries must have shape \(L, 4\) or \(4,\), got \(2, 5\)"):
        mem.retrieve(np.ones((2, 5)))
    with pytest.raises(ValueError, match=r"queries must have entries in \{-1, \+1\}"):
        mem.retrieve(np.zeros((1, 4)))
    with pytest.raises(ValueError, match=r"patterns must have shape \(M, 4\)"):
        mem.add(np.ones((1, 5)))
    with pytest.raises(TypeError, match="patterns must be a numpy array or a torch tensor"):
        mem.store([[1, -1]])
    with pytest.raises(ValueError, match=r"rule must be one of \['hebbian', 'storkey'\], got 'oja'"):
        ClassicalHopfield("oja")
    with pytest.raises(ValueError, match=r"update must be one of \['async', 'sync'\]"):
        ClassicalHopfield(update="random")
    with pytest.raises(ValueError, match="max_steps must be >= 1"):
        ClassicalHopfield(max_steps=0)
    with pytest.raises(TypeError, match="random_state must be an int, a numpy.random.Generator or None"):
        ClassicalHopfield(random_state=1.5)


def test_repr():
    assert repr(ClassicalHopfield("storkey")) == "ClassicalHopfield(rule='storkey', update='async')"


def test_max_iter_is_a_deprecated_alias_of_max_steps():
    with pytest.warns(FutureWarning, match="max_iter is deprecated.*use max_steps"):
        mem = ClassicalHopfield(update="sync", max_iter=3)
    assert mem.max_steps == 3 and mem.max_iter == 3
    with pytest.warns(FutureWarning), pytest.raises(ValueError, match="max_iter must be >= 1"):
        ClassicalHopfield(max_iter=0)
