"""Worker process: ``python -m hopfield.bench._worker '<json spec>'`` runs one measurement.

Spec keys: ``suite``, ``config``, ``threads``, ``mode`` (``"time"`` or ``"memory"``), ``peers``
(time mode: timed round-robin, ``repeats`` rounds after one warm-up each) or ``peer`` (memory mode:
one warm-up, then the peak memory of one further call), ``sample_anon``. The result is printed as
one JSON line prefixed with :data:`MARKER`.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from typing import Any

import torch

from ._core import Unavailable, load_suite
from ._measure import MemoryProbe

__all__ = ["MARKER", "run_spec"]

MARKER = "@@hopfield-bench@@"


def _setup(suite: Any, config: dict[str, Any], peer: str) -> tuple[Any, str | None]:
    try:
        return suite.setup(config, peer), None
    except Unavailable as err:
        return None, f"skipped: {err}"
    except Exception as err:  # noqa: BLE001 - a broken peer is reported, not fatal
        return None, f"error: {type(err).__name__}: {err}"


def run_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement described by ``spec`` in this process and return the result dict."""
    torch.set_num_threads(int(spec["threads"]))
    torch.manual_seed(0)
    suite = load_suite(spec["suite"])
    config = spec["config"]
    if spec["mode"] == "memory":
        bench, status = _setup(suite, config, spec["peer"])
        if bench is None:
            return {"status": status}
        if spec.get("warmup", True):
            bench.fn()  # warm-up: lazy allocations (gradients, workspaces) happen here
        with MemoryProbe(sample_anon=bool(spec.get("sample_anon"))) as probe:
            bench.fn()
        return {"status": "ok", "peak_mib": probe.peak_mib, "peak_anon_mib": probe.peak_anon_mib,
                "method": probe.method}
    benches, out = {}, {}
    for peer in spec["peers"]:
        bench, status = _setup(suite, config, peer)
        if bench is None:
            out[peer] = {"status": status}
            continue
        try:
            if spec.get("warmup", True):
                bench.fn()  # warm-up
        except Exception as err:  # noqa: BLE001
            out[peer] = {"status": f"error: {type(err).__name__}: {err}"}
            continue
        benches[peer] = bench
        out[peer] = {"status": "ok", "times": [], "info": bench.info}
    for _ in range(int(spec["repeats"])):  # round-robin: peers share the machine's noise
        for peer, bench in benches.items():
            t0 = time.perf_counter()
            bench.fn()
            out[peer]["times"].append(time.perf_counter() - t0)
    for peer in benches:
        times = sorted(out[peer]["times"])
        out[peer]["median"] = times[len(times) // 2] if len(times) % 2 else \
            0.5 * (times[len(times) // 2 - 1] + times[len(times) // 2])
    return {"status": "ok", "peers": out}


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    try:
        result = run_spec(spec)
    except Exception as err:  # noqa: BLE001
        traceback.print_exc()
        result = {"status": f"error: {type(err).__name__}: {err}"}
    sys.stdout.write(MARKER + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
