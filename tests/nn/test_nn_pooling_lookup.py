"""HopfieldPooling (set invariances, hypothesis) and HopfieldLayer (learned lookup memory)."""

import pytest
import torch
from _nn_reference import naive_hopfield
from hypothesis import given
from hypothesis import strategies as st

from hopfield import Hopfield, HopfieldLayer, HopfieldPooling


def close(a, b, tol, what=""):
    diff = (a.double() - b.double()).abs().max().item()
    assert diff <= tol, f"{what} max |diff| = {diff:.3g} > {tol:g}"


# ----------------------------------------------------------------------------- pooling

POOL_CONFIGS = [
    {},
    {"max_steps": 2, "beta": 2.0},
    {"separation": "sparsemax", "beta": 3.0},
    {"normalize_stored": True, "learnable_beta": True},
]


@pytest.mark.parametrize("cfg", range(len(POOL_CONFIGS)))
@given(n=st.integers(1, 7), pad=st.integers(0, 4), seed=st.integers(0, 2**16))
def test_pooling_invariant_to_order_and_masked_padding(cfg, n, pad, seed):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(1)
    pool = HopfieldPooling(6, num_heads=2, quantity=2, **POOL_CONFIGS[cfg]).double()
    x = torch.randn(2, n, 6, generator=g, dtype=torch.float64)
    ref = pool(x)
    assert ref.shape == (2, pool.output_size) == (2, 12)
    perm = torch.randperm(n, generator=g)
    close(pool(x[:, perm]), ref, 1e-10, "instance order")
    # pad with junk (large values), mark as padding, then shuffle instances and padding together
    junk = 50 * torch.randn(2, pad, 6, generator=g, dtype=torch.float64)
    xp = torch.cat([x, junk], dim=1)
    mask = torch.zeros(2, n + pad, dtype=torch.bool)
    mask[:, n:] = True
    perm = torch.randperm(n + pad, generator=g)
    close(pool(xp[:, perm], mask=mask[:, perm]), ref, 1e-10, "masked padding")


def test_pooling_ragged_batch_equals_per_bag():
    pool = HopfieldPooling(5, num_heads=1, quantity=3).double()
    bags = [torch.randn(k, 5, dtype=torch.float64) for k in (2, 6, 4)]
    x = torch.zeros(3, 6, 5, dtype=torch.float64)
    mask = torch.ones(3, 6, dtype=torch.bool)
    for i, b in enumerate(bags):
        x[i, :len(b)], mask[i, :len(b)] = b, False
    out, info = pool(x, mask=mask, return_info=True)
    for i, b in enumerate(bags):
        close(out[i], pool(b[None])[0], 1e-12, f"bag {i}")
    assert info.weights.shape == (3, 1, 3, 6)
    assert bool((info.weights[0, ..., 2:] == 0).all())


def test_pooling_matches_naive_reference_and_layout():
    pool = HopfieldPooling(6, 2, 4, num_heads=3, quantity=2, beta=torch.tensor([0.3, 1.0, 3.0]))
    x = torch.randn(4, 5, 6)
    q = pool.query.detach()[None].expand(4, -1, -1)
    ref, _ = naive_hopfield(pool.hopfield, x, q, x)  # (B, Q, O)
    out = pool(x)
    assert out.shape == (4, 2 * 4)
    close(out, ref.flatten(1), 2e-5, "pooling vs reference")
    pool.hopfield.batch_first = False
    close(pool(x.transpose(0, 1)), out, 1e-6, "batch_first=False")


def test_pooling_errors():
    pool = HopfieldPooling(4)
    with pytest.raises(ValueError, match="input must have shape"):
        pool(torch.randn(3, 4))
    with pytest.raises(ValueError, match="feature size 4"):
        pool(torch.randn(2, 3, 5))
    with pytest.raises(ValueError, match="at least one stored pattern"):
        pool(torch.randn(2, 3, 4), mask=torch.tensor([[True] * 3, [False] * 3]))
    with pytest.raises(ValueError, match="input must hold at least one instance"):
        pool(torch.randn(2, 0, 4))
    with pytest.raises(ValueError, match=r"input must be a tuple \(stored, projection\) when "
                                         r"stored_pattern_size \(3\) != pattern_projection_size"):
        HopfieldPooling(4, stored_pattern_size=3, pattern_projection_size=5)(torch.randn(2, 3, 3))
    with pytest.raises(ValueError, match="quantity must be >= 1"):
        HopfieldPooling(4, quantity=0)


def test_pooling_trains():
    """The learned query moves and the loss drops on a toy task (is the bag's max > 1?)."""
    torch.manual_seed(0)
    pool = HopfieldPooling(3, num_heads=1, quantity=1, output_size=1, beta=2.0)
    opt = torch.optim.Adam(pool.parameters(), lr=0.05)
    x = torch.randn(32, 8, 3)
    y = (x[..., 0].max(dim=1).values > 1.0).double()
    q0 = pool.query.detach().clone()
    losses = []
    for _ in range(40):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(pool(x)[:, 0], y.float())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]
    assert (pool.query.detach() - q0).abs().max() > 1e-2


# ----------------------------------------------------------------------------- lookup layer


@pytest.mark.parametrize("lookup_targets", [False, True])
def test_lookup_equals_hopfield_with_explicit_memory(lookup_targets):
    layer = HopfieldLayer(6, num_heads=2, quantity=5, lookup_targets=lookup_targets,
                          max_steps=1).double()
    x = torch.randn(3, 4, 6, dtype=torch.float64)
    y = layer.patterns[None].expand(3, -1, -1)
    v = (layer.targets if lookup_targets else layer.patterns)[None].expand(3, -1, -1)
    ref, ref_w = naive_hopfield(layer.hopfield, y, x, v)
    out, info = layer(x, return_info=True)
    close(out, ref, 1e-10)
    close(info.weights, ref_w, 1e-10)
    close(layer(x), out, 1e-12, "fused vs math")
    assert info.weights.shape == (3, 2, 4, 5)


def test_lookup_retrieves_target_of_nearest_prototype():
    """Identity projections, large β: a noisy prototype reads out exactly its own target."""
    D, N = 8, 6
    layer = HopfieldLayer(D, D, D, num_heads=1, quantity=N, lookup_targets=True, beta=20.0).double()
    with torch.no_grad():
        for lin in (layer.hopfield.q_proj, layer.hopfield.k_proj, layer.hopfield.v_proj,
                    layer.hopfield.out_proj):
            lin.weight.copy_(torch.eye(D))
            lin.bias.zero_()
        layer.patterns.copy_(torch.nn.functional.normalize(torch.randn(N, D), dim=-1) * 2)
        layer.targets.copy_(torch.randn(N, D))
    idx = torch.tensor([3, 0, 5, 1])
    x = (layer.patterns[idx] + 0.05 * torch.randn(4, D, dtype=torch.float64))[None]
    out, info = layer(x, return_info=True)
    assert torch.equal(info.weights[0, 0].argmax(-1), idx)
    close(out[0], layer.targets[idx], 1e-3, "retrieved targets")


def test_lookup_layout_repr_and_errors():
    layer = HopfieldLayer(4, quantity=3, batch_first=False)
    x = torch.randn(5, 2, 4)  # (L, B, D)
    assert layer(x).shape == (5, 2, 4)
    assert "quantity=3" in repr(layer) and "lookup_targets=False" in repr(layer)
    assert "targets" not in dict(layer.named_parameters())
    with pytest.raises(ValueError, match="feature size 4"):
        layer(torch.randn(5, 2, 3))
    with pytest.raises(TypeError, match="dtype"):
        layer(torch.randn(5, 2, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"pattern_projection_size \(2\) must equal "
                                         r"stored_pattern_size \(4\) without lookup_targets"):
        HopfieldLayer(4, pattern_projection_size=2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_pooling_and_lookup_dtypes(dtype):
    x = torch.randn(2, 5, 8)
    for mod in (HopfieldPooling(8, num_heads=2, quantity=2), HopfieldLayer(8, num_heads=2)):
        ref = mod.double()(x.double())
        out = mod.to(dtype)(x.to(dtype))
        assert out.dtype == dtype
        close(out, ref, {torch.float32: 1e-5, torch.float64: 0.0, torch.bfloat16: 6e-2}[dtype])


def test_same_hopfield_kwargs_reach_inner_layer():
    pool = HopfieldPooling(8, num_heads=4, quantity=2, max_steps=3, learnable_beta=True)
    assert isinstance(pool.hopfield, Hopfield) and pool.hopfield.max_steps == 3
    assert pool.hopfield.learnable_beta
