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
                                      ("stored_pattern_as_static", "no equivalent")])
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
