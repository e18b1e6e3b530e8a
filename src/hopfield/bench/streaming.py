"""Suite ``streaming``: one exact update of 256 queries streamed from a large ``PatternStore``.

The store (N = 10M × 64 float32, 2.4 GiB; ``--quick``: 1M) is written into a temporary directory
before the case and deleted after it. Peers: ``stream_update`` (``ModernHopfield`` over the store,
one update) and ``stream_topk`` (``retrieve_topk(Q, k=10)``). Reported: time, throughput in
patterns/s and GB/s of pattern data, and peak memory — both the resident high-water mark and the
sampled peak of anonymous memory (what the process allocates, excluding page-cache pages).
A pass over 10M patterns takes tens of seconds here, so this case times at most 2 repeats without
a warm-up call (the store was just written, so its pages are in the page cache either way; a
streaming pass allocates afresh every call).

The breakdown: three more peers time each stage of the ``stream_update`` pipeline alone, over the
same N rows in the same chunks, side by side with it:

- ``stage_read`` — reading the store: on the CPU through ``PatternStore.iter_chunks`` (what the CPU
  pipeline's prefetch thread runs, finiteness checks included), on CUDA filling the ring of pinned
  host buffers (what the CUDA pipeline's reader thread runs);
- ``stage_copy`` — host-to-device copies of N rows from a pinned buffer, chunk by chunk (CUDA
  only; skipped on the CPU, where there is no copy);
- ``stage_compute`` — the chunk partials and their merges on a chunk already on the device
  (no I/O), i.e. the arithmetic of the pass.

``derived`` gives the sum of the stages and ``stream_update`` divided by it (below 1: the stages
overlap) and by the slowest stage (1: fully overlapped, bound by that stage). With ``--device
cuda`` the queries (and so the computation) are on the GPU and the times are synchronised; the
store stays on disk.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from ._core import Bench, Case, Unavailable
from .retrieval import modern_memory, write_store

__all__ = ["DEVICES", "STAGES", "cases", "derive", "prepare", "setup"]

DEVICES = ("cpu", "cuda")
#: the stage peers of the pipeline breakdown, in pipeline order.
STAGES = ("stage_read", "stage_copy", "stage_compute")


def cases(quick: bool) -> list[Case]:
    n = 1_000_000 if quick else 10_000_000
    cfg = {"N": n, "L": 256, "D": 64, "k": 10, "seed": 0, "chunk_size": 65536}
    return [Case("streaming", f"store N={n:,} L=256 D=64", cfg,
                 ("stream_update", "stream_topk", *STAGES),
                 memory=("stream_update", "stream_topk"),
                 sample_anon=True, max_repeats=2, warmup=False)]


def prepare(cfg: dict[str, Any], workdir: Path) -> dict[str, Any]:
    try:
        path = write_store(Path(workdir) / "store", cfg["N"], cfg["D"], cfg["seed"])
    except Unavailable:
        return cfg
    return {**cfg, "store": str(path)}


def _stage(cfg: dict[str, Any], peer: str, store: Any, q: torch.Tensor, beta: float) -> Bench:
    device, n, chunk = cfg.get("device", "cpu"), len(store), int(cfg["chunk_size"])
    starts = range(0, n, chunk)
    if peer == "stage_read":
        if device == "cuda":
            from hopfield._chunk_sources import _PinnedRing

            def read_pinned() -> None:
                ring = _PinnedRing(store, chunk)
                for _, _, i in ring:
                    ring.release(i)

            return Bench(read_pinned, {"via": "pinned ring (reader thread, preadv)"})

        def read_chunks() -> None:
            for _ in store.iter_chunks(chunk):
                pass

        return Bench(read_chunks, {"via": "PatternStore.iter_chunks"})
    if peer == "stage_copy":
        if device != "cuda":
            raise Unavailable(f"no host-to-device copy on {device}")
        host = store[0:min(chunk, n)].pin_memory()
        dev = torch.empty(host.shape, dtype=host.dtype, device=q.device)

        def copy() -> None:
            for s in starts:
                m = min(chunk, n - s)
                dev[:m].copy_(host[:m], non_blocking=True)

        return Bench(copy, {"via": "pinned host buffer, non_blocking copy_"})
    if peer == "stage_compute":
        from hopfield.streaming import SoftmaxPartial, chunk_partial

        x = store[0:min(chunk, n)].to(device=q.device, dtype=q.dtype)

        def compute() -> torch.Tensor:
            acc = SoftmaxPartial.empty(tuple(q.shape[:-1]), q.shape[-1], q)
            for s in starts:
                acc = acc.merge(chunk_partial(q, x[:min(chunk, n - s)], beta)[0])
            return acc.result(q.dtype)

        return Bench(compute, {"via": "chunk_partial + merge on a resident chunk"})
    raise ValueError(f"unknown peer {peer!r} for suite streaming")


def setup(cfg: dict[str, Any], peer: str) -> Bench:
    if "store" not in cfg:
        raise Unavailable("hopfield.PatternStore is not available")
    from hopfield import PatternStore

    device = cfg.get("device", "cpu")
    q = torch.randn(cfg["L"], cfg["D"],
                    generator=torch.Generator().manual_seed(cfg["seed"] + 1)).to(device)
    beta = 1.0 / math.sqrt(cfg["D"])
    store = PatternStore.open(cfg["store"])
    if peer in STAGES:
        return _stage(cfg, peer, store, q, beta)
    mem, _ = modern_memory(store, beta, cfg["chunk_size"])
    if peer == "stream_update":
        return Bench(lambda: mem.update(q), {"chunk_size": cfg["chunk_size"]})
    if peer == "stream_topk":
        if not hasattr(mem, "retrieve_topk"):
            raise Unavailable("ModernHopfield.retrieve_topk is not implemented yet")
        return Bench(lambda: mem.retrieve_topk(q, cfg["k"]), {"k": cfg["k"]})
    raise ValueError(f"unknown peer {peer!r} for suite streaming")


def derive(case: Case, record: dict[str, Any]) -> dict[str, Any]:
    cfg = record["config"]
    nbytes = cfg["N"] * cfg["D"] * 4
    out: dict[str, Any] = {"store GiB": nbytes / 1024**3}
    for peer, res in record["time"].items():
        if res.get("median") and peer not in STAGES:
            out[f"{peer} patterns/s"] = cfg["N"] / res["median"]
            out[f"{peer} GB/s"] = nbytes / res["median"] / 1e9
            out[f"{peer} GFLOP/s"] = 4.0 * cfg["L"] * cfg["N"] * cfg["D"] / res["median"] / 1e9
    stages = {p: record["time"].get(p, {}).get("median") for p in STAGES}
    ran = {p: t for p, t in stages.items() if t}
    if ran.get("stage_read"):
        out["stage_read GB/s"] = nbytes / ran["stage_read"] / 1e9
    if ran.get("stage_copy"):
        out["stage_copy GB/s"] = nbytes / ran["stage_copy"] / 1e9
    total = record["time"].get("stream_update", {}).get("median")
    if ran and total:
        out["stages read+copy+compute s"] = sum(ran.values())
        out["stream_update / sum of stages"] = total / sum(ran.values())
        out["stream_update / slowest stage"] = total / max(ran.values())
    return out
