"""MIL ensembles: fit CPU seconds per epoch of K members as a loop over members vs one batched
network, side by side in one process (used for docs/reproduce.md, "Ensembles").

For each data set (training bags of quick fold 0: StratifiedKFold(5, shuffle=True,
random_state=0)), each K in (1, 3, 5) and each way of running the members —
``loop`` (``StackedEnsemble``: ``functional_call`` per member, the path before issue 10's build
item 1 and still the K = 1 default), ``batched`` (``_BatchedMILNet``: every op carries the member
dimension; the default for K > 1) and, with ``--modes ... vmap``, ``vmap``
(``StackedEnsemble(vectorize=True)``: ``torch.vmap`` over ``functional_call``) — one fit of
``--epochs`` epochs (early stopping never triggers: ``n_iter_no_change`` > epochs, but the
validation pass runs every epoch as in a real fit). The
cases run round-robin (``--repeats`` rounds, one fit per case per round), so load from other
processes hits all of them alike; the table gives the median CPU seconds per epoch
(``time.process_time``, training + validation) and the loop / batched ratio. The test ROC AUC of
each fit is printed as a sanity check (fixed epochs, no early stopping: not a result). One
untimed 2-epoch fit per data set and pooling warms up first.

``--accuracy`` instead runs the n_members screen behind the default: Hopfield pooling with
``n_members`` 1 vs 3 (the batched network), library defaults (early stopping as in a real fit), on
the quick protocol's folds of the five quick sets (StratifiedKFold(5, shuffle=True,
random_state=0), never the ``--full`` outer folds), three seeds per fold (random_state = fold
+ 1000·s); it prints each fit's test ROC AUC, fit CPU seconds and epochs, then per set the mean
AUC and fit CPU per fold of both.

usage: OMP_NUM_THREADS=1 python benchmarks/mil_ensemble.py [--sets elephant ucsb_breast_cancer]
           [--poolings hopfield attention gated mean max] [--members 1 3 5] [--epochs 15]
           [--modes loop batched vmap] [--repeats 3] [--json out.json]
       OMP_NUM_THREADS=1 python benchmarks/mil_ensemble.py --accuracy [--json out.json]
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
    est._ensemble_forward = mode    # "loop" / "vmap" = StackedEnsemble, "batched" = _BatchedMILNet
    return est


def accuracy(json_path=None):
    """n_members 1 vs 3 for Hopfield pooling on the quick folds (see the module docstring)."""
    from hopfield.reproduce.mil import QUICK_SETS

    rows = []
    for name in QUICK_SETS:
        ds = load_mil(name)
        skf = StratifiedKFold(5, shuffle=True, random_state=0)
        for f, (tr, te) in enumerate(skf.split(np.zeros(len(ds.y)), ds.y)):
            for s in range(3):
                for k in (1, 3):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        c0 = time.process_time()
                        clf = HopfieldMILClassifier(n_members=k, random_state=f + 1000 * s).fit(
                            [ds.bags[i] for i in tr], ds.y[tr])
                        cpu = time.process_time() - c0
                    auc = float(roc_auc_score(ds.y[te], clf.decision_function(
                        [ds.bags[i] for i in te])))
                    rows.append({"set": name, "fold": f, "seed": s, "K": k, "auc": auc,
                                 "cpu": cpu, "n_iter": int(clf.n_iter_),
                                 "module": type(clf.module_).__name__})
                    print(name, f, s, k, f"{auc:.4f}", f"{cpu:.1f}s", clf.n_iter_, flush=True)
                    if json_path:
                        with open(json_path, "w", encoding="utf-8") as fh:
                            json.dump(rows, fh)
    print("\n| set | n_members=1 | n_members=3 | Δ | fit CPU-s per fold, 1 → 3 |")
    print("|:--|--:|--:|--:|--:|")
    deltas = []
    for name in QUICK_SETS:
        a = [r for r in rows if r["set"] == name and r["K"] == 1]
        b = [r for r in rows if r["set"] == name and r["K"] == 3]
        A, B = (100 * np.mean([r["auc"] for r in x]) for x in (a, b))
        ca, cb = (np.mean([r["cpu"] for r in x]) for x in (a, b))
        deltas.append(B - A)
        print(f"| {name} | {A:.1f} | {B:.1f} | {B - A:+.1f} | {ca:.1f} → {cb:.1f} ({cb / ca:.1f}×) |")
    print(f"mean over the sets: {np.mean(deltas):+.2f} points; largest loss of one set: "
          f"{min(deltas):+.1f}")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="+", default=["elephant", "ucsb_breast_cancer"])
    ap.add_argument("--poolings", nargs="+", default=["hopfield"])
    ap.add_argument("--members", nargs="+", type=int, default=[1, 3, 5])
    ap.add_argument("--modes", nargs="+", default=["loop", "batched"],
                    choices=["loop", "batched", "vmap"])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    ap.add_argument("--accuracy", action="store_true",
                    help="the n_members 1 vs 3 screen on the quick folds instead")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    if a.accuracy:
        return accuracy(a.json)
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
            cases = [(k, mode) for k in a.members for mode in a.modes]
            per = {c: [] for c in cases}
            auc = {c: [] for c in cases}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                make(pooling, 1, "loop", 2, seed=0).fit(btr, ds.y[tr])          # warm-up
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
                    assert type(est.module_).__name__ == ("_BatchedMILNet" if mode == "batched"
                                                          else "StackedEnsemble")
            for k in a.members:
                med = {m: statistics.median(per[(k, m)]) for m in a.modes}
                row = {"set": name, "pooling": pooling, "K": k,
                       **{f"{m}_cpu_s_per_epoch": med[m] for m in a.modes},
                       **{f"{m}_all": per[(k, m)] for m in a.modes},
                       **{f"auc_{m}": auc[(k, m)] for m in a.modes}}
                if "loop" in med and "batched" in med:
                    row["ratio_loop_over_batched"] = med["loop"] / med["batched"]
                rows.append(row)
                print(f"{name:20s} {pooling:9s} K={k}  "
                      + "  ".join(f"{m} {med[m]:.3f}" for m in a.modes) + " CPU-s/epoch  "
                      + (f"loop/batched {row['ratio_loop_over_batched']:.2f}x  "
                         if "ratio_loop_over_batched" in row else "")
                      + "test AUC " + " ".join(f"{m} {np.mean(auc[(k, m)]):.3f}" for m in a.modes),
                      flush=True)
    print(f"total CPU {time.process_time() - c_start:.0f} s; load average after: "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    print("\n| set | pooling | K | " + " | ".join(f"{m} CPU-s/epoch" for m in a.modes)
          + " | loop / batched |")
    print("|:--|:--|--:|" + "--:|" * (len(a.modes) + 1))
    for r in rows:
        ratio = r.get("ratio_loop_over_batched")
        print(f"| {r['set']} | {r['pooling']} | {r['K']} | "
              + " | ".join(f"{r[f'{m}_cpu_s_per_epoch']:.3f}" for m in a.modes)
              + f" | {'' if ratio is None else f'{ratio:.2f}×'} |")
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump({"args": vars(a), "rows": rows, "epochs": a.epochs}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
