"""Suite ``retrieval``: one Hopfield update of L queries over N stored D-dim patterns.

Peers on the same tensors (N = 1M, D = 64, L = 256; β = 1/√D):

- ``modern_hopfield``: ``ModernHopfield(beta).store(X).update(Q)`` — the library's public path;
- ``sdpa``: ``F.scaled_dot_product_attention(Q, X, X, scale=β)`` on (1, 1, ·, D) views — torch's
  fused CPU kernel — target ``modern_hopfield`` ≤ 1.2×;
- ``sdpa_2d``: the same call on the 2-D tensors, where torch (2.13, CPU) silently takes its
  unfused math path (materialising the (L, N) scores);
- ``materialised``: ``softmax(β Q Xᵀ) X`` with the (L, N) weights built explicitly (hflayers-style);
- ``faiss_flatip``: FAISS ``IndexFlatIP`` exact top-1 inner-product search (threads = torch
  threads);
- ``modern_topk``: ``ModernHopfield.retrieve_topk(Q, k=1)`` (indices + exact weights);
- ``store_stream``: the same update streamed from a ``PatternStore`` on disk;
- ``matmul``: a 2048³ float32 matmul — this machine's sgemm roofline (its fastest repeat), measured
  in the same round-robin.

FLOPs of one update: 2·L·N·D for the scores plus 2·L·N·D for the weighted sum (the softmax is
O(L·N) and not counted); ``derived`` gives GFLOP/s and the fraction of the sgemm roofline.

With ``--device cuda`` the patterns, queries and matmul live on the GPU (the store is still on
disk: ``store_stream`` goes through the pinned-buffer pipeline to the GPU); ``faiss_flatip`` is
skipped (faiss-cpu runs on the CPU, so it is no peer of a GPU run).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ._core import Bench, Case, Ratio, Unavailable

__all__ = ["DEVICES", "cases", "derive", "make_patterns", "modern_memory", "prepare", "setup",
           "write_store"]

DEVICES = ("cpu", "cuda")
_CHUNK = 1 << 20
ROOFLINE_SIZE = 2048


def make_patterns(n: int, dim: int, seed: int = 0) -> torch.Tensor:
    """(n, dim) standard normal patterns, generated in 1M-row chunks (same rows as the store)."""
    return torch.cat([_chunk(s, min(_CHUNK, n - s), dim, seed) for s in range(0, n, _CHUNK)])


def _chunk(start: int, rows: int, dim: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed * 1_000_003 + start // _CHUNK)
    return torch.randn(rows, dim, generator=gen)


def write_store(path: Path, n: int, dim: int, seed: int = 0) -> Path:
    """Write ``make_patterns(n, dim, seed)`` into a new ``PatternStore`` at ``path``, chunk by
    chunk."""
    try:
        from hopfield import PatternStore
    except (ImportError, AttributeError) as err:
        raise Unavailable(f"hopfield.PatternStore is not importable ({err})") from None
    with PatternStore.create(path, dim) as store:
        for s in range(0, n, _CHUNK):
            store.append(_chunk(s, min(_CHUNK, n - s), dim, seed))
    return path


def modern_memory(source: Any, beta: float, chunk_size: int | None = None) -> tuple[Any, str]:
    """``ModernHopfield(beta[, chunk_size]).store(source)``; returns (memory, how)."""
    from hopfield import ModernHopfield

    try:
        mem = ModernHopfield(beta=beta, **({"chunk_size": chunk_size} if chunk_size else {}))
    except TypeError as err:
        raise Unavailable(f"ModernHopfield does not take chunk_size yet ({err})") from None
    try:
        return mem.store(source), "ModernHopfield"
    except TypeError as err:
        raise Unavailable(f"ModernHopfield.store does not accept {type(source).__name__} "
                          f"({err})") from None


def cases(quick: bool) -> list[Case]:
    n = 50_000 if quick else 1_000_000
    cfg = {"N": n, "L": 256, "D": 64, "seed": 0}
    peers = ("sdpa", "sdpa_2d", "modern_hopfield", "materialised", "faiss_flatip", "modern_topk",
             "store_stream", "matmul")
    return [Case("retrieval", f"N={n:,} L=256 D=64", cfg, peers,
                 (Ratio("modern_hopfield", "sdpa", "time", 1.2),
                  Ratio("modern_hopfield", "sdpa", "memory"),
                  Ratio("modern_hopfield", "faiss_flatip", "time"),
                  Ratio("modern_topk", "faiss_flatip", "time"),
                  Ratio("store_stream", "sdpa", "time"),
                  Ratio("sdpa_2d", "sdpa", "time"),
                  Ratio("materialised", "sdpa", "time"),
                  Ratio("materialised", "sdpa", "memory")),
                 memory=peers[:-1], max_repeats=3)]


def prepare(cfg: dict[str, Any], workdir: Path) -> dict[str, Any]:
    try:
        path = write_store(Path(workdir) / "store", cfg["N"], cfg["D"], cfg["seed"])
    except Unavailable:
        return cfg
    return {**cfg, "store": str(path)}


def setup(cfg: dict[str, Any], peer: str) -> Bench:
    n, L, D = cfg["N"], cfg["L"], cfg["D"]
    device = cfg.get("device", "cpu")
    beta = 1.0 / math.sqrt(D)
    if peer == "matmul":
        a, b = (torch.randn(ROOFLINE_SIZE, ROOFLINE_SIZE).to(device) for _ in range(2))
        return Bench(lambda: a @ b, {"size": ROOFLINE_SIZE})
    if peer == "faiss_flatip" and device != "cpu":
        raise Unavailable(f"faiss-cpu searches on the CPU, not on {device}")
    q = torch.randn(L, D, generator=torch.Generator().manual_seed(cfg["seed"] + 1)).to(device)
    if peer == "store_stream":
        if "store" not in cfg:
            raise Unavailable("hopfield.PatternStore is not available")
        from hopfield import PatternStore

        mem, how = modern_memory(PatternStore.open(cfg["store"]), beta)
        return Bench(lambda: mem.update(q), {"via": how})
    x = make_patterns(n, D, cfg["seed"]).to(device)
    if peer == "sdpa":  # 4-D views: the layout torch's fused CPU (flash) kernel requires
        q4, x4 = q[None, None], x[None, None]  # (1, 1, L, D), (1, 1, N, D)
        return Bench(lambda: F.scaled_dot_product_attention(q4, x4, x4, scale=beta))
    if peer == "sdpa_2d":  # the same call on the 2-D tensors: torch falls back to its math path
        return Bench(lambda: F.scaled_dot_product_attention(q, x, x, scale=beta))
    if peer == "materialised":
        return Bench(lambda: torch.softmax(beta * (q @ x.T), dim=-1) @ x)  # (L, N) explicit
    if peer == "modern_hopfield":
        mem, _ = modern_memory(x, beta)
        return Bench(lambda: mem.update(q))
    if peer == "modern_topk":
        mem, _ = modern_memory(x, beta)
        if not hasattr(mem, "retrieve_topk"):
            raise Unavailable("ModernHopfield.retrieve_topk is not implemented yet")
        return Bench(lambda: mem.retrieve_topk(q, 1), {"k": 1})
    if peer == "faiss_flatip":
        try:
            import faiss
        except ImportError:
            raise Unavailable("faiss is not installed (pip install faiss-cpu)") from None
        faiss.omp_set_num_threads(torch.get_num_threads())
        index = faiss.IndexFlatIP(D)
        index.add(x.numpy())
        del x
        qn = q.numpy()
        return Bench(lambda: index.search(qn, 1), {"k": 1})
    raise ValueError(f"unknown peer {peer!r} for suite retrieval")


def derive(case: Case, record: dict[str, Any]) -> dict[str, Any]:
    cfg = record["config"]
    flops = 4.0 * cfg["L"] * cfg["N"] * cfg["D"]
    times = {p: r.get("median") for p, r in record["time"].items()}
    out: dict[str, Any] = {}
    if times.get("matmul"):  # a roofline is a peak: the fastest repeat, not the median
        best = min(record["time"]["matmul"]["times"])
        out["sgemm roofline GFLOP/s"] = 2.0 * ROOFLINE_SIZE**3 / best / 1e9
    for peer in ("modern_hopfield", "sdpa", "store_stream"):
        if times.get(peer):
            gflops = flops / times[peer] / 1e9
            out[f"{peer} GFLOP/s"] = gflops
            if times.get("matmul"):
                out[f"{peer} fraction of roofline"] = gflops / out["sgemm roofline GFLOP/s"]
    return out
