"""Worker process: ``python -m hopfield.bench._worker '<json spec>'`` runs one measurement.

Spec keys: ``suite``, ``config``, ``threads``, ``mode`` (``"time"`` or ``"memory"``), ``peers``
(time mode: timed round-robin, ``repeats`` rounds after one warm-up each) or ``peer`` (memory mode:
one warm-up, then the peak memory of one further call), ``sample_anon``, ``device`` (``"cpu"``
or ``"cuda"``, default ``"cpu"``; the suite reads it from ``config["device"]``). On CUDA every
timed call is bracketed by ``torch.cuda.synchronize()`` and memory mode reports the device's peak
(``torch.cuda.max_memory_allocated``, reset before the measured call) as ``peak_mib``, with the
host's resident peak beside it as ``host_peak_mib``. The result is printed as one JSON line
prefixed with :data:`MARKER`.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from typing import Any

import torch

from ._core import Unavailable, load_suite
from ._measure import CudaMemoryProbe, MemoryProbe, device_sync

__all__ = ["MARKER", "run_spec"]

MARKER = "@@hopfield-bench@@"


def _setup(suite: Any, config: dict[str, Any], peer: str) -> tuple[Any, str | None]:
    try:
        return suite.setup(config, peer), None
    except Unavailable as err:
        return None, f"skipped: {err}"
    except Exception as err:  # noqa: BLE001 - a broken peer is reported, not fatal
        return None, f"error: {type(err).__name__}: {err}"


def _start_cuda() -> None:
    """Create the CUDA context, cuBLAS handle and allocator pools before anything is measured."""
    a = torch.ones(64, 64, device="cuda")
    (a @ a).sum()
    torch.cuda.synchronize()


def run_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement described by ``spec`` in this process and return the result dict."""
    torch.set_num_threads(int(spec["threads"]))
    torch.manual_seed(0)
    suite = load_suite(spec["suite"])
    device = spec.get("device", "cpu")
    config = {**spec["config"], "device": device}
    sync = device_sync(device)
    if device == "cuda":
        _start_cuda()
    if spec["mode"] == "memory":
        bench, status = _setup(suite, config, spec["peer"])
        if bench is None:
            return {"status": status}
        if spec.get("warmup", True):
            bench.fn()  # warm-up: lazy allocations (gradients, workspaces) happen here
            sync()
        if device == "cuda":
            with MemoryProbe() as host, CudaMemoryProbe() as probe:
                bench.fn()
            return {"status": "ok", "peak_mib": probe.peak_mib, "method": probe.method,
                    "host_peak_mib": host.peak_mib, "peak_anon_mib": None}
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
                sync()
        except Exception as err:  # noqa: BLE001
            out[peer] = {"status": f"error: {type(err).__name__}: {err}"}
            continue
        benches[peer] = bench
        out[peer] = {"status": "ok", "times": [], "info": bench.info}
    for _ in range(int(spec["repeats"])):  # round-robin: peers share the machine's noise
        for peer, bench in benches.items():
            sync()  # CUDA: nothing queued before the clock starts ...
            t0 = time.perf_counter()
            bench.fn()
            sync()  # ... and the clock stops when the call's kernels have finished
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
