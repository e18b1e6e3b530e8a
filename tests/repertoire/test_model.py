"""DeepRCClassifier and the network: exactness of the chunked pooling, learning, save/load, input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hopfield.repertoire import (
    DeepRCClassifier,
    KmerClassifier,
    MotifOracle,
    kmer_counts,
    simulate_repertoires,
)
from hopfield.repertoire.baselines import kmer_names
from hopfield.repertoire.network import DeepRCNet, pool_finish, pool_partial, position_features


def _net(**kw):
    args = {"n_kernels": 8, "kernel_size": 5, "max_length": 24, "embedding_size": 16,
            "num_heads": 2, "head_size": 8, "beta": None, "use_counts": False, "dropout": 0.0}
    torch.manual_seed(0)
    return DeepRCNet(2, **{**args, **kw}).eval()


@pytest.fixture(scope="module")
def easy():
    return simulate_repertoires(24, 120, 0.2, seed=0)


def test_embedding_equals_dense_conv_reference():
    """The table-lookup CNN equals conv1d over one-hot + positional channels, max, SELU."""
    net = _net()
    ds = simulate_repertoires(2, 64, 0.1, seed=1)
    rep = ds.repertoires[0]
    codes = torch.from_numpy(rep.encode(max_length=24)).long()
    lens = torch.from_numpy(np.asarray(rep.lengths, dtype=np.int64))
    emb = net.embed
    k, K = emb.k, emb.K
    x = torch.cat([F.one_hot(codes, 22).float(), position_features(lens, 24)], -1)  # (M, L, 25)
    W = emb.tokens.weight.view(22, k, K)
    conv_w = torch.cat([W.permute(2, 0, 1), emb.position.weight], 1)  # (K, 25, k)
    h = F.conv1d(x.transpose(1, 2), conv_w, emb.position.bias)  # (M, K, T)
    valid = torch.arange(h.shape[2]) < (lens - k + 1).unsqueeze(1)
    ref = F.selu(h.masked_fill(~valid.unsqueeze(1), -1e9).amax(2))
    got = emb(codes, lens)
    assert torch.allclose(got, ref, atol=1e-5), (got - ref).abs().max()


def test_chunked_pooling_is_exact():
    net = _net()
    ds = simulate_repertoires(2, 700, 0.1, seed=2)
    rep = ds.repertoires[0]
    with torch.no_grad():
        e = net.sequences(torch.from_numpy(rep.encode()), torch.from_numpy(
            np.asarray(rep.lengths, dtype=np.int64)))
        ref = net.pool(e[None])[0]
        part = None
        for s in range(0, len(e), 97):
            p = pool_partial(net.pool, e[s:s + 97])
            part = p if part is None else part.merge(p)
        got = pool_finish(net.pool, part)
    assert torch.allclose(got, ref, atol=1e-5), (got - ref).abs().max()


def test_chunk_size_does_not_change_predictions(easy):
    clf = DeepRCClassifier(max_iter=2, n_train_sequences=32, random_state=0, pretrain_steps=5,
                           early_stopping=False).fit(easy.repertoires, easy.y)
    a = clf.decision_function(easy.repertoires[:4])
    clf.set_params(chunk_size=7)
    b = clf.decision_function(easy.repertoires[:4])
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)  # float32 merge order
    w = clf.sequence_weights(easy.repertoires[:2])
    assert [len(x) for x in w] == [120, 120]
    np.testing.assert_allclose([x.sum() for x in w], 1.0, atol=1e-9)
    assert clf.sequence_weights(easy.repertoires[:1], average_heads=False)[0].shape == (4, 120)


def test_learns_easy_setting_and_finds_witnesses(easy):
    tr, te = np.arange(16), np.arange(16, 24)
    R = easy.repertoires
    clf = DeepRCClassifier(max_iter=6, pretrain_steps=60, random_state=0, early_stopping=False,
                           num_threads=1).fit([R[i] for i in tr], easy.y[tr])
    from sklearn.metrics import roc_auc_score

    auc = roc_auc_score(easy.y[te], clf.decision_function([R[i] for i in te]))
    assert auc >= 0.9, auc
    proba = clf.predict_proba([R[i] for i in te])
    assert proba.shape == (8, 2) and np.allclose(proba.sum(1), 1)
    pos = [i for i in te if easy.y[i] == 1]
    w = clf.sequence_weights([R[i] for i in pos])
    prec = np.mean([easy.witness[i][np.argsort(-wi)[:5]].mean() for i, wi in zip(pos, w)])
    assert prec >= 0.6, prec


def test_deterministic_and_save_load(easy, tmp_path):
    kw = {"max_iter": 2, "n_train_sequences": 40, "random_state": 3, "use_counts": True,
          "pretrain_steps": 5}
    a = DeepRCClassifier(**kw).fit(easy.repertoires, easy.y)
    b = DeepRCClassifier(**kw).fit(easy.repertoires, easy.y)
    da = a.decision_function(easy.repertoires[:5])
    np.testing.assert_array_equal(da, b.decision_function(easy.repertoires[:5]))
    a.save(tmp_path / "m")
    c = DeepRCClassifier.load(tmp_path / "m")
    np.testing.assert_allclose(c.decision_function(easy.repertoires[:5]), da, atol=1e-6)
    assert c.get_params() == a.get_params()
    assert c.kmer_init_kmers_ == a.kmer_init_kmers_
    assert c.kmer_init_significant_ is a.kmer_init_significant_
    assert not list((tmp_path / "m").glob("*.pkl"))


def test_load_rejects_bad_kmer_init_fields_and_accepts_older_saves(easy, tmp_path):
    import json

    a = DeepRCClassifier(max_iter=1, n_train_sequences=40, random_state=0, pretrain_steps=3,
                         early_stopping=False).fit(easy.repertoires, easy.y)
    a.save(tmp_path / "m")
    cfg_path = tmp_path / "m" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    old = {k: v for k, v in cfg.items() if not k.startswith("kmer_init")}
    cfg_path.write_text(json.dumps(old))
    c = DeepRCClassifier.load(tmp_path / "m")             # saved before these fields existed
    assert not hasattr(c, "kmer_init_kmers_")
    cfg_path.write_text(json.dumps({**old, "kmer_init_kmers": [1, 2],
                                    "kmer_init_significant": True}))
    with pytest.raises(ValueError, match="kmer_init_kmers must be a list of strings"):
        DeepRCClassifier.load(tmp_path / "m")


def test_accepts_strings_and_string_labels():
    X = [["CASSLGF", "CASSQYF"], ["CARDF", "CASSLGF", "CAW"], ["CAF"], ["CASSF", "CAGGF"]]
    y = np.array(["healthy", "sick", "healthy", "sick"])
    clf = DeepRCClassifier(max_iter=1, random_state=0, early_stopping=False,
                           pretrain_steps=3).fit(X, y)
    assert set(clf.predict(X)) <= {"healthy", "sick"}
    assert clf.classes_.tolist() == ["healthy", "sick"]


@pytest.mark.parametrize("X, y, msg", [
    ([["CASF"], []], [0, 1], r"X\[1\] is an empty repertoire"),
    ([["CASF"], ["CA1F"]], [0, 1], r"contains '1'"),
    ([["CASF"], ["C" * 50]], [0, 1], r"more than max_length=40"),
    ([["CASF"], ["CAF"]], [0, 0], "at least 2 classes"),
    ([["CASF"], ["CAF"]], [0, 1, 1], "one label per repertoire"),
    ("CASF", [0], "list of repertoires"),
])
def test_bad_input(X, y, msg):
    with pytest.raises((ValueError, TypeError), match=msg):
        DeepRCClassifier(max_iter=1).fit(X, y)


@pytest.mark.parametrize("param, value", [("num_heads", 0), ("top_fraction", 1.5),
                                          ("learning_rate", 0.0), ("beta", -1.0),
                                          ("max_length", 300), ("kernel_size", 41)])
def test_bad_parameters(param, value):
    with pytest.raises(ValueError, match=f"The '{param}' parameter of DeepRCClassifier"):
        DeepRCClassifier(**{param: value}).fit([["CASF"], ["CAF"]], [0, 1])


def test_unfitted_raises():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        DeepRCClassifier().predict([["CASF"]])


# ----------------------------------------------------------------------------- baselines


def test_kmer_counts_exact():
    X = [["CASF", "CAS"], ["CASX"]]
    with pytest.raises(ValueError, match="contains 'X'"):
        kmer_counts(X, 3)
    M = kmer_counts([["CASF", "CAS"]], 3).toarray()[0]
    names = kmer_names(3)
    got = {names[i]: v for i, v in enumerate(M) if v}
    assert got == pytest.approx({"CAS": 2 / 3, "ASF": 1 / 3})


def test_kmer_baselines_and_oracle(easy):
    R, y = easy.repertoires, easy.y
    for model in ("l1_logistic", "svm"):
        clf = KmerClassifier(k=3, model=model, Cs=(0.1, 1.0), random_state=0).fit(R[:16], y[:16])
        assert clf.decision_function(R[16:]).shape == (8,)
    lr = KmerClassifier(k=4, Cs=(1.0,), random_state=0).fit(R, y)
    assert lr.top_kmers(1) == easy.motifs
    o = MotifOracle(easy.motifs).fit(R, y)
    assert (o.predict(R) == y).all()


def test_kmer_init_finds_rare_motif_and_attends_to_it():
    """At 5 witnesses in 2,000 sequences the enriched 4-mer seeds one CNN kernel, a near-binary
    detector (+1 on an exact occurrence, SELU floor otherwise), and the pooling attends to it."""
    ds = simulate_repertoires(24, 2000, 0.0025, seed=2)
    R, motif = ds.repertoires, ds.motifs[0]
    tr, te = np.arange(16), np.arange(16, 24)
    clf = DeepRCClassifier(max_iter=1, pretrain_steps=20, random_state=0, early_stopping=False,
                           num_threads=1).fit([R[i] for i in tr], ds.y[tr])
    assert clf.kmer_init_kmers_ == [motif] and clf.kmer_init_significant_
    net = clf.module_
    seqs = ["CASS" + motif + "GYF", "CASSLAPGQGYEQYF"]
    rep = DeepRCClassifier._chunk(clf, as_rep(seqs), np.arange(2), "cpu")
    with torch.no_grad():
        h = net.embed(rep[0], rep[1])[:, 0]
    assert h[0] > 0.9 and h[1] < -1.6, h  # the kernel fires only on the motif
    pos = [i for i in te if ds.y[i] == 1]
    w = clf.sequence_weights([R[i] for i in pos])
    prec = np.mean([ds.witness[i][np.argsort(-wi)[:5]].mean() for i, wi in zip(pos, w)])
    assert prec >= 0.6, prec
    off = DeepRCClassifier(kmer_init=0, max_iter=1, pretrain_steps=2, random_state=0,
                           early_stopping=False).fit([R[i] for i in tr[:6]], ds.y[tr[:6]])
    assert off.kmer_init_kmers_ == []


def test_kmer_init_without_significance_seeds_the_top_candidates():
    """Without an implanted signal no k-mer passes the Bonferroni threshold: the ``kmer_init`` most
    enriched k-mers are seeded as candidates instead (flagged as not significant)."""
    ds = simulate_repertoires(12, 300, 0.001, seed=4)
    y = np.arange(12) % 2  # labels unrelated to the data
    clf = DeepRCClassifier(kmer_init=3, max_iter=1, pretrain_steps=2, random_state=0,
                           early_stopping=False).fit(ds.repertoires, y)
    assert not clf.kmer_init_significant_
    assert len(clf.kmer_init_kmers_) == 3 and len(set(clf.kmer_init_kmers_)) == 3
    assert all(len(m) == 4 for m in clf.kmer_init_kmers_)
    assert np.isfinite(clf.decision_function(ds.repertoires[:2])).all()


def test_kmer_candidates_include_the_per_repertoire_ranking():
    """One planted sequence per positive repertoire is too rare for the pooled z-test (6 vs 0
    windows: z ~ 2.4), but its k-mers separate the repertoires perfectly: the per-repertoire F
    ranking puts one of them among the candidates."""
    ds = simulate_repertoires(12, 300, 0.001, seed=5)
    y = np.arange(12) % 2
    planted = "CASWMWHWF"
    X = [list(r.sequences(0, len(r))) + ([planted] if c else []) for r, c in zip(ds.repertoires, y)]
    clf = DeepRCClassifier(kmer_init=2, max_iter=1, pretrain_steps=2, random_state=0,
                           early_stopping=False).fit(X, y)
    assert not clf.kmer_init_significant_
    assert any(m in planted for m in clf.kmer_init_kmers_), clf.kmer_init_kmers_


def as_rep(seqs):
    from hopfield.repertoire.data import Repertoire

    return Repertoire.from_sequences(seqs)


def test_seed_attention_gives_each_head_its_temperature():
    """Seeded head h scores a sequence scale * spread**(h - H + 1) x its sequence log-odds."""
    from hopfield.repertoire.network import pool_scores

    net = _net(num_heads=3)
    torch.manual_seed(1)
    with torch.no_grad():
        net.sequence_head.weight.normal_()
    net.seed_attention(8.0, 2.0)
    emb = torch.randn(50, 16)
    with torch.no_grad():
        a = pool_scores(net.pool, emb)[:, 0]  # (H, M)
        lo = net.sequence_logits(emb)
        lo = lo[:, 1] - lo[:, 0] - (net.sequence_head.bias[1] - net.sequence_head.bias[0])
    for h, s in enumerate((2.0, 4.0, 8.0)):
        torch.testing.assert_close(a[h], s * lo, rtol=1e-4, atol=1e-4)
