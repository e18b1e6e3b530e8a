"""Suite ``ood``: Hopfield-energy OOD scores of 10,000 queries against 1,000,000 stored patterns.

Peers, side by side on the same (N, D) = (1M, 64) float32 patterns (in memory) and L = 10,000
queries:

- ``ood_score`` — :meth:`hopfield.ood.HopfieldOODDetector.score_samples` (one streamed pass of
  log-sum-exp per query block; β fixed, ``normalize=False``);
- ``retrieve_1step`` — ``ModernHopfield(beta).store(X).retrieve(Q, max_steps=1)``: one streamed
  Hopfield update of the same queries (the target: scoring costs no more than one update).

The ratio ``ood_score / retrieve_1step`` (time) is the issue's target (≤ 1). ``--quick``: 100,000
patterns. The suite follows the interface of :mod:`hopfield.bench` suites (``cases``, ``setup``,
``derive``) and also runs on its own::

    python -m hopfield.bench.ood [--quick] [--out ood-bench.json]
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

import numpy as np
import torch

from ._core import Bench, Case, Ratio

__all__ = ["cases", "derive", "main", "setup"]


def cases(quick: bool) -> list[Case]:
    n = 100_000 if quick else 1_000_000
    cfg = {"N": n, "L": 10_000, "D": 64, "seed": 0}
    return [Case("ood", f"score L=10,000 vs N={n:,} D=64", cfg, ("ood_score", "retrieve_1step"),
                 (Ratio("ood_score", "retrieve_1step", "time", 1.0),),
                 max_repeats=3)]


def _data(cfg: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    from .retrieval import make_patterns

    x = make_patterns(cfg["N"], cfg["D"], cfg["seed"])
    q = torch.randn(cfg["L"], cfg["D"], generator=torch.Generator().manual_seed(cfg["seed"] + 1))
    return x, q


def setup(cfg: dict[str, Any], peer: str, data: tuple | None = None) -> Bench:
    x, q = data if data is not None else _data(cfg)
    beta = 1.0 / math.sqrt(cfg["D"])
    if peer == "ood_score":
        from hopfield.ood import HopfieldOODDetector

        det = HopfieldOODDetector(beta=beta, normalize=False, random_state=0).fit(x.numpy())
        qn = q.numpy()
        return Bench(lambda: det.score_samples(qn), {"beta": beta})
    if peer == "retrieve_1step":
        from hopfield import ModernHopfield

        mem = ModernHopfield(beta=beta).store(x)
        return Bench(lambda: mem.retrieve(q, max_steps=1), {"beta": beta})
    raise ValueError(f"unknown peer {peer!r} for suite ood")


def derive(case: Case, record: dict[str, Any]) -> dict[str, Any]:
    cfg = record["config"]
    out: dict[str, Any] = {}
    for peer, res in record["time"].items():
        if res.get("median"):
            out[f"{peer} scores/s"] = cfg["L"] / res["median"]
            out[f"{peer} GFLOP/s (2·L·N·D)"] = (2.0 * cfg["L"] * cfg["N"] * cfg["D"]
                                                / res["median"] / 1e9)
    return out


def main(argv: list[str] | None = None) -> int:
    """Time both peers (1 warm-up each, then ``--repeats`` interleaved pairs of calls); print the
    medians and the median of the paired ratios; optionally save JSON."""
    from .._io import atomic_write_json
    from ._measure import time_calls

    p = argparse.ArgumentParser(prog="python -m hopfield.bench.ood", description=__doc__.split(
        "\n")[0])
    p.add_argument("--quick", action="store_true", help="100,000 stored patterns instead of 1M")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: as is)")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    a = p.parse_args(argv)
    if a.repeats < 1:
        p.error(f"--repeats must be >= 1, got {a.repeats}")
    if a.threads is not None:
        if a.threads < 1:
            p.error(f"--threads must be >= 1, got {a.threads}")
        torch.set_num_threads(a.threads)
    (case,) = cases(a.quick)
    data = _data(case.config)
    record: dict[str, Any] = {"config": case.config, "threads": torch.get_num_threads(),
                              "time": {}}
    benches = {peer: setup(case.config, peer, data) for peer in case.peers}
    for b in benches.values():
        b.fn()  # warm-up
    # interleaved (A B A B ...): on a shared machine, load drifts between calls, not within a pair
    times: dict[str, list[float]] = {peer: [] for peer in case.peers}
    for _ in range(a.repeats):
        for peer, b in benches.items():
            times[peer] += time_calls(b.fn, 1).times
    for peer, ts in times.items():
        record["time"][peer] = {"median": float(np.median(ts)), "times": ts}
    pairs = [x / y for x, y in zip(times["ood_score"], times["retrieve_1step"])]
    record["ratio ood_score / retrieve_1step"] = float(np.median(pairs))
    record["paired ratios"] = pairs
    record["derived"] = derive(case, record)
    print(f"{case.name}, torch threads {record['threads']}:")
    for peer, ts in times.items():
        print(f"  {peer:<15} median {np.median(ts):8.3f} s   ({np.round(ts, 3)})")
    print(f"  ratio ood_score / retrieve_1step = {record['ratio ood_score / retrieve_1step']:.3f}"
          f" (median of {len(pairs)} interleaved pairs {np.round(pairs, 3)}; target <= 1)")
    if a.out:
        atomic_write_json(a.out, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
