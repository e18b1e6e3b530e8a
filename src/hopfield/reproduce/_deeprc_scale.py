"""DeepRC inference at scale: one big repertoire from the on-disk store, in a fresh process.

Part of ``hopfield reproduce deeprc`` (:func:`hopfield.reproduce.deeprc.measure_scale`): a
simulated repertoire of n sequences is written and converted to the store once, a toy-fitted
model is saved, and a subprocess that imports only the inference path loads both and times
``decision_function`` (best of 3) and ``sequence_weights`` on it, reporting its peak RSS
(``VmHWM``). Beside the time: the model's arithmetic per sequence, the machine's matmul GFLOP/s
at the same thread count, and their ratio (how far inference is from the machine's roofline).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from .._io import atomic_write_json

_SCALE_SCRIPT = r"""
import json, resource, sys, time
import numpy as np, torch
from hopfield.repertoire import DeepRCClassifier, load_repertoires
data, n, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
def rss():
    # peak RSS of this process image: VmHWM (Linux). ru_maxrss is not used where VmHWM exists:
    # Linux carries the parent's peak into it across fork/vfork + exec
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB (Linux: KiB)
def rss_now():
    try:
        import os
        return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return float("nan")
ds = load_repertoires(data)
rep = ds.repertoires[0]
clf = DeepRCClassifier.load(sys.argv[4])  # a saved model, as a deployed inference process has
clf.set_params(num_threads=threads)
clf.decision_function([ds.repertoires[1]])  # warm-up (lazy imports, allocator)
base, now = rss(), rss_now()
times = []
for _ in range(3):
    t = time.perf_counter(); clf.decision_function([rep]); times.append(time.perf_counter() - t)
t = time.perf_counter(); w = clf.sequence_weights([rep])[0]; tw = time.perf_counter() - t
print(json.dumps({"n_sequences": len(rep), "threads": threads, "seconds": min(times),
                  "seconds_all": times, "weights_seconds": tw, "rss_before_mib": now,
                  "peak_rss_before_mib": base,
                  "peak_rss_mib": rss(), "weights_sum": float(w.sum())}))
"""


def _flops_per_sequence(clf, mean_length: float) -> float:
    """Arithmetic of one sequence in the inference pass (table adds, projections, pooling)."""
    k, K, E, H, Dh = (clf.kernel_size, clf.n_kernels, clf.embedding_size, clf.num_heads,
                      clf.head_size)
    T = mean_length - k + 1
    n_tables = -(-k // 3)
    conv = T * K * (n_tables + 1)  # adds of the looked-up tables + positional term, max
    proj = 2 * K * E + 2 * 2 * E * H * Dh + 2 * 5 * E  # embedding, keys+values, LayerNorms
    pool = 2 * H * Dh + 3 * H + 2 * H * Dh  # score, exp/sum, weighted value sum
    return float(conv + proj + pool)


def _matmul_gflops(threads: int) -> float:
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a = torch.randn(1024, 1024)
        a @ a
        t = time.perf_counter()
        for _ in range(5):
            a @ a
        return 5 * 2 * 1024 ** 3 / (time.perf_counter() - t) / 1e9
    finally:
        torch.set_num_threads(old)


def measure_scale(out: Path, n: int, seed: int, threads: int = 1) -> dict:
    """Time DeepRC inference on one ``n``-sequence repertoire in a fresh subprocess (peak RSS);
    writes and returns ``out/scale.json``."""
    from ..repertoire import DeepRCClassifier, load_repertoires, simulate_repertoires

    data = out / f"scale_data_{n}"
    if not (data / "metadata.tsv").is_file():
        ds = simulate_repertoires(2, n, 0.001, seed=seed)
        ds.subset([0, 1]).write(data, overwrite=data.exists())
    # the one-time text -> store conversion runs here, not in the timed process
    load_repertoires(data)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    import tempfile

    with tempfile.TemporaryDirectory(prefix="hopfield-deeprc-scale-") as tmp:
        # the measured process loads a saved model (fitted here on a toy set: inference cost does
        # not depend on the weights) and does not import the training code paths
        small = simulate_repertoires(4, 64, 0.05, seed=seed)
        DeepRCClassifier(random_state=0, num_threads=threads, max_iter=1, early_stopping=False,
                         pretrain_steps=5).fit(small.repertoires, small.y).save(Path(tmp) / "m")
        proc = subprocess.run([sys.executable, "-c", _SCALE_SCRIPT, str(data), str(n),
                               str(threads), str(Path(tmp) / "m")],
                              capture_output=True, text=True, env=env, timeout=1800, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"scale measurement failed:\n{proc.stderr[-3000:]}")
    rec = json.loads(proc.stdout.strip().splitlines()[-1])
    clf = DeepRCClassifier()
    rec["flops_per_sequence"] = _flops_per_sequence(clf, 15.0)
    rec["sequences_per_second"] = rec["n_sequences"] / rec["seconds"]
    rec["achieved_gflops"] = rec["flops_per_sequence"] * rec["sequences_per_second"] / 1e9
    rec["matmul_gflops"] = _matmul_gflops(threads)
    rec["roofline_ratio"] = rec["achieved_gflops"] / rec["matmul_gflops"]
    rec["load_average"] = os.getloadavg()[0]
    atomic_write_json(out / "scale.json", rec)
    return rec
