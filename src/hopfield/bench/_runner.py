"""Runs cases in fresh worker processes and collects one report dict (see :func:`run`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ._core import Case, check_device, load_suite, ratio_value, suites_for_device
from ._measure import machine_info
from ._worker import MARKER, run_spec

__all__ = ["collect_cases", "run", "spawn"]

#: Memory workers only — glibc: every allocation ≥ 64 KiB is its own mmap, returned to the OS
#: when freed, so the resident set tracks live tensors (see hopfield.bench._measure). Time
#: workers keep the default allocator, as users run: with this setting an allocation-heavy fit
#: (Hopular, 50,000 × 50) spent as much CPU time in the kernel as in user code.
_WORKER_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}


def spawn(spec: dict[str, Any], *, in_process: bool = False, timeout: float = 3600.0
          ) -> dict[str, Any]:
    """Run one worker spec in a fresh Python process (or in this one, for tests)."""
    if in_process:
        return run_spec(spec)
    env = {**os.environ, **(_WORKER_ENV if spec.get("mode") == "memory" else {}),
           "OMP_NUM_THREADS": str(spec["threads"])}
    try:
        proc = subprocess.run([sys.executable, "-m", "hopfield.bench._worker", json.dumps(spec)],
                              capture_output=True, text=True, env=env, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        return {"status": f"error: timed out after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    tail = (proc.stderr or "").strip().splitlines()[-3:]
    return {"status": f"error: worker exited with {proc.returncode}: {' | '.join(tail)}"}


def _time_peers(spec: dict[str, Any], in_process: bool) -> dict[str, Any]:
    """Time mode. Several repeats: one worker times the peers round-robin (they share the
    machine's noise), so a timeout loses every peer of that worker. One repeat (long cases such as
    ``tabular``, or ``--repeats 1``): nothing to interleave, so each peer gets its own worker and
    its own timeout — a peer that runs past it is reported as timed out and the other peers keep
    their results (e.g. HistGB's fit time when the Hopular fit times out)."""
    peers = list(spec["peers"])
    if int(spec["repeats"]) > 1 or len(peers) < 2:
        return spawn(spec, in_process=in_process)
    out: dict[str, Any] = {}
    for peer in peers:
        res = spawn({**spec, "peers": [peer]}, in_process=in_process)
        # a worker that failed as a whole (timeout, crash) reports no peers: its status is the
        # peer's status
        out[peer] = res.get("peers", {}).get(peer, {"status": res["status"]})
    ok = any(r.get("status") == "ok" for r in out.values())
    status = "ok" if ok else next(iter(out.values()))["status"]
    return {"status": status, "peers": out}


def collect_cases(suites: Sequence[str], quick: bool) -> list[Case]:
    return [case for name in suites for case in load_suite(name).cases(quick)]


def _run_case(case: Case, config: dict[str, Any], repeats: int, threads: int, in_process: bool,
              bar: tqdm, device: str = "cpu") -> dict[str, Any]:
    base = {"suite": case.suite, "config": config, "threads": threads, "device": device}
    bar.set_postfix_str(f"{case.suite} {case.name}: time")
    repeats = min(repeats, case.max_repeats or repeats)
    timed = _time_peers({**base, "mode": "time", "peers": list(case.peers), "repeats": repeats,
                         "warmup": case.warmup}, in_process)
    bar.update(1)
    record: dict[str, Any] = {"suite": case.suite, "case": case.name, "config": config,
                              "repeats": repeats, "time": {}, "memory": {},
                              "status": timed["status"]}
    for peer, res in timed.get("peers", {}).items():
        record["time"][peer] = res
    for peer in case.memory_peers:
        bar.set_postfix_str(f"{case.suite} {case.name}: memory {peer}")
        if record["time"].get(peer, {}).get("status", "ok") != "ok":
            record["memory"][peer] = {"status": record["time"][peer]["status"]}
        else:
            record["memory"][peer] = spawn({**base, "mode": "memory", "peer": peer,
                                            "sample_anon": case.sample_anon,
                                            "warmup": case.warmup},
                                           in_process=in_process)
        bar.update(1)
    record["ratios"] = [{"label": r.label, "num": r.num, "den": r.den, "metric": r.metric,
                         "value": ratio_value(r, record), "target": r.target}
                        for r in case.ratios]
    for r in record["ratios"]:
        r["met"] = None if r["value"] is None or r["target"] is None else r["value"] <= r["target"]
    suite = load_suite(case.suite)
    if hasattr(suite, "derive"):
        record["derived"] = suite.derive(case, record)
    return record


def run(suites: Sequence[str] | None = None, *, quick: bool = False, repeats: int = 5,
        threads: int = 2, in_process: bool = False, progress: bool = True,
        workdir: str | os.PathLike | None = None, cases: Sequence[Case] | None = None,
        device: str = "cpu") -> dict[str, Any]:
    """Run the suites and return the report dict (machine info + one record per case).

    ``cases`` replaces the suites' own cases (e.g. tiny sizes in tests). ``in_process=True`` runs
    the workers in this process (tests only: peak memory is then not isolated between cases).
    ``device="cuda"`` runs the suites that support it on the GPU (synchronised timings, peak memory
    from ``torch.cuda.max_memory_allocated``; see :mod:`hopfield.bench._measure`); with
    ``suites=None`` it runs every suite that supports the device. ``ValueError`` for an unknown
    device, a named suite that does not run on it, or ``"cuda"`` without CUDA.
    """
    check_device(device, suites)
    names = list(suites or suites_for_device(device))
    if cases is not None:
        check_device(device, sorted({c.suite for c in cases}))
    cases = list(cases) if cases is not None else collect_cases(names, quick)
    total = sum(1 + len(c.memory_peers) for c in cases)
    records = []
    with tempfile.TemporaryDirectory(prefix="hopfield-bench-", dir=workdir) as tmp, \
            tqdm(total=total, desc="hopfield bench", disable=not progress, unit="run") as bar:
        for case in cases:
            suite = load_suite(case.suite)
            config = {**case.config, "device": device}
            case_dir = Path(tmp) / f"{case.suite}-{len(records)}"
            case_dir.mkdir()
            if hasattr(suite, "prepare"):
                bar.set_postfix_str(f"{case.suite} {case.name}: prepare")
                config = suite.prepare(config, case_dir)
            try:
                records.append(_run_case(case, config, repeats, threads, in_process, bar, device))
            finally:
                if hasattr(suite, "cleanup"):
                    suite.cleanup(config)
    return {"machine": machine_info(threads, device), "device": device, "suites": names,
            "quick": quick, "repeats": repeats, "threads": threads, "records": records}
