"""Options from issue 12: max_steps=None, per-head max_steps / tol, hflayers-name hints.

Each option is checked against a float64 reference of the paper's update
ξ ← softmax(β ξ Kᵀ) K (Ramsauer et al. 2020, eq. 10), written here per head and per state.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hopfield.nn import Hopfield, HopfieldLayer, HopfieldPooling, hopfield_forward
from hopfield.nn.functional import MAX_STEPS_UNTIL_CONVERGED


def reference(layer: Hopfield, x: torch.Tensor, steps, tols) -> torch.Tensor:
    """float64: per (batch, head) iterate; head h stops after steps[h] updates (None = no cap)
    or once all its states moved less than tols[h]."""
    d = lambda t: None if t is None else t.detach().double()
    H, Dh = layer.num_heads, layer.head_size
    x = x.double()
    q = F.linear(x, d(layer.q_proj.weight), d(layer.q_proj.bias))
    k = F.linear(x, d(layer.k_proj.weight), d(layer.k_proj.bias))
    v = F.linear(x, d(layer.v_proj.weight), d(layer.v_proj.bias))
    beta = layer.beta.detach().double()
    B, L = x.shape[:2]
    out = torch.zeros(B, L, H * Dh, dtype=torch.float64)
    for b in range(B):
        for h in range(H):
            sl = slice(h * Dh, (h + 1) * Dh)
            xi, kh, vh = q[b, :, sl], k[b, :, sl], v[b, :, sl]
            n = 0
            while steps[h] is None or n < steps[h]:
                new = torch.softmax(beta[h] * xi @ kh.T, -1) @ kh
                n += 1
                done = bool(((new - xi).norm(dim=-1) < tols[h]).all())
                xi = new
                if done or n >= 10_000:
                    break
            out[b, :, sl] = torch.softmax(beta[h] * xi @ kh.T, -1) @ vh
    return F.linear(out, d(layer.out_proj.weight), d(layer.out_proj.bias))


@pytest.mark.parametrize("max_steps,tol", [
    (None, 1e-6),
    ((0, 3), 1e-9),
    ((2, 1, 4), 1e-9),
    (5, (1e-1, 1e-9, 1e-3)),
    (None, (1e-2, 1e-7, 1e-4)),
    ((3, 0, 6), (1e-9, 1e-9, 1e-2)),
    ((None, 0, 2), 1e-7),
])
@pytest.mark.parametrize("return_info", [False, True])
def test_until_converged_and_per_head_steps_and_tol(max_steps, tol, return_info):
    torch.manual_seed(0)
    H = 2 if isinstance(max_steps, tuple) and len(max_steps) == 2 else 3
    layer = Hopfield(6 * H, num_heads=H, beta=torch.tensor([1.5, 0.8, 2.0][:H]),
                     max_steps=max_steps, tol=tol).double()
    x = torch.randn(3, 5, 6 * H, dtype=torch.float64)
    steps = [max_steps] * H if not isinstance(max_steps, tuple) else list(max_steps)
    tols = [tol] * H if isinstance(tol, float) else list(tol)
    out = layer(x, return_info=return_info)
    out = out[0] if return_info else out
    assert (out - reference(layer, x, steps, tols)).abs().max() <= 1e-10
    if return_info:
        assert layer(x, return_info=True)[1].converged is not None


def test_per_head_values_accept_tensors_and_collapse_when_equal():
    layer = Hopfield(8, num_heads=2, max_steps=torch.tensor([2, 2]), tol=[1e-3, 1e-3])
    assert layer.max_steps == 2 and layer.tol == 1e-3
    layer = Hopfield(8, num_heads=2, max_steps=[1, 2])
    assert layer.max_steps == (1, 2)
    assert "max_steps=(1, 2)" in repr(layer)
    out = hopfield_forward(*(torch.randn(2, 3, 8),) * 3, num_heads=2, beta=0.5,
                           q_proj_weight=layer.q_proj.weight, k_proj_weight=layer.k_proj.weight,
                           v_proj_weight=layer.v_proj.weight,
                           out_proj_weight=layer.out_proj.weight, max_steps=None, tol=(1e-3, 1e-4))
    assert out.shape == (2, 3, 8)
    assert MAX_STEPS_UNTIL_CONVERGED >= 1000


@pytest.mark.parametrize("kwargs,err,match", [
    ({"max_steps": [1, 2, 3]}, ValueError, r"max_steps must have one value per head \(2\)"),
    ({"max_steps": [1, -1]}, ValueError, "max_steps must be >= 0"),
    ({"max_steps": [1, 1.5]}, TypeError, "max_steps must be an int"),
    ({"max_steps": torch.tensor([1.0, 2.0])}, TypeError, "max_steps must hold ints"),
    ({"max_steps": torch.ones(2, 2, dtype=torch.long)}, ValueError, "one value per head"),
    ({"max_steps": "3"}, TypeError, "max_steps must be"),
    ({"tol": [1e-3]}, ValueError, r"tol must have one value per head \(2\)"),
    ({"tol": [1e-3, 0.0]}, ValueError, "tol"),
    ({"tol": "x"}, TypeError, "tol"),
])
def test_bad_step_options(kwargs, err, match):
    with pytest.raises(err, match=match):
        Hopfield(8, num_heads=2, **kwargs)


def test_until_converged_refuses_compile_free_tracing_under_vmap():
    layer = Hopfield(8, num_heads=2, max_steps=None)
    x = torch.randn(4, 2, 3, 8)
    with pytest.raises(ValueError, match="max_steps=None"):
        torch.func.vmap(layer)(x)


@pytest.mark.parametrize("cls,kwargs", [(Hopfield, {}), (HopfieldPooling, {}),
                                        (HopfieldLayer, {})])
@pytest.mark.parametrize("name,new", [("scaling", "beta="), ("input_bias", "bias="),
                                      ("normalize_stored_pattern", "normalize_stored="),
                                      ("pattern_projection_as_connected",
                                       r"HeadSpace\(connected=True\)")])
def test_hflayers_constructor_names_point_to_the_new_argument(cls, kwargs, name, new):
    with pytest.raises(TypeError, match=f"unexpected keyword argument '{name}'.*{new}"):
        cls(8, **{name: True}, **kwargs)


@pytest.mark.parametrize("layer", [Hopfield(8), HopfieldPooling(8), HopfieldLayer(8)])
def test_hflayers_forward_names_point_to_the_new_argument(layer):
    x = torch.randn(2, 3, 8)
    with pytest.raises(TypeError, match="'stored_pattern_padding_mask'.*is mask= here"):
        layer(x, stored_pattern_padding_mask=torch.zeros(2, 3, dtype=torch.bool))
    with pytest.raises(TypeError, match="unexpected keyword argument 'foo'$"):
        layer(x, foo=1)


# ----------------------------------------------------------------------------- masks, activation


def test_3d_association_mask_matches_multihead_attention():
    torch.manual_seed(1)
    B, H, L, N, E = 2, 2, 4, 5, 8
    mha = torch.nn.MultiheadAttention(E, H, batch_first=True).double().eval()
    layer = Hopfield.from_attention(mha).double().eval()
    q, kv = torch.randn(B, L, E, dtype=torch.float64), torch.randn(B, N, E, dtype=torch.float64)
    am = torch.rand(B * H, L, N) < 0.4
    am[..., 0] = False  # every state sees a pattern (MHA gives NaN otherwise)
    ref = mha(q, kv, kv, attn_mask=am, need_weights=False)[0]
    out = layer((kv, q, kv), association_mask=am)
    assert (out - ref).abs().max() <= 1e-10
    out4 = layer((kv, q, kv), association_mask=am.view(B, H, L, N), return_info=True)[0]
    assert (out4 - ref).abs().max() <= 1e-10


def test_lookup_layer_masks_equal_the_explicit_tuple_call():
    torch.manual_seed(2)
    layer = HopfieldLayer(8, num_heads=2, quantity=6, lookup_targets=True).double()
    x = torch.randn(3, 4, 8, dtype=torch.float64)
    mask = torch.zeros(3, 6, dtype=torch.bool)
    mask[0, :3] = True
    mask[2, 5] = True
    am = torch.rand(4, 6) < 0.3
    y = layer.patterns.unsqueeze(0).expand(3, -1, -1)
    t = layer.targets.unsqueeze(0).expand(3, -1, -1)
    ref = layer.hopfield((y, x, t), mask=mask, association_mask=am)
    assert (layer(x, mask=mask, association_mask=am) - ref).abs().max() <= 1e-12
    assert not torch.allclose(layer(x), ref)
    with pytest.raises(ValueError, match=r"mask must have shape \(B, N\) = \(3, 6\)"):
        layer(x, mask=torch.zeros(3, 5, dtype=torch.bool))


@pytest.mark.parametrize("act", ["tanh", torch.relu])
def test_association_activation_is_applied_to_the_output(act):
    torch.manual_seed(3)
    plain = Hopfield(8, num_heads=2).double()
    layer = Hopfield(8, num_heads=2, association_activation=act).double()
    layer.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 8, dtype=torch.float64)
    f = torch.tanh if act == "tanh" else act
    assert (layer(x) - f(plain(x))).abs().max() <= 1e-12
    assert (layer(x, return_info=True)[0] - f(plain(x))).abs().max() <= 1e-12
    pool = HopfieldPooling(8, association_activation=act)
    assert pool(torch.randn(2, 5, 8)).shape == (2, 8)


def test_association_activation_errors():
    with pytest.raises(ValueError, match="association_activation must name a torch function"):
        Hopfield(8, association_activation="no_such_fn")
    with pytest.raises(TypeError, match="association_activation must be None"):
        Hopfield(8, association_activation=3)


def test_trainable_flags():
    assert not HopfieldPooling(8, trainable=False).query.requires_grad
    layer = HopfieldLayer(8, quantity=3, lookup_targets=True, trainable=False,
                          trainable_targets=False)
    assert not layer.patterns.requires_grad and not layer.targets.requires_grad
    assert HopfieldLayer(8, quantity=3).patterns.requires_grad
    with pytest.raises(TypeError, match="trainable must be a bool"):
        HopfieldPooling(8, trainable="no")


# ----------------------------------------------------------------------------- pattern_size, out_projection


def reference_general(layer: Hopfield, y, r, v, steps=0, mask=None):
    """float64 paper forward with value size per head = pattern_size, optional out_proj."""
    d = lambda t: None if t is None else t.detach().double()
    H = layer.num_heads
    q = F.linear(r.double(), d(layer.q_proj.weight), d(layer.q_proj.bias)).unflatten(-1, (H, -1))
    k = F.linear(y.double(), d(layer.k_proj.weight), d(layer.k_proj.bias)).unflatten(-1, (H, -1))
    vv = F.linear(v.double(), d(layer.v_proj.weight), d(layer.v_proj.bias)).unflatten(-1, (H, -1))
    q, k, vv = (t.transpose(1, 2) for t in (q, k, vv))  # (B, H, ·, ·)
    beta = layer.beta.detach().double().view(-1, 1, 1)

    def weights(xi):
        s = beta * xi @ k.mT
        if mask is not None:
            s = s.masked_fill(mask[:, None, None, :], float("-inf"))
        return torch.softmax(s, -1)

    for _ in range(steps):
        q = weights(q) @ k
    out = (weights(q) @ vv).transpose(1, 2).flatten(2)
    if layer.out_proj is not None:
        out = F.linear(out, d(layer.out_proj.weight), d(layer.out_proj.bias))
    return out


@pytest.mark.parametrize("pattern_size,out_projection,steps,return_info", [
    (3, True, 0, False), (5, False, 0, False), (5, False, 2, True), (2, True, 1, False),
    (None, False, 0, True),
])
def test_pattern_size_and_no_out_projection(pattern_size, out_projection, steps, return_info):
    torch.manual_seed(4)
    layer = Hopfield(8, num_heads=2, pattern_size=pattern_size, out_projection=out_projection,
                     max_steps=steps, stored_pattern_size=6, pattern_projection_size=7).double()
    y, r, v = (torch.randn(3, n, dim, dtype=torch.float64) for n, dim in ((5, 6), (4, 8), (5, 7)))
    mask = torch.zeros(3, 5, dtype=torch.bool)
    mask[1, :2] = True
    out = layer((y, r, v), mask=mask, return_info=return_info)
    out = out[0] if return_info else out
    Ev = 2 * (pattern_size or 4)
    assert out.shape == (3, 4, 8 if out_projection else Ev)
    assert layer.output_size == (8 if out_projection else Ev)
    assert (out - reference_general(layer, y, r, v, steps, mask)).abs().max() <= 1e-10
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    self_layer = Hopfield(8, num_heads=2, pattern_size=pattern_size,
                          out_projection=out_projection).double()
    assert (self_layer(x) - reference_general(self_layer, x, x, x)).abs().max() <= 1e-10


def test_pattern_size_in_pooling_and_lookup_and_errors():
    pool = HopfieldPooling(8, num_heads=2, quantity=3, pattern_size=5, out_projection=False)
    assert pool(torch.randn(2, 6, 8)).shape == (2, 3 * 10) and pool.output_size == 30
    look = HopfieldLayer(8, num_heads=2, quantity=3, pattern_size=3)
    assert look(torch.randn(2, 6, 8)).shape == (2, 6, 8)
    assert look(torch.randn(0, 6, 8)).shape == (0, 6, 8)
    assert Hopfield(8, num_heads=2, out_projection=False)(torch.randn(0, 3, 8)).shape == (0, 3, 8)
    with pytest.raises(ValueError, match="output_size must be None or num_heads"):
        Hopfield(8, num_heads=2, output_size=5, out_projection=False)
    with pytest.raises(ValueError, match="pattern_size must be >= 1"):
        Hopfield(8, pattern_size=0)
    with pytest.raises(TypeError, match="out_projection must be a bool"):
        Hopfield(8, out_projection="no")
    layer = Hopfield(8, num_heads=2)
    with pytest.raises(ValueError, match="v_proj_weight must have num_heads"):
        hopfield_forward(*(torch.randn(1, 2, 8),) * 3, num_heads=2, beta=1.0,
                         q_proj_weight=layer.q_proj.weight, k_proj_weight=layer.k_proj.weight,
                         v_proj_weight=torch.randn(5, 8), out_proj_weight=None)
    with pytest.raises(ValueError, match=r"out_proj_weight must have shape \(O, 8\)"):
        hopfield_forward(*(torch.randn(1, 2, 8),) * 3, num_heads=2, beta=1.0,
                         q_proj_weight=layer.q_proj.weight, k_proj_weight=layer.k_proj.weight,
                         v_proj_weight=layer.v_proj.weight, out_proj_weight=torch.randn(8, 6))


# ----------------------------------------------------------------------------- pooling tuple, getters


def test_pooling_tuple_input_equals_the_explicit_hopfield_call():
    torch.manual_seed(6)
    pool = HopfieldPooling(8, num_heads=2, quantity=3).double()
    y, v = torch.randn(2, 5, 8, dtype=torch.float64), torch.randn(2, 5, 8, dtype=torch.float64)
    mask = torch.tensor([[False] * 5, [True, True, False, False, False]])
    ref = pool.hopfield((y, pool.query.unsqueeze(0).expand(2, -1, -1), v), mask=mask).flatten(1)
    assert (pool((y, v), mask=mask) - ref).abs().max() <= 1e-12
    assert (pool((y, y)) - pool(y)).abs().max() == 0
    with pytest.raises(ValueError, match="stored and projection must have the same batch"):
        pool((y, v[:, :4]))
    with pytest.raises(TypeError, match=r"tuple \(stored, projection\) of 2"):
        pool((y, v, v))
    with pytest.raises(ValueError, match="projection must have feature size 8"):
        pool((y, v[..., :6]))
    w = pool.get_association_matrix((y, v), mask=mask)
    assert w.shape == (2, 2, 3, 5) and not w.requires_grad and bool((w[1, ..., :2] == 0).all())
    pm = pool.get_projected_pattern_matrix((y, v))
    ref_v = pool.hopfield.v_proj(v).unflatten(-1, (2, -1)).transpose(1, 2)
    assert pm.shape == (2, 2, 5, 4) and (pm - ref_v).abs().max() <= 1e-12


def test_get_association_and_projected_pattern_matrix():
    torch.manual_seed(7)
    layer = Hopfield(8, num_heads=2, pattern_size=3, normalize_projection=True).double()
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    w = layer.get_association_matrix(x)
    assert (w - layer(x, return_info=True)[1].weights).abs().max() == 0 and w.shape == (2, 2, 5, 5)
    pm = layer.get_projected_pattern_matrix(x)
    ref = layer.v_proj(layer.norm_projection(x)).unflatten(-1, (2, 3)).transpose(1, 2)
    assert pm.shape == (2, 2, 5, 3) and (pm - ref).abs().max() == 0
    look = HopfieldLayer(8, num_heads=2, quantity=4, lookup_targets=True)
    assert look.get_association_matrix(torch.randn(3, 6, 8)).shape == (3, 2, 6, 4)
    assert look.get_projected_pattern_matrix().shape == (1, 2, 4, 4)
    tm = HopfieldLayer(8, num_heads=2, quantity=4, batch_first=False)
    assert tm.get_projected_pattern_matrix().shape == (1, 2, 4, 4)


# ----------------------------------------------------------------------------- HeadSpace


def reference_head_space(layer: Hopfield, x, steps, mask, normalize, add_zero):
    d = lambda t: None if t is None else t.detach().double()
    H = layer.num_heads
    heads = lambda t: t.unflatten(-1, (H, -1)).transpose(1, 2)
    x = x.double()
    q = heads(F.linear(x, d(layer.q_proj.weight), d(layer.q_proj.bias)))
    k = heads(F.linear(x, d(layer.k_proj.weight), d(layer.k_proj.bias)))
    v = heads(F.linear(x, d(layer.v_proj.weight), d(layer.v_proj.bias)))
    if normalize:
        hn = layer.head_norm
        ln = lambda t: F.layer_norm(t, (t.shape[-1],), d(hn.weight), d(hn.bias), hn.eps)
        q, k = ln(q), ln(k)
    keep = torch.ones(x.shape[0], 1, 1, x.shape[1], dtype=torch.bool)
    if mask is not None:
        keep = ~mask[:, None, None, :]
    if add_zero:
        k = torch.cat([k, torch.zeros_like(k[:, :, :1])], 2)
        v = torch.cat([v, torch.zeros_like(v[:, :, :1])], 2)
        keep = torch.cat([keep, torch.ones_like(keep[..., :1])], -1)
    beta = layer.beta.detach().double().view(-1, 1, 1)

    def weights(xi):
        return torch.softmax((beta * xi @ k.mT).masked_fill(~keep, float("-inf")), -1)

    for _ in range(steps):
        q = weights(q) @ k
    out = (weights(q) @ v).transpose(1, 2).flatten(2)
    return F.linear(out, d(layer.out_proj.weight), d(layer.out_proj.bias))


@pytest.mark.parametrize("normalize,affine,add_zero,steps,return_info", [
    (True, False, False, 0, False), (True, True, False, 2, False), (False, False, True, 0, False),
    (False, False, True, 1, True), (True, True, True, 0, True),
])
def test_head_space_options(normalize, affine, add_zero, steps, return_info):
    from hopfield.nn import HeadSpace

    torch.manual_seed(8)
    hs = HeadSpace(normalize=normalize, affine=affine, eps=1e-3, add_zero=add_zero)
    layer = Hopfield(8, num_heads=2, max_steps=steps, head_space=hs).double()
    if affine:
        with torch.no_grad():
            layer.head_norm.weight.uniform_(0.5, 1.5)
            layer.head_norm.bias.uniform_(-0.3, 0.3)
    x = torch.randn(3, 5, 8, dtype=torch.float64)
    mask = torch.zeros(3, 5, dtype=torch.bool)
    mask[2, 1:] = True
    out = layer(x, mask=mask, return_info=return_info)
    if return_info:
        out, info = out
        assert info.weights.shape[-1] == 5 + add_zero
    ref = reference_head_space(layer, x, steps, mask, normalize, add_zero)
    assert (out - ref).abs().max() <= 1e-10
    assert ("HeadSpace(" in repr(layer)) and (("head_norm" in dict(layer.named_modules())) == normalize)


def test_head_space_errors_and_hints():
    from hopfield.nn import HeadSpace

    with pytest.raises(ValueError, match="affine=True needs normalize=True"):
        HeadSpace(affine=True)
    with pytest.raises(TypeError, match="HeadSpace.add_zero must be a bool"):
        HeadSpace(add_zero=1)
    with pytest.raises(ValueError, match="HeadSpace.eps"):
        HeadSpace(normalize=True, eps=0.0)
    with pytest.raises(TypeError, match="head_space must be None or a hopfield.nn.HeadSpace"):
        Hopfield(8, head_space={"normalize": True})
    with pytest.raises(TypeError, match=r"is head_space=HeadSpace\(add_zero=True\) here"):
        Hopfield(8, add_zero_association=True)
    assert HopfieldPooling(8, head_space=HeadSpace(add_zero=True))(torch.randn(2, 3, 8)).shape \
        == (2, 8)


def test_norm_settings_of_the_input_layernorms():
    from hopfield.nn import Norm

    layer = Hopfield(8, normalize_state=Norm(affine=False, eps=1e-2), normalize_stored=True)
    assert layer.norm_state.weight is None and layer.norm_state.eps == 1e-2
    assert layer.norm_stored.weight is not None and layer.norm_stored.eps == 1e-5
    assert layer.norm_projection is None
    x = torch.randn(2, 3, 8)
    ref = Hopfield(8, normalize_stored=True)
    ref.load_state_dict(layer.state_dict())
    # R normalised with eps 1e-2 by hand equals the layer's own state LayerNorm
    r = F.layer_norm(x, (8,), eps=1e-2)
    assert (layer((x, x, x)) - ref((x, r, x))).abs().max() <= 1e-6
    with pytest.raises(TypeError, match="Norm.affine must be a bool"):
        Norm(affine="yes")
    with pytest.raises(ValueError, match="Norm.eps"):
        Norm(eps=-1.0)
    with pytest.raises(TypeError, match=r"normalize_state_pattern_affine is normalize_...=Norm"):
        Hopfield(8, normalize_state_pattern_affine=False)


# ----------------------------------------------------------------------------- additive float masks


@pytest.mark.parametrize("shape", ["2d", "3d", "4d"])
@pytest.mark.parametrize("steps,return_info", [(0, False), (0, True), (2, False)])
def test_additive_float_association_mask(shape, steps, return_info):
    torch.manual_seed(9)
    B, H, L, N = 2, 2, 4, 5
    layer = Hopfield(8, num_heads=H, max_steps=steps).double()
    y, r = torch.randn(B, N, 8, dtype=torch.float64), torch.randn(B, L, 8, dtype=torch.float64)
    full = torch.randn(B, H, L, N, dtype=torch.float64)
    full[..., 1] = float("-inf")
    full[0, 1, 2] = float("-inf")  # one state sees nothing: zero retrieval
    am = {"2d": full[0, 0], "3d": full.flatten(0, 1), "4d": full}[shape]
    bias = {"2d": full[:1, :1, :, :].expand(B, H, L, N), "3d": full, "4d": full}[shape]
    out = layer((y, r, y), association_mask=am, return_info=return_info)
    out = out[0] if return_info else out
    # float64 paper reference: softmax(β ξ kᵀ + bias), -inf = excluded, all-excluded → 0
    d = lambda t: t.detach().double()
    heads = lambda t: t.unflatten(-1, (H, -1)).transpose(1, 2)
    q = heads(F.linear(r, d(layer.q_proj.weight), d(layer.q_proj.bias)))
    k = heads(F.linear(y, d(layer.k_proj.weight), d(layer.k_proj.bias)))
    v = heads(F.linear(y, d(layer.v_proj.weight), d(layer.v_proj.bias)))
    beta = layer.beta.detach().double().view(-1, 1, 1)

    def weights(xi):
        s = beta * xi @ k.mT + bias
        dead = torch.isneginf(s).all(-1, keepdim=True)
        return torch.softmax(s.masked_fill(dead, 0.0), -1).masked_fill(dead, 0.0)

    for _ in range(steps):
        q = weights(q) @ k
    ref = F.linear((weights(q) @ v).transpose(1, 2).flatten(2), d(layer.out_proj.weight),
                   d(layer.out_proj.bias))
    assert (out - ref).abs().max() <= 1e-10


def test_float_mask_with_nan_is_an_error():
    layer = Hopfield(8, num_heads=2)
    x = torch.randn(2, 3, 8)
    am = torch.zeros(3, 3)
    am[0, 0] = float("nan")
    with pytest.raises(ValueError, match="finite values or -inf"):
        layer(x, association_mask=am)


def test_float_mask_matches_multihead_attention():
    torch.manual_seed(10)
    mha = torch.nn.MultiheadAttention(8, 2, batch_first=True).eval()
    layer = Hopfield.from_attention(mha).eval()
    q, kv = torch.randn(2, 4, 8), torch.randn(2, 5, 8)
    am = torch.randn(4, 5)
    am[:, 2] = float("-inf")
    ref = mha(q, kv, kv, attn_mask=am, need_weights=False)[0]
    assert (layer((kv, q, kv), association_mask=am) - ref).abs().max() <= 1e-5


# ----------------------------------------------------------------------------- unprojected


@pytest.mark.parametrize("names", [("stored",), ("state", "stored"), ("projection",),
                                   ("state", "stored", "projection")])
def test_unprojected_inputs_are_pure_retrieval(names):
    from hopfield.nn import HeadSpace

    torch.manual_seed(11)
    H, Dh = 2, 4
    sizes = {"state": Dh if "state" in names else 8, "stored": Dh if "stored" in names else 6,
             "projection": Dh if "projection" in names else 5}
    layer = Hopfield(sizes["state"], head_size=Dh, num_heads=H, output_size=7,
                     stored_pattern_size=sizes["stored"],
                     pattern_projection_size=sizes["projection"], max_steps=1,
                     head_space=HeadSpace(unprojected=names)).double()
    y = torch.randn(2, 5, sizes["stored"], dtype=torch.float64)
    r = torch.randn(2, 3, sizes["state"], dtype=torch.float64)
    v = torch.randn(2, 5, sizes["projection"], dtype=torch.float64)

    def proj(x, lin, name):  # an unprojected input is the same raw pattern in every head
        if name in names:
            return x.unsqueeze(1).expand(-1, H, -1, -1)
        w, b = lin.weight.detach().double(), lin.bias.detach().double()
        return F.linear(x, w, b).unflatten(-1, (H, -1)).transpose(1, 2)

    q, k, vv = proj(r, layer.q_proj, "state"), proj(y, layer.k_proj, "stored"), \
        proj(v, layer.v_proj, "projection")
    beta = layer.beta.detach().double().view(-1, 1, 1)
    q = torch.softmax(beta * q @ k.mT, -1) @ k
    out = (torch.softmax(beta * q @ k.mT, -1) @ vv).transpose(1, 2).flatten(2)
    ref = F.linear(out, layer.out_proj.weight.detach().double(),
                   layer.out_proj.bias.detach().double())
    assert (layer((y, r, v)) - ref).abs().max() <= 1e-10
    trainable = {n for n, p in layer.named_parameters() if p.requires_grad}
    for name, attr in (("state", "q_proj"), ("stored", "k_proj"), ("projection", "v_proj")):
        assert (f"{attr}.weight" in trainable) == (name not in names)


def test_unprojected_errors():
    from hopfield.nn import HeadSpace

    with pytest.raises(ValueError, match="names must be among"):
        HeadSpace(unprojected=("keys",))
    with pytest.raises(TypeError, match="must be a tuple of names"):
        HeadSpace(unprojected="stored")
    with pytest.raises(ValueError, match=r"unprojected 'stored' needs stored_pattern_size == "
                                         r"head_size \(4\), got 8"):
        Hopfield(8, num_heads=2, head_space=HeadSpace(unprojected=("stored",)))
    with pytest.raises(TypeError, match=r"HeadSpace\(unprojected=\('stored',\)\)"):
        Hopfield(8, stored_pattern_as_static=True)


# ----------------------------------------------------------------------------- connected projection


def reference_connected(layer: Hopfield, y, r, v, steps, mask):
    """float64, unfolded: v goes through k_proj, then v_proj (the paper's Y W_K W_V)."""
    d = lambda t: None if t is None else t.double()
    H = layer.num_heads
    heads = lambda t: t.unflatten(-1, (H, -1)).transpose(1, 2)
    lin = lambda x, m: F.linear(x, d(m.weight), d(m.bias))
    q, k = heads(lin(r, layer.q_proj)), heads(lin(y, layer.k_proj))
    vv = heads(lin(lin(v, layer.k_proj), layer.v_proj))
    beta = layer.beta.double().view(-1, 1, 1)

    def weights(xi):
        s = beta * xi @ k.mT
        if mask is not None:
            s = s.masked_fill(mask[:, None, None, :], float("-inf"))
        return torch.softmax(s, -1)

    for _ in range(steps):
        q = weights(q) @ k
    out = (weights(q) @ vv).transpose(1, 2).flatten(2)
    return out if layer.out_proj is None else lin(out, layer.out_proj)


@pytest.mark.parametrize("pattern_size,steps,return_info,bias,unprojected", [
    (None, 0, False, True, ()), (3, 0, True, True, ()), (None, 2, False, False, ()),
    (5, 1, False, True, ("state",)), (None, 0, False, True, ("stored",)),
])
def test_connected_pattern_projection(pattern_size, steps, return_info, bias, unprojected):
    from hopfield.nn import HeadSpace

    torch.manual_seed(12)
    H, Dh = 2, 4
    Dq, Dk = (Dh if "state" in unprojected else 8), (Dh if "stored" in unprojected else 6)
    layer = Hopfield(Dq, head_size=Dh, num_heads=H, output_size=7, pattern_size=pattern_size,
                     stored_pattern_size=Dk, pattern_projection_size=Dk, max_steps=steps,
                     bias=bias, head_space=HeadSpace(connected=True, unprojected=unprojected),
                     beta=torch.tensor([0.7, 1.3])).double()
    assert layer.v_proj.weight.shape == (H * (pattern_size or Dh), H * Dh)
    y, v = (torch.randn(3, 5, Dk, dtype=torch.float64) for _ in range(2))
    r = torch.randn(3, 4, Dq, dtype=torch.float64)
    mask = torch.zeros(3, 5, dtype=torch.bool)
    mask[1, :3] = True
    out = layer((y, r, v), mask=mask, return_info=return_info)
    out = out[0] if return_info else out
    ref = reference_connected(layer, y, r, v, steps, mask)
    assert (out - ref).abs().max() <= 1e-10
    # gradients reach k_proj through the value path too, as in the unfolded reference
    grads = torch.autograd.grad(out.square().sum(), [p for p in layer.parameters()
                                                     if p.requires_grad])
    refs = torch.autograd.grad(ref.square().sum(), [p for p in layer.parameters()
                                                    if p.requires_grad])
    assert max((g - g0).abs().max() for g, g0 in zip(grads, refs)) <= 1e-9
    pm = layer.get_projected_pattern_matrix((y, r, v))
    vv = F.linear(layer.k_proj(v), layer.v_proj.weight, layer.v_proj.bias)
    assert (pm - vv.unflatten(-1, (H, -1)).transpose(1, 2)).abs().max() <= 1e-12


def test_connected_in_pooling_and_lookup_and_float32_self_association():
    from hopfield.nn import HeadSpace

    torch.manual_seed(13)
    hs = HeadSpace(connected=True)
    pool = HopfieldPooling(8, num_heads=2, quantity=3, head_space=hs).double()
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    ref = reference_connected(pool.hopfield, x, pool.query.unsqueeze(0).expand(2, -1, -1), x,
                              0, None).flatten(1)
    assert (pool(x) - ref).abs().max() <= 1e-10
    look = HopfieldLayer(8, num_heads=2, quantity=4, head_space=hs).double()
    p = look.patterns.unsqueeze(0).expand(2, -1, -1)
    assert (look(x) - reference_connected(look.hopfield, p, x, p, 0, None)).abs().max() <= 1e-10
    layer = Hopfield(8, num_heads=2, head_space=hs)  # float32, fused SDPA path
    x32 = torch.randn(2, 5, 8)
    ref = reference_connected(layer, x32.double(), x32.double(), x32.double(), 0, None)
    assert (layer(x32).double() - ref).abs().max() <= 1e-5


def test_connected_errors():
    from hopfield.nn import HeadSpace

    with pytest.raises(ValueError, match="pattern_projection_size must equal "
                                         r"stored_pattern_size \(6\), got 5"):
        Hopfield(8, stored_pattern_size=6, pattern_projection_size=5,
                 head_space=HeadSpace(connected=True))
    with pytest.raises(ValueError, match="connected=True needs a learned pattern projection"):
        HeadSpace(connected=True, unprojected=("projection",))
    with pytest.raises(TypeError, match="HeadSpace.connected must be a bool"):
        HeadSpace(connected=1)


def test_pooling_association_mask_equals_the_explicit_hopfield_call():
    torch.manual_seed(14)
    pool = HopfieldPooling(8, num_heads=2, quantity=3).double()
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    am = torch.zeros(3, 5, dtype=torch.bool)
    am[0, :4] = True  # query 0 sees only instance 4
    q = pool.query.unsqueeze(0).expand(2, -1, -1)
    ref = pool.hopfield((x, q, x), association_mask=am).flatten(1)
    assert (pool(x, association_mask=am) - ref).abs().max() <= 1e-12
    w = pool.get_association_matrix(x, association_mask=am)
    assert bool((w[:, :, 0, :4] == 0).all()) and torch.allclose(w[:, :, 0, 4],
                                                                 torch.ones(2, 2).double())
    with pytest.raises(ValueError, match="association_mask"):
        pool(x, association_mask=torch.zeros(4, 5, dtype=torch.bool))


def test_pooling_and_lookup_with_their_own_pattern_sizes():
    """hflayers' stored_pattern_size / pattern_projection_size in pooling and lookup: learned
    queries of input_size pool instances of another size; lookup tables of other sizes."""
    torch.manual_seed(15)
    pool = HopfieldPooling(8, num_heads=2, quantity=3, stored_pattern_size=6,
                           pattern_projection_size=5).double()
    assert pool.query.shape == (3, 8)
    y, v = torch.randn(2, 7, 6, dtype=torch.float64), torch.randn(2, 7, 5, dtype=torch.float64)
    mask = torch.zeros(2, 7, dtype=torch.bool)
    mask[1, 4:] = True
    q = pool.query.unsqueeze(0).expand(2, -1, -1)
    ref = reference_general(pool.hopfield, y, q, v, mask=mask)
    assert (pool((y, v), mask=mask) - ref.flatten(1)).abs().max() <= 1e-10
    pm = pool.get_projected_pattern_matrix((y, v))
    assert pm.shape == (2, 2, 7, 4)
    same = HopfieldPooling(8, num_heads=2, stored_pattern_size=6, pattern_projection_size=6)
    assert same(torch.randn(2, 7, 6)).shape == (2, 8)

    look = HopfieldLayer(8, num_heads=2, quantity=4, stored_pattern_size=6,
                         pattern_projection_size=3, lookup_targets=True).double()
    assert look.patterns.shape == (4, 6) and look.targets.shape == (4, 3)
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    p, t = look.patterns.unsqueeze(0).expand(2, -1, -1), look.targets.unsqueeze(0).expand(2, -1, -1)
    assert (look(x) - reference_general(look.hopfield, p, x, t)).abs().max() <= 1e-10
    assert look.get_projected_pattern_matrix().shape == (1, 2, 4, 4)
    shared = HopfieldLayer(8, num_heads=2, quantity=4, stored_pattern_size=6,
                           pattern_projection_size=6)
    assert shared(torch.randn(2, 5, 8)).shape == (2, 5, 8)
