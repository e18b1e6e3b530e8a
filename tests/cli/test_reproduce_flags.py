"""`hopfield reproduce` flags --splits and --defaults (tabular) through hopfield.cli.main."""

import pytest

from hopfield.cli import main


class _Part:
    """A stand-in part whose run() takes datasets and splits (like tabular's)."""

    def __init__(self, name, calls):
        self.name, self.calls = name, calls

    def run(self, out, *, mode, seed, data_dir, datasets=None, splits=None):
        if splits and 7 in splits:
            raise ValueError("splits must be a non-empty subset of mode 'full''s splits [0, 1, 2, 3], "
                             "got [7]")
        self.calls.append((self.name, mode, datasets, splits))
        return f"## {self.name}\n"


class _Plain(_Part):
    def run(self, out, *, mode, seed, data_dir):
        self.calls.append((self.name, mode, None, None))
        return f"## {self.name}\n"


@pytest.fixture
def calls(monkeypatch):
    import hopfield.reproduce as R

    calls = []
    monkeypatch.setattr(R, "get_part",
                        lambda name: (_Part if name == "tabular" else _Plain)(name, calls))
    return calls


def test_splits_and_defaults_reach_run(tmp_path, calls):
    out = tmp_path / "o"
    assert main(["reproduce", "tabular", "--full", "--splits", "1, 0", "--datasets", "ecoli",
                 "--out", str(out)]) == 0
    assert calls[-1] == ("tabular", "full", ("ecoli",), (1, 0))
    assert "hopfield reproduce tabular --full" in (out / "report.md").read_text()
    assert "--datasets ecoli --splits 1,0" in (out / "report.md").read_text()
    assert main(["reproduce", "tabular", "--defaults", "--splits", "0", "--out", str(out)]) == 0
    assert calls[-1] == ("tabular", "defaults", None, (0,))
    assert "hopfield reproduce tabular --defaults" in (out / "report.md").read_text()
    assert main(["reproduce", "tabular", "--out", str(out)]) == 0  # no flag: quick, as before
    assert calls[-1] == ("tabular", "quick", None, None)


@pytest.mark.parametrize("argv,option,message", [
    (["tabular", "--splits", "a"], "--splits", "must be split numbers separated by commas"),
    (["tabular", "--splits", " , "], "--splits", "must name at least one split"),
    (["tabular", "mil", "--splits", "0"], "--splits", "is not supported by part(s) ['mil']"),
    (["tabular", "--full", "--splits", "7"], "--splits", "splits must be a non-empty subset"),
    (["mil", "--defaults"], "--defaults", "is for part tabular only"),
    ([], "--defaults", "is for part tabular only"),
    (["tabular", "--defaults", "--full"], "--defaults", "is a mode of its own"),
    (["tabular", "--defaults", "--quick"], "--defaults", "is a mode of its own"),
])
def test_flag_usage_errors(tmp_path, calls, capsys, argv, option, message):
    if not argv:
        argv = ["--defaults"]
    assert main(["reproduce", *argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"'{option}'" in err and message in " ".join(err.split())
    assert not calls


def test_unknown_tabular_dataset_is_a_usage_error(tmp_path, capsys):
    pytest.importorskip("optuna")
    assert main(["reproduce", "tabular", "--smoke", "--datasets", "nosuch",
                 "--out", str(tmp_path / "o")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "'--datasets'" in err and "datasets must be one of the small sets" in err
