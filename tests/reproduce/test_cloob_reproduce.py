"""`hopfield reproduce cloob` in smoke mode, and its metrics against closed forms."""

import json

import numpy as np
import pytest

from hopfield.reproduce import PARTS, get_part
from hopfield.reproduce import cloob as R


def test_effective_eigenvalues_and_uniformity():
    rng = np.random.default_rng(0)
    E = np.zeros((500, 8))
    E[:, :3] = rng.normal(size=(500, 3))  # rank 3
    assert R.effective_eigenvalues(E) <= 3
    assert R.effective_eigenvalues(rng.normal(size=(4000, 8))) == 8
    same = np.ones((10, 4))
    assert R.uniformity(same) == pytest.approx(0.0)  # all at one point: log 1
    spread = rng.normal(size=(2000, 16))
    assert R.uniformity(spread) < -3.0
    ex = np.eye(5)
    assert R._recall(ex, ex) == {"R@1": 1.0, "R@5": 1.0}
    assert R._recall(ex, ex[::-1].copy())["R@1"] == pytest.approx(0.2)


def test_shipped_pairs_are_fixed_and_valid():
    pairs = R.stdlib_pairs()
    assert len(pairs) == 2219  # the shipped set (CPython 3.11.7), the same on every machine
    assert pairs == sorted(pairs, key=lambda p: p[1])  # sorted by name
    assert len({d for d, _ in pairs}) == len(pairs)
    assert R.stdlib_pairs(max_pairs=10) == R.stdlib_pairs(max_pairs=10)
    for bad in ("web", None):
        with pytest.raises(ValueError, match="source must be"):
            R.stdlib_pairs(source=bad)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="max_pairs must be"):
            R.stdlib_pairs(max_pairs=bad)


def test_pairs_are_doc_and_name():
    pairs = R.stdlib_pairs(max_pairs=50, source="installed")
    assert len(pairs) == 50
    docs = [d for d, _ in pairs]
    assert len(set(docs)) == 50 and all(len(d) >= 40 for d in docs)
    assert all("(" in n and n.endswith(")") for _, n in pairs)


def test_smoke_run(tmp_path):
    assert PARTS["cloob"].module == "hopfield.reproduce.cloob" and get_part("cloob") is R
    md = R.run(tmp_path, mode="smoke", seed=0)
    out = tmp_path / "cloob"
    for f in ("results.csv", "summary.csv", "cloob.json", "recall.png", "spectrum.png"):
        assert (out / f).is_file(), f
    data = json.loads((out / "cloob.json").read_text())
    assert set(data["summary"]) == set(R.OBJECTIVES)
    for v in data["summary"].values():
        assert 0 <= v["R@1"][0] <= v["R@5"][0] <= 1
        assert 1 <= v["eff_eig"][0] <= R.DIM
    assert "paper's ordering" in md
    with pytest.raises(ValueError, match="mode must be one of"):
        R.run(tmp_path, mode="huge")
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        R.run(tmp_path, mode="smoke", seed=1.5)
