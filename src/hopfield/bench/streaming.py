"""Suite ``streaming``: one exact update of 256 queries streamed from a large ``PatternStore``.

The store (N = 10M × 64 float32, 2.4 GiB; ``--quick``: 1M) is written into a temporary directory
before the case and deleted after it. Peers: ``stream_update`` (``ModernHopfield`` over the store,
one update) and ``stream_topk`` (``retrieve_topk(Q, k=10)``). Reported: time, throughput in
patterns/s and GB/s of pattern data, and peak memory — both the resident high-water mark and the
sampled peak of anonymous memory (what the process allocates, excluding page-cache pages).
A pass over 10M patterns takes tens of seconds here, so this case times at most 2 repeats without
a warm-up call (the store was just written, so its pages are in the page cache either way; a
streaming pass allocates afresh every call).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from ._core import Bench, Case, Unavailable
from .retrieval import modern_memory, write_store

__all__ = ["cases", "derive", "prepare", "setup"]


def cases(quick: bool) -> list[Case]:
    n = 1_000_000 if quick else 10_000_000
    cfg = {"N": n, "L": 256, "D": 64, "k": 10, "seed": 0, "chunk_size": 65536}
    return [Case("streaming", f"store N={n:,} L=256 D=64", cfg, ("stream_update", "stream_topk"),
                 sample_anon=True, max_repeats=2, warmup=False)]


def prepare(cfg: dict[str, Any], workdir: Path) -> dict[str, Any]:
    try:
        path = write_store(Path(workdir) / "store", cfg["N"], cfg["D"], cfg["seed"])
    except Unavailable:
        return cfg
    return {**cfg, "store": str(path)}


def setup(cfg: dict[str, Any], peer: str) -> Bench:
    if "store" not in cfg:
        raise Unavailable("hopfield.PatternStore is not available")
    from hopfield import PatternStore  # noqa: PLC0415

    q = torch.randn(cfg["L"], cfg["D"], generator=torch.Generator().manual_seed(cfg["seed"] + 1))
    mem, how = modern_memory(PatternStore.open(cfg["store"]), 1.0 / math.sqrt(cfg["D"]),
                             cfg["chunk_size"])
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
        if res.get("median"):
            out[f"{peer} patterns/s"] = cfg["N"] / res["median"]
            out[f"{peer} GB/s"] = nbytes / res["median"] / 1e9
            out[f"{peer} GFLOP/s"] = 4.0 * cfg["L"] * cfg["N"] * cfg["D"] / res["median"] / 1e9
    return out
