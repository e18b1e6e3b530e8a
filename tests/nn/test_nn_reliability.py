"""Issue 8 in the layers: one answer whatever the path, empty inputs, half precision, bad input.

Every test here failed (or could not be written) before the layers called
``hopfield.nn.functional.hopfield_forward``.
"""

import warnings

import numpy as np
import pytest
import torch
from _nn_reference import naive_hopfield

from hopfield.nn import Hopfield, HopfieldInfo, HopfieldLayer, HopfieldPooling
from hopfield.nn.functional import hopfield_forward


def close(a, b, tol, what=""):
    diff = (a.double() - b.double()).abs().max().item()
    assert diff <= tol, f"{what} max |diff| = {diff:.3g} > {tol:g}"


def make(kind, dtype=torch.float32, **kw):
    torch.manual_seed(0)
    layer = {"hopfield": lambda: Hopfield(8, num_heads=2, **kw),
             "pooling": lambda: HopfieldPooling(8, num_heads=2, **{"quantity": 3, **kw}),
             "lookup": lambda: HopfieldLayer(8, num_heads=2, **{"quantity": 5, **kw})}[kind]()
    return layer.to(dtype)


# ----------------------------------------------------------------------------- item 8a


@pytest.mark.parametrize("steps", [0, 2])
@pytest.mark.parametrize("separation", ["softmax", "sparsemax"])
def test_all_masked_row_is_zero_retrieval_on_every_path(steps, separation):
    """A state that the association mask blocks from every stored pattern: zero weights, zero
    retrieval (output = out_proj bias), finite energy and gradients, whatever return_info is."""
    layer = Hopfield(8, num_heads=2, max_steps=steps, tol=1e-30, separation=separation).double()
    with torch.no_grad():
        layer.out_proj.bias.normal_()
    x = torch.randn(2, 4, 8, dtype=torch.float64, requires_grad=True)
    am = torch.zeros(4, 4, dtype=torch.bool)
    am[1] = True  # state 1 sees nothing
    am[2, :3] = True  # state 2 sees only pattern 3
    pad = torch.zeros(2, 4, dtype=torch.bool)
    pad[1, 3] = True  # ... which is padding in batch element 1: state 2 sees nothing there
    fused = layer(x, mask=pad, association_mask=am)
    math, info = layer(x, mask=pad, association_mask=am, return_info=True)
    close(fused, math, 1e-12, "fused vs return_info")
    assert bool(torch.isfinite(math).all())
    bias = layer.out_proj.bias.detach()
    close(math[:, 1], bias.expand(2, 8), 1e-12, "all-masked state → bias")
    close(math[1, 2], bias, 1e-12, "mask ∪ association_mask all-masked → bias")
    assert bool((info.weights[:, :, 1] == 0).all()) and bool((info.weights[1, :, 2] == 0).all())
    close(info.weights[0, :, 0].sum(-1), torch.ones(2, dtype=torch.float64), 1e-12, "row sum")
    if info.energy is not None:
        assert bool(torch.isfinite(info.energy).all())
    math.sum().backward()
    assert bool(torch.isfinite(x.grad).all())
    # the unmasked rows equal the float64 reference
    ref, _ = naive_hopfield(layer, x.detach(), x.detach(), x.detach(), pad, am, steps=steps) \
        if separation == "softmax" else (None, None)
    if ref is not None:
        keep = torch.ones(2, 4, dtype=torch.bool)
        keep[:, 1] = False
        keep[1, 2] = False
        close(math.detach()[keep], ref[keep], 1e-10, "visible rows vs reference")


def test_fully_padded_batch_element_is_an_error_on_every_path():
    layer = Hopfield(8, num_heads=2)
    x = torch.randn(2, 3, 8)
    pad = torch.tensor([[True] * 3, [False] * 3])
    for return_info in (False, True):
        with pytest.raises(ValueError, match="mask must leave at least one stored pattern"):
            layer(x, mask=pad, return_info=return_info)
    with pytest.raises(ValueError, match="mask must leave at least one stored pattern"):
        HopfieldPooling(8, num_heads=2)(x, mask=pad)


# ----------------------------------------------------------------------------- item 8b


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("steps", [0, 2])
def test_half_precision_large_inputs_same_on_both_paths(dtype, steps):
    """Inputs × 100 (norms ~ 800): the math path used to overflow in float16 (NaN) while the
    fused path stayed finite. Both now associate in float32 and agree with float64."""
    torch.manual_seed(0)
    layer = Hopfield(64, num_heads=4, max_steps=steps, tol=1e-30)
    x = 100 * torch.randn(2, 20, 64)
    ref, _ = naive_hopfield(layer, x, x, x)
    half = layer.to(dtype)
    xh = x.to(dtype)
    with torch.no_grad():
        fused = half(xh)
        math, info = half(xh, return_info=True)
    assert fused.dtype == math.dtype == dtype
    assert bool(torch.isfinite(fused).all()) and bool(torch.isfinite(math).all())
    scale = ref.abs().max().item()
    tol = (2e-2 if dtype == torch.float16 else 8e-2) * scale
    close(fused, math, tol, f"{dtype} fused vs math")
    if dtype == torch.float16:  # bfloat16 rounds the inputs too coarsely for scores ~1e5
        close(math, ref, tol, f"{dtype} math vs float64")
    assert info.weights.dtype == torch.float32 and bool(torch.isfinite(info.weights).all())
    assert info.energy.dtype == torch.float32 and bool(torch.isfinite(info.energy).all())


# ----------------------------------------------------------------------------- item 11


@pytest.mark.parametrize("kind", ["hopfield", "pooling", "lookup"])
@pytest.mark.parametrize("shape", [(0, 4, 8), (2, 0, 8), (0, 0, 8)], ids=["B=0", "L=0", "B=L=0"])
@pytest.mark.parametrize("steps", [0, 2])
def test_empty_batch_or_no_states_give_empty_outputs(kind, shape, steps):
    layer = make(kind, max_steps=steps)
    x = torch.randn(*shape)
    if kind == "pooling" and shape[0] > 0 and shape[1] == 0:
        with pytest.raises(ValueError, match=r"input must hold at least one instance per bag, "
                                             r"got shape \(2, 0, 8\)"):
            layer(x)
        return
    B = shape[0]
    rows = 3 if kind == "pooling" else shape[1]  # pooling: quantity learned states
    N = {"hopfield": shape[1], "pooling": shape[1], "lookup": 5}[kind]
    out = layer(x)
    out_i, info = layer(x, return_info=True)
    expected = (B, 3 * 8) if kind == "pooling" else (B, shape[1], 8)
    assert out.shape == out_i.shape == expected
    assert info.weights.shape == (B, 2, rows, N)
    assert info.steps == 0 and info.energy.shape == (1, B, 2, rows)
    assert (info.converged is None) == (steps == 0)
    # gradients still reach the parameters (as zeros), so an empty batch does not break training
    out.sum().backward()


def test_empty_stored_with_states_is_an_error():
    layer = Hopfield(16, num_heads=2)
    x = torch.randn(2, 3, 16)
    for return_info in (False, True):
        with pytest.raises(ValueError, match=r"stored must hold at least one pattern .* got "
                                             r"shape \(2, 0, 16\)"):
            layer((x[:, :0], x, x[:, :0]), return_info=return_info)
    # the case: self-association of an empty sequence is an empty output
    out, info = layer(x[:, :0], return_info=True)
    assert out.shape == (2, 0, 16) and info.weights.shape == (2, 2, 0, 0)


# ----------------------------------------------------------------------------- bad input sweep

BAD_INPUTS = {
    "float64": (lambda x: x.double(), TypeError,
                "input must have the layer's dtype torch.float32, got torch.float64"),
    "float16": (lambda x: x.half(), TypeError, "input must have the layer's dtype"),
    "int": (lambda x: x.long(), TypeError,
            "input must be a floating-point tensor, got dtype torch.int64"),
    "bool": (lambda x: x > 0, TypeError, "input must be a floating-point tensor"),
    "complex": (lambda x: x.to(torch.complex64), TypeError, "input must be a floating-point"),
    "nan": (lambda x: x.index_put((torch.tensor([0]),) * 3, torch.tensor(float("nan"))),
            ValueError, r"input must be finite, got 1 NaN or infinite value"),
    "inf": (lambda x: x.index_put((torch.tensor([1]),) * 3, torch.tensor(float("inf"))),
            ValueError, r"input must be finite, got 1 NaN or infinite value"),
    "-inf": (lambda x: x.index_put((torch.tensor([1]),) * 3, torch.tensor(float("-inf"))),
             ValueError, r"input must be finite"),
    "2-D": (lambda x: x[0], ValueError, r"input must have shape \(.*\), got \(4, 8\)"),
    "4-D": (lambda x: x[None], ValueError, r"input must have shape \(.*\), got \(1, 2, 4, 8\)"),
    "wrong D": (lambda x: x[..., :7], ValueError,
                r"input must have feature size 8, got shape \(2, 4, 7\)"),
    "list": (lambda x: x.tolist(), TypeError, "input must be a"),
    "None": (lambda x: None, TypeError, "input must be a"),
    "numpy": (lambda x: x.numpy(), TypeError, "input must be a"),
}


@pytest.mark.parametrize("kind", ["hopfield", "pooling", "lookup"])
@pytest.mark.parametrize("bad", list(BAD_INPUTS))
@pytest.mark.parametrize("return_info", [False, True])
def test_bad_inputs_raise_naming_input(kind, bad, return_info):
    layer = make(kind)
    fn, exc, match = BAD_INPUTS[bad]
    value = fn(torch.randn(2, 4, 8))
    with pytest.raises(exc, match=match):
        layer(value, return_info=return_info)


def test_overflowing_inputs_raise_naming_input():
    """Self-association at 1e20: the scores overflow float32 on every path: a ValueError, not NaN
    (nor the finite garbage that the fused kernel returns for NaN scores)."""
    layer = make("hopfield")
    for return_info in (False, True):
        with pytest.raises(ValueError, match=r"input is too large for torch.float32: the "
                                             r"association overflowed \(largest \|input\| = "):
            layer(torch.randn(2, 4, 8) * 1e20, return_info=return_info)


@pytest.mark.parametrize("kind", ["pooling", "lookup"])
def test_large_inputs_with_small_learned_patterns_are_fine(kind):
    """Pooling / lookup at 1e20: learned patterns are small, so the scores stay in range: a finite
    result that equals float64 (no spurious error)."""
    layer = make(kind).double()
    x = torch.randn(2, 4, 8, dtype=torch.float64) * 1e20
    ref = layer(x)
    out = layer.float()(x.float())
    assert bool(torch.isfinite(out).all())
    close(out / 1e20, ref / 1e20, 1e-4, f"{kind} float32 vs float64 at 1e20")


def test_large_but_representable_inputs_agree_on_both_paths():
    """Norms ~1e19 in float32: β is folded into the state on both paths, so both are finite."""
    layer = make("hopfield")
    x = torch.randn(2, 4, 8) * 1e18
    with torch.no_grad():
        fused = layer(x)
        math, _ = layer(x, return_info=True)
    ref, _ = naive_hopfield(layer, x, x, x)
    assert bool(torch.isfinite(fused).all()) and bool(torch.isfinite(math).all())
    close(fused / 1e18, math / 1e18, 1e-4, "fused vs math at 1e18")
    close(math / 1e18, ref / 1e18, 1e-4, "math vs float64 at 1e18")


BAD_MASKS = {
    "float": (lambda B, L, N: torch.zeros(B, N), TypeError,
              r"mask must be a bool tensor .*got torch.float32; an additive float mask converts"),
    "int": (lambda B, L, N: torch.zeros(B, N, dtype=torch.long), TypeError,
            "mask must be a bool tensor .*got torch.int64"),
    "list": (lambda B, L, N: [[False] * N] * B, TypeError, "mask must be a bool tensor .*got list"),
    "numpy": (lambda B, L, N: torch.zeros(B, N, dtype=torch.bool).numpy(), TypeError,
              "mask must be a bool tensor .*got ndarray"),
    "wrong N": (lambda B, L, N: torch.zeros(B, N + 1, dtype=torch.bool), ValueError,
                r"mask must have shape \(B, N\) = \(2, 5\), got \(2, 6\)"),
    "wrong B": (lambda B, L, N: torch.zeros(B + 1, N, dtype=torch.bool), ValueError,
                r"mask must have shape \(B, N\) = \(2, 5\), got \(3, 5\)"),
    "1-D": (lambda B, L, N: torch.zeros(N, dtype=torch.bool), ValueError,
            r"mask must have shape \(B, N\)"),
    "all masked": (lambda B, L, N: torch.ones(B, N, dtype=torch.bool), ValueError,
                   "mask must leave at least one stored pattern"),
}


@pytest.mark.parametrize("kind", ["hopfield", "pooling"])
@pytest.mark.parametrize("bad", list(BAD_MASKS))
@pytest.mark.parametrize("return_info", [False, True])
def test_bad_masks_raise_naming_mask(kind, bad, return_info):
    layer = make(kind)
    fn, exc, match = BAD_MASKS[bad]
    x = torch.randn(2, 5, 8)
    with pytest.raises(exc, match=match):
        layer(x, mask=fn(2, 5, 5), return_info=return_info)


@pytest.mark.parametrize("am,exc,match", [
    (torch.zeros(5, 5, dtype=torch.int32), TypeError, "association_mask must be a bool tensor .*or an additive float mask, got torch.int32"),
    (torch.zeros(5, 6, dtype=torch.bool), ValueError,
     r"association_mask must have shape \(5, 5\), \(4, 5, 5\) \(B·H, L, N as in PyTorch\) or "
     + r"4-D broadcastable to \(2, 2, 5, 5\), got \(5, 6\)"),
    (torch.zeros(3, 5, 5, dtype=torch.bool), ValueError,
     r"association_mask must have shape .* got \(3, 5, 5\)"),
    (torch.zeros(2, 3, 5, 5, dtype=torch.bool), ValueError, r"got \(2, 3, 5, 5\)"),
    ("causal", TypeError, "association_mask must be a bool tensor .*got str"),
])
def test_bad_association_masks(am, exc, match):
    with pytest.raises(exc, match=match):
        make("hopfield")(torch.randn(2, 5, 8), association_mask=am)


@pytest.mark.parametrize("kind", ["hopfield", "pooling", "lookup"])
def test_return_info_must_be_bool(kind):
    with pytest.raises(TypeError, match="return_info must be a bool, got str"):
        make(kind)(torch.randn(2, 5, 8), return_info="yes")


@pytest.mark.parametrize("kind", ["hopfield", "pooling", "lookup"])
def test_non_finite_parameters_are_named(kind):
    """A diverged model does not return NaN silently: the error names the parameter."""
    layer = make(kind)
    name, p = next((n, p) for n, p in layer.named_parameters() if n.endswith("k_proj.weight"))
    with torch.no_grad():
        p[0, 0] = float("nan")
    with pytest.raises(ValueError, match=f"{name} must be finite, got 1 NaN"):
        layer(torch.randn(2, 5, 8))


# ----------------------------------------------------------------------------- deprecated names


@pytest.mark.parametrize("kind", ["hopfield", "pooling", "lookup"])
@pytest.mark.parametrize("old,new,value", [("hidden_size", "head_size", 3),
                                           ("update_steps_max", "max_steps", 2),
                                           ("update_steps_eps", "tol", 1e-3)])
def test_deprecated_constructor_names_warn_and_work(kind, old, new, value):
    with pytest.warns(FutureWarning, match=f"{old}= is deprecated .* use {new}=") as record:
        layer = make(kind, **{old: value})
    assert record[0].filename == __file__ or "test_nn_reliability" in record[0].filename or \
        kind == "hopfield"  # the warning points at the caller
    hop = layer if kind == "hopfield" else layer.hopfield
    assert getattr(hop, new) == value
    with pytest.warns(FutureWarning, match=f"Hopfield.{old} is deprecated; use .{new}"):
        assert getattr(hop, old) == value
    with pytest.warns(FutureWarning):
        setattr(hop, old, value)
    with pytest.raises(TypeError, match=f"got both {new}= and its deprecated alias {old}="):
        make(kind, **{old: value, new: value})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new names do not warn
        make(kind, **{new: value})


def test_deprecated_names_give_the_same_layer():
    torch.manual_seed(0)
    with pytest.warns(FutureWarning):
        old = Hopfield(8, hidden_size=3, num_heads=2, update_steps_max=2, update_steps_eps=1e-6)
    torch.manual_seed(0)
    new = Hopfield(8, head_size=3, num_heads=2, max_steps=2, tol=1e-6)
    x = torch.randn(2, 4, 8)
    close(old(x), new(x), 0.0, "alias vs new name")
    assert "head_size=3" in repr(new) and "max_steps=2" in repr(new) and "tol=1e-06" in repr(new)


def test_unknown_keyword_is_a_type_error():
    with pytest.raises(TypeError, match="unexpected keyword argument 'scaling'"):
        Hopfield(8, scaling=0.5)


# ----------------------------------------------------------------------------- public core


def _weights(layer):
    q, k, v, o = layer.q_proj, layer.k_proj, layer.v_proj, layer.out_proj
    return {"q_proj_weight": q.weight, "k_proj_weight": k.weight, "v_proj_weight": v.weight,
            "out_proj_weight": o.weight, "q_proj_bias": q.bias, "k_proj_bias": k.bias,
            "v_proj_bias": v.bias, "out_proj_bias": o.bias}


@pytest.mark.parametrize("steps", [0, 2])
@pytest.mark.parametrize("return_info", [False, True])
def test_hopfield_forward_equals_layer_and_reference(steps, return_info):
    layer = Hopfield(8, 3, 6, num_heads=2, stored_pattern_size=5, pattern_projection_size=7,
                     beta=torch.tensor([0.4, 1.7]), max_steps=steps, tol=1e-30).double()
    y, r, v = (torch.randn(3, 6, 5, dtype=torch.float64), torch.randn(3, 4, 8, dtype=torch.float64),
               torch.randn(3, 6, 7, dtype=torch.float64))
    mask = torch.zeros(3, 6, dtype=torch.bool)
    mask[1, 4:] = True
    res = hopfield_forward(y, r, v, num_heads=2, beta=layer.beta, mask=mask, max_steps=steps,
                           tol=1e-30, return_info=return_info, **_weights(layer))
    out = res[0] if return_info else res
    close(out, layer((y, r, v), mask=mask), 1e-12, "functional vs layer")
    ref, ref_w = naive_hopfield(layer, y, r, v, mask)
    close(out, ref, 1e-10, "functional vs float64 reference")
    if return_info:
        assert isinstance(res[1], HopfieldInfo)
        close(res[1].weights, ref_w, 1e-10, "weights")
    # a batch-1 state is shared by the batch (pooling), a float beta is every head's β
    shared = hopfield_forward(y, r[:1], v, num_heads=2, beta=0.5, max_steps=steps, tol=1e-30,
                              **_weights(layer))
    layer.fixed_beta.fill_(0.5)
    close(shared, layer((y, r[:1].expand(3, -1, -1), v)), 1e-12, "batch-1 state")


def test_hopfield_forward_dropout_only_when_training():
    layer = Hopfield(8, num_heads=2)
    x = torch.randn(2, 5, 8)
    w = _weights(layer)
    a = hopfield_forward(x, x, x, num_heads=2, beta=0.5, dropout_p=0.5, training=False, **w)
    b = hopfield_forward(x, x, x, num_heads=2, beta=0.5, dropout_p=0.0, **w)
    close(a, b, 0.0, "no dropout in eval")
    c = hopfield_forward(x, x, x, num_heads=2, beta=0.5, dropout_p=0.5, training=True, **w)
    assert (c - b).abs().max() > 1e-3


@pytest.mark.parametrize("change,exc,match", [
    ({"num_heads": 3}, ValueError, r"q_proj_weight must have E = num_heads \* head_size > 0 rows"),
    ({"num_heads": 0}, ValueError, "num_heads must be >= 1"),
    ({"beta": torch.ones(3)}, ValueError,
     r"beta must be a float, a 0-d tensor or a tensor of shape \(2,\)"),
    ({"beta": -1.0}, ValueError, "beta must be > 0"),
    ({"k_proj_weight": torch.randn(6, 8)}, ValueError, "k_proj_weight must have E = 8 rows"),
    ({"out_proj_weight": torch.randn(8, 6)}, ValueError, r"out_proj_weight must have shape \(O, 8\)"),
    ({"q_proj_bias": torch.randn(7)}, ValueError, r"q_proj_bias must have shape \(8,\), got \(7\)"),
    ({"v_proj_weight": torch.randn(8, 8, dtype=torch.float64)}, TypeError,
     "v_proj_weight must have the dtype of q_proj_weight"),
    ({"q_proj_weight": None}, TypeError, "q_proj_weight must be a torch.Tensor, got NoneType"),
    ({"stored": torch.randn(2, 5, 7)}, ValueError, r"stored must have shape \(B, N, 8\)"),
    ({"state": torch.randn(3, 5, 8)}, ValueError, "must share the batch size"),
    ({"projection": torch.randn(2, 4, 8)}, ValueError, "projection must hold one pattern per"),
    ({"state": torch.randn(2, 5, 8).double()}, TypeError, "state must have the weights' dtype"),
    ({"state": torch.full((2, 5, 8), float("nan"))}, ValueError, "state must be finite"),
    ({"q_proj_weight": torch.full((8, 8), float("inf"))}, ValueError,
     "q_proj_weight must be finite"),
    ({"dropout_p": 1.0}, ValueError, r"dropout_p must be in \[0, 1\)"),
    ({"max_steps": -1}, ValueError, "max_steps must be >= 0"),
    ({"tol": 0}, ValueError, "tol must be a float > 0"),
    ({"training": 1}, TypeError, "training must be a bool, got int"),
    ({"return_info": None}, TypeError, "return_info must be a bool, got NoneType"),
    ({"separation": "maxout"}, ValueError, "separation must be one of"),
    ({"mask": torch.zeros(2, 5)}, TypeError, "mask must be a bool tensor"),
])
def test_hopfield_forward_errors(change, exc, match):
    layer = Hopfield(8, num_heads=2)
    x = torch.randn(2, 5, 8)
    kw = {"stored": x, "state": x, "projection": x, "num_heads": 2, "beta": 0.5,
          **_weights(layer)}
    kw.update(change)
    with pytest.raises(exc, match=match):
        hopfield_forward(**kw)


def test_layers_work_under_vmap_ensembles():
    """stack_module_state + functional_call + vmap (the estimators' ensemble mechanism): no
    data-dependent check may run on batched tensors, dropout differs per member."""
    import copy

    from torch.func import functional_call, stack_module_state, vmap

    for make_one, x, kw in [
        (lambda: HopfieldPooling(8, 4, 8, 2, dropout=0.1, max_steps=2), torch.randn(3, 5, 7, 8),
         {"mask": torch.zeros(3, 5, 7, dtype=torch.bool)}),
        (lambda: HopfieldLayer(8, 4, 8, 2, quantity=4, lookup_targets=True, max_steps=2),
         torch.randn(3, 5, 2, 8), {}),
        (lambda: Hopfield(8, num_heads=2, max_steps=2), torch.randn(3, 5, 2, 8), {}),
    ]:
        members = [make_one() for _ in range(3)]
        params, buffers = stack_module_state(members)
        base = copy.deepcopy(members[0]).to("meta")

        def f(p, b, x, *masks, base=base):
            return functional_call(base, (p, b), (x,), {"mask": masks[0]} if masks else {})

        masks = tuple(kw.values())
        out = vmap(f, in_dims=(0, 0, 0) + (0,) * len(masks), randomness="different")(
            params, buffers, x, *masks)  # training mode: dropout per member
        assert bool(torch.isfinite(out).all())
        out.sum().backward()
        base.eval()
        with torch.no_grad():
            out_eval = vmap(f, in_dims=(0, 0, 0) + (0,) * len(masks))(params, buffers, x, *masks)
            for i, m in enumerate(members):  # each member equals its own forward
                ref = m.eval()(x[i], **{k: v[i] for k, v in kw.items()})
                close(out_eval[i], ref, 1e-5, f"{type(m).__name__} member {i}")


@pytest.mark.parametrize("kind", ["hopfield", "pooling", "lookup"])
@pytest.mark.parametrize("flag", ["batch_first", "learnable_beta", "bias", "normalize_state",
                                  "normalize_stored", "normalize_projection"])
def test_flags_must_be_bool(kind, flag):
    """``batch_first="False"`` used to be read as True (a silently transposed layout)."""
    with pytest.raises(TypeError, match=f"{flag} must be a bool( or a hopfield.nn.Norm)?, got str"):
        make(kind, **{flag: "False"})
    make(kind, **{flag: np.bool_(True)})  # numpy bools are fine


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"quantity": 0}, ValueError, "quantity must be >= 1, got 0"),
    ({"quantity": 2.5}, TypeError, "quantity must be an int, got float"),
    ({"stored_pattern_size": 0}, ValueError, "stored_pattern_size must be >= 1"),
    ({"pattern_projection_size": 2.5}, TypeError, "pattern_projection_size must be an int"),
    ({"max_steps": -1}, ValueError, "max_steps must be >= 0"),
    ({"scaling": 0.5}, TypeError, "unexpected keyword argument 'scaling'"),
])
@pytest.mark.parametrize("kind", ["pooling", "lookup"])
def test_pooling_and_lookup_constructor_errors(kind, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        make(kind, **kwargs)


def test_lookup_targets_must_be_bool():
    with pytest.raises(TypeError, match="lookup_targets must be a bool, got str"):
        HopfieldLayer(8, quantity=3, lookup_targets="yes")


@pytest.mark.parametrize("case,expected", [
    ("self", 1), ("self+masks", 1), ("tuple+mask", 1), ("steps3", 3), ("pool+mask", 1),
    ("lookup", 1), ("return_info", 1)])
def test_host_syncs_per_forward(monkeypatch, case, expected):
    """Validation costs one host sync per forward, whatever the inputs and masks (it used to be
    one per input tensor plus one per mask); several updates add one per update before the last
    (the driver's early-exit test)."""
    x = torch.randn(2, 5, 8)
    pad = torch.zeros(2, 5, dtype=torch.bool)
    am = torch.zeros(5, 5, dtype=torch.bool)
    y = torch.randn(2, 6, 8)
    hop, steps = make("hopfield"), make("hopfield", max_steps=3, tol=1e-30)
    pool, lookup = make("pooling"), make("lookup")
    run = {"self": lambda: hop(x), "self+masks": lambda: hop(x, mask=pad, association_mask=am),
           "tuple+mask": lambda: hop((y, x, y), mask=torch.zeros(2, 6, dtype=torch.bool)),
           "steps3": lambda: steps(x), "pool+mask": lambda: pool(x, mask=pad),
           "lookup": lambda: lookup(x), "return_info": lambda: hop(x, return_info=True)}[case]
    run()  # parameters verified once
    syncs = []
    for name in ("__bool__", "item", "tolist", "__float__", "__int__"):
        orig = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name,
                            lambda self, *a, _o=orig, _n=name: syncs.append(_n) or _o(self, *a))
    run()
    monkeypatch.undo()
    assert len(syncs) == expected, syncs


def test_replaced_parameters_are_rechecked():
    """The verified-parameters cache is dropped when a parameter or submodule is (re)assigned or
    a parameter changes in place (load_state_dict, an optimizer step)."""
    from torch import nn

    layer = make("lookup")
    x = torch.randn(2, 5, 8)
    layer(x)  # verified
    layer.patterns = nn.Parameter(torch.full((5, 8), float("nan")))
    with pytest.raises(ValueError, match="patterns must be finite, got 40 NaN"):
        layer(x)
    layer.patterns = nn.Parameter(torch.randn(5, 8))
    layer(x)
    bad = nn.Linear(8, 8)
    with torch.no_grad():
        bad.weight[1, 1] = float("inf")
    layer.hopfield.q_proj = bad
    with pytest.raises(ValueError, match=r"hopfield.q_proj.weight must be finite, got 1 NaN"):
        layer(x)
    layer.hopfield.q_proj = nn.Linear(8, 8)
    layer(x)
    state = {k: v.clone() for k, v in layer.state_dict().items()}
    state["hopfield.k_proj.bias"][0] = float("nan")
    layer.load_state_dict(state)
    with torch.no_grad(), pytest.raises(ValueError, match="hopfield.k_proj.bias must be finite"):
        layer.eval()(x)
