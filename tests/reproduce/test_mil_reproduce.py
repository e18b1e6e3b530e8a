"""hopfield.reproduce.mil: protocol bookkeeping, summary statistics, fold cache/resume, outputs.

(Named test_mil_reproduce.py so it does not clash with tests/estimators/test_mil.py: the test
folders have no __init__.py.)"""

import json

import numpy as np
import pytest
import torch

from hopfield.reproduce import get_part
from hopfield.reproduce import mil as R
from hopfield.reproduce.mil_baselines import BagStatsClassifier, MILNetClassifier, bag_statistics


def test_summary_statistics_match_hand_computation():
    rows = [{"dataset": "d", "method": "m", "repeat": r, "fold": f, "auc": a}
            for (r, f, a) in [(0, 0, 0.9), (0, 1, 0.7), (1, 0, 1.0), (1, 1, 0.8)]]
    mu, sd, n = R.summarize(rows, ["d"], ["m"])["d"]["m"]
    # repeat means 0.8 and 0.9 -> mean 85, population std over repeats 5
    assert (round(mu, 9), round(sd, 9), n) == (85.0, 5.0, 4)
    one = R.summarize(rows[:2], ["d"], ["m"])["d"]["m"]   # one repeat: std over folds
    assert (round(one[0], 9), round(one[1], 9)) == (80.0, 10.0)


def test_fit_times_sum_the_fold_records_per_set():
    rows = [{"dataset": "a", "seconds": 60.0, "cpu_seconds": 30.0}, {"dataset": "a", "seconds": 120.0, "cpu_seconds": 90.0},
            {"dataset": "b", "seconds": 6.0, "cpu_seconds": None}]
    ft = R.fit_times(rows, ["a", "b"])
    assert ft == {"a": (2, 180.0, 120.0), "b": (1, 6.0, None), "total": (3, 186.0, None)}
    lines = "\n".join(R._fit_time_lines(rows, ["a", "b"]))
    assert "| a | 2 | 3.0 | 2.0 |" in lines and "| b | 1 | 0.1 | n/a |" in lines and "| **all** | 3 | 3.1 | n/a |" in lines


def test_candidates_seeded_defaults_first():
    assert R.candidates("hopfield", 0, 0) == [{}]
    a, b = R.candidates("hopfield", 8, 1), R.candidates("hopfield", 8, 1)
    assert a == b and a[0] == {} and len(a) == 8
    for m in R.METHODS:                                     # every grid point builds a valid estimator
        for p in R.candidates(m, 4, 0):
            est = R.make(m, p, seed=0, mode="quick")
            if hasattr(est, "_check_params"):
                est._check_params()


def test_paper_numbers_are_the_published_ones():
    assert R.PAPER == {"elephant": (94.9, 0.3), "ucsb_breast_cancer": (89.5, 0.8), "musk1": None,
                       "musk2": None}
    assert R.PROTOCOLS["full"]["folds"] == 10 and R.PROTOCOLS["full"]["repeats"] == 5


def test_full_protocol_ensembles_every_network_and_tuned_keeps_inner_cv():
    full, tuned = R.PROTOCOLS["full"], R.PROTOCOLS["tuned"]
    assert (full["inner_folds"], full["n_iter"]) == (0, 0) and R.candidates("hopfield", 0, 0) == [{}]
    for m, (_, kind, _) in R.METHODS.items():
        est = R.make(m, {}, seed=3, mode="full")
        assert getattr(est, "n_members", None) == (R.FULL_MEMBERS if kind != "stats" else None)
        assert est.random_state == 3
    assert (tuned["inner_folds"], tuned["n_iter"], tuned["net"]) == (3, 8, {})
    assert full["cache"] != "full"          # folds cached by the earlier tuned protocol are not reused


def test_all_eight_sets_in_full_and_quick_a_subset():
    from hopfield.datasets.mil import MIL_DATASETS

    assert len(MIL_DATASETS) == 8 and tuple(R.PROTOCOLS["full"]["datasets"]) == MIL_DATASETS
    assert set(R.PROTOCOLS["quick"]["datasets"]) <= set(MIL_DATASETS)
    assert {"elephant", "ucsb_breast_cancer"} <= set(R.PROTOCOLS["quick"]["datasets"])
    with pytest.raises(ValueError, match="name must be one of"):
        R.run("unused", mode="smoke", datasets=("tiger",))


def test_bag_statistics_reference():
    bags = [np.array([[1.0, 5.0], [3.0, -1.0]]), np.array([[2.0, 2.0]])]
    np.testing.assert_array_equal(bag_statistics(bags), [[2, 2, 1, -1, 3, 5], [2, 2, 2, 2, 2, 2]])


@pytest.mark.parametrize("pooling", ["attention", "gated", "mean", "max"])
def test_baseline_poolings_ignore_padding_and_order(pooling):
    rng = np.random.RandomState(0)
    bags = [rng.randn(rng.randint(2, 6), 3) for _ in range(16)]
    y = np.arange(16) % 2
    clf = MILNetClassifier(pooling=pooling, embedding_size=8, max_iter=2, random_state=0).fit(bags, y)
    perm = [b[::-1] for b in bags]
    np.testing.assert_allclose(clf.decision_function(perm), clf.decision_function(bags), atol=1e-5)
    if pooling in ("attention", "gated"):
        w = clf.instance_weights(bags)
        np.testing.assert_allclose([wi.sum() for wi in w], 1.0, atol=1e-5)
    else:
        with pytest.raises(ValueError, match="no association weights"):
            clf.instance_weights(bags)
    with pytest.raises(ValueError, match="'pooling' parameter of MILNetClassifier must be a str among"):
        MILNetClassifier(pooling="sum").fit(bags, y)


def test_bag_stats_classifier_errors():
    with pytest.raises(ValueError, match="'model' parameter of BagStatsClassifier"):
        BagStatsClassifier(model="knn").fit([np.zeros((1, 2))] * 2, [0, 1])


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match=r"mode must be one of \['full', 'tuned', 'quick', 'smoke'\]"):
        R.run(tmp_path, mode="fast")
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        R.run(tmp_path, seed=-1)
    with pytest.raises(ValueError, match="methods must be a non-empty subset"):
        R.run(tmp_path, methods=("svm",))
    with pytest.raises(ValueError, match="part must be one of"):
        get_part("tiger")


def test_smoke_run_writes_outputs_and_resumes(tmp_path, monkeypatch):
    section = R.run(tmp_path, mode="smoke", seed=0, methods=("hopfield", "svm_stats"))
    out = tmp_path / "mil"
    for f in ("results.csv", "summary.csv", "mil.json", "auc.png"):
        assert (out / f).is_file(), f
    assert "### Paired comparison with Hopfield pooling" in section and "Win/tie/loss" in section
    assert "Fit time behind this table" in section and "| **all** | 4 |" in section
    folds = sorted((out / "folds" / "smoke-seed0").glob("*.json"))
    assert len(folds) == 2 * 2 + 1                  # 2 folds x 2 methods on musk1 + the weights figure
    assert (out / "instance_weights.png").is_file() and "mil/instance_weights.png" in section
    wrec = json.loads((out / "folds" / "smoke-seed0" / "musk1__r0f0__instance_weights.json").read_text())
    assert wrec["dataset"] == "musk1" and wrec["n_correct"] + wrec["n_wrong"] == 46   # 92 bags / 2 folds
    for kind in ("correct", "wrong"):
        assert len(wrec[kind]) == min(4, wrec[f"n_{kind}"])
        for b in wrec[kind]:
            assert sum(b["weights"]) == pytest.approx(1.0, abs=1e-5)
            assert ((b["p_positive"] >= 0.5) == (b["label"] == 1)) == (kind == "correct")
    data = json.loads((out / "mil.json").read_text())
    aucs = [r["auc"] for r in data["folds"]]
    assert all(0.0 <= a <= 1.0 for a in aucs)
    assert "| musk1 | n/a |" in section and "Hopfield pooling (ours)" in section
    # the smoke folds are a real stratified split of musk1 (92 bags, 47 positive)
    # resume: nothing is refitted the second time, and the section is identical up to timing
    monkeypatch.setattr(R, "_run_fold", lambda *a, **k: pytest.fail("a cached fold was refitted"))
    again = R.run(tmp_path, mode="smoke", seed=0, methods=("hopfield", "svm_stats"))
    strip = lambda s: [ln for ln in s.splitlines() if "This invocation" not in ln]
    assert strip(again) == strip(section)


def test_deterministic_for_a_seed(tmp_path):
    """Two fresh runs with the same seed give bit-identical fold AUCs; another seed differs."""
    def aucs(d, seed):
        R.run(d, mode="smoke", seed=seed, methods=("hopfield", "rf_stats"))
        rows = json.loads((d / "mil" / "mil.json").read_text())["folds"]
        return sorted((r["fold"], r["method"], r["auc"]) for r in rows)

    a, b = aucs(tmp_path / "a", 5), aucs(tmp_path / "b", 5)
    assert a == b
    assert aucs(tmp_path / "c", 6) != a


def test_corrected_ttest_matches_hand_computation():
    from scipy import stats

    d = [0.1, 0.2, 0.0, 0.3, -0.1]       # mean 0.1, sample variance 0.1/4 = 0.025
    t, p = R.corrected_ttest(d, 1 / 4)   # 5-fold CV: n_test/n_train = 1/4
    # hand: se = sqrt((1/5 + 1/4) * 0.025) = sqrt(0.01125) = 0.1060660; t = 0.1 / se
    assert t == pytest.approx(0.1 / 0.10606601717798213, rel=1e-12)
    assert p == pytest.approx(2 * stats.t.sf(0.9428090415820634, 4), rel=1e-10)
    assert 0.39 < p < 0.41                                  # t(4) table: t = 0.943 -> p ~ 0.40
    # without the correction it is the ordinary paired t-test
    ref = stats.ttest_1samp(d, 0.0)
    assert R.corrected_ttest(d, 0.0) == pytest.approx((ref.statistic, ref.pvalue), rel=1e-10)
    assert R.corrected_ttest([0.0, 0.0, 0.0], 0.25) == (0.0, 1.0)
    assert R.corrected_ttest([0.1, 0.1], 0.25) == (np.inf, 0.0)
    with pytest.raises(ValueError, match="diff must be a 1-D array of at least 2 finite values"):
        R.corrected_ttest([0.1], 0.25)
    with pytest.raises(ValueError, match="test_train_ratio must be a finite float >= 0"):
        R.corrected_ttest(d, -1)


def test_wilcoxon_exact_p_by_hand():
    # 5 differences, all positive: exact two-sided p = 2 / 2**5 = 0.0625 (the smallest possible)
    assert R.wilcoxon_p([0.1, 0.2, 0.3, 0.4, 0.5]) == pytest.approx(0.0625)
    # ranks 1..4, negative rank sum 1: P(W- <= 1) = 2/16 -> two-sided 0.25
    assert R.wilcoxon_p([-0.1, 0.2, 0.3, 0.4]) == pytest.approx(0.25)
    assert R.wilcoxon_p([0.0, 0.0]) == 1.0


def test_compare_pairs_folds_and_counts_outcomes():
    def rows_for(method, aucs, dataset="d"):
        return [{"dataset": dataset, "method": method, "repeat": 0, "fold": f, "auc": a}
                for f, a in enumerate(aucs)]

    hop = [0.90, 0.80, 0.85, 0.95, 0.70]
    rows = rows_for("hopfield", hop) + rows_for("rf_stats", [a + 0.1 + 0.01 * i for i, a in enumerate(hop)])
    rows += rows_for("mean", [a - 0.1 - 0.01 * i for i, a in enumerate(hop)])
    rows += rows_for("max", [a + (0.05 if i % 2 else -0.05) for i, a in enumerate(hop)])
    rows += rows_for("svm_stats", hop[::-1])                # same mean, different pairing
    out = R.compare(rows, ["d"], ["hopfield", "rf_stats", "mean", "max", "svm_stats"], folds=5)["d"]
    assert "hopfield" not in out
    assert out["rf_stats"]["delta"] == pytest.approx(12.0) and out["rf_stats"]["outcome"] == "loss"
    assert out["mean"]["delta"] == pytest.approx(-12.0) and out["mean"]["outcome"] == "win"
    assert out["max"]["outcome"] == "tie" and out["max"]["n"] == 5
    assert out["svm_stats"]["delta"] == pytest.approx(0.0, abs=1e-12)
    assert out["svm_stats"]["outcome"] == "tie"
    t, p = R.corrected_ttest([0.1 + 0.01 * i for i in range(5)], 0.25)
    assert (out["rf_stats"]["t"], out["rf_stats"]["p"]) == pytest.approx((t, p))
    assert out["rf_stats"]["p_wilcoxon"] == pytest.approx(0.0625)
    table = R.summarize(rows, ["d"], ["hopfield", "rf_stats", "mean", "max", "svm_stats"])
    text = "\n".join(R._stats_section(table, {"d": out}, ["d"], ["hopfield", "rf_stats", "mean", "max",
                                                                "svm_stats"], R.PROTOCOLS["quick"]))
    assert "Hopfield pooling is **not the best** — Bag stats + RF is 12.0 points higher" in text
    assert "Bag stats + RF 0/0/1" in text and "Mean-pooling net 1/0/0" in text
    assert "cannot go below p = 2/2^5 = 0.0625" in text


def test_full_protocol_wording_names_the_effective_fold_count():
    """Under --full (50 overlapping folds) a tie says the corrected test has ~8 folds' power, and
    the Wilcoxon p is flagged as treating the folds as independent."""
    rng = np.random.RandomState(0)
    hop = 0.8 + 0.05 * rng.rand(50)
    d = 0.1 * rng.randn(50)
    d += 0.02 - d.mean()                    # rf_stats 2 points better on average, fold spread 10 points
    rows = [{"dataset": "d", "method": m, "repeat": i // 10, "fold": i % 10, "auc": a}
            for m, aucs in (("hopfield", hop), ("rf_stats", hop + d)) for i, a in enumerate(aucs)]
    methods = ["hopfield", "rf_stats"]
    cmp = R.compare(rows, ["d"], methods, folds=10)
    assert cmp["d"]["rf_stats"]["n"] == 50 and cmp["d"]["rf_stats"]["outcome"] == "tie"
    text = "\n".join(R._stats_section(R.summarize(rows, ["d"], methods), cmp, ["d"], methods, R.PROTOCOLS["full"]))
    assert "counts the 50 overlapping folds as about 8 independent ones" in text
    assert "the Wilcoxon p treats the 50 folds as independent" in text and "cannot go below" not in text


def test_weights_figure_takes_the_first_fold_with_a_wrong_bag(tmp_path, monkeypatch):
    """The figure contrasts correct and wrong bags: a fold whose test bags are all classified
    correctly is passed over for the next fold of repeat 0 (each examined fold is cached)."""
    calls = []
    original = R.instance_weight_record

    def fake(mode, params, bags, y, bag_ids, tr, te, fold_seed, **kw):
        rec = original(mode, params, bags, y, bag_ids, tr, te, fold_seed, **kw)
        calls.append(fold_seed)
        if len(calls) == 1:                          # pretend fold 0 has no wrong bag
            rec["n_correct"], rec["n_wrong"], rec["wrong"] = len(te), 0, []
        return rec

    monkeypatch.setattr(R, "instance_weight_record", fake)
    section = R.run(tmp_path, mode="smoke", seed=0, methods=("hopfield",))
    assert calls == [0, 1]                           # fold seeds seed * 100_003 + f of repeat 0
    cache = tmp_path / "mil" / "folds" / "smoke-seed0"
    assert json.loads((cache / "musk1__r0f0__instance_weights.json").read_text())["n_wrong"] == 0
    assert json.loads((cache / "musk1__r0f1__instance_weights.json").read_text())["fold"] == 1
    assert "repeat 0, fold 1 (the first fold with a wrongly classified bag" in section


def test_baselines_share_the_stopping_rule():
    """MILNetClassifier has HopfieldMILClassifier's ``scoring`` with the same default; ``"loss"``
    fits exactly as the base loop's validation-loss rule (the baselines' rule before ``scoring``),
    and ``"roc_auc"`` stops on the validation AUC."""
    from hopfield.estimators import HopfieldMILClassifier
    from hopfield.estimators._base import HopfieldEstimator

    assert MILNetClassifier().scoring == HopfieldMILClassifier().scoring == "roc_auc"
    rng = np.random.RandomState(0)
    bags = [rng.randn(rng.randint(2, 6), 3) + (i % 2) for i in range(40)]
    y = np.arange(40) % 2
    kw = {"pooling": "attention", "embedding_size": 8, "max_iter": 12, "n_iter_no_change": 3,
          "random_state": 0}

    class OldRule(MILNetClassifier):       # the base hook: early stopping on the validation loss
        _stopping_losses = HopfieldEstimator._stopping_losses

    old = OldRule(**kw).fit(bags, y)
    new = MILNetClassifier(**kw, scoring="loss").fit(bags, y)
    np.testing.assert_array_equal(new.predict_proba(bags), old.predict_proba(bags))
    np.testing.assert_array_equal(new.best_iteration_, old.best_iteration_)
    est = MILNetClassifier(**kw)
    est._resolve_params()
    vloss = torch.tensor([0.3])
    out = torch.stack([torch.zeros(1, 4), torch.tensor([[-1.0, 1.0, -2.0, 2.0]])], -1)
    got = est._stopping_losses(vloss, out, torch.tensor([0, 1, 0, 1]), torch.ones(1, 4, dtype=torch.bool))
    assert float(got[0]) == pytest.approx(0.01 * 0.3)           # AUC 1 -> 1 - 1 + 0.01 x loss
    with pytest.raises(ValueError, match=r"The 'scoring' parameter of MILNetClassifier must be a str among"):
        MILNetClassifier(**kw, scoring="auc").fit(bags, y)


def test_cached_fold_of_another_stopping_rule_is_refitted(tmp_path):
    """A baseline fold cached before the baselines recorded ``scoring`` stopped on the loss: a run
    with the ROC-AUC default refits it instead of mixing it in; recorded folds are reused."""
    R.run(tmp_path, mode="smoke", seed=0, methods=("mean", "rf_stats"))
    cache = tmp_path / "mil" / "folds" / "smoke-seed0"
    path = cache / "musk1__r0f0__mean.json"
    rec = json.loads(path.read_text())
    assert rec["scoring"] == "roc_auc" and "scoring" not in json.loads(
        (cache / "musk1__r0f0__rf_stats.json").read_text())
    stale = {k: v for k, v in rec.items() if k != "scoring"}
    path.write_text(json.dumps({**stale, "auc": 0.123}))
    kept = cache / "musk1__r0f1__mean.json"
    kept.write_text(json.dumps({**json.loads(kept.read_text()), "auc": 0.456}))
    R.run(tmp_path, mode="smoke", seed=0, methods=("mean", "rf_stats"))
    assert json.loads(path.read_text()) == {**rec, "seconds": json.loads(path.read_text())["seconds"],
                                            "cpu_seconds": json.loads(path.read_text())["cpu_seconds"]}
    assert json.loads(kept.read_text())["auc"] == 0.456          # recorded rule: the cache is reused
