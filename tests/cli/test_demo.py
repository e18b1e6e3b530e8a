"""``hopfield demo`` end to end, in-process through ``hopfield.cli.main``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hopfield.analysis.retrieval_demo import CORRUPTIONS, binarise, corrupt, run_demo, score
from hopfield.cli import main


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory):
    a, b = tmp_path_factory.mktemp("a"), tmp_path_factory.mktemp("b")
    codes = [main(["demo", "--out", str(d), "--quick", "--seed", "3"]) for d in (a, b)]
    return codes, a, b


def test_demo_exit_code_and_files(demo_runs):
    codes, a, _ = demo_runs
    assert codes == [0, 0]
    assert (a / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (a / "demo.png").stat().st_size > 5000
    data = json.loads((a / "results.json").read_text())
    assert data["config"]["seed"] == 3 and data["config"]["quick"] is True
    methods = {r["method"] for r in data["rows"]}
    assert {"classical hebbian", "classical storkey", "dense polynomial n=3",
            "dense polynomial n=4", "dense exponential"} <= methods
    assert sum(m.startswith("modern beta=") for m in methods) >= 3
    assert {r["corruption"] for r in data["rows"]} == set(CORRUPTIONS)
    assert not list(a.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_demo_numbers_are_sane(demo_runs):
    _, a, _ = demo_runs
    rows = json.loads((a / "results.json").read_text())["rows"]
    acc = {(r["method"], r["corruption"]): r for r in rows}
    n = json.loads((a / "results.json").read_text())["config"]["n_patterns"]
    for r in rows:
        assert 0.0 <= r["exact"] <= r["nearest"] <= 1.0
        assert 0.0 <= r["pixel"] <= 1.0
    for c in CORRUPTIONS:
        # large beta: nearest stored pattern; beats Hebbian storage of the same correlated digits
        assert acc["modern beta=2", c]["nearest"] > acc["classical hebbian", c]["nearest"] + 0.4
        # beta -> 0: every query goes to (near) the mean of the images -> chance level at most
        assert acc["modern beta=0.03", c]["nearest"] <= 2.0 / n
    assert acc["modern beta=2", "flip"]["exact"] >= 0.8


def test_demo_is_deterministic_for_a_seed(demo_runs):
    _, a, b = demo_runs
    assert json.loads((a / "results.json").read_text()) == json.loads((b / "results.json").read_text())


def test_demo_rejects_bad_option(tmp_path):
    # hopfield.cli.main should turn usage errors into exit code 2; with typer >= 0.25 (vendored
    # click) the error class is typer's own, so accept either form but require the parameter name.
    try:
        code = main(["demo", "--out", str(tmp_path), "--n-patterns", "1"])
    except Exception as err:  # noqa: BLE001 - the usage error leaked out of main()
        assert type(err).__name__ in {"BadParameter", "UsageError"}
        assert "n-patterns" in err.format_message() or "n_patterns" in str(err.param.name)
    else:
        assert code == 2
    assert not (tmp_path / "results.json").exists()


def test_corruptions_and_score():
    rng = np.random.default_rng(0)
    grey = rng.uniform(0, 16, size=(4, 64))
    p = binarise(grey)
    q, t = corrupt(grey, "mask", 3, rng)
    assert np.array_equal(t, np.arange(4)) and (q[:, 32:] == -1).all()
    assert np.array_equal(q[:, :32], p[:, :32])
    q, t = corrupt(grey, "flip", 3, rng)
    assert q.shape == (12, 64) and set(np.unique(q)) <= {-1.0, 1.0}
    assert 0.05 < (q != p[t]).mean() < 0.3
    s = score(p[[0, 1, 2, 3, 1]].astype(float), p.astype(float), np.array([0, 1, 2, 3, 0]))
    assert s["nearest"] == pytest.approx(0.8) and s["exact"] == pytest.approx(0.8)
    # a tie between two stored patterns counts as wrong
    s = score(np.zeros((1, 64)), p.astype(float), np.array([0]))
    assert s["nearest"] == 0.0 and s["exact"] == 0.0


def test_demo_negative_seed_is_a_usage_error(tmp_path, capsys):
    # used to escape main() as numpy's "expected non-negative integer" traceback
    assert main(["demo", "--out", str(tmp_path), "--quick", "--seed", "-1"]) == 2
    assert "--seed" in capsys.readouterr().err


def test_library_functions_reject_bad_arguments():
    rng = np.random.default_rng(0)
    grey = rng.uniform(0, 16, size=(4, 64))
    with pytest.raises(ValueError, match=r"kind must be one of \['mask', 'flip', 'noise'\], got 'blur'"):
        corrupt(grey, "blur", 2, rng)
    with pytest.raises(ValueError, match="repeats must be an int >= 1, got 0"):
        corrupt(grey, "flip", 0, rng)
    with pytest.raises(ValueError, match=r"grey must be a finite array of shape \(N, D\)"):
        corrupt(np.full((2, 64), np.nan), "mask", 1, rng)
    with pytest.raises(ValueError, match="must agree"):
        score(np.zeros((2, 64)), np.zeros((3, 63)), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"n_patterns must be an int in \[2, 1748\]"):
        run_demo(n_patterns=1749)
    with pytest.raises(ValueError, match="seed must be an int >= 0, got -1"):
        run_demo(seed=-1)


def test_largest_n_patterns_is_accepted_by_the_cli(tmp_path):
    # 1748 is the most images the round-robin over classes can pick; 1749 is a usage error
    assert main(["demo", "--out", str(tmp_path), "--n-patterns", "1749"]) == 2
    from hopfield.analysis.retrieval_demo import load_patterns

    grey, labels = load_patterns(1748, np.random.default_rng(0))
    assert grey.shape == (1748, 64) and np.bincount(labels).min() == 174


# ------------------------------------------------------------------ docs quote the command (item 16)

MEMORIES_DOC = Path(__file__).resolve().parents[2] / "docs" / "memories.md"
DOC_COMMAND = "Output of `hopfield demo --out ./hopfield-demo` (seed 0, 20 images"


def _doc_table() -> list[str]:
    text = MEMORIES_DOC.read_text(encoding="utf-8")
    assert DOC_COMMAND in text, "docs/memories.md no longer quotes the default demo run"
    after = text[text.index(DOC_COMMAND):].splitlines()
    start = next(i for i, line in enumerate(after) if line.startswith("|"))
    table = []
    for line in after[start:]:
        if not line.startswith("|"):
            break
        table.append(line.strip())
    return table


def test_docs_memories_table_is_the_output_of_the_command(tmp_path, capsys):
    # the command the doc shows, on its default settings (seed 0, 20 images): ~3 s CPU
    assert main(["demo", "--out", str(tmp_path / "hopfield-demo")]) == 0
    printed = [line.strip() for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    assert _doc_table() == printed, "docs/memories.md's demo table differs from `hopfield demo`"


def test_docs_memories_100_image_sentence_is_the_output_of_the_command(tmp_path):
    assert main(["demo", "--out", str(tmp_path), "--n-patterns", "100"]) == 0
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    acc = {(r["method"], r["corruption"]): (100 * r["nearest"], 100 * r["exact"]) for r in rows}

    def nearest(method):
        return [round(acc[method, c][0], 1) for c in CORRUPTIONS]

    def exact(method):
        return [round(acc[method, c][1], 1) for c in CORRUPTIONS]

    text = " ".join(MEMORIES_DOC.read_text(encoding="utf-8").split())
    assert "With `--n-patterns 100` (same command" in text
    assert nearest("classical hebbian") == exact("classical hebbian") == [0.0] * 3
    assert "classical Hebbian 0 / 0 on every corruption" in text
    assert max(nearest("classical storkey")) == 4.6 and exact("classical storkey") == [0.0] * 3
    assert "Storkey ≤ 4.6 / 0" in text
    poly = nearest("dense polynomial n=3") + nearest("dense polynomial n=4")
    assert max(poly) <= 1.0 and exact("dense polynomial n=3") + exact("dense polynomial n=4") == [0.0] * 6
    assert "dense polynomial n=3/4 ≤ 1 / 0" in text
    assert "dense exponential " + " / ".join(f"{v:.0f}" for v in nearest("dense exponential")) in text
    assert "modern β = 2: " + " / ".join(f"{v:g}" for v in nearest("modern beta=2")) in text
    low = [v for b in ("0.03", "0.1", "0.15", "0.2") for v in nearest(f"modern beta={b}")]
    assert max(low) <= 2.0 and "modern β ≤ 0.2: ≤ 2" in text
