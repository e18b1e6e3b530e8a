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
