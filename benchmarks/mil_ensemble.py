"""MIL ensembles: fit CPU seconds per epoch of K members as a loop over members vs one batched
network, side by side in one process (used for docs/reproduce.md, "Ensembles").

For each data set (training bags of quick fold 0: StratifiedKFold(5, shuffle=True,
random_state=0)), each K in (1, 3, 5) and each way of running the members —
``loop`` (``StackedEnsemble``: ``functional_call`` per member, the path before issue 10's build
item 1 and still the K = 1 default) and ``batched`` (``_BatchedMILNet``: every op carries the member
dimension; the default for K > 1) — one fit of ``--epochs`` epochs (early stopping never triggers:
``n_iter_no_change`` > epochs, but the validation pass runs every epoch as in a real fit). The
cases run round-robin (``--repeats`` rounds, one fit per case per round), so load from other
processes hits all of them alike; the table gives the median CPU seconds per epoch
(``time.process_time``, training + validation) and the loop / batched ratio. The test ROC AUC of
each fit is printed as a sanity check (fixed epochs, no early stopping: not a result).

usage: OMP_NUM_THREADS=1 python benchmarks/mil_ensemble.py [--sets elephant ucsb_breast_cancer]
           [--poolings hopfield attention gated mean max] [--members 1 3 5] [--epochs 15]
           [--repeats 3] [--json out.json]
"""
import argparse
import json
import os
import statistics
import time
import warnings

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from hopfield.datasets import load_mil
from hopfield.estimators import HopfieldMILClassifier
from hopfield.reproduce.mil_baselines import MILNetClassifier


def make(pooling, k, mode, epochs, seed):
    kw = {"n_members": k, "max_iter": epochs, "n_iter_no_change": epochs + 1, "random_state": seed}
    est = (HopfieldMILClassifier(**kw) if pooling == "hopfield"
           else MILNetClassifier(pooling=pooling, **kw))
    est._ensemble_forward = mode          # "loop" = StackedEnsemble, "batched" = _BatchedMILNet
    return est


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="+", default=["elephant", "ucsb_breast_cancer"])
    ap.add_argument("--poolings", nargs="+", default=["hopfield"])
    ap.add_argument("--members", nargs="+", type=int, default=[1, 3, 5])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    print(f"load average before: {os.getloadavg()[0]:.2f}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}",
          flush=True)
    rows = []
    c_start = time.process_time()
    for name in a.sets:
        ds = load_mil(name)
        tr, te = next(StratifiedKFold(5, shuffle=True, random_state=0).split(np.zeros(len(ds.y)), ds.y))
        btr, bte = [ds.bags[i] for i in tr], [ds.bags[i] for i in te]
        for pooling in a.poolings:
            cases = [(k, mode) for k in a.members for mode in ("loop", "batched")]
            per = {c: [] for c in cases}
            auc = {c: [] for c in cases}
            for r in range(a.repeats):
                for k, mode in cases:
                    est = make(pooling, k, mode, a.epochs, seed=r)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        c0 = time.process_time()
                        est.fit(btr, ds.y[tr])
                        cpu = time.process_time() - c0
                    per[(k, mode)].append(cpu / est.n_iter_)
                    auc[(k, mode)].append(roc_auc_score(ds.y[te], est.decision_function(bte)))
                    assert type(est.module_).__name__ == ("StackedEnsemble" if mode == "loop"
                                                          else "_BatchedMILNet")
            for k in a.members:
                lo, ba = (statistics.median(per[(k, m)]) for m in ("loop", "batched"))
                row = {"set": name, "pooling": pooling, "K": k, "loop_cpu_s_per_epoch": lo,
                       "batched_cpu_s_per_epoch": ba, "ratio_loop_over_batched": lo / ba,
                       "loop_all": per[(k, "loop")], "batched_all": per[(k, "batched")],
                       "auc_loop": auc[(k, "loop")], "auc_batched": auc[(k, "batched")]}
                rows.append(row)
                print(f"{name:20s} {pooling:9s} K={k}  loop {lo:.3f}  batched {ba:.3f} CPU-s/epoch  "
                      f"loop/batched {lo / ba:.2f}x   test AUC loop "
                      f"{np.mean(auc[(k, 'loop')]):.3f} batched {np.mean(auc[(k, 'batched')]):.3f}",
                      flush=True)
    print(f"total CPU {time.process_time() - c_start:.0f} s; load average after: "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    print("\n| set | pooling | K | loop CPU-s/epoch | batched CPU-s/epoch | loop / batched |")
    print("|:--|:--|--:|--:|--:|--:|")
    for r in rows:
        print(f"| {r['set']} | {r['pooling']} | {r['K']} | {r['loop_cpu_s_per_epoch']:.3f} | "
              f"{r['batched_cpu_s_per_epoch']:.3f} | {r['ratio_loop_over_batched']:.2f}× |")
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump({"args": vars(a), "rows": rows, "epochs": a.epochs}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
