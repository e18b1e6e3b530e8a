"""``hopfield reproduce deeprc`` in smoke mode: files, report, fold cache, scale measurement."""

from __future__ import annotations

import json

import pytest

from hopfield.reproduce import PARTS, deeprc, get_part


def test_registered():
    assert "deeprc" in PARTS and get_part("deeprc") is deeprc


def test_smoke_run_and_cache(tmp_path):
    md = deeprc.run(tmp_path, mode="smoke", scale=False)
    out = tmp_path / "deeprc"
    for f in ("results.csv", "summary.csv", "deeprc.json", "auc.png", "attention.png"):
        assert (out / f).is_file(), f
    assert "| 1 motif, witness rate 1 % | 4 |" in md
    res = json.loads((out / "deeprc.json").read_text())
    assert {r["method"] for r in res["folds"]} == set(deeprc.METHODS)
    assert all(0 <= r["auc"] <= 1 for r in res["folds"])
    cached = sorted((out / "folds" / "smoke-seed0").glob("*.json"))
    assert len(cached) == 2 * len(deeprc.METHODS)
    mtimes = [p.stat().st_mtime_ns for p in cached]
    deeprc.run(tmp_path, mode="smoke", scale=False)  # rerun: every fold from the cache
    assert [p.stat().st_mtime_ns for p in cached] == mtimes


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        deeprc.run(tmp_path, mode="medium")
    with pytest.raises(ValueError, match="settings"):
        deeprc.run(tmp_path, mode="smoke", settings=("nope",))
    with pytest.raises(ValueError, match="seed"):
        deeprc.run(tmp_path, mode="smoke", seed=-1)


@pytest.mark.slow  # one subprocess importing torch
def test_scale_measurement(tmp_path, monkeypatch):
    monkeypatch.setitem(deeprc.PROTOCOLS["smoke"], "scale_sequences", 3000)
    rec = deeprc.measure_scale(tmp_path, "smoke", 0, threads=1)
    assert rec["n_sequences"] == 3000 and rec["seconds"] > 0
    assert abs(rec["weights_sum"] - 1) < 1e-6
    assert (tmp_path / "scale.json").is_file()
