"""ModernHopfield as an in-memory associative memory: API, β regimes, add == store."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hopfield import functional as HF
from hopfield.memory import ModernHopfield, NotStoredError


def unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


@pytest.fixture
def grouped():
    """Four near-identical patterns (a group) and six unrelated ones, all of norm 4, float64."""
    g = torch.Generator().manual_seed(0)
    d, r = 32, 4.0
    others = r * unit(torch.randn(6, d, generator=g, dtype=torch.float64))
    centre = unit(torch.randn(d, generator=g, dtype=torch.float64))
    group = r * unit(centre + 0.08 * torch.randn(4, d, generator=g, dtype=torch.float64))
    query = group[0] + 0.3 * torch.randn(d, generator=g, dtype=torch.float64)
    return torch.cat([group, others]), query


def test_beta_to_zero_gives_the_mean_of_all_patterns(grouped):
    x, q = grouped
    out = ModernHopfield(beta=1e-4).store(x).retrieve(q)
    assert float((out - x.mean(0)).norm()) < 1e-3 * float(x.norm(dim=-1).max())


def test_large_beta_gives_the_nearest_single_pattern(grouped):
    x, q = grouped
    mem = ModernHopfield(beta=10.0).store(x)
    out = mem.retrieve(q)
    nearest = int((q @ x.T).argmax())
    torch.testing.assert_close(out, x[nearest], atol=1e-6, rtol=0)
    assert float(mem.weights(out).max()) > 0.999


def test_intermediate_beta_gives_a_metastable_group_average(grouped):
    x, q = grouped
    mem = ModernHopfield(beta=0.5, max_steps=1000).store(x)
    out = mem.retrieve(q)
    w = mem.weights(out)
    group_mean = x[:4].mean(0)
    # the fixed point is (near) the group's average, far from each member and from the global mean
    assert float((out - group_mean).norm()) < 0.1
    assert float((out - x[:4]).norm(dim=-1).min()) > 1.0
    assert float((out - x.mean(0)).norm()) > 2.0
    assert float(w[:4].sum()) > 0.99 and float(w[:4].min()) > 0.15  # spread over the group only


def test_retrieve_info_energy_decreases_and_matches_functional(grouped):
    x, _ = grouped
    g = torch.Generator().manual_seed(1)
    q = torch.randn(7, x.shape[1], generator=g, dtype=torch.float64)
    mem = ModernHopfield(beta=0.7).store(x)
    out, info = mem.retrieve(q, return_info=True)
    assert bool(info.converged.all())
    assert bool((info.energy[1:] <= info.energy[:-1] + 1e-12).all())
    torch.testing.assert_close(mem.energy(out), HF.energy(out, x, 0.7))
    torch.testing.assert_close(out, HF.retrieve(q, x, 0.7))


def test_numpy_in_numpy_out():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 8)).astype(np.float32)
    mem = ModernHopfield(beta=4.0).store(x)
    out = mem.retrieve(x[:2])
    assert isinstance(out, np.ndarray) and out.shape == (2, 8) and out.dtype == np.float32
    assert isinstance(mem.retrieve(x[0]), np.ndarray) and mem.retrieve(x[0]).shape == (8,)
    assert isinstance(mem.energy(x), np.ndarray) and mem.energy(x).shape == (5,)
    w = mem.weights(x)
    assert isinstance(w, np.ndarray) and w.shape == (5, 5)
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(mem.update(x[:3]), (w[:3] @ x), rtol=1e-4, atol=1e-5)
    t = mem.retrieve(torch.from_numpy(x[:2]))
    assert isinstance(t, torch.Tensor)
    np.testing.assert_allclose(t.numpy(), out, rtol=1e-6)


@pytest.mark.parametrize("separation", ["softmax", "sparsemax"])
def test_add_equals_store_of_concatenation(separation):
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(6, 10, generator=g), torch.randn(4, 10, generator=g)
    q = torch.randn(5, 10, generator=g)
    m1 = ModernHopfield(beta=2.0, separation=separation).store(a).add(b)
    m2 = ModernHopfield(beta=2.0, separation=separation).store(torch.cat([a, b]))
    assert m1.n_patterns_ == m2.n_patterns_ == 10
    torch.testing.assert_close(m1.patterns_, m2.patterns_)
    torch.testing.assert_close(m1.retrieve(q), m2.retrieve(q))


def test_bad_input():
    mem = ModernHopfield()
    with pytest.raises(NotStoredError, match="store"):
        mem.retrieve(np.ones((1, 3)))
    with pytest.raises(ValueError, match="beta must be > 0"):
        ModernHopfield(beta=0.0)
    with pytest.raises(ValueError, match=r"beta must be a float or a 0-d tensor .*got shape \(3\)"):
        ModernHopfield(beta=torch.ones(3))  # used to fail only at retrieve, about "leading dims"
    assert ModernHopfield(beta=torch.tensor(2.0)).store(np.eye(3)).retrieve(np.ones(3)).shape == (3,)
    with pytest.raises(ValueError, match=r"separation must be one of \["):
        ModernHopfield(separation="argmax")
    mem.store(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"queries must have shape \(L, 3\) or \(3,\), got \(2, 4\)"):
        mem.retrieve(np.ones((2, 4)))
    with pytest.raises(ValueError, match="queries must be finite"):
        mem.retrieve(np.array([np.inf, 0.0, 0.0]))
    with pytest.raises(ValueError, match=r"patterns must have shape \(M, 3\)"):
        mem.add(np.ones((1, 2)))


def test_retrieve_max_steps_is_validated_not_ignored():
    mem = ModernHopfield(beta=1.0, max_steps=50).store(np.eye(3))
    with pytest.raises(ValueError, match="max_steps must be >= 1, got 0"):
        mem.retrieve(np.ones(3), max_steps=0)
    with pytest.raises(TypeError, match="max_steps must be an int"):
        mem.retrieve(np.ones(3), max_steps=2.5)
    _, info = mem.retrieve(np.array([1.0, 0.2, 0.0]), max_steps=1, return_info=True)
    assert int(info.steps.max()) == 1


def test_zero_queries_give_an_empty_result():
    mem = ModernHopfield(beta=2.0).store(np.eye(3))
    assert mem.retrieve(np.empty((0, 3))).shape == (0, 3)
    assert mem.update(np.empty((0, 3))).shape == (0, 3)


def test_bool_patterns_are_0_1_for_numpy_and_torch_alike():
    b = np.array([[True, False, True], [False, True, False]])
    m_np = ModernHopfield(beta=3.0).store(b)
    m_t = ModernHopfield(beta=3.0).store(torch.from_numpy(b))  # was a TypeError for torch only
    assert m_np.patterns_.dtype == m_t.patterns_.dtype == torch.float32
    torch.testing.assert_close(m_np.patterns_, m_t.patterns_, rtol=0, atol=0)
    torch.testing.assert_close(m_t.patterns_, torch.tensor(b, dtype=torch.float32), rtol=0, atol=0)
    with pytest.raises(TypeError, match="patterns must be a real numeric tensor, got dtype "
                                        "torch.complex64"):
        ModernHopfield().store(torch.ones(2, 3, dtype=torch.complex64))


def test_options_after_separation_are_keyword_only():
    # like ClassicalHopfield(rule, *, ...) and DenseAssociativeMemory(interaction, degree, *, ...)
    with pytest.raises(TypeError):
        ModernHopfield(2.0, "softmax", 10)
    assert ModernHopfield(2.0, "sparsemax", max_steps=10).max_steps == 10
