"""CPU streaming rows of issue 15 in one process, side by side (used for docs/gpu.md).

usage: python benchmarks/stream_compare.py STORE_DIR REPEATS LABEL

Writes a 1M x 64 float32 PatternStore at STORE_DIR if it does not exist (the rows of
``hopfield.bench.retrieval.write_store``), then times round-robin, REPEATS rounds after one
warm-up: SDPA on 4-D views, FAISS IndexFlatIP top-1, in-memory ModernHopfield.retrieve_topk(k=1),
the PatternStore-backed update and top-10, and reading the store alone. Prints one JSON line
with medians (ms) and ratios paired within each round. To compare code versions, run it with
PYTHONPATH=<checkout>/src for each (docs/gpu.md ran it with the benchmark workers' malloc
settings MALLOC_MMAP_THRESHOLD_=65536 MALLOC_TRIM_THRESHOLD_=0).
"""

import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import faiss
import torch
import torch.nn.functional as F

from hopfield import ModernHopfield, PatternStore


def main() -> None:
    path, repeats, label = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    torch.set_num_threads(2)
    faiss.omp_set_num_threads(2)
    if not os.path.exists(path):
        from hopfield.bench.retrieval import write_store

        write_store(Path(path), 1_000_000, 64, 0)
    store = PatternStore.open(path)
    D, L = store.dim, 256
    x = store[:]
    q = torch.randn(L, D, generator=torch.Generator().manual_seed(1))
    beta = 1 / math.sqrt(D)
    mem = ModernHopfield(beta=beta).store(x)
    smem = ModernHopfield(beta=beta).store(PatternStore.open(path))
    index = faiss.IndexFlatIP(D)
    index.add(x.numpy())
    qn = q.numpy()
    q4, x4 = q[None, None], x[None, None]

    def read() -> None:
        for _ in store.iter_chunks(65536):
            pass

    fns = {"sdpa": lambda: F.scaled_dot_product_attention(q4, x4, x4, scale=beta),
           "faiss": lambda: index.search(qn, 1),
           "topk_mem": lambda: mem.retrieve_topk(q, 1),
           "store_update": lambda: smem.update(q),
           "store_topk10": lambda: smem.retrieve_topk(q, 10),
           "read": read}
    for f in fns.values():
        f()
    t: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            t[k].append(time.perf_counter() - t0)

    def paired(a: str, b: str) -> float:  # per round: same round = same machine load
        return round(statistics.median([x / y for x, y in zip(t[a], t[b])]), 3)

    print(json.dumps({"label": label,
                      "ms": {k: round(statistics.median(v) * 1e3, 1) for k, v in t.items()},
                      "topk/faiss": paired("topk_mem", "faiss"),
                      "store_update/sdpa": paired("store_update", "sdpa"),
                      "store_topk10/store_update": paired("store_topk10", "store_update"),
                      "read/sdpa": paired("read", "sdpa"),
                      "load": round(os.getloadavg()[0], 1)}))


if __name__ == "__main__":
    main()
