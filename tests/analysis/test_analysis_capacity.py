"""Capacity study and theory formulas against hand-computed values; Theorem 5's bound."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hopfield import functional as HF
from hopfield.analysis.capacity import (
    capacity_from_curve,
    capacity_study,
    flip_bits,
    geometric_grid,
    mask_bits,
    random_bipolar,
    retrieval_curve,
    theorem3_bound,
    theorem3_c,
    theory_capacity,
)
from hopfield.analysis.error_bound import one_step_error, sphere_patterns, theorem5_bound


class Identity:
    """A 'memory' that returns its queries: overlap = 1 − 2·flips/D exactly."""

    def store(self, p):
        self.p = p
        return self

    def retrieve(self, q):
        return q


class Nearest(Identity):
    """Perfect memory: the stored pattern with the largest overlap."""

    def retrieve(self, q):
        return self.p[(q @ self.p.T).argmax(-1)]


def test_theorem3_constants_match_the_paper():
    # The paper's two worked examples: c ≈ 3.1546 (β=1, K=3, d=20, p=0.001) and c ≈ 1.3718
    # (β=1, K=1, d=75, p=0.001).
    assert theorem3_c(20, 1.0, K=3.0, p=0.001) == pytest.approx(3.1546, abs=1e-4)
    assert theorem3_c(75, 1.0, K=1.0, p=0.001) == pytest.approx(1.3718, abs=1e-4)
    # N ≥ sqrt(p)·c^((d−1)/4)
    assert theorem3_bound(20, 1.0, K=3.0) == pytest.approx(math.sqrt(1e-3) * 3.1546107 ** 4.75,
                                                            rel=1e-6)
    # validity condition c ≥ (2/sqrt(p))^(4/(d−1)) fails for small d → NaN
    assert math.isnan(theorem3_bound(16, 1.0, K=1.0))


def test_theory_capacity_closed_forms():
    assert theory_capacity("hebbian", 100) == pytest.approx(13.8)
    assert theory_capacity("storkey", 100) == pytest.approx(100 / math.sqrt(2 * math.log(100)))
    # degree 2 is the classical no-error capacity D / (2 ln D); degree 3: D² / (2·3 ln D)
    assert theory_capacity("polynomial", 50, degree=2) == pytest.approx(50 / (2 * math.log(50)))
    assert theory_capacity("polynomial", 50, degree=3) == pytest.approx(2500 / (6 * math.log(50)))
    assert theory_capacity("exponential", 20) == pytest.approx(2 ** 10)
    x = 0.6  # ρ = 0.2
    info = 0.5 * ((1 + x) * math.log(1 + x) + (1 - x) * math.log(1 - x))
    assert theory_capacity("exponential", 20, noise=0.2) == pytest.approx(math.exp(10 * info))
    with pytest.raises(ValueError, match="kind must be one of"):
        theory_capacity("quantum", 10)


def test_capacity_from_curve_hand_cases():
    assert capacity_from_curve([1, 2, 4, 8], [1.0, 0.9, 0.4, 0.6]) == 2  # first drop ends it
    assert capacity_from_curve([1, 2, 4], [1.0, 1.0, 1.0]) == 4
    assert capacity_from_curve([1, 2], [0.2, 1.0]) == 0
    assert capacity_from_curve([3, 5], [0.5, 0.49]) == 3
    with pytest.raises(ValueError, match=r"success must have one value per N \(len 3\), got len 2"):
        capacity_from_curve([1, 2, 3], [1.0, 0.5])  # zip used to truncate silently


def test_geometric_grid():
    assert geometric_grid(1, 8) == [1, 2, 3, 4, 6, 8]
    assert geometric_grid(1, 8, ratio=2) == [1, 2, 4, 8]


@given(st.integers(1, 6), st.integers(4, 40), st.floats(0.0, 0.5), st.integers(0, 999))
def test_flip_bits_flips_exactly(L, D, rho, seed):
    g = torch.Generator().manual_seed(seed)
    x = random_bipolar(L, D, g)
    y = flip_bits(x, rho, g)
    assert ((x != y).sum(-1) == round(rho * D)).all()
    assert set(y.unique().tolist()) <= {-1.0, 1.0}


def test_retrieval_curve_with_reference_memories():
    # identity memory: D = 20, ρ = 0.1 → 2 flips → m = 0.8 < 0.95 for every query
    c = retrieval_curve(Identity, 20, [1, 5, 10], 0.1, n_queries=8)
    assert c.success == [0.0, 0.0, 0.0] and c.overlap == pytest.approx([0.8] * 3)
    assert c.capacity == 0
    # D = 50, ρ = 0.02 → 1 flip → m = 0.96 ≥ 0.95: every query succeeds
    c = retrieval_curve(Identity, 50, [3], 0.02, n_queries=8)
    assert c.success == [1.0] and c.overlap == pytest.approx([0.96])
    # the perfect nearest-pattern memory at ρ = 0 always succeeds
    c = retrieval_curve(Nearest, 16, [1, 4, 16], 0.0, n_queries=8)
    assert c.success == [1.0, 1.0, 1.0] and c.capacity == 16


@given(st.integers(1, 6), st.integers(4, 40), st.floats(0.0, 1.0), st.integers(0, 999))
def test_mask_bits_erases_exactly(L, D, rho, seed):
    g = torch.Generator().manual_seed(seed)
    x = random_bipolar(L, D, g)
    y = mask_bits(x, rho, g)
    assert ((y == 0).sum(-1) == round(rho * D)).all()
    assert torch.equal(y[y != 0], x[y != 0])


def test_masked_queries():
    from hopfield import ModernHopfield

    # one stored pattern: a single update from any partial query returns exactly that pattern
    c = retrieval_curve(lambda: ModernHopfield(beta=1.0), 32, [1], 0.5, corruption="mask",
                        n_queries=4)
    assert c.success == [1.0] and c.overlap == [1.0] and c.corruption == "mask"
    c = retrieval_curve(Nearest, 32, [1, 8], 0.25, corruption="mask", n_queries=8)
    assert c.success == [1.0, 1.0]
    with pytest.raises(ValueError, match="corruption must be one of"):
        retrieval_curve(Nearest, 8, [1], 0.1, corruption="erase")


def test_retrieval_curve_is_deterministic_for_a_seed():
    from hopfield import ClassicalHopfield

    mk = lambda: ClassicalHopfield("hebbian", random_state=0)
    a = retrieval_curve(mk, 32, [2, 4, 8, 16], 0.1, n_queries=8, seed=3)
    b = retrieval_curve(mk, 32, [2, 4, 8, 16], 0.1, n_queries=8, seed=3)
    assert a.success == b.success and a.overlap == b.overlap
    # one stored pattern is always recovered from 10 % flipped bits (hand: the field is x·(D−2f)/D)
    assert a.success[0] == 1.0


def test_capacity_study_tiny():
    from hopfield import ClassicalHopfield, ModernHopfield

    mems = {"hebbian": ("hebbian", lambda: ClassicalHopfield(random_state=0)),
            "modern β=1": ("modern", lambda: ModernHopfield(beta=1.0))}
    curves = capacity_study(quick=True, noises=(0.0,), masks=(0.5,), n_queries=4, progress=False,
                            memories=mems)
    assert [(c.memory, c.dim, c.corruption) for c in curves] == [
        ("hebbian", 32, "flip"), ("hebbian", 64, "flip"), ("modern β=1", 16, "flip"),
        ("modern β=1", 16, "mask"), ("modern β=1", 32, "flip"), ("modern β=1", 32, "mask")]
    for c in curves:
        assert c.capacity == capacity_from_curve(c.n_patterns, c.success)
        assert c.meta["censored"] == (c.capacity == c.n_patterns[-1])
    assert curves[0].meta["theory"] == pytest.approx(0.138 * 32)


def test_bad_arguments():
    with pytest.raises(ValueError, match="noise must be in"):
        retrieval_curve(Identity, 10, [1], 1.5)
    with pytest.raises(ValueError, match="n_patterns must hold at least one"):
        retrieval_curve(Identity, 10, [])
    with pytest.raises(ValueError, match="dim must be >= 1"):
        retrieval_curve(Identity, 0, [1])
    with pytest.raises(ValueError, match="dim must be > 1"):
        theorem3_bound(1, 1.0)
    with pytest.raises(ValueError, match="dim must be > 1, got 1"):  # was ZeroDivisionError
        theorem3_c(1, 1.0)
    with pytest.raises(ValueError, match=r"beta and K must be > 0 and p in \(0, 1\]"):
        theorem3_c(16, -1.0)  # was a math domain error from log


# ----------------------------------------------------------------------------- Theorem 5


def test_theorem5_two_orthogonal_patterns_by_hand():
    # x1 = (M, 0), x2 = (0, M); from ξ = x1 one update gives p2 = σ(−βM²) and the error
    # ‖f(ξ) − x1‖ = p2·‖x2 − x1‖ = √2·M·σ(−βM²). Δ = M², x1* → distance δ* from x1.
    M, beta = 2.0, 0.3  # βM² = 1.2 < 2: x1* is the midpoint, reached quickly
    x = torch.tensor([[M, 0.0], [0.0, M]], dtype=torch.float64)
    res = one_step_error(x, [beta], 0.0)
    p2 = 1 / (1 + math.exp(beta * M * M))
    assert res.error_max[0] == pytest.approx(math.sqrt(2) * M * p2, rel=1e-12)
    fixed = HF.retrieve(x, x, beta, max_steps=100, tol=1e-9)
    dstar = float((fixed[0] - x[0]).norm())
    bound = 2 * 1 * M * math.exp(-beta * (M * M - 2 * M * dstar))
    assert res.bound_median[0] == pytest.approx(bound, rel=1e-9)
    assert res.bound_holds == [1.0]


@settings(max_examples=12)
@given(st.integers(2, 20), st.integers(2, 16), st.floats(0.05, 4.0), st.floats(0.0, 0.5),
       st.integers(0, 999))
def test_theorem5_bound_always_holds(n, d, beta, rel_pert, seed):
    g = torch.Generator().manual_seed(seed)
    x = sphere_patterns(n, d, math.sqrt(d), g)
    res = one_step_error(x, [beta], rel_pert * math.sqrt(d), seed=seed)
    assert res.bound_holds == [1.0]


def test_theorem5_bound_is_exponential_in_beta_delta():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)
    b = theorem5_bound(x, 2.0, torch.zeros(3, dtype=torch.float64))
    # Δ = 1 for every pattern, M = 1, N − 1 = 2: 2·2·1·e^{−2}
    torch.testing.assert_close(b, torch.full((3,), 4 * math.exp(-2.0), dtype=torch.float64))
    assert np.isfinite(b.numpy()).all()


def test_capacity_figure_draws_measured_and_theory(tmp_path):
    from hopfield.analysis.capacity import CapacityCurve
    from hopfield.analysis.plotting import plot_capacity

    curves = [CapacityCurve("hebbian", 100, 0.0, [5, 10, 20], [1.0, 1.0, 0.0], [1, 1, 0.3], 10,
                            {"kind": "hebbian", "theory": 13.8, "censored": False}),
              CapacityCurve("modern β=1", 64, 0.0, [8, 16], [1.0, 1.0], [1, 1], 16,
                            {"kind": "modern", "theory": theory_capacity("modern", 64),
                             "censored": True})]
    drawn = plot_capacity(curves, tmp_path / "c.png")
    assert drawn["classical (Hebbian ●, Storkey ■)"] == [("hebbian", 100, 0.0, 10, 13.8)]
    (_name, d, _rho, cap, theory), = drawn["modern Hopfield"]
    want = theorem3_bound(64, 1.0, K=(64 / 63) ** 0.5)
    assert (cap, d) == (16, 64) and theory == pytest.approx(want)
