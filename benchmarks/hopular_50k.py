"""One complete default HopularClassifier fit on 50,000 x 50 (make_classification, seed 0, 80/20
split) next to HistGradientBoostingClassifier, in one process (used for docs/hopular.md).

usage: python benchmarks/hopular_50k.py
"""
import resource
import sys
import time

import torch
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import train_test_split

from hopfield.estimators import HopularClassifier

X, y = make_classification(n_samples=50_000, n_features=50, random_state=0)
Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=0)
t = time.perf_counter(); c = time.process_time()
h = HistGradientBoostingClassifier(random_state=0).fit(Xtr, ytr)
print(f"histgb fit {time.perf_counter()-t:.1f}s wall {time.process_time()-c:.1f}s cpu acc {h.score(Xte, yte):.4f}", flush=True)
t = time.perf_counter(); c = time.process_time()
m = HopularClassifier(random_state=0, verbose=True if 'v' in sys.argv else False).fit(Xtr, ytr)
fw, fc = time.perf_counter()-t, time.process_time()-c
print(f"hopular fit {fw:.1f}s wall {fc:.1f}s cpu epochs {getattr(m, 'n_iter_', None)} threads {torch.get_num_threads()}", flush=True)
t = time.perf_counter()
acc = m.score(Xte, yte)
print(f"hopular predict {time.perf_counter()-t:.1f}s acc {acc:.4f} peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024:.0f} MiB", flush=True)
