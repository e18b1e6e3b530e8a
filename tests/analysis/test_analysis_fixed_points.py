"""Fixed-point classification, β sweep and the 2-D energy landscape against hand-computed cases."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hopfield import functional as HF
from hopfield.analysis.fixed_points import (
    KINDS,
    beta_sweep,
    classify_fixed_points,
    classify_weights,
    clustered_patterns,
)
from hopfield.analysis.landscape import energy_landscape, grid_starts, toy_patterns


def test_classify_weights_hand_cases():
    w = torch.tensor([
        [0.95, 0.05, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],      # k = 1 → single
        [0.3, 0.3, 0.3, 0.1, 0.0, 0.0, 0.0, 0.0],        # k = 3 (0.9): 1 < 3 ≤ 4 → metastable
        [0.125] * 8,                                     # k = 8 > 4 → global
        [0.25, 0.25, 0.25, 0.25, 0.0, 0.0, 0.0, 0.0],    # k = 4 = N/2 → metastable
    ], dtype=torch.float64)
    kind, k = classify_weights(w)
    assert k.tolist() == [1, 3, 8, 4]
    assert [KINDS[i] for i in kind] == ["single", "metastable", "global", "metastable"]


def test_two_patterns_transition_at_hand_computed_beta():
    # x1 = r·e1, x2 = r·e2 and the query x1. Fixed points ξ = p x1 + (1−p) x2 with
    # p = σ(β r² (2p − 1)): p = 1/2 for β r² ≤ 2 (global: k = 2 > N/2 = 1); p ≥ 0.9 (single)
    # exactly when β r² ≥ ln 9 / 0.8 ≈ 2.7465 (in between 1/2 < p < 0.9: still k = 2, global).
    r = 1.5
    x = torch.tensor([[r, 0.0], [0.0, r]], dtype=torch.float64)
    q = x[:1].clone()
    b_star = math.log(9) / 0.8 / r ** 2
    below = classify_fixed_points(q, x, 0.6 * b_star, max_steps=2000, tol=1e-12)
    above = classify_fixed_points(q, x, 1.2 * b_star, max_steps=2000, tol=1e-12)
    assert below.names == ["global"] and int(below.k[0]) == 2
    torch.testing.assert_close(below.weights[0], torch.full((2,), 0.5, dtype=torch.float64))
    assert above.names == ["single"] and int(above.top[0]) == 0
    sweep = beta_sweep(q, x, [0.5 * b_star, 0.6 * b_star, 1.2 * b_star, 3 * b_star])
    assert sweep.global_ == [1.0, 1.0, 0.0, 0.0] and sweep.single == [0.0, 0.0, 1.0, 1.0]
    assert sweep.metastable == [0.0] * 4  # impossible with N = 2


def test_duplicated_patterns_give_a_metastable_group_of_known_size():
    # 4 identical copies of e1 and 4 distinct orthogonal patterns (N = 8). From e1 at large β the
    # weights split equally over the 4 copies: k = 4 (1 < 4 ≤ N/2) → metastable, group = copies.
    x = torch.zeros(8, 8, dtype=torch.float64)
    x[:4, 0] = 3.0
    for i in range(4):
        x[4 + i, 1 + i] = 3.0
    fp = classify_fixed_points(x[:1], x, beta=5.0)
    assert fp.names == ["metastable"] and int(fp.k[0]) == 4
    assert sorted(fp.group(0)) == [0, 1, 2, 3]
    torch.testing.assert_close(fp.weights[0, :4], torch.full((4,), 0.25, dtype=torch.float64),
                               atol=1e-6, rtol=0)


def test_clustered_sweep_goes_global_metastable_single():
    x = clustered_patterns(4, 8, 32, spread=0.5, radius=4.0, seed=0)
    gen = torch.Generator().manual_seed(0)
    q = x + 0.05 * torch.randn(x.shape, generator=gen, dtype=torch.float64)
    s = beta_sweep(q, x, [0.01, 0.4, 10.0])
    assert s.global_[0] == 1.0 and s.single[2] == 1.0
    assert s.metastable[1] > 0.5 and 1 < s.k_median[1] <= 16


def test_fixed_point_bad_inputs():
    x = torch.eye(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="beta must be > 0"):
        classify_fixed_points(x, x, -1.0)
    with pytest.raises(ValueError, match=r"queries must have shape \(L, D\)"):
        classify_fixed_points(x[0], x, 1.0)
    with pytest.raises(ValueError, match=r"queries must have shape \(L, 3\) to match patterns, "
                                         r"got \(3, 2\)"):  # was reported as "state"
        classify_fixed_points(x[:, :2], x, 1.0)
    with pytest.raises(ValueError, match="betas must hold at least one"):
        beta_sweep(x, x, [])


# ----------------------------------------------------------------------------- landscape


def test_single_pattern_landscape_is_half_squared_distance():
    x = torch.tensor([[0.5, -1.0]], dtype=torch.float64)
    starts = torch.tensor([[2.0, 2.0], [-1.0, 0.0]], dtype=torch.float64)
    ls = energy_landscape(x, 3.0, starts, steps=2, grid=11)
    gx, gy = np.meshgrid(ls.xs, ls.ys)
    np.testing.assert_allclose(ls.energy, 0.5 * ((gx - 0.5) ** 2 + (gy + 1.0) ** 2), atol=1e-12)
    # one update lands on the pattern and stays there; energy 0 there
    np.testing.assert_allclose(ls.trajectories[:, 1:], np.broadcast_to([0.5, -1.0], (2, 2, 2)))
    np.testing.assert_allclose(ls.traj_energy[:, 0], [0.5 * (1.5**2 + 9), 0.5 * (1.5**2 + 1)])
    assert np.abs(ls.traj_energy[:, 1:]).max() < 1e-12


def test_landscape_grid_and_energy_match_functional():
    pats = toy_patterns()
    ls = energy_landscape(pats, 4.0, grid_starts(3), steps=4, grid=7)
    assert ls.energy.shape == (7, 7) and ls.trajectories.shape == (9, 5, 2)
    j, i = 2, 5
    e = HF.energy(torch.tensor([[ls.xs[i], ls.ys[j]]]), pats, 4.0)
    assert float(e) == pytest.approx(ls.energy[j, i], abs=1e-12)


@settings(max_examples=15)
@given(st.floats(0.1, 30.0), st.integers(0, 999))
def test_trajectory_energy_never_increases(beta, seed):
    g = torch.Generator().manual_seed(seed)
    pats = torch.randn(5, 2, generator=g, dtype=torch.float64)
    starts = 2 * torch.randn(4, 2, generator=g, dtype=torch.float64)
    ls = energy_landscape(pats, beta, starts, steps=6, grid=3)
    assert np.diff(ls.traj_energy, axis=1).max() <= 1e-10
    assert ls.energy.min() >= -1e-10  # E ≥ 0


def test_landscape_bad_inputs():
    with pytest.raises(ValueError, match="must be 2-D points"):
        z = torch.zeros(3, 3, dtype=torch.float64)
        energy_landscape(z, 1.0, z)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        energy_landscape(toy_patterns(), 1.0, grid_starts(2), steps=0)
