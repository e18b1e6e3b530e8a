"""The benchmark harness: every suite in a tiny configuration, in-process (no timing assertions).

What is checked: each peer runs and is timed, ratios and derived numbers are computed, the peers
of a case compute the same thing (so the benchmark compares like with like), the materialised peer
equals nn.MultiheadAttention, the memory probe sees a known allocation, the report is written
atomically, and the CLI validates its arguments.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from hopfield.bench import (
    MaterializedAttention,
    MemoryProbe,
    Ratio,
    _runner,
    layers,
    retrieval,
    run,
    steps,
    streaming,
    write_report,
)
from hopfield.bench._core import Unavailable, load_suite, ratio_value
from hopfield.cli import main

TINY = {
    "layers": [{"B": 2, "L": 16, "N": 16, "D": 8, "H": 2},
               {"B": 2, "L": 1, "N": 16, "D": 8, "H": 2},
               {"B": 2, "L": 16, "N": 8, "D": 8, "H": 2}],
    "steps": [{"B": 2, "L": 16, "N": 16, "D": 8, "H": 2}],
    "retrieval": [{"N": 3000, "L": 8, "D": 8}],
    "streaming": [{"N": 3000, "L": 8, "D": 8, "chunk_size": 512, "k": 3}],
}


def tiny_cases(suite: str) -> list:
    cases = load_suite(suite).cases(quick=True)
    if suite == "layers":  # three self cases shrink to the first one
        cases = [cases[0], cases[-2], cases[-1]]
    return [replace(c, config={**c.config, **t}) for c, t in zip(cases, TINY[suite])]


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    cases = [c for s in TINY for c in tiny_cases(s)]
    return run(list(TINY), repeats=2, threads=1, in_process=True, progress=False, cases=cases,
               workdir=tmp_path_factory.mktemp("bench"))


@pytest.mark.parametrize("suite", list(TINY))
def test_every_peer_runs_and_is_measured(tiny_report, suite):
    records = [r for r in tiny_report["records"] if r["suite"] == suite]
    assert len(records) == len(TINY[suite])
    for rec in records:
        for peer, res in rec["time"].items():
            if peer == "stage_copy":  # no host-to-device copy on the CPU
                assert res["status"] == "skipped: no host-to-device copy on cpu"
                continue
            assert res["status"] == "ok", (peer, res["status"])
            assert len(res["times"]) == 2 and res["median"] > 0
        for peer, res in rec["memory"].items():
            assert res["status"] == "ok", (peer, res["status"])
            assert math.isfinite(res["peak_mib"])
        for r in rec["ratios"]:
            if r["metric"] == "memory" and rec["memory"][r["den"]]["peak_mib"] <= 1.0:
                assert r["value"] is None  # tiny cases may add (almost) no resident page
                continue
            assert r["value"] is not None and r["value"] >= 0, r
            assert r["metric"] == "memory" or r["value"] > 0, r
            assert r["met"] is (None if r["target"] is None else r["value"] <= r["target"])


def test_report_round_trips_and_renders(tiny_report, tmp_path):
    json_path, md_path = write_report(tiny_report, tmp_path / "out", command="hopfield bench x")
    loaded = json.loads(json_path.read_text())
    assert loaded["command"] == "hopfield bench x"
    assert loaded["machine"]["torch"] == torch.__version__
    assert loaded["machine"]["torch_threads"] == 1
    text = md_path.read_text()
    for suite in TINY:
        assert f"## {suite}" in text
    assert "time hopfield / mha" in text and "≤ 1.1×" in text
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["latest.json", "latest.md"]


def test_derived_numbers(tiny_report):
    rec = next(r for r in tiny_report["records"] if r["suite"] == "retrieval")
    d = rec["derived"]
    assert d["sgemm roofline GFLOP/s"] > 0
    expected = 4 * 8 * 3000 * 8 / rec["time"]["modern_hopfield"]["median"] / 1e9
    assert d["modern_hopfield GFLOP/s"] == pytest.approx(expected)
    rec = next(r for r in tiny_report["records"] if r["suite"] == "streaming")
    assert rec["derived"]["stream_update patterns/s"] == pytest.approx(
        3000 / rec["time"]["stream_update"]["median"])


def test_retrieval_peers_compute_the_same_update(tmp_path):
    cfg = retrieval.prepare({**retrieval.cases(True)[0].config, **TINY["retrieval"][0]}, tmp_path)
    outs = {p: retrieval.setup(cfg, p).fn() for p in
            ("sdpa", "sdpa_2d", "modern_hopfield", "materialised", "store_stream")}
    ref = outs.pop("materialised")
    for peer, out in outs.items():
        torch.testing.assert_close(out.reshape(ref.shape), ref, atol=1e-5, rtol=1e-5, msg=peer)
    _, idx = retrieval.setup(cfg, "faiss_flatip").fn()
    x = retrieval.make_patterns(cfg["N"], cfg["D"], cfg["seed"])
    q = torch.randn(cfg["L"], cfg["D"], generator=torch.Generator().manual_seed(cfg["seed"] + 1))
    assert (torch.from_numpy(idx[:, 0]) == (q @ x.T).argmax(-1)).all()


def test_layer_peers_have_the_same_parameters():
    cfg = TINY["layers"][0] | {"kind": "self"}
    counts = {p: layers.setup(cfg, p).info["params"] for p in ("mha", "hopfield", "materialised")}
    assert len(set(counts.values())) == 1, counts


def test_steps_really_run_three_updates():
    bench = steps.setup(TINY["steps"][0], "hopfield_3")
    assert bench.info["steps_taken"] == 3


@pytest.mark.parametrize("batch_first", [True])
@pytest.mark.parametrize("n_steps", [0, 2])
def test_materialised_peer_matches_reference(batch_first, n_steps):
    torch.manual_seed(1)
    mha = nn.MultiheadAttention(8, 2, batch_first=batch_first).double()
    peer = MaterializedAttention(8, 2, max_steps=n_steps, tol=1e-30).double()
    with torch.no_grad():
        peer.in_proj.weight.copy_(mha.in_proj_weight)
        peer.in_proj.bias.copy_(mha.in_proj_bias)
        peer.out_proj.load_state_dict(mha.out_proj.state_dict())
    x = torch.randn(3, 5, 8, dtype=torch.float64)
    out, w = peer(x)
    # independent float64 reference: per-head loop with explicit update steps
    q, k, v = (t.unflatten(-1, (2, 4)).transpose(1, 2) for t in
               (x @ mha.in_proj_weight.T + mha.in_proj_bias).chunk(3, -1))  # (B, H, L, 4)
    xi = q
    for _ in range(n_steps):
        xi = torch.softmax(xi @ k.mT / 2.0, -1) @ k
    ref_w = torch.softmax(xi @ k.mT / 2.0, -1)
    ref = mha.out_proj((ref_w @ v).transpose(1, 2).flatten(2))
    torch.testing.assert_close(w, ref_w)
    torch.testing.assert_close(out, ref)
    if n_steps == 0:
        torch.testing.assert_close(out, mha(x, x, x, need_weights=False)[0])


def test_memory_probe_sees_a_known_allocation():
    with MemoryProbe(sample_anon=True) as probe:
        t = torch.ones(16 * 1024 * 1024)  # 64 MiB, touched
        del t
    assert 56 <= probe.peak_mib <= 96, probe.peak_mib
    assert probe.peak_anon_mib is not None and probe.peak_anon_mib >= 0


def test_ratio_value_and_missing_sides():
    rec = {"time": {"a": {"median": 3.0}, "b": {"median": 2.0}},
           "memory": {"a": {"peak_mib": 10.0}, "b": {"status": "skipped: x"}}}
    assert ratio_value(Ratio("a", "b", "time", 1.1), rec) == pytest.approx(1.5)
    assert ratio_value(Ratio("a", "b", "memory"), rec) is None
    rec["memory"]["b"] = {"peak_mib": 0.5}  # below MIN_MEMORY_MIB: noise, not reported
    assert ratio_value(Ratio("a", "b", "memory"), rec) is None
    rec["memory"]["b"] = {"peak_mib": 4.0}
    assert ratio_value(Ratio("a", "b", "memory"), rec) == pytest.approx(2.5)


def test_unavailable_peer_is_reported_not_fatal():
    cfg = {"B": 64, "L": 4096, "N": 4096, "D": 8, "H": 4, "kind": "self"}
    with pytest.raises(Unavailable, match="GiB"):
        layers.setup(cfg, "materialised")


def test_worker_subprocess_protocol():
    case = tiny_cases("layers")[0]
    res = _runner.spawn({"suite": "layers", "config": case.config, "threads": 1,
                         "mode": "memory", "peer": "mha"})
    assert res["status"] == "ok" and res["method"] in ("VmHWM", "ru_maxrss")


def test_cli_runs_and_validates(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(_runner, "collect_cases", lambda names, quick: tiny_cases("steps"))
    monkeypatch.setattr(_runner, "spawn", lambda spec, **kw: _runner.run_spec(spec))
    assert main(["bench", "steps", "--repeats", "1", "--threads", "1", "--no-progress",
                 "--out", str(tmp_path)]) == 0
    assert "hopfield_3 / hopfield_1" in (tmp_path / "latest.md").read_text()
    assert main(["bench", "nosuch"]) != 0
    assert main(["bench", "--repeats", "0"]) != 0
    assert main(["bench", "--threads", "0"]) != 0
    err = capsys.readouterr().err
    assert "nosuch" in err and "positive integer" in err


def test_unknown_suite_raises():
    with pytest.raises(ValueError, match="suite must be one of"):
        load_suite("nosuch")
    assert streaming.cases(True)[0].sample_anon


def test_materialized_attention_old_argument_names_warn():
    from hopfield.bench.peers import MaterializedAttention

    with pytest.warns(FutureWarning, match="is deprecated, use") as record:
        peer = MaterializedAttention(8, 2, update_steps_max=2, update_steps_eps=1e-3)
    assert sorted(str(w.message) for w in record) == [
        "MaterializedAttention: update_steps_eps is deprecated, use tol",
        "MaterializedAttention: update_steps_max is deprecated, use max_steps"]
    assert (peer.max_steps, peer.tol) == (2, 1e-3)
    with pytest.raises(TypeError, match="unexpected keyword arguments"):
        MaterializedAttention(8, 2, steps=2)


@pytest.mark.parametrize("page", ["README.md", "docs/benchmarks.md"])
def test_quoted_ratios_are_those_of_the_committed_run(page):
    """Every ratio in the page's benchmark tables ("0.70×") is a ratio of
    benchmarks/results/latest.json (the output of the command the page names), rounded as shown."""
    import json
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    latest = json.loads((root / "benchmarks" / "results" / "latest.json").read_text())
    values = [r["value"] for rec in latest["records"] for r in rec["ratios"] if r["value"] is not None]
    text = (root / page).read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("|") and "×" in line]
    rows = [re.sub(r"≤\s*\d+(?:\.\d+)?×", "", line) for line in rows]  # targets, not results
    quoted = [m for line in rows for m in re.findall(r"(?<![\d.])(\d+(?:\.\d+)?)×", line)]
    assert len(quoted) >= 10
    for q in quoted:
        decimals = len(q.split(".")[1]) if "." in q else 0
        assert any(round(v, decimals) == float(q) for v in values), \
            f"{page}: {q}× is not a ratio of benchmarks/results/latest.json"


def test_tabular_suite_wiring():
    from hopfield.bench import SUITES
    from hopfield.bench import tabular as T

    assert {"ood", "tabular"} <= set(SUITES)
    (full,) = T.cases(quick=False)
    assert full.config["n_samples"] == 50_000 and full.config["n_features"] == 50
    assert full.peers == ("hopular", "histgb") and full.max_repeats == 1 and not full.warmup
    cfg = {"n_samples": 200, "n_features": 5, "seed": 0, "test_size": 0.2}
    bench = T.setup(cfg, "histgb")
    bench.fn()
    assert bench.info["n_train"] == 160 and 0.5 <= bench.info["test_accuracy"] <= 1.0
    with pytest.raises(ValueError, match="unknown peer"):
        T.setup(cfg, "xgboost")


# ----------------------------------------------------------------------------- devices (issue 15)

needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_cpu_report_names_its_device(tiny_report):
    assert tiny_report["device"] == "cpu" and tiny_report["machine"]["device"] == "cpu"
    for rec in tiny_report["records"]:
        assert rec["config"]["device"] == "cpu"
        for res in rec["memory"].values():
            assert res["method"] in ("VmHWM", "ru_maxrss") and "host_peak_mib" not in res


def test_streaming_breakdown_fields(tiny_report, tmp_path):
    rec = next(r for r in tiny_report["records"] if r["suite"] == "streaming")
    assert set(streaming.STAGES) <= set(rec["time"])
    assert rec["time"]["stage_read"]["info"]["via"] == "PatternStore.iter_chunks"
    assert set(rec["memory"]) == {"stream_update", "stream_topk"}  # stages: time only
    d = rec["derived"]
    ran = rec["time"]["stage_read"]["median"] + rec["time"]["stage_compute"]["median"]
    assert d["stages read+copy+compute s"] == pytest.approx(ran)
    assert d["stream_update / sum of stages"] == pytest.approx(
        rec["time"]["stream_update"]["median"] / ran)
    assert d["stream_update / slowest stage"] >= d["stream_update / sum of stages"]
    assert d["stage_read GB/s"] > 0 and "stage_copy GB/s" not in d
    text = write_report(tiny_report, tmp_path)[1].read_text()
    assert "stage_copy" in text and "no host-to-device copy on cpu" in text


def test_stage_compute_is_the_arithmetic_of_the_pass(tmp_path):
    """With one chunk (N <= chunk_size) the compute stage computes exactly stream_update."""
    case = tiny_cases("streaming")[0]
    cfg = streaming.prepare({**case.config, "N": 300, "chunk_size": 512}, tmp_path)
    ref = streaming.setup(cfg, "stream_update").fn()
    torch.testing.assert_close(streaming.setup(cfg, "stage_compute").fn(), ref)
    streaming.setup(cfg, "stage_read").fn()
    with pytest.raises(Unavailable, match="no host-to-device copy on cpu"):
        streaming.setup(cfg, "stage_copy")


def test_device_argument_is_validated():
    from hopfield.bench._core import check_device, suites_for_device

    assert {"layers", "steps", "retrieval", "streaming"} <= set(suites_for_device("cuda"))
    assert "ood" not in suites_for_device("cuda") and "ood" in suites_for_device("cpu")
    assert check_device("cpu", ["layers", "ood"]) == "cpu"
    with pytest.raises(ValueError, match=r"device must be one of 'cpu', 'cuda', got 'tpu'"):
        check_device("tpu")
    with pytest.raises(ValueError, match=r"device must be one of .*got 0"):
        check_device(0)
    with pytest.raises(ValueError, match=r"suite 'ood' runs on cpu only, not on device='cuda'"):
        check_device("cuda", ["ood"])
    with pytest.raises(ValueError, match="got 'gpu'"):
        run(["layers"], device="gpu", progress=False)


@needs_no_cuda
def test_cuda_without_cuda_is_a_clear_error(capsys):
    from hopfield.bench._core import check_device

    with pytest.raises(ValueError, match=r"device='cuda' needs a CUDA build of torch.*found torch "
                                         r".*torch.cuda.is_available\(\) = False"):
        check_device("cuda")
    with pytest.raises(ValueError, match="needs a CUDA build"):
        run(["layers"], device="cuda", progress=False)
    assert main(["bench", "--device", "cuda", "--no-progress"]) != 0
    assert main(["bench", "--device", "tpu"]) != 0
    assert main(["bench", "ood", "--device", "cuda"]) != 0
    err = capsys.readouterr().err
    assert "'--device'" in err and "CUDA build" in err and "is_available() = False" in err
    assert "got 'tpu'" in err and "suite 'ood' runs on cpu only" in err


def test_cuda_worker_synchronises_and_measures_device_memory(monkeypatch):
    """The CUDA branches of the worker on a fake device: every timed call is bracketed by
    torch.cuda.synchronize and memory mode reports max_memory_allocated minus the base."""
    import sys
    import types

    from hopfield.bench import _core, _worker
    from hopfield.bench._core import Bench, Case

    events: list[str] = []
    fake = types.ModuleType("fake_cuda_suite")
    fake.DEVICES = ("cpu", "cuda")
    fake.cases = lambda quick: [Case("fake", "one", {}, ("a", "b"))]
    fake.setup = lambda cfg, peer: Bench(lambda: events.append(f"{peer}@{cfg['device']}"))
    monkeypatch.setitem(sys.modules, "fake_cuda_suite", fake)
    monkeypatch.setitem(_core.SUITES, "fake", "fake_cuda_suite")
    monkeypatch.setattr(_worker, "_start_cuda", lambda: events.append("start"))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: events.append("sync"))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats",
                        lambda device=None: events.append("reset"))
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 1 << 20)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: 5 << 20)
    res = _worker.run_spec({"suite": "fake", "config": {}, "threads": 1, "mode": "time",
                            "peers": ["a", "b"], "repeats": 2, "device": "cuda"})
    assert res["status"] == "ok" and len(res["peers"]["a"]["times"]) == 2
    # start, 2 warm-ups each followed by a sync, then per timed call: sync, call, sync
    assert events == ["start", "a@cuda", "sync", "b@cuda", "sync"] + \
        ["sync", "a@cuda", "sync", "sync", "b@cuda", "sync"] * 2
    events.clear()
    res = _worker.run_spec({"suite": "fake", "config": {}, "threads": 1, "mode": "memory",
                            "peer": "a", "device": "cuda"})
    assert res["method"] == "cuda_max_memory_allocated" and res["peak_mib"] == pytest.approx(4.0)
    assert math.isfinite(res["host_peak_mib"])
    assert events == ["start", "a@cuda", "sync", "sync", "reset", "a@cuda", "sync"]


@needs_cuda
def test_tiny_suites_on_cuda(tmp_path):
    cases = [c for s in TINY for c in tiny_cases(s)]
    report = run(list(TINY), repeats=2, threads=1, in_process=True, progress=False, cases=cases,
                 workdir=tmp_path, device="cuda")
    assert report["machine"]["device"] == "cuda" and report["machine"]["cuda"]
    for rec in report["records"]:
        for peer, res in rec["time"].items():
            if peer == "faiss_flatip":
                assert res["status"].startswith("skipped")
                continue
            assert res["status"] == "ok", (rec["suite"], peer, res["status"])
        for peer, res in rec["memory"].items():
            if res.get("status", "ok") == "ok" and peer != "faiss_flatip":
                assert res["method"] == "cuda_max_memory_allocated", peer
                assert res["peak_mib"] >= 0
    rec = next(r for r in report["records"] if r["suite"] == "streaming")
    assert rec["derived"]["stage_copy GB/s"] > 0
    assert "pinned ring" in rec["time"]["stage_read"]["info"]["via"]


# ----------------------------------------------------------------------------- per-peer timeout


def _tiny_tabular_case():
    from hopfield.bench import tabular as T

    (case,) = T.cases(quick=True)
    return replace(case, config={**case.config, "n_samples": 200, "n_features": 5})


def test_one_timed_out_peer_keeps_the_other_peers_results(monkeypatch, tmp_path):
    """A single-repeat case times each peer in its own worker: the Hopular worker timing out
    (simulated) leaves HistGB's fit time, accuracy and peak memory in the report."""
    calls = []

    def fake_spawn(spec, *, in_process=False, timeout=3600.0):
        calls.append((spec["mode"], tuple(spec.get("peers", [spec.get("peer")]))))
        if "hopular" in spec.get("peers", [spec.get("peer")]):
            return {"status": f"error: timed out after {timeout:.0f} s"}
        return _runner.run_spec(spec)

    monkeypatch.setattr(_runner, "spawn", fake_spawn)
    report = run(["tabular"], repeats=5, threads=1, progress=False,
                 cases=[_tiny_tabular_case()], workdir=tmp_path)
    (rec,) = report["records"]
    assert calls[:2] == [("time", ("hopular",)), ("time", ("histgb",))]
    assert ("memory", ("hopular",)) not in calls  # no fit for a peer that already timed out
    assert rec["status"] == "ok" and rec["repeats"] == 1
    assert rec["time"]["hopular"]["status"].startswith("error: timed out")
    assert rec["memory"]["hopular"]["status"].startswith("error: timed out")
    hgb = rec["time"]["histgb"]
    assert hgb["status"] == "ok" and hgb["median"] > 0 and "test_accuracy" in hgb["info"]
    assert rec["memory"]["histgb"]["status"] == "ok"
    assert {r["label"]: r["value"] for r in rec["ratios"]} == {
        r["label"]: None for r in rec["ratios"]}  # no ratio with one side missing
    assert rec["derived"] == {"histgb fit s": hgb["median"]}
    from hopfield.bench.report import render_markdown

    md = render_markdown(report)
    assert "| hopular | — |" in md and "timed out after 3600 s" in md and "histgb fit s" in md


def test_round_robin_cases_keep_one_time_worker(monkeypatch, tmp_path):
    seen = []

    def fake_spawn(spec, *, in_process=False, timeout=3600.0):
        if spec["mode"] == "time":
            seen.append(list(spec["peers"]))
            return {"status": f"error: timed out after {timeout:.0f} s"}
        return {"status": "unused"}

    monkeypatch.setattr(_runner, "spawn", fake_spawn)
    case = tiny_cases("steps")[0]
    report = run(["steps"], repeats=3, threads=1, progress=False, cases=[case], workdir=tmp_path)
    assert seen == [list(case.peers)]  # several repeats: one round-robin worker, as before
    assert report["records"][0]["status"].startswith("error: timed out")


def test_spawn_timeout_is_reported():
    res = _runner.spawn({"suite": "tabular", "config": {}, "threads": 1, "mode": "time",
                         "peers": ["histgb"], "repeats": 1}, timeout=0.01)
    assert res == {"status": "error: timed out after 0 s"}


@pytest.mark.parametrize("mode, malloc", [("time", False), ("memory", True)])
def test_malloc_setting_only_in_memory_workers(monkeypatch, mode, malloc):
    """The mmap-per-allocation glibc setting keeps RSS honest for memory workers but costs time
    workers kernel CPU, so only memory workers get it."""
    import subprocess

    from hopfield.bench import _runner

    seen = {}

    def fake_run(cmd, **kw):
        seen.update(kw["env"])
        return subprocess.CompletedProcess(cmd, 0, stdout="", stderr="")

    monkeypatch.setattr(_runner.subprocess, "run", fake_run)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    _runner.spawn({"mode": mode, "threads": 2})
    assert ("MALLOC_MMAP_THRESHOLD_" in seen) is malloc
    assert seen["OMP_NUM_THREADS"] == "2"
