"""HopfieldEncoderLayer / HopfieldDecoderLayer: drop-ins for nn.Transformer{Encoder,Decoder}Layer."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn

from hopfield.nn.transformer import HopfieldDecoderLayer, HopfieldEncoderLayer

D, H, FF = 16, 4, 32
B, L, S = 3, 5, 7
TOL = 1e-5


def _x(batch_first: bool, T: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (B, T, D) if batch_first else (T, B, D)
    return torch.randn(shape, generator=g)


def _causal(n: int) -> torch.Tensor:
    return torch.ones(n, n, dtype=torch.bool).triu(1)


def _padding(n: int, row: int, start: int) -> torch.Tensor:
    m = torch.zeros(B, n, dtype=torch.bool)
    m[row, start:] = True
    return m


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("masks", ["none", "bool", "float"])
def test_encoder_exact(batch_first, norm_first, masks):
    t = nn.TransformerEncoderLayer(D, H, FF, batch_first=batch_first, norm_first=norm_first,
                                   activation="gelu").eval()
    h = HopfieldEncoderLayer.from_transformer_layer(t)
    assert h.self_attn.batch_first == batch_first and not h.training
    x = _x(batch_first, L, 1)
    kw = {}
    if masks != "none":
        sm, kpm = _causal(L), _padding(L, 1, 3)
        if masks == "float":  # torch's additive convention
            sm = torch.zeros(L, L).masked_fill(sm, float("-inf"))
            kpm = torch.zeros(B, L).masked_fill(kpm, float("-inf"))
        kw = {"src_mask": sm, "src_key_padding_mask": kpm}
    with torch.no_grad():
        ref, out = t(x, **kw), h(x, **kw)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, atol=TOL, rtol=0)


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_exact_with_all_masks(batch_first, norm_first):
    t = nn.TransformerDecoderLayer(D, H, FF, batch_first=batch_first,
                                   norm_first=norm_first).eval()
    h = HopfieldDecoderLayer.from_transformer_layer(t)
    tgt, mem = _x(batch_first, L, 2), _x(batch_first, S, 3)
    memory_mask = torch.zeros(L, S, dtype=torch.bool)
    memory_mask[:, 0] = True
    memory_mask[2, 4:] = True
    kw = {"tgt_mask": _causal(L), "memory_mask": memory_mask,
          "tgt_key_padding_mask": _padding(L, 0, 4),
          "memory_key_padding_mask": _padding(S, 2, 5)}
    with torch.no_grad():
        torch.testing.assert_close(h(tgt, mem, **kw), t(tgt, mem, **kw), atol=TOL, rtol=0)
        torch.testing.assert_close(h(tgt, mem), t(tgt, mem), atol=TOL, rtol=0)


def test_three_dim_mask_and_is_causal_and_unbatched():
    t = nn.TransformerEncoderLayer(D, H, FF, batch_first=True).eval()
    h = HopfieldEncoderLayer.from_transformer_layer(t)
    x = _x(True, L, 4)
    m3 = torch.rand(B * H, L, L, generator=torch.Generator().manual_seed(5)) < 0.3
    m3[..., 0] = False  # every state keeps one pattern (torch gives NaN otherwise)
    with torch.no_grad():
        torch.testing.assert_close(h(x, src_mask=m3), t(x, src_mask=m3), atol=TOL, rtol=0)
        # is_causal without a mask applies the causal mask (torch needs the mask as well)
        torch.testing.assert_close(h(x, is_causal=True),
                                   t(x, src_mask=_causal(L), is_causal=True), atol=TOL, rtol=0)
        x2 = x[0]  # unbatched (S, E)
        torch.testing.assert_close(h(x2, src_mask=_causal(L)), t(x2, src_mask=_causal(L)),
                                   atol=TOL, rtol=0)


@pytest.mark.parametrize("batch_first", [True, False])
def test_inside_torch_encoder_and_decoder_stacks(batch_first):
    t = nn.TransformerEncoderLayer(D, H, FF, batch_first=batch_first)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # nested-tensor notice of torch
        ref = nn.TransformerEncoder(t, 2).eval()
        hop = nn.TransformerEncoder(HopfieldEncoderLayer.from_transformer_layer(t), 2).eval()
    for i, layer in enumerate(ref.layers):  # make the two stacks' layers differ per depth
        with torch.no_grad():
            layer.linear1.weight.mul_(1 + 0.1 * i)
        hop.layers[i] = HopfieldEncoderLayer.from_transformer_layer(layer)
    x = _x(batch_first, L, 6)
    kpm = _padding(L, 2, 2)
    with torch.no_grad():  # the container turns bool masks into float masks for its layers
        for kw in ({}, {"mask": _causal(L), "src_key_padding_mask": kpm},
                   {"mask": _causal(L), "is_causal": True}):
            torch.testing.assert_close(hop(x, **kw), ref(x, **kw), atol=TOL, rtol=0)

    td = nn.TransformerDecoderLayer(D, H, FF, batch_first=batch_first)
    dref = nn.TransformerDecoder(td, 2).eval()
    dhop = nn.TransformerDecoder(HopfieldDecoderLayer.from_transformer_layer(td), 2).eval()
    tgt, mem = _x(batch_first, L, 7), _x(batch_first, S, 8)
    with torch.no_grad():
        torch.testing.assert_close(dhop(tgt, mem, tgt_mask=_causal(L), tgt_is_causal=True),
                                   dref(tgt, mem, tgt_mask=_causal(L), tgt_is_causal=True),
                                   atol=TOL, rtol=0)


def test_hopfield_extras_and_gradients():
    h = HopfieldEncoderLayer(D, H, FF, dropout=0.0, batch_first=True, max_steps=2,
                             learnable_beta=True, separation="sparsemax")
    assert h.self_attn.max_steps == 2 and h.self_attn.learnable_beta
    enc = nn.TransformerEncoder(h, 2, enable_nested_tensor=False)
    x = _x(True, L, 9).requires_grad_()
    out = enc(x, mask=_causal(L), src_key_padding_mask=_padding(L, 0, 4))
    assert out.shape == x.shape and torch.isfinite(out).all()
    out.square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name, p in enc.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert enc.layers[0].self_attn.log_beta.grad.abs().sum() > 0

    d = HopfieldDecoderLayer(D, H, FF, batch_first=False, beta=torch.full((H,), 0.7))
    torch.testing.assert_close(d.multihead_attn.beta, torch.full((H,), 0.7))
    assert d(_x(False, L, 1), _x(False, S, 2)).shape == (L, B, D)
    c = copy.deepcopy(d)  # nn.Transformer* containers deep-copy their layer
    assert isinstance(c.activation, type(d.activation))


def test_from_transformer_layer_with_extras_starts_from_the_same_weights():
    t = nn.TransformerEncoderLayer(D, H, FF, batch_first=True).eval()
    h = HopfieldEncoderLayer.from_transformer_layer(t, max_steps=3)
    assert h.self_attn.max_steps == 3
    torch.testing.assert_close(h.self_attn.q_proj.weight, t.self_attn.in_proj_weight[:D])
    torch.testing.assert_close(h.linear2.weight, t.linear2.weight)


def test_train_mode_gradients_match_torch_without_dropout():
    t = nn.TransformerEncoderLayer(D, H, FF, dropout=0.0, batch_first=True)
    h = HopfieldEncoderLayer.from_transformer_layer(t)
    x = _x(True, L, 3)
    t(x, src_mask=_causal(L)).sum().backward()
    h(x, src_mask=_causal(L)).sum().backward()
    torch.testing.assert_close(h.self_attn.out_proj.weight.grad, t.self_attn.out_proj.weight.grad,
                               atol=TOL, rtol=0)
    torch.testing.assert_close(h.linear1.weight.grad, t.linear1.weight.grad, atol=TOL, rtol=0)


def test_bad_input_gives_clear_errors():
    h = HopfieldEncoderLayer(D, H, FF, batch_first=True)
    x = _x(True, L, 0)
    with pytest.raises(TypeError, match="src_mask .*dtype torch.int64"):
        h(x, src_mask=torch.zeros(L, L, dtype=torch.long))
    with pytest.raises(ValueError, match="src_mask: additive float masks may only hold 0"):
        h(x, src_mask=torch.full((L, L), -1.0))
    with pytest.raises(ValueError, match=r"src_mask must have shape .*\(5, 5\)"):
        h(x, src_mask=_causal(L + 1))
    with pytest.raises(ValueError, match=r"src_key_padding_mask must have shape .*\(3, 5\)"):
        h(x, src_key_padding_mask=torch.zeros(B, L + 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="src_key_padding_mask must leave at least one key"):
        h(x, src_key_padding_mask=torch.ones(B, L, dtype=torch.bool))
    with pytest.raises(TypeError, match="src_key_padding_mask must be a torch.Tensor"):
        h(x, src_key_padding_mask=[[True]])
    with pytest.raises(ValueError, match="src must have shape"):
        h(x[None])
    with pytest.raises(TypeError, match="src must be a torch.Tensor"):
        h("text")
    d = HopfieldDecoderLayer(D, H, FF, batch_first=True)
    with pytest.raises(ValueError, match=r"memory_mask must have shape .*\(5, 7\)"):
        d(x, _x(True, S, 1), memory_mask=_causal(L))
    with pytest.raises(ValueError, match="both be batched"):
        d(x, _x(True, S, 1)[0])
    with pytest.raises(TypeError, match="num_heads is set from the torch-style arguments"):
        HopfieldEncoderLayer(D, H, num_heads=2)
    with pytest.raises(ValueError, match="activation must be 'relu', 'gelu'"):
        HopfieldEncoderLayer(D, H, activation="swish")
    with pytest.raises(ValueError, match="divisible by nhead"):
        HopfieldEncoderLayer(10, 4)
    with pytest.raises(TypeError, match="must be a torch.nn.TransformerEncoderLayer"):
        HopfieldEncoderLayer.from_transformer_layer(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="must be a torch.nn.TransformerDecoderLayer"):
        HopfieldDecoderLayer.from_transformer_layer(nn.TransformerEncoderLayer(D, H))


@pytest.mark.parametrize("kw", [{"bias": False}, {"dtype": torch.float64},
                                {"activation": nn.GELU()}])
def test_decoder_exact_bias_dtype_activation(kw):
    t = nn.TransformerDecoderLayer(D, H, FF, batch_first=True, **kw).eval()
    h = HopfieldDecoderLayer.from_transformer_layer(t)
    dtype = kw.get("dtype", torch.float32)
    tgt, mem = _x(True, L, 1).to(dtype), _x(True, S, 2).to(dtype)
    with torch.no_grad():
        out = h(tgt, mem, tgt_mask=_causal(L))
        torch.testing.assert_close(out, t(tgt, mem, tgt_mask=_causal(L)), atol=TOL, rtol=0)
    assert out.dtype == dtype


def test_char_lm_example_runs_and_hopfield_equals_attention(tmp_path):
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "char_lm.py"
    spec = importlib.util.spec_from_file_location("char_lm_example", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    threads = torch.get_num_threads()
    try:
        mod.main(["--quick", "--steps", "3", "--sample-chars", "5", "--block", "16", "--batch",
                  "4", "--variants", "attention", "hopfield", "--out", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)  # main() sets --threads
    results = json.loads((tmp_path / "results.json").read_text())
    assert [r["variant"] for r in results] == ["attention", "hopfield"]
    # same initial weights, data and function: the Hopfield blocks track attention exactly
    assert abs(results[0]["val_loss"] - results[1]["val_loss"]) < 1e-4
    assert (tmp_path / "results.md").read_text().count("| attention |") == 1


def test_inside_nn_transformer_as_custom_encoder_decoder():
    ref = nn.Transformer(D, H, 2, 2, FF, batch_first=True).eval()
    enc = nn.TransformerEncoder(HopfieldEncoderLayer(D, H, FF, batch_first=True), 2,
                                norm=nn.LayerNorm(D), enable_nested_tensor=False)
    dec = nn.TransformerDecoder(HopfieldDecoderLayer(D, H, FF, batch_first=True), 2,
                                norm=nn.LayerNorm(D))
    # nn.Transformer re-initialises its custom modules' weights: copy the reference after it
    hop = nn.Transformer(D, H, custom_encoder=enc, custom_decoder=dec, batch_first=True).eval()
    for i in range(2):
        enc.layers[i] = HopfieldEncoderLayer.from_transformer_layer(ref.encoder.layers[i])
        dec.layers[i] = HopfieldDecoderLayer.from_transformer_layer(ref.decoder.layers[i])
    enc.norm.load_state_dict(ref.encoder.norm.state_dict())
    dec.norm.load_state_dict(ref.decoder.norm.state_dict())
    src, tgt = _x(True, S, 1), _x(True, L, 2)
    tm = nn.Transformer.generate_square_subsequent_mask(L)
    with torch.no_grad():
        torch.testing.assert_close(hop(src, tgt, tgt_mask=tm, tgt_is_causal=True),
                                   ref(src, tgt, tgt_mask=tm, tgt_is_causal=True),
                                   atol=TOL, rtol=0)


def test_validation_off_skips_the_data_checks_only():
    import hopfield

    h = HopfieldEncoderLayer(D, H, FF, batch_first=True).eval()
    x = _x(True, L, 0)
    soft = torch.zeros(L, L)
    soft[0, 1] = -1.0  # not 0/-inf: counts as allowed without the data check
    with hopfield.validation(False), torch.no_grad():
        torch.testing.assert_close(h(x, src_mask=soft), h(x))
        with pytest.raises(ValueError, match="src_mask must have shape"):
            h(x, src_mask=soft[:2])


def test_transformer_bench_suite_peers_compute_the_same_function():
    """bench suite 'transformer': both peers are the same function (a fair comparison)."""
    from hopfield.bench import transformer

    for case in transformer.cases(quick=True)[::2]:  # one without and one with the causal mask
        cfg = {**case.config, "B": 2, "L": 6, "d_model": 8, "nhead": 2, "dim_feedforward": 16}
        for peer in case.peers:
            transformer.setup(cfg, peer).fn()  # one forward + backward runs
        torch_layer, hop_layer = (transformer.build_layer(cfg, p).eval() for p in case.peers)
        x = torch.randn(2, 6, 8)
        mask = torch.nn.Transformer.generate_square_subsequent_mask(6) \
            if case.config["causal"] else None
        with torch.no_grad():
            a = torch_layer(x, src_mask=mask, is_causal=mask is not None)
            b = hop_layer(x, src_mask=mask, is_causal=mask is not None)
        assert (a - b).abs().max() <= 1e-5
    with pytest.raises(ValueError, match="unknown peer"):
        transformer.setup(cfg, "nosuch")
