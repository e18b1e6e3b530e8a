"""``hopfield landscape`` and ``hopfield beta-sweep``: numbers in the JSON vs hand-computed ones."""

import json
import math

import numpy as np
import pytest
import torch

from hopfield.analysis.landscape import toy_patterns
from hopfield.cli import main
from hopfield import functional as HF


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
