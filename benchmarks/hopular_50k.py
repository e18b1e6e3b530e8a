"""One complete default HopularClassifier fit on 50,000 x 50 (make_classification, seed 0, 80/20
split) next to HistGradientBoostingClassifier, in one process (used for docs/hopular.md).

Prints, for each model: fit wall and CPU seconds (CPU = all threads of this process), then
Hopular's epochs (``n_iter_``), best epoch, mean CPU per epoch, the dropout used (``dropout_``:
0 with ``dropout="auto"`` here, the networks train on 36,000 rows), test accuracy, prediction time,
peak RSS, torch threads and the load average before and after (a busy machine inflates wall time).

usage: python benchmarks/hopular_50k.py [v]     (v = print the validation loss per epoch)
       OMP_NUM_THREADS=2 python benchmarks/hopular_50k.py   (the issue's "2 cores")
"""
import os
import resource
import sys
import time

import torch
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import train_test_split

from hopfield.estimators import HopularClassifier

print(f"load average before: {os.getloadavg()[0]:.2f}; torch {torch.__version__}, "
      f"{torch.get_num_threads()} threads", flush=True)
X, y = make_classification(n_samples=50_000, n_features=50, random_state=0)
Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=0)
t = time.perf_counter(); c = time.process_time()
h = HistGradientBoostingClassifier(random_state=0).fit(Xtr, ytr)
hw, hc = time.perf_counter() - t, time.process_time() - c
print(f"histgb fit {hw:.1f}s wall {hc:.1f}s cpu acc {h.score(Xte, yte):.4f}", flush=True)
t = time.perf_counter(); c = time.process_time()
m = HopularClassifier(random_state=0, verbose='v' in sys.argv).fit(Xtr, ytr)
fw, fc = time.perf_counter() - t, time.process_time() - c
print(f"hopular fit {fw:.1f}s wall {fc:.1f}s cpu ({fw / 60:.2f} min wall; target <= 5 min) "
      f"epochs {m.n_iter_} best epoch {m.best_iteration_.tolist()} "
      f"({fc / m.n_iter_:.1f} cpu-s per epoch incl. validation) threads {torch.get_num_threads()} "
      f"dropout {m.dropout_}",
      flush=True)
t = time.perf_counter(); c = time.process_time()
acc = m.score(Xte, yte)
print(f"hopular predict {time.perf_counter() - t:.1f}s wall {time.process_time() - c:.1f}s cpu "
      f"acc {acc:.4f}; peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} "
      f"MiB; fit-time ratio hopular/histgb {fw / hw:.0f}x wall, {fc / hc:.0f}x cpu; "
      f"load average after: {os.getloadavg()[0]:.2f}", flush=True)
