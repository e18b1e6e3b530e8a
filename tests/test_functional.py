"""hopfield.functional against float64 naive code, autograd, theory, and bad input.

Naive references below are written from the formulas (loops / numpy), not from the library.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hopfield import functional as HF

# tolerance table keyed by dtype: (atol, rtol)
TOL = {torch.float64: (1e-10, 1e-10), torch.float32: (2e-5, 1e-4), torch.bfloat16: (3e-2, 3e-2)}


def close(got: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype | None = None) -> None:
    atol, rtol = TOL[dtype or got.dtype]
    diff = (got.double() - ref.double()).abs().max().item() if got.numel() else 0.0
    torch.testing.assert_close(got.double(), ref.double(), atol=atol, rtol=rtol,
                               msg=f"max abs diff {diff:.3g} (dtype {dtype or got.dtype})")


def rand(*shape, seed=0, dtype=torch.float64, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(*shape, generator=g, dtype=torch.float64)).to(dtype)


# ----------------------------------------------------------------------------- naive references


def naive_update(state, patterns, beta, mask=None):
    """Row by row in numpy float64: p = exp(s - max) / Σ exp, masked patterns excluded."""
    s, x = np.asarray(state, dtype=np.float64), np.asarray(patterns, dtype=np.float64)
    out, weights = np.zeros_like(s), np.zeros((s.shape[0], x.shape[0]))
    for l in range(s.shape[0]):
        scores = np.array([beta * float(np.dot(x[i], s[l])) for i in range(x.shape[0])])
        keep = np.ones(x.shape[0], bool) if mask is None else ~np.asarray(mask[l])
        e = np.where(keep, np.exp(scores - scores[keep].max()), 0.0)
        weights[l] = e / e.sum()
        out[l] = weights[l] @ x
    return out, weights


def naive_energy(state, patterns, beta):
    s, x = np.asarray(state, dtype=np.float64), np.asarray(patterns, dtype=np.float64)
    m = max(np.linalg.norm(xi) for xi in x)
    res = []
    for xi in s:
        scores = beta * (x @ xi)
        lse = scores.max() + math.log(np.exp(scores - scores.max()).sum())
        res.append(-lse / beta + 0.5 * xi @ xi + math.log(len(x)) / beta + 0.5 * m * m)
    return np.array(res)


def naive_separation(patterns):
    x = np.asarray(patterns, dtype=np.float64)
    n = len(x)
    return np.array([x[i] @ x[i] - max((x[i] @ x[j] for j in range(n) if j != i),
                                       default=-np.inf) for i in range(n)])


# ----------------------------------------------------------------------------- paths and references


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_fast_path_equals_math_path(dtype):
    state, patterns = rand(2, 3, 5, 16, seed=1, dtype=dtype), rand(2, 3, 7, 16, seed=2, dtype=dtype)
    beta = torch.tensor([0.2, 0.5, 1.0], dtype=dtype)  # per head (H,) with (B, H, L, D)
    mask = torch.zeros(2, 3, 7, dtype=torch.bool)
    mask[0, :, 3:] = True
    for m in (None, mask):
        fast = HF.update(state, patterns, beta, m)
        slow, w = HF.update(state, patterns, beta, m, return_weights=True)
        close(fast, slow, dtype)
        if m is not None:
            assert bool((w[0, :, :, 3:] == 0).all())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_update_matches_float64_naive_reference(dtype):
    state, patterns = rand(6, 10, seed=3), rand(9, 10, seed=4)
    mask = torch.rand(6, 9, generator=torch.Generator().manual_seed(0)) < 0.4
    mask[:, 0] = False
    for m in (None, mask):
        ref, ref_w = naive_update(state, patterns, 0.7, None if m is None else m.numpy())
        got, w = HF.update(state.to(dtype), patterns.to(dtype), 0.7, m, return_weights=True)
        close(got, torch.from_numpy(ref), dtype)
        close(w, torch.from_numpy(ref_w), dtype)
        close(HF.update(state.to(dtype), patterns.to(dtype), 0.7, m), torch.from_numpy(ref), dtype)


def test_per_head_beta_matches_naive_per_head():
    state, patterns = rand(2, 3, 4, 8, seed=5), rand(2, 3, 6, 8, seed=6)
    beta = torch.tensor([0.1, 1.0, 3.0], dtype=torch.float64)
    got = HF.update(state, patterns, beta)
    for b in range(2):
        for h in range(3):
            ref, _ = naive_update(state[b, h], patterns[b, h], float(beta[h]))
            close(got[b, h], torch.from_numpy(ref))


def test_mask_shapes_per_pattern_and_per_state_agree():
    state, patterns = rand(2, 4, 8, seed=7), rand(2, 5, 8, seed=8)
    key = torch.tensor([[False, True, False, False, True], [False, False, False, True, False]])
    full = key[:, None, :].expand(2, 4, 5)
    a = HF.update(state, patterns, 1.3, key)
    b = HF.update(state, patterns, 1.3, full)
    close(a, b)
    for i in range(2):
        ref, _ = naive_update(state[i], patterns[i], 1.3, full[i].numpy())
        close(a[i], torch.from_numpy(ref))
    # a mask that differs per state
    per_state = torch.zeros(2, 4, 5, dtype=torch.bool)
    per_state[:, 1, 2:] = True
    out = HF.update(state, patterns, 1.3, per_state)
    ref, _ = naive_update(state[0], patterns[0], 1.3, per_state[0].numpy())
    close(out[0], torch.from_numpy(ref))
    # the energy ignores masked patterns: same as dropping them
    e = HF.energy(state, patterns, 0.9, key)
    keep = ~key[0]
    close(e[0], HF.energy(state[0], patterns[0][keep], 0.9))


def test_energy_matches_naive_reference_and_is_nonnegative():
    state, patterns = rand(5, 12, seed=9), rand(8, 12, seed=10)
    for beta in (0.05, 1.0, 20.0):
        e = HF.energy(state, patterns, beta)
        close(e, torch.from_numpy(naive_energy(state, patterns, beta)))
        assert bool((e >= -1e-10).all())


def test_broadcast_of_leading_dims():
    state, patterns = rand(3, 4, 6, seed=11), rand(5, 6, seed=12)  # patterns shared by the batch
    out = HF.update(state, patterns, 2.0)
    assert out.shape == (3, 4, 6)
    for b in range(3):
        close(out[b], torch.from_numpy(naive_update(state[b], patterns, 2.0)[0]))


def test_retrieve_matches_naive_loop_with_per_state_stopping():
    patterns = rand(6, 10, seed=13, scale=0.8)
    state = rand(5, 10, seed=14)
    beta, tol, max_steps = 1.5, 1e-6, 50
    xi, info = HF.retrieve(state, patterns, beta, max_steps, tol, return_info=True)
    for l in range(5):
        s = state[l:l + 1].numpy()
        steps = 0
        for _ in range(max_steps):
            new = naive_update(s, patterns, beta)[0]
            steps += 1
            done = np.linalg.norm(new - s) < tol
            s = new
            if done:
                break
        close(xi[l], torch.from_numpy(s[0]))
        assert int(info.steps[l]) == steps
    assert bool(info.converged.all())
    assert info.energy.shape == (int(info.steps.max()) + 1, 5)
    assert bool((info.energy[1:] <= info.energy[:-1] + 1e-12).all())
    close(info.weights.sum(-1), torch.ones(5))
    # max_steps is respected and reported as not converged
    _, info1 = HF.retrieve(state, patterns, 0.01, max_steps=1, tol=1e-12, return_info=True)
    assert bool((info1.steps == 1).all()) and not bool(info1.converged.any())


def test_similarity_and_associate_match_naive():
    q, k, v = rand(2, 4, 6, seed=15), rand(2, 5, 6, seed=16), rand(2, 5, 3, seed=17)
    close(HF.similarity(q, k, 0.5), 0.5 * torch.einsum("bld,bnd->bln", q, k))
    out, w = HF.associate(q, k, v, 0.5, need_weights=True)
    for b in range(2):
        _, ref_w = naive_update(q[b], k[b], 0.5)
        close(w[b], torch.from_numpy(ref_w))
        close(out[b], torch.from_numpy(ref_w @ v[b].numpy()))
    fast, none = HF.associate(q, k, v, 0.5)
    assert none is None
    close(fast, out)


# ----------------------------------------------------------------------------- autograd


def test_gradcheck_update_energy_with_learnable_per_head_beta():
    state = rand(1, 2, 3, 4, seed=18).requires_grad_()
    patterns = rand(1, 2, 5, 4, seed=19).requires_grad_()
    beta = torch.tensor([0.7, 1.3], dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([False, False, True, False, False])

    def fast(s, p, b):
        return HF.update(s, p, b, mask)

    def slow(s, p, b):
        return HF.update(s, p, b, mask, return_weights=True)

    def sparse(s, p, b):
        return HF.update(s, p, b, separation="entmax", return_weights=True)

    assert torch.autograd.gradcheck(fast, (state, patterns, beta))
    assert torch.autograd.gradcheck(slow, (state, patterns, beta))
    assert torch.autograd.gradcheck(sparse, (state, patterns, beta))
    assert torch.autograd.gradcheck(lambda s, p, b: HF.energy(s, p, b, mask),
                                    (state, patterns, beta))
    assert torch.autograd.gradcheck(lambda s, p: HF.update(s, p, 0.9), (state, patterns))


def test_gradcheck_retrieve_few_steps():
    state, patterns = rand(3, 4, seed=20).requires_grad_(), rand(4, 4, seed=21).requires_grad_()
    beta = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda s, p, b: HF.retrieve(s, p, b, max_steps=3, tol=1e-12), (state, patterns, beta))


def test_learnable_beta_receives_gradient_of_the_right_shape():
    beta = torch.full((3,), 0.5, requires_grad=True)
    out = HF.update(torch.randn(2, 3, 4, 8), torch.randn(2, 3, 6, 8), beta)
    out.square().sum().backward()
    assert beta.grad is not None and beta.grad.shape == (3,) and bool(beta.grad.abs().gt(0).all())


# ----------------------------------------------------------------------------- sparse separations


@pytest.mark.parametrize("sep", ["sparsemax", "entmax"])
def test_sparse_association_rows_sum_to_one_and_are_sparse(sep):
    state, patterns = rand(16, 8, seed=22), rand(30, 8, seed=23)
    _, w = HF.update(state, patterns, 2.0, separation=sep, return_weights=True)
    close(w.sum(-1), torch.ones(16))
    assert bool((w >= 0).all())
    assert float((w == 0).double().mean()) > 0.5  # most stored patterns get exactly zero weight
    _, ws = HF.update(state, patterns, 2.0, return_weights=True)
    assert bool((ws > 0).all())  # softmax is dense


# ----------------------------------------------------------------------------- properties


@st.composite
def problems(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    n, d, l = draw(st.integers(1, 12)), draw(st.integers(1, 10)), draw(st.integers(1, 5))
    beta = draw(st.floats(0.01, 20.0))
    scale = draw(st.floats(0.1, 3.0))
    return rand(l, d, seed=seed), rand(n, d, seed=seed + 1, scale=scale), beta


@given(problems())
def test_energy_never_increases_under_the_update(problem):
    state, patterns, beta = problem
    e0 = HF.energy(state, patterns, beta)
    for _ in range(3):
        state = HF.update(state, patterns, beta)
        e1 = HF.energy(state, patterns, beta)
        assert bool((e1 <= e0 + 1e-9 * (1 + e0.abs())).all()), (e0, e1)
        e0 = e1


@given(problems(), st.sampled_from(["softmax", "sparsemax", "entmax"]))
def test_association_rows_sum_to_one(problem, sep):
    state, patterns, beta = problem
    _, w = HF.update(state, patterns, beta, separation=sep, return_weights=True)
    assert bool((w >= 0).all())
    close(w.sum(-1), torch.ones(w.shape[:-1], dtype=w.dtype))


@given(st.integers(0, 2**31 - 1), st.integers(2, 12), st.integers(8, 32))
def test_well_separated_patterns_are_fixed_points_at_large_beta(seed, n, d):
    patterns = torch.sign(rand(n, d, seed=seed))  # ±1 patterns: Δ_i is an even integer
    delta = HF.separation(patterns)
    if float(delta.min()) < 2:  # duplicates or near-duplicates are not "well separated"
        return
    beta = 40.0 / float(delta.min())  # β Δ_i ≥ 40 -> weight off x_i is below N e^-40
    out = HF.update(patterns, patterns, beta)
    close(out, patterns)
    xi, info = HF.retrieve(patterns, patterns, beta, return_info=True)
    assert bool((info.steps == 1).all())
    close(xi, patterns)


@given(problems())
def test_beta_to_zero_gives_the_pattern_mean(problem):
    state, patterns, _ = problem
    out = HF.update(state, patterns, 1e-9)  # p_i = 1/N + O(β): deviation ~ 1e-9 · |scores|
    torch.testing.assert_close(out, patterns.mean(0).expand_as(out), atol=1e-6, rtol=0)


@given(st.integers(0, 2**31 - 1), st.integers(2, 20), st.integers(4, 32),
       st.floats(0.05, 5.0), st.floats(0.0, 0.3))
def test_theorem5_one_step_retrieval_error_bound(seed, n, d, beta, radius):
    """‖f(ξ) − x_i‖ ≤ 2(N−1) exp(−β(Δ_i − 2 max(‖ξ−x_i‖, ‖x_i*−x_i‖) M)) M (Ramsauer et al.)."""
    x = rand(n, d, seed=seed, scale=1.5)
    delta = HF.separation(x)  # (N,)
    m = float(x.norm(dim=-1).max())
    noise = rand(n, d, seed=seed + 7)
    xi = x + radius * noise / noise.norm(dim=-1, keepdim=True)  # one state near each x_i
    fixed = HF.retrieve(x, x, beta, max_steps=1000, tol=1e-13)  # x_i* (fixed point from x_i)
    err = (HF.update(xi, x, beta) - x).norm(dim=-1)
    dist = torch.maximum((xi - x).norm(dim=-1), (fixed - x).norm(dim=-1))
    bound = 2 * (n - 1) * torch.exp(-beta * (delta - 2 * dist * m)) * m
    assert bool((err <= bound * (1 + 1e-9) + 1e-12).all()), (err, bound)


def test_theorem5_bound_is_tight_enough_to_matter():
    """A well-separated case where the bound is tiny and the error is below it (not vacuous)."""
    x = 3.0 * torch.linalg.qr(rand(16, 16, seed=24))[0][:8]  # orthogonal, ‖x_i‖ = 3: Δ_i = 9
    xi = x + 0.05 * rand(8, 16, seed=25)
    beta = 4.0
    fixed = HF.retrieve(x, x, beta, tol=1e-13)
    err = (HF.update(xi, x, beta) - x).norm(dim=-1)
    dist = torch.maximum((xi - x).norm(dim=-1), (fixed - x).norm(dim=-1))
    bound = 2 * 7 * torch.exp(-beta * (HF.separation(x) - 2 * dist * 3.0)) * 3.0
    assert float(bound.max()) < 1e-6 and bool((err <= bound).all()) and float(err.max()) > 0


def test_separation_matches_naive():
    x = rand(2, 7, 5, seed=26)
    got = HF.separation(x)
    for b in range(2):
        close(got[b], torch.from_numpy(naive_separation(x[b])))
    assert HF.separation(rand(1, 4, seed=27)).item() == math.inf


# ----------------------------------------------------------------------------- bad input


S, P = rand(3, 4, seed=28), rand(5, 4, seed=29)


def _nan(x):
    y = x.clone()
    y[0, 0] = float("nan")
    return y


def _inf(x):
    y = x.clone()
    y[-1, -1] = float("inf")
    return y


CALLS = {
    "update": lambda s, p, **kw: HF.update(s, p, kw.pop("beta", 1.0), **kw),
    "retrieve": lambda s, p, **kw: HF.retrieve(s, p, kw.pop("beta", 1.0), **kw),
    "energy": lambda s, p, **kw: HF.energy(s, p, kw.pop("beta", 1.0), **kw),
    "similarity": lambda s, p, **kw: HF.similarity(s, p, kw.pop("beta", 1.0)),
    "associate": lambda s, p, **kw: HF.associate(s, p, p, kw.pop("beta", 1.0), **kw),
}
NAMES = {"update": ("state", "patterns"), "retrieve": ("state", "patterns"),
         "energy": ("state", "patterns"), "similarity": ("state", "patterns"),
         "associate": ("query", "keys")}


@pytest.mark.parametrize("fn", list(CALLS))
def test_bad_tensors_name_the_argument(fn):
    call, (sn, pn) = CALLS[fn], NAMES[fn]
    cases = [
        ((S[0], P), ValueError, rf"{sn} must have shape \(\.\.\., L, D\), got \(4\)"),
        ((S, P[0]), ValueError, rf"{pn} must have shape \(\.\.\., N, D\), got \(4\)"),
        ((S[:, :3], P), ValueError, (rf"{sn} must have the same last dimension D as {pn} "
                                     rf"\(D == 4\), got \(3, 3\)")),
        ((_nan(S), P), ValueError, rf"{sn} must be finite, got 1 NaN"),
        ((S, _inf(P)), ValueError, rf"{pn} must be finite, got 1 NaN or infinite"),
        ((S, P[:0]), ValueError, rf"{pn} must hold at least one pattern, got shape \(0, 4\)"),
        ((S[:, :0], P[:, :0]), ValueError, (rf"{pn} must have at least one dimension D, got "
                                            rf"shape \(5, 0\)")),
        ((S.numpy(), P), TypeError, rf"{sn} must be a torch.Tensor, got ndarray"),
        ((S.long(), P), TypeError, rf"{sn} must be a floating-point tensor, got dtype torch.int64"),
        ((S.float(), P), TypeError, rf"{sn} and {pn} must share a dtype"),
    ]
    for args, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            call(*args)


@pytest.mark.parametrize("fn", list(CALLS))
def test_bad_beta_names_the_argument(fn):
    call = CALLS[fn]
    for beta, exc, msg in [
        (0.0, ValueError, r"beta must be > 0 and finite, got 0"),
        (-1.0, ValueError, r"beta must be > 0 and finite, got -1"),
        (float("nan"), ValueError, r"beta must be > 0 and finite, got nan"),
        (float("inf"), ValueError, r"beta must be > 0 and finite, got inf"),
        (torch.tensor([1.0, -2.0], dtype=torch.float64), ValueError, r"beta must be > 0"),
        (torch.tensor(1), TypeError, r"beta must be a float or a floating-point tensor"),
        ("1", TypeError, r"beta must be a float or a tensor, got str"),
        (torch.ones(2, 2, dtype=torch.float64), ValueError,
         r"beta must be a float or a tensor broadcastable to the leading dims \(\)"),
    ]:
        with pytest.raises(exc, match=msg):
            call(S, P, beta=beta)


@pytest.mark.parametrize("fn", ["update", "retrieve", "energy", "associate"])
def test_bad_mask_names_the_argument(fn):
    call = CALLS[fn]
    for mask, exc, msg in [
        (torch.zeros(5), TypeError, (r"mask must have dtype torch.bool \(True = ignore\), got "
                                     r"torch.float32")),
        ([False] * 5, TypeError, r"mask must be a bool torch.Tensor, got list"),
        (torch.zeros(4, dtype=torch.bool), ValueError,
         r"mask must have shape \(\.\.\., 5\) or \(\.\.\., 3, 5\) .*got \(4\)"),
        (torch.zeros(2, 5, dtype=torch.bool), ValueError, r"mask must have shape .*got \(2, 5\)"),
        (torch.zeros(7, 3, 5, dtype=torch.bool), ValueError, r"mask must have shape .*got \(7, 3, 5\)"),
        (torch.ones(5, dtype=torch.bool), ValueError, r"mask hides every stored pattern"),
    ]:
        with pytest.raises(exc, match=msg):
            call(S, P, mask=mask)


def test_bad_options_name_the_argument():
    with pytest.raises(ValueError, match=r"separation must be one of \['entmax', 'softmax', "
                                         r"'sparsemax'.*\], got 'relu'"):
        HF.update(S, P, 1.0, separation="relu")
    with pytest.raises(TypeError, match="separation must be a name or a Separation instance"):
        HF.update(S, P, 1.0, separation=3)
    with pytest.raises(ValueError, match="max_steps must be >= 1, got 0"):
        HF.retrieve(S, P, 1.0, max_steps=0)
    with pytest.raises(ValueError, match=r"tol must be a float > 0, got -1"):
        HF.retrieve(S, P, 1.0, tol=-1.0)
    with pytest.raises(TypeError, match=r"tol must be a float > 0, got str"):  # was ValueError
        HF.retrieve(S, P, 1.0, tol="1e-5")
    with pytest.raises(ValueError, match=r"tol must be a float > 0, got nan"):
        HF.retrieve(S, P, 1.0, tol=float("nan"))
    HF.retrieve(S, P, 1.0, tol=np.float32(1e-4))  # numpy scalars are real numbers (were rejected)
    with pytest.raises(ValueError, match=r"values must have shape \(\.\.\., N, Dv\) with N == 5"):
        HF.associate(S, P, P[:3], 1.0)
    with pytest.raises(TypeError, match="values and keys must share a dtype, got torch.float32"):
        HF.associate(S, P, P.float(), 1.0)
    for p in (1.5, -0.1):
        with pytest.raises(ValueError, match=rf"dropout_p must be in \[0, 1\), got {p}"):
            HF.associate(S, P, P, 1.0, dropout_p=p, need_weights=True)
    with pytest.raises(TypeError, match="dropout_p must be a float, got str"):
        HF.associate(S, P, P, 1.0, dropout_p="0.1")
    with pytest.raises(ValueError, match=r"leading dimensions of state \(2, 3, 4\) and patterns "
                                         r"\(3, 5, 4\) must broadcast"):
        HF.update(rand(2, 3, 4), rand(3, 5, 4), 1.0)
    with pytest.raises(ValueError, match=r"patterns must have shape \(\.\.\., N, D\), got \(4\)"):
        HF.separation(P[0])
    with pytest.raises(ValueError, match="patterns must be finite"):
        HF.separation(_nan(P))
    with pytest.raises(ValueError, match="patterns must hold at least one pattern"):
        HF.separation(P[:0])


# ----------------------------------------------------------------------------- issue 8 / 14 / 15


def test_mask_reading_is_one_rule_whatever_the_batch_size():
    """Issue 8 item 6: a 2-D mask with batched states is never silently read two ways."""
    x = rand(3, 5, 4, seed=40)
    mask = torch.zeros(3, 5, dtype=torch.bool)
    mask[1, 2:] = True
    # B == L == 3: (3, 5) fits both (B, N) key padding and (L, N) rows -> ambiguous -> error
    with pytest.raises(ValueError, match=r"mask of shape \(3, 5\) is ambiguous"):
        HF.update(rand(3, 3, 4, seed=41), x, 1.0, mask)
    # the two explicit spellings work and differ
    s3 = rand(3, 3, 4, seed=41)
    pad = HF.update(s3, x, 1.0, mask[:, None, :])  # key padding: batch item 1 ignores 2..4
    rows = HF.update(s3, x, 1.0, mask.expand(3, 3, 5))  # per-state rows: state 1 ignores 2..4
    ref_pad, _ = naive_update(s3[1], x[1], 1.0, np.broadcast_to(mask[1].numpy(), (3, 5)))
    close(pad[1], torch.from_numpy(ref_pad))
    ref_rows, _ = naive_update(s3[0], x[0], 1.0, mask.numpy())
    close(rows[0], torch.from_numpy(ref_rows))
    # B = 2 != L = 3: (3, 5) can only be (L, N) rows; (2, 5) can only be (B, N) key padding
    s2, x2 = rand(2, 3, 4, seed=42), rand(2, 5, 4, seed=43)
    got = HF.update(s2, x2, 1.0, mask)
    for b in range(2):
        ref, _ = naive_update(s2[b], x2[b], 1.0, mask.numpy())
        close(got[b], torch.from_numpy(ref))
    got = HF.update(s2, x2, 1.0, mask[:2])
    ref, _ = naive_update(s2[1], x2[1], 1.0, np.broadcast_to(mask[1].numpy(), (3, 5)))
    close(got[1], torch.from_numpy(ref))
    # the same rule in every entry point
    for fn in (lambda m: HF.energy(s3, x, 1.0, m), lambda m: HF.retrieve(s3, x, 1.0, 2, 1e-5, m),
               lambda m: HF.lse(s3, x, 1.0, m), lambda m: HF.associate(s3, x, x, 1.0, mask=m)):
        with pytest.raises(ValueError, match="ambiguous"):
            fn(mask)


def test_energy_tiny_beta_half_precision_and_overflow():
    """Issue 8 item 9: never NaN/0 silently; float64 references."""
    s, x = rand(4, 8, seed=44), rand(6, 8, seed=45)
    for beta in (1e-40, 1e-30, 1e-8):  # float32 energy was NaN below ~1e-38
        got = HF.energy(s.float(), x.float(), beta)
        ref = 0.5 * (s * s).sum(-1) - (s @ x.mT).mean(-1) + 0.5 * x.norm(dim=-1).max() ** 2
        torch.testing.assert_close(got.double(), ref, atol=1e-4, rtol=1e-5)
    close(HF.energy(s, x, 1e-300), 0.5 * (s * s).sum(-1) - (s @ x.mT).mean(-1)
          + 0.5 * x.norm(dim=-1).max() ** 2)
    # float16 with ‖ξ‖ ~ 1000: float32 energies equal to the float64 reference
    sh, xh = (s * 300).half(), (x * 300).half()
    got = HF.energy(sh, xh, 0.01)
    assert got.dtype == torch.float32
    ref = torch.from_numpy(naive_energy(sh.double(), xh.double(), 0.01))
    torch.testing.assert_close(got.double(), ref, rtol=1e-4, atol=1e-2)
    # an energy beyond float32's range raises instead of returning inf
    with pytest.raises(ValueError, match="energy overflows torch.float32"):
        HF.energy(s.float() * 1e19, x.float(), 0.5)
    # lse agrees with the plain formula and is exact for tiny beta (mean similarity + log N / β)
    close(HF.lse(s, x, 0.7), torch.logsumexp(0.7 * s @ x.mT, -1) / 0.7)
    close(HF.lse(s, x, 0.7, mean=True), (torch.logsumexp(0.7 * s @ x.mT, -1) - math.log(6)) / 0.7)


def test_update_with_huge_norms_is_not_zero():
    """Issue 8 item 9: the fused update with norms >= 1e19 returned exactly 0."""
    s, x = rand(3, 8, seed=46), rand(5, 8, seed=47)
    for scale in (1e19, 1e30):
        got = HF.update(s.float() * scale, x.float() * scale, 0.5)
        ref = torch.softmax(0.5 * (s * scale) @ (x * scale).mT, -1) @ (x * scale)
        torch.testing.assert_close(got.double() / scale, ref / scale, atol=1e-5, rtol=1e-5)
        got = HF.retrieve(s.float() * scale, x.float() * scale, 0.5, max_steps=2)
        assert bool(torch.isfinite(got).all()) and float(got.abs().max()) > 0


def test_separation_margin_overflowing_gram_and_deprecated_alias():
    x = rand(5, 8, seed=48)
    big = x.float() * 1e19  # the float32 Gram matrix overflows (1e38 * 8)
    with pytest.raises(ValueError, match="separation_margin overflows torch.float32"):
        HF.separation_margin(big)
    mid = x.float() * 1e18  # Gram entries ~1e37: formed in float64, fits float32
    got = HF.separation_margin(mid)
    torch.testing.assert_close(got.double(), torch.from_numpy(naive_separation(mid.double())),
                               rtol=1e-5, atol=0)
    with pytest.warns(FutureWarning, match="separation_margin"):
        old = HF.separation(x)
    close(old, HF.separation_margin(x))


def test_update_return_info_and_deprecated_return_weights():
    s, x = rand(2, 3, 8, seed=49), rand(2, 5, 8, seed=50)
    new, info = HF.update(s, x, 0.8, return_info=True)
    assert isinstance(info, HF.RetrievalInfo)
    close(new, HF.update(s, x, 0.8))
    close(info.weights @ x, new)
    assert info.steps.shape == (2, 3) and bool((info.steps == 1).all()) and info.iterations == 1
    assert info.energy.shape == (2, 2, 3) and bool((info.energy[1] <= info.energy[0] + 1e-12).all())
    with pytest.warns(FutureWarning, match="return_weights"):
        new2, w = HF.update(s, x, 0.8, return_weights=True)
    close(new2, new)
    close(w, info.weights)


def test_beta_numpy_scalars_and_0d_tensor_on_meta_device():
    s, x = rand(3, 8, seed=51), rand(5, 8, seed=52)
    ref = HF.update(s, x, 0.5)
    close(HF.update(s, x, np.array(0.5)), ref)
    close(HF.update(s, x, np.float32(0.5)), ref)
    # issue 15 item 1: a 0-d CPU beta stays 0-d, so it works with states on another device
    b = torch.tensor(0.5, dtype=torch.float64)
    assert HF._beta_grid(b, (2, 3)).dim() == 0
    sm, xm = s.to("meta"), x.to("meta")
    assert HF._associate(sm, xm, xm, HF._beta_grid(b, ()))[0].device.type == "meta"
    assert HF._energy(sm, xm, HF._beta_grid(b, ())).device.type == "meta"


def test_driver_modes_share_one_meaning():
    from hopfield._driver import iterate

    x = rand(4, 6, seed=53)
    s = rand(3, 6, seed=54)

    def step(xi, _):
        return HF._associate(xi, x, x, 2.0)[0], None

    a, ia = iterate(step, s, max_steps=50, tol=1e-8)
    b, ib = iterate(step, s, max_steps=50, tol=1e-8, freeze=False)
    assert bool(ia.converged.all()) and bool(ib.converged.all())
    assert ib.iterations == int(ia.steps.max()) and bool((ib.steps == ib.iterations).all())
    close(a, b)
    _, i0 = iterate(step, s, max_steps=0, tol=1e-8, freeze=False)
    assert i0.iterations == 0 and not bool(i0.converged.any())


def test_driver_runs_every_step_under_vmap():
    from hopfield._driver import iterate

    x = rand(4, 6, seed=55)
    s = rand(2, 3, 6, seed=56)

    def run(si):
        def step(xi, _):
            return HF._associate(xi, x, x, 2.0)[0], None

        return iterate(step, si, max_steps=4, tol=1e-3, freeze=False)[0]

    eager = torch.stack([run(si) for si in s])
    # under vmap there is no early exit: 4 steps, which from a converged state changes < tol
    close(torch.vmap(run)(s), eager, torch.float32)
    manual = s
    for _ in range(4):
        manual = HF._associate(manual, x, x, 2.0)[0]
    close(torch.vmap(run)(s), manual)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
def test_energy_never_increases_under_the_update_in_every_dtype(dtype):
    """Issue 15 item 3: a property per dtype (half states: scores and energies in float32)."""
    rel = {torch.float64: 1e-10, torch.float32: 1e-6, torch.bfloat16: 1e-3, torch.float16: 1e-3}
    for seed in range(10):
        g = torch.Generator().manual_seed(seed)
        x, s = 3 * torch.randn(20, 16, generator=g), 3 * torch.randn(5, 16, generator=g)
        x, s = x.to(dtype), s.to(dtype)
        for beta in (0.1, 1.0, 8.0):
            e = [HF.energy(s, x, beta).double()]
            _, info = HF.retrieve(s, x, beta, max_steps=3, return_info=True)
            e += list(info.energy[1:].double())
            for a, b in itertools.pairwise(e):
                tol = rel[dtype] * max(1.0, float(a.abs().max()))
                assert float((b - a).max()) <= tol, (dtype, seed, beta, float((b - a).max()))
            assert bool(torch.isfinite(info.energy).all())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
@given(problems())
def test_energy_never_increases_under_the_update_property_per_dtype(dtype, problem):
    """Issue 15 item 3 as a hypothesis property, per supported dtype. Half states are stored in
    their dtype after every update (rounding moves ξ by ~eps·‖ξ‖); scores and energies are float32.
    The slack is that rounding's effect on E: eps·(‖ξ‖² + β‖ξ‖·max‖x‖ + max‖x‖²)."""
    state, patterns, beta = problem
    state, patterns = state.to(dtype), patterns.to(dtype)
    eps = torch.finfo(dtype).eps if dtype in (torch.bfloat16, torch.float16) else 1e-6
    if dtype == torch.float64:
        eps = 1e-12
    xmax = float(patterns.double().norm(dim=-1).max())
    e0 = HF.energy(state, patterns, beta).double()
    for _ in range(3):
        new = HF.update(state, patterns, beta)
        assert new.dtype == dtype
        e1 = HF.energy(new, patterns, beta).double()
        smax = float(torch.maximum(state.double().norm(dim=-1).max(), new.double().norm(dim=-1).max()))
        slack = 4 * eps * (1 + smax ** 2 + beta * smax * xmax + xmax ** 2)
        assert bool(torch.isfinite(e1).all())
        assert float((e1 - e0).max()) <= slack, (dtype, beta, float((e1 - e0).max()), slack)
        state, e0 = new, e1


def test_hopfield_forward_is_re_exported_from_functional():
    from hopfield.nn import functional as NF

    assert HF.hopfield_forward is NF.hopfield_forward
    assert "hopfield_forward" in HF.__all__
