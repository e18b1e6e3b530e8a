"""``hopfield landscape`` and ``hopfield beta-sweep``: numbers in the JSON vs hand-computed ones."""

import json
import math

import numpy as np
import pytest
import torch

from hopfield import functional as HF
from hopfield.analysis.landscape import toy_patterns
from hopfield.cli import main


def test_landscape_cli(tmp_path):
    code = main(["landscape", "--out", str(tmp_path), "--beta", "2", "--beta", "500",
                 "--starts", "2", "--steps", "3", "--grid", "9"])
    assert code == 0
    assert (tmp_path / "landscape.png").read_bytes()[:4] == b"\x89PNG"
    d = json.loads((tmp_path / "landscape.json").read_text())
    assert [p["beta"] for p in d["panels"]] == [2.0, 500.0]
    pats = toy_patterns()
    for p in d["panels"]:
        assert p["max_energy_increase"] <= 1e-10  # the update never increases E
        e0 = HF.energy(torch.tensor(p["starts"], dtype=torch.float64), pats, p["beta"])
        np.testing.assert_allclose(p["energy_start"], e0.numpy(), rtol=1e-10)
    # From ξ = (1.6, -1.6) the largest score is x = (1.0, -0.2): xᵀξ = 1.92 vs 1.28, 0.64, 0.8.
    # At β = 500 the update lands on it, and it stays: its separation from (1.0, 0.2) is
    # Δ = 1.04 − 0.96 = 0.08, so the other weight is ≈ e^(−βΔ) = e^(−40).
    ends = np.array(d["panels"][1]["ends"])
    starts = np.array(d["panels"][1]["starts"])
    i = int(np.where((starts == [1.6, -1.6]).all(1))[0][0])
    np.testing.assert_allclose(ends[i], [1.0, -0.2], atol=1e-6)


def test_beta_sweep_cli_two_patterns_by_hand(tmp_path):
    # Two orthogonal patterns of norm r = 1.5 and zero query noise: global for β r² ≤ 2,
    # single for β r² ≥ ln 9 / 0.8 (see tests/analysis/test_analysis_fixed_points.py).
    x = np.array([[1.5, 0.0], [0.0, 1.5]])
    np.save(tmp_path / "p.npy", x)
    code = main(["beta-sweep", "--out", str(tmp_path), "--patterns", str(tmp_path / "p.npy"),
                 "--beta-min", "0.1", "--beta-max", "5", "--betas", "6", "--noise", "0",
                 "--no-progress"])
    assert code == 0
    d = json.loads((tmp_path / "beta_sweep.json").read_text())
    b_star = math.log(9) / 0.8 / 1.5 ** 2
    for b, s, g in zip(d["betas"], d["single"], d["global"]):
        if b * 2.25 <= 2:
            assert g == 1.0
        elif b >= 1.01 * b_star:
            assert s == 1.0
    assert (tmp_path / "beta_sweep.png").read_bytes()[:4] == b"\x89PNG"


def test_beta_sweep_default_memory_and_bad_args(tmp_path):
    assert main(["beta-sweep", "--out", str(tmp_path), "--betas", "3", "--no-progress"]) == 0
    d = json.loads((tmp_path / "beta_sweep.json").read_text())
    assert d["n_patterns"] == 32 and d["global"][0] == 1.0 and d["single"][-1] == 1.0
    assert main(["beta-sweep", "--out", str(tmp_path), "--beta-min", "-1"]) != 0
    (tmp_path / "bad.txt").write_text("1 2\nnan 3\n")
    assert main(["beta-sweep", "--out", str(tmp_path), "--patterns",
                 str(tmp_path / "bad.txt")]) != 0


@pytest.mark.parametrize("argv,option", [
    (["landscape", "--beta", "0"], "--beta"),
    (["landscape", "--beta", "nan"], "--beta"),
    (["beta-sweep", "--noise", "inf"], "--noise"),
    (["beta-sweep", "--beta-max", "inf"], "--beta-max"),
    (["beta-sweep", "--patterns", "missing.npy"], "--patterns"),
    (["beta-sweep", "--patterns", "words.txt"], "--patterns"),
])
def test_bad_options_are_usage_errors(tmp_path, capsys, argv, option):
    # these used to escape main() as ValueError / FileNotFoundError tracebacks
    (tmp_path / "words.txt").write_text("a b\nc d\n")
    argv = [str(tmp_path / a) if a.endswith((".npy", ".txt")) else a for a in argv]
    assert main([*argv, "--out", str(tmp_path / "o"), "--no-progress"] if argv[0] == "beta-sweep"
                else [*argv, "--out", str(tmp_path / "o")]) == 2
    assert option in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", ["landscape", "beta-sweep", "capacity", "demo"])
def test_out_that_is_a_file_is_a_usage_error(tmp_path, capsys, command):
    f = tmp_path / "a_file"
    f.write_text("x")  # mkdir used to raise FileExistsError after the computation
    assert main([command, "--out", str(f)]) == 2
    assert "--out" in capsys.readouterr().err
    assert f.read_text() == "x"


def test_noisy_queries_library_helper():
    import torch

    from hopfield.analysis.fixed_points import clustered_patterns, noisy_queries

    x = clustered_patterns(2, 3, 8, seed=1)
    q = noisy_queries(x, 0.1, seed=4)
    assert q.shape == x.shape and q.dtype == torch.float64
    assert torch.equal(q, noisy_queries(x, 0.1, seed=4)) and torch.equal(noisy_queries(x, 0.0), x)
    with pytest.raises(ValueError, match="noise must be finite and >= 0"):
        noisy_queries(x, float("nan"))
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        noisy_queries(x, 0.1, seed=-1)
    with pytest.raises(ValueError, match=r"patterns must be a finite \(N, D\) tensor"):
        noisy_queries(torch.full((2, 3), float("inf")), 0.1)


def test_docs_analysis_landscape_numbers_are_the_output_of_the_command(tmp_path):
    # docs/analysis.md §4 quotes `hopfield landscape --out out/landscape` (defaults)
    import json
    from pathlib import Path

    import numpy as np

    doc = (Path(__file__).resolve().parents[2] / "docs" / "analysis.md").read_text(encoding="utf-8")
    text = " ".join(doc.replace("−", "-").split())
    assert main(["landscape", "--out", str(tmp_path)]) == 0
    panels = {p["beta"]: np.array(p["ends"]) for p in
              json.loads((tmp_path / "landscape.json").read_text())["panels"]}
    assert sorted(panels) == [1.0, 4.0, 64.0]

    def groups(ends):
        pts, counts = np.unique(np.round(ends, 3) + 0.0, axis=0, return_counts=True)
        return {tuple(p): int(c) for p, c in zip(pts.tolist(), counts)}

    e1 = panels[1.0]
    mx, my = e1.mean(axis=0)
    assert f"one global-average minimum near ({mx:.2f}, {my:.2f})" in text
    assert f"the {len(e1)} end points still differ by up to {np.ptp(e1, axis=0).max():.3f}" in text
    g4 = groups(panels[4.0])
    assert len(g4) == 3 and "at β = 4 there are three end points" in text
    (meta, n_meta), = [(p, c) for p, c in g4.items() if p[0] > 0.9]  # between the close pair
    assert f"for {n_meta} starts, one metastable state ({meta[0]:.3f}, {meta[1]:.3f})" in text
    g64 = groups(panels[64.0])
    up, down, mid = g64[(1.0, 0.197)], g64[(1.0, -0.197)], g64[(1.0, 0.0)]
    assert up == down and f"({up} starts end on each of (1, ±0.197))" in text
    assert f"except for the {mid} starts on the symmetry axis" in text


@pytest.mark.slow
def test_docs_analysis_beta_sweep_numbers_are_the_output_of_the_command(tmp_path):
    # docs/analysis.md §3 quotes `hopfield beta-sweep --out out/sweep` (defaults; ~25 s CPU)
    import json
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "analysis.md").read_text(encoding="utf-8")
    text = " ".join(doc.split())
    assert main(["beta-sweep", "--out", str(tmp_path), "--no-progress"]) == 0
    d = json.loads((tmp_path / "beta_sweep.json").read_text())
    rows = list(zip(d["betas"], d["single"], d["metastable"], d["global"], d["k_median"]))
    glob = [r for r in rows if r[3] == 1.0]
    meta = [r for r in rows if r[2] == 1.0]
    single = [r for r in rows if r[1] == 1.0]
    assert glob and meta and single and len(glob) + len(meta) + len(single) == len(rows) - 1
    k_glob = sorted({int(r[4]) for r in glob})
    assert (f"global average for β ≤ {max(r[0] for r in glob):.2f} (median k = {k_glob[0]}–{k_glob[-1]} "
            f"of N = {d['n_patterns']})") in text
    assert (f"for {min(r[0] for r in meta):.2f} ≤ β ≤ {max(r[0] for r in meta):.2f} (median k falls "
            f"from {int(meta[0][4])} to {int(meta[-1][4])}") in text
    (mixed,) = [r for r in rows if 0 < r[1] < 1]
    assert f"single pattern for β ≥ {min(r[0] for r in single):.2f} (at β = {mixed[0]:g}, " \
           f"{100 * mixed[1]:.0f} % single)" in text
