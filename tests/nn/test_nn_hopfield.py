"""hopfield.nn.Hopfield against nn.MultiheadAttention, a float64 naive reference, and gradcheck."""

import copy
import io
import pickle

import pytest
import torch
from _nn_reference import naive_hopfield, softmax64
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from hopfield import Hopfield, HopfieldInfo

TOL = {torch.float64: 1e-10, torch.float32: 2e-5, torch.bfloat16: 6e-2}


def close(a, b, tol, what=""):
    diff = (a.double() - b.double()).abs().max().item()
    assert diff <= tol, f"{what} max |diff| = {diff:.3g} > {tol:g}"


def rand_inputs(B=3, L=4, N=6, Dq=8, Dk=8, Dv=8, dtype=torch.float32):
    return (torch.randn(B, N, Dk, dtype=dtype), torch.randn(B, L, Dq, dtype=dtype),
            torch.randn(B, N, Dv, dtype=dtype))


# ----------------------------------------------------------------------------- from_attention


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("kvdim", [None, (5, 7)])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("masks", [False, True])
def test_from_attention_equals_mha(batch_first, kvdim, bias, masks):
    E, H, B, L, N = 16, 4, 3, 5, 7
    kdim, vdim = kvdim or (None, None)
    mha = nn.MultiheadAttention(E, H, batch_first=batch_first, kdim=kdim, vdim=vdim, bias=bias)
    with torch.no_grad():  # non-zero biases so a wrong bias copy would show
        for p in mha.parameters():
            p.add_(0.1 * torch.randn_like(p))
    hop = Hopfield.from_attention(mha)
    q = torch.randn(B, L, E)
    k = torch.randn(B, N, kdim or E)
    v = torch.randn(B, N, vdim or E)
    kpm = am = None
    if masks:
        kpm = torch.zeros(B, N, dtype=torch.bool)
        kpm[0, -3:] = True
        kpm[2, :2] = True
        am = torch.rand(L, N) < 0.3
        am[:, 3] = False  # every query keeps at least one unmasked key
    if not batch_first:
        q, k, v = (t.transpose(0, 1) for t in (q, k, v))
    ref, _ = mha(q, k, v, key_padding_mask=kpm, attn_mask=am, need_weights=False)
    out = hop((k, q, v), mask=kpm, association_mask=am)
    close(out, ref, 1e-5, "Hopfield vs MHA")
    out_info, info = hop((k, q, v), mask=kpm, association_mask=am, return_info=True)
    close(out_info, ref, 1e-5, "math path vs MHA")
    _, ref_w = mha(q, k, v, key_padding_mask=kpm, attn_mask=am, need_weights=True,
                   average_attn_weights=False)
    close(info.weights, ref_w, 1e-5, "per-head weights vs MHA")
    if kvdim is None:  # self-attention: the fused (B, L, 3E) projection
        ref_self, _ = mha(q, q, q, need_weights=False)
        close(hop(q), ref_self, 1e-5, "self-attention vs MHA")


def test_from_attention_inexact_beta():
    """Dh = 3: β = 1/sqrt(3) is not a power of two, so folding β into W_q rounds differently."""
    mha = nn.MultiheadAttention(12, 4, batch_first=False)
    hop = Hopfield.from_attention(mha)
    x = torch.randn(7, 2, 12)  # (L, B, E)
    kpm = torch.tensor([[False] * 5 + [True] * 2, [False] * 7])
    ref, _ = mha(x, x, x, key_padding_mask=kpm, need_weights=False)
    close(hop(x, mask=kpm), ref, 1e-5, "Dh=3")
    assert float(hop.beta[0]) == pytest.approx(3 ** -0.5)


def test_from_attention_eval_mode_and_training_flag():
    mha = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    hop = Hopfield.from_attention(mha)
    assert not hop.training
    x = torch.randn(2, 3, 8)
    with torch.no_grad():
        close(hop(x), mha(x, x, x, need_weights=False)[0], 1e-5)
    assert float(hop.beta[0]) == pytest.approx(0.5)


@pytest.mark.parametrize("kw,match", [({"add_bias_kv": True}, "add_bias_kv"),
                                      ({"add_zero_attn": True}, "add_zero_attn")])
def test_from_attention_rejects_unsupported(kw, match):
    with pytest.raises(ValueError, match=match):
        Hopfield.from_attention(nn.MultiheadAttention(8, 2, **kw))
    with pytest.raises(TypeError, match="mha must be"):
        Hopfield.from_attention(nn.Linear(2, 2))


# ----------------------------------------------------------------------------- float64 reference


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("steps", [0, 2])
def test_matches_naive_reference(dtype, steps):
    layer = Hopfield(8, 3, 6, num_heads=2, stored_pattern_size=5, pattern_projection_size=7,
                     beta=torch.tensor([0.4, 1.7]), max_steps=steps, tol=1e-30,
                     normalize_state=True, normalize_stored=True)
    y, r, v = rand_inputs(Dq=8, Dk=5, Dv=7)
    mask = torch.zeros(3, 6, dtype=torch.bool)
    mask[1, 4:] = True
    am = torch.rand(4, 6) < 0.3
    am[:, 0] = False
    ref, ref_w = naive_hopfield(layer, y, r, v, mask, am)
    layer = layer.to(dtype)
    args = ((y.to(dtype), r.to(dtype), v.to(dtype)),)
    with torch.no_grad():
        out = layer(*args, mask=mask, association_mask=am)
        out_m, info = layer(*args, mask=mask, association_mask=am, return_info=True)
    assert out.dtype == dtype and out.shape == (3, 4, 6)
    close(out, ref, TOL[dtype], f"fused {dtype}")
    close(out_m, ref, TOL[dtype], f"math {dtype}")
    close(info.weights, ref_w, TOL[dtype], f"weights {dtype}")
    assert info.steps == steps
    assert bool((info.weights[1, :, :, 4:] == 0).all())  # masked patterns get weight exactly 0


@pytest.mark.parametrize("steps", [0, 3])
@pytest.mark.parametrize("heads", [1, 4])
def test_fused_equals_math_path(steps, heads):
    layer = Hopfield(16, num_heads=heads, max_steps=steps, tol=1e-30,
                     learnable_beta=True).double()
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    mask = torch.zeros(2, 9, dtype=torch.bool)
    mask[0, :3] = True
    fused = layer(x, mask=mask)
    math, info = layer(x, mask=mask, return_info=True)
    close(fused, math, 1e-12, "fused vs math")
    close(info.weights.sum(-1), torch.ones(2, heads, 9, dtype=torch.float64), 1e-12, "row sums")


def test_per_head_beta_is_applied_per_head():
    """Two heads with identical projections differ only by β and each equals a 1-head layer."""
    betas = torch.tensor([0.2, 5.0])
    two = Hopfield(4, 4, 4, num_heads=2, beta=betas).double()
    with torch.no_grad():
        for lin in (two.q_proj, two.k_proj, two.v_proj):
            lin.weight[4:] = lin.weight[:4]
            lin.bias[4:] = lin.bias[:4]
    x = torch.randn(2, 5, 4, dtype=torch.float64)
    _, info = two(x, return_info=True)
    w0, w1 = info.weights[:, 0], info.weights[:, 1]
    assert (w0 - w1).abs().max() > 1e-2, "heads with different beta must give different weights"
    for h in range(2):
        one = Hopfield(4, 4, 4, num_heads=1, beta=float(betas[h])).double()
        with torch.no_grad():
            for src, dst in zip((two.q_proj, two.k_proj, two.v_proj),
                                (one.q_proj, one.k_proj, one.v_proj)):
                dst.weight.copy_(src.weight[4 * h:4 * h + 4])
                dst.bias.copy_(src.bias[4 * h:4 * h + 4])
        _, info1 = one(x, return_info=True)
        close(info.weights[:, h], info1.weights[:, 0], 1e-12, f"head {h}")
    assert torch.equal(info.beta, betas.double())


def test_default_beta_and_learnable_beta_positive():
    layer = Hopfield(12, num_heads=3)
    assert torch.allclose(layer.beta, torch.full((3,), 0.5))
    learn = Hopfield(12, num_heads=3, beta=torch.tensor([0.1, 1.0, 10.0]), learnable_beta=True)
    assert isinstance(learn.log_beta, nn.Parameter)
    assert "fixed_beta" not in dict(learn.named_buffers())
    close(learn.beta, torch.tensor([0.1, 1.0, 10.0]), 1e-6)
    x = torch.randn(2, 3, 12)
    learn(x).pow(2).sum().backward()
    assert learn.log_beta.grad is not None and bool((learn.log_beta.grad != 0).all())


# ----------------------------------------------------------------------------- multi-step updates


def test_multistep_reaches_fixed_point_of_head_space_update():
    layer = Hopfield(6, 6, num_heads=2, beta=4.0, max_steps=60,
                     tol=1e-9).double()
    y, r, v = rand_inputs(B=2, L=5, N=7, Dq=6, Dk=6, Dv=6, dtype=torch.float64)
    _, info = layer((y, r, v), return_info=True)
    assert 0 < info.steps < 60 and bool(info.converged.all())
    # ξ* = w K with w = softmax(β ξ* Kᵀ): one more update leaves the weights unchanged.
    k = (y @ layer.k_proj.weight.T + layer.k_proj.bias).unflatten(-1, (2, 6)).transpose(1, 2)
    xi = info.weights @ k  # (B, H, L, Dh)
    again = softmax64(layer.beta.view(-1, 1, 1) * xi @ k.mT)
    close(again, info.weights, 1e-7, "fixed point")
    e = info.energy  # (T + 1, B, H, L): CCCP, never increases
    assert e.shape == (info.steps + 1, 2, 2, 5)
    assert bool((e[1:] <= e[:-1] + 1e-10).all())


def test_multistep_cost_stops_early_when_converged():
    layer = Hopfield(4, beta=0.01, max_steps=50, tol=1e-3).double()
    _, info = layer(torch.randn(2, 3, 4, dtype=torch.float64), return_info=True)
    assert info.steps < 5  # tiny β: the state jumps to the mean and stays there


@pytest.mark.parametrize("separation", ["sparsemax", "entmax"])
def test_sparse_separations(separation):
    layer = Hopfield(8, num_heads=2, beta=8.0, separation=separation, max_steps=2)
    x = torch.randn(2, 6, 8)
    out, info = layer(x, return_info=True)
    close(out, layer(x), 1e-5)
    close(info.weights.sum(-1), torch.ones(2, 2, 6), 1e-5, "rows sum to one")
    assert bool((info.weights == 0).any()), "sparse separation gives exact zeros at large beta"
    assert info.energy is None


# ----------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("steps,separation", [(0, "softmax"), (2, "softmax"), (1, "sparsemax")])
def test_gradcheck_inputs_and_learnable_beta(steps, separation):
    layer = Hopfield(4, 3, 4, num_heads=2, learnable_beta=True, max_steps=steps,
                     tol=1e-30, separation=separation,
                     beta=torch.tensor([0.7, 1.3])).double()
    y, r, v = (t.requires_grad_() for t in rand_inputs(B=2, L=3, N=4, Dq=4, Dk=4, Dv=4,
                                                        dtype=torch.float64))
    log_beta = layer.log_beta.detach().clone().requires_grad_()
    mask = torch.tensor([[False, False, True, False], [False] * 4])

    def f(y, r, v, log_beta):
        return torch.func.functional_call(layer, {"log_beta": log_beta}, ((y, r, v),),
                                          {"mask": mask})

    assert torch.autograd.gradcheck(f, (y, r, v, log_beta), fast_mode=True)


# ----------------------------------------------------------------------------- module plumbing


def test_to_moves_beta_and_state_dict_round_trip():
    layer = Hopfield(8, num_heads=2, beta=torch.tensor([0.3, 0.9]))
    layer.double()
    assert layer.fixed_beta.dtype == torch.float64
    learn = Hopfield(8, num_heads=2, learnable_beta=True).double()
    assert learn.log_beta.dtype == torch.float64
    x = torch.randn(2, 3, 8, dtype=torch.float64)
    for src in (layer, learn):
        sd = src.state_dict()
        assert ("fixed_beta" in sd) != ("log_beta" in sd)
        fresh = Hopfield(8, num_heads=2, learnable_beta=src.learnable_beta).double()
        fresh.load_state_dict(sd)
        close(fresh(x), src(x), 0.0, "state_dict round trip")
        buf = io.BytesIO()
        torch.save(src, buf)
        buf.seek(0)
        close(torch.load(buf, weights_only=False)(x), src(x), 0.0, "torch.save round trip")
        clone = pickle.loads(pickle.dumps(src))
        close(clone(x), src(x), 0.0, "pickle round trip")
        close(copy.deepcopy(src)(x), src(x), 0.0, "deepcopy")


def test_repr_shows_key_settings():
    r = repr(Hopfield(8, num_heads=2, beta=torch.tensor([0.5, 2.0]), learnable_beta=True,
                      max_steps=3, separation="sparsemax"))
    for s in ("input_size=8", "num_heads=2", "beta=[0.5, 2]", "(learnable)", "max_steps=3",
              "separation=sparsemax", "batch_first=True"):
        assert s in r, s


def test_info_dataclass_and_dropout_only_in_training():
    layer = Hopfield(8, num_heads=2, dropout=0.5)
    x = torch.randn(2, 4, 8)
    out, info = layer.eval()(x, return_info=True)
    assert isinstance(info, HopfieldInfo) and info.converged is None and info.steps == 0
    close(layer(x), out, 1e-6, "eval is deterministic")
    layer.train()
    assert (layer(x) - out).abs().max() > 1e-3


def test_batch_first_false_layout():
    layer = Hopfield(8, num_heads=2, batch_first=False)
    x = torch.randn(5, 3, 8)  # (L, B, D)
    out = layer(x)
    assert out.shape == (5, 3, 8)
    layer.batch_first = True
    close(out.transpose(0, 1), layer(x.transpose(0, 1)), 1e-6)


@pytest.mark.parametrize("kind", ["hopfield", "pooling", "lookup", "steps"])
def test_torch_compile_small(kind):
    """One small compile per layer with dynamo's full graph (aot_eager backend keeps it fast)."""
    if not hasattr(torch, "compile"):
        pytest.skip("torch.compile is not available in this torch build")
    from hopfield import HopfieldLayer, HopfieldPooling

    layer = {"hopfield": lambda: Hopfield(8, num_heads=2, learnable_beta=True),
             "pooling": lambda: HopfieldPooling(8, num_heads=2, quantity=2, learnable_beta=True),
             "lookup": lambda: HopfieldLayer(8, num_heads=2, quantity=4, learnable_beta=True),
             # several updates: under compile all max_steps run (no early exit, no graph break)
             "steps": lambda: Hopfield(8, num_heads=2, learnable_beta=True, max_steps=3,
                                       tol=1e-30),
             }[kind]()
    x = torch.randn(2, 5, 8)
    kw = {} if kind == "lookup" else {"mask": torch.tensor([[False] * 4 + [True], [False] * 5])}
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    out = compiled(x, **kw)
    close(out, layer(x, **kw), 1e-6, "compiled")
    out.sum().backward()
    beta = layer.log_beta if kind in ("hopfield", "steps") else layer.hopfield.log_beta
    assert beta.grad is not None


@pytest.mark.parametrize("steps", [0, 3])
def test_fused_path_is_one_sdpa_call_per_association(monkeypatch, steps):
    """No weights requested: every association (each update and the read-out) is one SDPA call and
    no (B, H, L, N) score matrix is formed; return_info=True runs the math path once instead."""
    import torch.nn.functional as F

    calls, matmuls = [], []
    sdpa, matmul = F.scaled_dot_product_attention, torch.Tensor.__matmul__
    monkeypatch.setattr(F, "scaled_dot_product_attention",
                        lambda *a, **k: calls.append(1) or sdpa(*a, **k))
    monkeypatch.setattr(torch.Tensor, "__matmul__",
                        lambda a, b: matmuls.append(1) or matmul(a, b))
    layer = Hopfield(8, num_heads=2, max_steps=steps, tol=1e-30)
    x = torch.randn(2, 5, 8)
    layer(x).sum().backward()
    assert len(calls) == steps + 1 and not matmuls
    calls.clear()
    _, info = layer(x, return_info=True)
    assert info.steps == steps and len(calls) == steps  # the updates stay fused, read-out is math


@given(beta=st.floats(0.05, 20.0), seed=st.integers(0, 2**16), pad=st.integers(0, 3))
def test_energy_trace_never_increases(beta, seed, pad):
    """CCCP: every head-space update lowers (or keeps) each state's energy, also with padding."""
    g = torch.Generator().manual_seed(seed)
    layer = Hopfield(6, 3, num_heads=2, beta=beta, max_steps=6,
                     tol=1e-30).double()
    x = torch.randn(2, 7, 6, generator=g, dtype=torch.float64)
    mask = torch.zeros(2, 7, dtype=torch.bool)
    mask[1, 7 - pad:] = True
    _, info = layer(x, mask=mask, return_info=True)
    e = info.energy  # (T + 1, B, H, L)
    assert e.shape == (7, 2, 2, 7) and bool(torch.isfinite(e).all())
    rise = (e[1:] - e[:-1]).max().item()
    assert rise <= 1e-9 * (1 + e.abs().max().item()), f"energy rose by {rise:.3g}"


@pytest.mark.parametrize("kind", ["self_masked", "pooling", "lookup", "steps"])
def test_fused_path_avoids_sdpa_math_fallback(kind):
    """SDPA must take a fused kernel (no explicit softmax, no math fallback) for every layer."""
    from hopfield import HopfieldLayer, HopfieldPooling

    x = torch.randn(2, 16, 8, requires_grad=True)
    m = torch.zeros(2, 16, dtype=torch.bool)
    m[0, 5:] = True
    am = torch.rand(16, 16) < 0.2
    am[:, 0] = False
    run = {
        "self_masked": lambda: Hopfield(8, num_heads=2)(x, mask=m, association_mask=am),
        "pooling": lambda: HopfieldPooling(8, num_heads=2, quantity=3)(x, mask=m),
        "lookup": lambda: HopfieldLayer(8, num_heads=2, quantity=5, learnable_beta=True)(x),
        "steps": lambda: Hopfield(8, num_heads=2, max_steps=2)(x, mask=m),
    }[kind]
    with torch.profiler.profile() as prof:
        run().sum().backward()
    ops = {e.key for e in prof.key_averages()}
    assert "aten::scaled_dot_product_attention" in ops
    bad = ops & {"aten::_softmax", "aten::_scaled_dot_product_attention_math", "aten::bmm"}
    assert not bad, f"unfused ops on the fast path: {sorted(bad)}"
