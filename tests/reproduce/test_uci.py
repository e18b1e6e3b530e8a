"""hopfield.reproduce.uci: a tiny end-to-end run on 2 real datasets, resume, ranks, bad input."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from hopfield.reproduce import uci
from hopfield.reproduce.uci_baselines import FULL, METHODS, QUICK, grid, make


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("rep")
    md = uci.run(out, mode="smoke", seed=0)
    return out, md


@pytest.mark.slow
def test_smoke_run_writes_everything(smoke):
    out, md = smoke
    d = out / "uci"
    for f in ("results.csv", "summary.csv", "uci.json", "ranks.png", "accuracy.png"):
        assert (d / f).is_file() and (d / f).stat().st_size > 0, f
    names, splits = uci.DATASETS["smoke"]
    folds = sorted((d / "folds" / "smoke-seed0").glob("*.json"))
    assert len(folds) == len(names) * len(splits) * len(METHODS)
    summary = json.loads((d / "uci.json").read_text())
    assert set(summary["average_rank"]) == set(METHODS)
    # ranks over 10 methods average to (10 + 1) / 2 on every dataset
    for n in names:
        assert sum(summary["ranks"][n].values()) == pytest.approx(55.0)
    assert np.mean(list(summary["average_rank"].values())) == pytest.approx(5.5)
    # accuracies are real: every method well above chance on statlog_heart (2 classes)
    assert min(summary["accuracy"]["statlog_heart"].values()) > 0.6
    with open(d / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(folds)
    assert "| **average rank** |" in md and "hopfield" in md and "svm_rbf" in md


@pytest.mark.slow
def test_rerun_resumes_from_cache_and_is_identical(smoke):
    out, _md = smoke
    before = json.loads((out / "uci" / "uci.json").read_text())
    # a cached fold is reused verbatim: tamper with one and see it in the summary
    f = out / "uci" / "folds" / "smoke-seed0" / "statlog_heart__0__knn.json"
    rec = json.loads(f.read_text())
    rec["test_acc"] = 0.0
    f.write_text(json.dumps(rec))
    uci.run(out, mode="smoke", seed=0)
    after = json.loads((out / "uci" / "uci.json").read_text())
    assert after["accuracy"]["statlog_heart"]["knn"] == 0.0
    for m in METHODS:
        if m != "knn":
            assert after["accuracy"]["statlog_heart"][m] == before["accuracy"]["statlog_heart"][m]


def test_determinism_of_one_cell():
    from hopfield.datasets.uci import load_uci

    data = load_uci("vertebral_column3").split(1)
    a = uci._run_cell("hopfield", "smoke", 3, data)
    b = uci._run_cell("hopfield", "smoke", 3, data)
    a.pop("seconds"), b.pop("seconds")
    assert a == b


def test_average_ranks_ties_and_order():
    acc = np.array([[0.9, 0.8, 0.8], [0.5, 0.7, 0.6]])
    r = uci.average_ranks(acc)
    np.testing.assert_array_equal(r, [[1.0, 2.5, 2.5], [3.0, 1.0, 2.0]])


def test_grids_have_equal_budget():
    for mode, size in (("full", 8), ("quick", 2), ("smoke", 1)):
        assert {len(grid(m, mode)) for m in METHODS} == {size}
    assert set(FULL) == set(QUICK) == set(METHODS)
    assert all(len({json.dumps(p, sort_keys=True) for p in FULL[m]}) == 8 for m in METHODS)


@pytest.mark.parametrize("method", METHODS)
def test_every_factory_builds_single_threaded(method):
    est = make(method, grid(method, "full")[-1], seed=0, n_features=5, mode="full")
    params = est.get_params()
    for key in ("n_jobs", "nthread", "thread_count"):
        if key in params and params[key] is not None:
            assert params[key] == 1, (method, key)


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="mode must be one of"):
        uci.run(tmp_path, mode="fast")
    with pytest.raises(ValueError, match="seed must be an int >= 0, got -1"):
        uci.run(tmp_path, seed=-1)
    with pytest.raises(ValueError, match="methods must be a non-empty subset"):
        uci.run(tmp_path, mode="smoke", methods=("svm", "hopfield"))
    with pytest.raises(ValueError, match="method must be one of"):
        grid("svm", "quick")
