"""``hopfield reproduce tabular`` in smoke mode: files, ranks, cache reuse, argument errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hopfield.datasets._paths import data_dir
from hopfield.reproduce import PARTS, get_part
from hopfield.reproduce.tabular import _ranks, _score, run

pytest.importorskip("optuna")


def test_registered():
    assert "tabular" in PARTS
    assert get_part("tabular").run is run


def test_ranks_and_scores():
    r = _ranks(np.array([[0.9, 0.8, 0.9], [0.5, np.nan, 0.7]]))
    np.testing.assert_array_equal(r, [[1.5, 3.0, 1.5], [2.0, 3.0, 1.0]])
    assert _score("regression", np.array([1.0, 3.0]), [2.0, 2.0]) == -1.0
    assert _score("classification", np.array([1, 2]), [1, 1]) == 0.5


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        run(tmp_path, mode="fast")
    with pytest.raises(ValueError, match="methods"):
        run(tmp_path, mode="smoke", methods=("hopular", "magic"))
    with pytest.raises(ValueError, match="seed"):
        run(tmp_path, mode="smoke", seed=-1)
    with pytest.raises(ValueError, match="n_jobs must be None or an int >= 1, got 0"):
        run(tmp_path, mode="smoke", n_jobs=0)


def test_smoke_run_writes_report_and_reuses_cache(tmp_path):
    if not (data_dir() / "mlbench").is_dir():
        pytest.skip("mlbench data not fetched (scripts/fetch_data.sh)")
    md = run(tmp_path, mode="smoke", methods=("hopular", "rf", "knn"))
    out = tmp_path / "tabular"
    for f in ("results.csv", "tabular.json", "ranks.png"):
        assert (out / f).is_file(), f
    assert "average rank" in md and "hopular" in md
    summary = json.loads((out / "tabular.json").read_text())
    rows = summary["rows"]
    assert {r["method"] for r in rows} == {"hopular", "rf", "knn"}
    assert {r["dataset"] for r in rows} == {"statlog_heart", "vertebral_column3", "satellite"}
    for r in rows:
        assert 0.0 <= r["test"] <= 1.0 and r["seconds"] >= 0 and r["peak_bytes"] >= 0
        assert r["trials"][0]["params"] == {}  # trial 0 = the defaults
    cells = sorted((out / "folds" / "smoke-seed0").glob("*.json"))
    assert len(cells) == 9
    mtimes = [c.stat().st_mtime_ns for c in cells]
    run(tmp_path, mode="smoke", methods=("hopular", "rf", "knn"))  # all cached: nothing refit
    assert [c.stat().st_mtime_ns for c in cells] == mtimes


def test_two_processes_give_the_serial_results(tmp_path):
    """quick/full fit cells in 2 single-threaded processes: same scores as in one process, CPU
    seconds recorded per trial."""
    if not (data_dir() / "mlbench").is_dir():
        pytest.skip("mlbench data not fetched (scripts/fetch_data.sh)")
    methods = ("rf", "knn")
    run(tmp_path / "serial", mode="smoke", methods=methods, n_jobs=1)
    md = run(tmp_path / "par", mode="smoke", methods=methods, n_jobs=2)
    assert "fit CPU time, all trials (s)" in md and "CPU time of all fits" in md
    rows = {}
    for kind in ("serial", "par"):
        summary = json.loads((tmp_path / kind / "tabular" / "tabular.json").read_text())
        rows[kind] = [(r["dataset"], r["method"], r["test"], r["val"]) for r in summary["rows"]]
        assert all(t["cpu_seconds"] >= 0 for r in summary["rows"] for t in r["trials"])
    assert rows["serial"] == rows["par"] and len(rows["par"]) == 6  # same cells, same order


def _row(dataset, split, method, acc):
    return {"dataset": dataset, "split": split, "kind": "small", "task": "classification",
            "method": method, "test": acc, "default_test": acc, "val": acc, "seconds": 0.1,
            "cpu_seconds": 0.1, "peak_bytes": 0, "best_params": {}, "trials": []}


def test_defaults_setting():
    from hopfield.reproduce.tabular import SETTINGS

    small, splits, mid, _cap, n_trials = SETTINGS["defaults"]
    assert small is None and splits == (0, 1, 2, 3) and mid == () and n_trials == 1


def test_report_over_splits_and_paired_tests(tmp_path):
    """Several splits: mean ± std over splits, rank over cells, cell counts and the paired table
    (reference hopular; Wilcoxon / paired t p-values as scipy's); one trial: no "tuned" table."""
    from scipy.stats import ttest_rel, wilcoxon

    from hopfield.reproduce.tabular import _report

    rng = np.random.default_rng(0)
    cells = [(f"set{i}", j) for i in range(5) for j in range(4)]
    hop = {c: float(rng.uniform(0.5, 0.9)) for c in cells}
    rf = {c: hop[c] + (0.0 if k % 5 == 0 else float(rng.normal(0.02, 0.03)))
          for k, c in enumerate(cells)}
    rows = ([_row(n, j, "hopular", hop[(n, j)]) for n, j in cells]
            + [_row(n, j, "rf", rf[(n, j)]) for n, j in cells]
            + [_row(n, j, "knn", 0.5) for n, j in cells if j < 2])  # partial: 10 of 20 cells
    md = _report(tmp_path, "defaults", 0, ("hopular", "rf", "knn"), rows, 1.0, 1)
    assert "tuned" not in md and "classification, defaults" in md
    assert "| cells (set × split) |" in md and "average rank over cells (10 with every method)" in md
    per_split = [np.mean([hop[(f"set{i}", j)] for i in range(5)]) for j in range(4)]
    assert f"{100 * np.mean(per_split):.1f} ± {100 * np.std(per_split, ddof=1):.1f}" in md
    g = json.loads((tmp_path / "tabular.json").read_text())["groups"]
    paired = g["small-classification-defaults"]["paired_vs"]
    assert paired["reference"] == "hopular"
    r_rf, r_knn = paired["rows"]
    x, y = np.array([hop[c] for c in cells]), np.array([rf[c] for c in cells])
    assert r_rf["method"] == "rf" and r_rf["cells"] == 20 and r_rf["tie"] == 4
    assert r_rf["better"] + r_rf["worse"] == 16 and r_rf["better"] == int((x > y).sum())
    assert np.isclose(r_rf["difference"], (x - y).mean())
    assert np.isclose(r_rf["wilcoxon_p"], wilcoxon(x, y).pvalue)
    assert np.isclose(r_rf["ttest_p"], ttest_rel(x, y).pvalue)
    assert r_knn["cells"] == 10
    assert "| rf | 20 |" in md and "hopular better / tie / worse" in md


def test_defaults_mode_runs_resumes_and_compares_with_rf(tmp_path, monkeypatch):
    """mode="defaults" on a 2-set x 2-split stand-in: one trial per cell, its own cache folder,
    cells fitted split by split, a rerun refits nothing; without Hopular the paired table's
    reference is RF."""
    from hopfield.reproduce import tabular

    monkeypatch.setitem(tabular.SETTINGS, "defaults",
                        (("statlog_heart", "vertebral_column3"), (0, 1), (), None, 1))
    md = run(tmp_path, mode="defaults", methods=("rf", "knn"), n_jobs=1)
    cells = sorted((tmp_path / "tabular" / "folds" / "defaults-seed0").glob("*.json"))
    assert len(cells) == 8
    assert all(len(json.loads(c.read_text())["trials"]) == 1 for c in cells)
    by_time = sorted(cells, key=lambda c: c.stat().st_mtime_ns)  # split-major: split 0 first
    assert [int(c.name.split("__")[1]) for c in by_time] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert "rf vs every method" in md and "| knn | 4 |" in md and "tuned" not in md
    mtimes = [c.stat().st_mtime_ns for c in cells]
    run(tmp_path, mode="defaults", methods=("rf", "knn"), n_jobs=1)  # all cached
    assert [c.stat().st_mtime_ns for c in cells] == mtimes


def test_dataset_and_split_filters_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match=r"datasets must be one of the small sets .* got unknown \['nosuch'\]"):
        run(tmp_path, mode="smoke", datasets=("ecoli", "nosuch"))
    with pytest.raises(ValueError, match="datasets must be one of .* got none"):
        run(tmp_path, mode="smoke", datasets=())
    with pytest.raises(TypeError, match="datasets must be None or a sequence of dataset names"):
        run(tmp_path, mode="smoke", datasets="ecoli")
    with pytest.raises(ValueError, match=r"splits must be a non-empty subset of mode 'quick'"
                                         r"'s splits \[0\], got \[1\]"):
        run(tmp_path, mode="quick", splits=(1,))
    with pytest.raises(ValueError, match=r"splits must be .*, got \[\]"):
        run(tmp_path, mode="full", splits=())
    with pytest.raises(ValueError, match=r"splits must be .*, got \[True\]"):
        run(tmp_path, mode="full", splits=(True,))
    with pytest.raises(TypeError, match="splits must be None or a sequence of split numbers"):
        run(tmp_path, mode="full", splits=0)
    assert not (tmp_path / "tabular").exists()  # checked before anything is written


def test_filters_run_only_the_chosen_cells_in_the_shared_cache(tmp_path, monkeypatch):
    """datasets= / splits= pick cells of the mode's protocol; the cache files are the unfiltered
    run's (a later run with more sets reuses them); a filter without split 0 drops mid-size
    sets; full/defaults reports compare over cells even with one split."""
    from hopfield.reproduce import tabular

    monkeypatch.setitem(tabular.SETTINGS, "defaults",
                        (("statlog_heart", "vertebral_column3"), (0, 1), ("satellite",), None, 1))
    md = run(tmp_path, mode="defaults", methods=("rf", "knn"), n_jobs=1,
             datasets=("vertebral_column3", "satellite", "vertebral_column3"), splits=[1])
    cache = tmp_path / "tabular" / "folds" / "defaults-seed0"
    assert sorted(c.name for c in cache.glob("*.json")) == [
        "vertebral_column3__1__knn.json", "vertebral_column3__1__rf.json"]
    assert "Paired over cells (set × split, 1 split), defaults: rf vs every method" in md
    assert "average rank over cells (1 with every method)" in md and "| knn | 1 |" in md
    first = [c.stat().st_mtime_ns for c in sorted(cache.glob("*.json"))]
    run(tmp_path, mode="defaults", methods=("rf", "knn"), n_jobs=1,
        datasets=("statlog_heart", "vertebral_column3"), splits=(1,))
    cells = sorted(cache.glob("*.json"))
    assert len(cells) == 4
    assert [c.stat().st_mtime_ns for c in cells if c.name.startswith("vertebral")] == first


def test_full_report_with_one_split_has_cells_and_paired_table(tmp_path):
    """mode full filtered to split 0: rank over the cells every method has (a partial method
    lowers that count), cell counts and the paired table; quick (one split) stays without."""
    from hopfield.reproduce.tabular import _report

    rows = ([_row(f"set{i}", 0, "hopular", acc) for i, acc in enumerate((0.70, 0.71, 0.72, 0.73))]
            + [_row(f"set{i}", 0, "rf", 0.72) for i in range(6)])
    md = _report(tmp_path, "full", 0, ("hopular", "rf"), rows, 1.0, 10)
    assert "average rank over cells (4 with every method)" in md
    assert "| cells (set × split) | 4 | 6 |" in md or "| cells (set × split) | 6 | 4 |" in md
    assert "Paired over cells (set × split, 1 split), tuned: hopular vs every method" in md
    assert "| rf | 4 | 71.5 | 72.0 | -0.50 | 1 / 1 / 2 |" in md  # hopular better / tie / worse
    md = _report(tmp_path, "quick", 0, ("hopular", "rf"), rows, 1.0, 2)
    assert "Paired" not in md and "over cells" not in md


def _mid_row(dataset, method, score, task="classification"):
    return {**_row(dataset, 0, method, score), "kind": "mid", "task": task}


def _skip(dataset, method="svm", task="classification"):
    return {"dataset": dataset, "split": 0, "kind": "mid", "method": method, "task": task,
            "skipped": "kernel SVM is not run above 10,000 training rows", "n_train": 14000}


def test_skipped_cell_ranks_last_and_missing_cell_leaves_its_row_out(tmp_path):
    """A skip record (by design) is "n/a" and ranks last; a missing cell (not fitted yet) drops
    its set from the average rank and is named; skip records enter no mean, paired test, CSV
    score or JSON row; a group where SVM is skipped everywhere still ranks over cells."""
    import csv

    from hopfield.reproduce.tabular import _report

    methods = ("hopular", "rf", "svm")
    fitted = [_mid_row("A", "hopular", 0.90), _mid_row("A", "rf", 0.80),
              _mid_row("B", "hopular", 0.90), _mid_row("B", "rf", 0.80),
              _mid_row("B", "svm", 0.95),
              _mid_row("C", "rf", 0.50), _mid_row("C", "svm", 0.60),  # hopular not fitted yet
              _mid_row("D", "hopular", -0.05, "regression"),
              _mid_row("D", "rf", -0.04, "regression")]
    skips = [_skip("A"), _skip("D", task="regression")]
    md = _report(tmp_path, "full", 0, methods, fitted + skips, 1.0, 10)
    g = json.loads((tmp_path / "tabular.json").read_text())
    cls = g["groups"]["mid-classification-tuned"]
    # A: hopular 1, rf 2, svm (n/a) 3; B: svm 1, hopular 2, rf 3; C left out
    assert cls["average_rank"] == {"hopular": 1.5, "rf": 2.5, "svm": 2.0}
    assert cls["average_rank_datasets"] == ["A", "B"] and cls["not_finished"] == {"C": ["hopular"]}
    assert cls["not_applicable"] == {"A": ["svm"]}
    assert "| A | **90.0** | n/a | 80.0 |" in md  # columns in average-rank order
    assert "| C | – | 60.0 | **50.0** |" not in md and "| C | – | **60.0** | 50.0 |" in md
    assert "| **average rank** (2 of 3 sets) | 1.50 | 2.00 | 2.50 |" in md
    assert "Average rank over the 2 sets every method finished; not finished: C (hopular)." in md
    assert ("n/a (svm on A): the method cannot run there by design (kernel SVM is not run above "
            "10,000 training rows), ranked last on that set.") in md
    assert "| mean | 90.0 | 77.5 | 70.0 |" in md  # svm: B and C only (A is n/a)
    assert "average rank over cells (2 with every method or n/a)" in md
    assert "Over cells: 2 of 3 (set, split) cells ranked; not finished: hopular 1 cell." in md
    assert "| cells (set × split) | 2 | 2 (+1 n/a) | 3 |" in md
    # regression: SVM skipped on every set -> still ranked over cells, last
    reg = g["groups"]["mid-regression-tuned"]
    assert reg["average_rank"] == {"hopular": 2.0, "rf": 1.0, "svm": 3.0}
    assert "average rank over cells (1 with every method or n/a) | 1.00 | 2.00 | 3.00 |" in md
    assert "| mean | 0.0400 | 0.0500 | n/a |" in md
    # files: JSON rows = the fitted cells only, skips apart; CSV lists skips with a reason
    assert len(g["rows"]) == len(fitted) and g["skipped"] == skips
    with open(tmp_path / "results.csv", newline="") as fh:
        csv_rows = list(csv.DictReader(fh))
    assert [r["skipped"] != "" for r in csv_rows] == [False] * len(fitted) + [True] * 2
    assert csv_rows[-1]["test"] == "" and csv_rows[-1]["method"] == "svm"
    # the paired table is the same with and without the skip records
    paired = cls["paired_vs"]
    _report(tmp_path, "full", 0, methods, fitted, 1.0, 10)
    g2 = json.loads((tmp_path / "tabular.json").read_text())["groups"]
    assert g2["mid-classification-tuned"]["paired_vs"] == paired
    assert [r["cells"] for r in paired["rows"]] == [2, 1]  # rf: A, B; svm: B only
    assert "CPU time of all fits 1 s" in md  # 9 fitted cells x 0.1 s; skips add nothing


def test_skip_record_is_written_reused_and_rebuilt_for_an_old_cache(tmp_path, monkeypatch):
    """Kernel SVM above SVM_MAX_TRAIN training rows: run() writes a skip record (the report
    shows n/a, SVM ranked last); a rerun refits nothing; a cache from before skip records (the
    file absent) gets the record written again without refitting the other cells."""
    if not (data_dir() / "mlbench").is_dir():
        pytest.skip("mlbench data not fetched (scripts/fetch_data.sh)")
    from hopfield.reproduce import tabular

    monkeypatch.setattr(tabular, "SVM_MAX_TRAIN", 50)
    kw = {"mode": "smoke", "methods": ("rf", "svm"), "datasets": ("statlog_heart",),
          "n_jobs": 1}
    md = run(tmp_path, **kw)
    cache = tmp_path / "tabular" / "folds" / "smoke-seed0"
    rec = json.loads((cache / "statlog_heart__0__svm.json").read_text())
    assert rec["skipped"] == "kernel SVM is not run above 50 training rows" and rec["n_train"] > 50
    assert "| statlog_heart | **" in md and "| n/a |" in md
    avg = json.loads((tmp_path / "tabular" / "tabular.json").read_text())["groups"][
        "small-classification-defaults"]["average_rank"]
    assert avg == {"rf": 1.0, "svm": 2.0}
    files = sorted(cache.glob("*.json"))
    mtimes = [f.stat().st_mtime_ns for f in files]
    run(tmp_path, **kw)
    assert [f.stat().st_mtime_ns for f in files] == mtimes
    (cache / "statlog_heart__0__svm.json").unlink()  # old-style cache: no skip record
    md2 = run(tmp_path, **kw)
    assert json.loads((cache / "statlog_heart__0__svm.json").read_text()) == rec
    assert cache.joinpath("statlog_heart__0__rf.json").stat().st_mtime_ns == mtimes[0]
    strip = lambda text: text.split("Wall time")[0]  # the rest: this invocation's wall time
    assert strip(md2) == strip(md)
