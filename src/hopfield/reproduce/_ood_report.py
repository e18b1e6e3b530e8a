"""Summary, plots and the Markdown report of the OOD benchmark (:mod:`hopfield.reproduce.ood`)."""

from __future__ import annotations

import csv
import io

import numpy as np

from .._io import atomic_savefig, atomic_write_json, atomic_write_text
from .report import markdown_table


def summarize(rows, names):
    """set -> method -> {auroc: (mean, std), fpr95: (mean, std), n}; percentages."""
    from .ood import METHODS  # at call time: ood imports this module
    table = {}
    for n in names:
        table[n] = {}
        for m in METHODS:
            rs = [r["methods"][m] for r in rows if r["set"] == n and m in r["methods"]]
            if not rs:
                continue
            a = 100 * np.array([r["auroc"] for r in rs])
            f = 100 * np.array([r["fpr95"] for r in rs])
            table[n][m] = {"auroc": (float(a.mean()), float(a.std())),
                           "fpr95": (float(f.mean()), float(f.std())), "n": len(rs)}
    return table


def _plots(out, rows, names):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    firsts = {n: next(r for r in rows if r["set"] == n and "scores_in" in
                      next(iter(r["methods"].values()))) for n in names}
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3), squeeze=False)
    for ax, n in zip(axes[0], names):
        m = firsts[n]["methods"]["hopfield"]
        lo = min(min(m["scores_in"]), min(m["scores_out"]))
        hi = max(max(m["scores_in"]), max(m["scores_out"]))
        bins = np.linspace(lo, hi, 40)
        ax.hist(m["scores_in"], bins, alpha=0.6, density=True, label="ID test")
        ax.hist(m["scores_out"], bins, alpha=0.6, density=True, label="OOD")
        ax.set_title(n, fontsize=9)
        ax.set_xlabel("−E (Hopfield score)")
    axes[0][0].legend(fontsize=7)
    atomic_savefig(fig, out / "hist.png")
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.3), squeeze=False)
    for ax, n in zip(axes[0], names):
        for m, v in firsts[n]["methods"].items():
            y = np.r_[np.ones(len(v["scores_in"])), np.zeros(len(v["scores_out"]))]
            fpr, tpr, _ = roc_curve(y, np.r_[v["scores_in"], v["scores_out"]])
            ax.plot(fpr, tpr, lw=1.8 if m.startswith("hopfield") else 1,
                    label=f"{m} {100 * v['auroc']:.1f}")
        ax.plot([0, 1], [0, 1], "k:", lw=0.6)
        ax.set_title(n, fontsize=9)
        ax.set_xlabel("FPR (OOD accepted)")
        ax.legend(fontsize=6, loc="lower right")
    axes[0][0].set_ylabel("TPR (ID accepted)")
    atomic_savefig(fig, out / "roc.png")
    plt.close("all")


def _report(out, mode, seed, names, rows, boost, elapsed, cpu) -> str:
    from .ood import BOOST, METHODS, PROTOCOLS, SETS  # at call time: ood imports this module
    table = summarize(rows, names)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["set", "seed", "method", "auroc", "fpr95", "seconds", "n_train", "n_test_in",
                "n_out", "dim"])
    for r in sorted(rows, key=lambda r: (r["set"], r["seed"])):
        for m, v in r["methods"].items():
            w.writerow([r["set"], r["seed"], m, f"{v['auroc']:.6f}", f"{v['fpr95']:.6f}",
                        f"{v['seconds']:.3f}", r["n_train"], r["n_test_in"], r["n_out"], r["dim"]])
    atomic_write_text(out / "results.csv", buf.getvalue())
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["set", "method", "auroc_mean", "auroc_std", "fpr95_mean", "fpr95_std", "n_seeds"])
    for n in names:
        for m, v in table[n].items():
            w.writerow([n, m, *(f"{x:.2f}" for x in (*v["auroc"], *v["fpr95"])), v["n"]])
    atomic_write_text(out / "summary.csv", buf.getvalue())
    bsum = {}
    if boost:
        keys = [k for k in boost[0] if k != "seed"]
        for k in keys:
            if k.endswith("accuracy"):
                vals = 100 * np.array([b[k] for b in boost])
                bsum[k] = {"mean": float(vals.mean()), "std": float(vals.std())}
            else:
                bsum[k] = {x: (float(100 * np.mean([b[k][x] for b in boost])),
                               float(100 * np.std([b[k][x] for b in boost])))
                           for x in ("auroc", "fpr95")}
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["seed", "variant", "scoring", "auroc", "fpr95", "accuracy"])
        for b in boost:
            for k, v in b.items():
                if "/" in k and not k.endswith("accuracy"):
                    var, sco = k.split("/")
                    w.writerow([b["seed"], var, sco, f"{v['auroc']:.6f}", f"{v['fpr95']:.6f}",
                                f"{b[var + '/accuracy']:.4f}"])
        atomic_write_text(out / "boosting.csv", buf.getvalue())
    slim = [{**r, "methods": {m: {k: x for k, x in v.items() if not k.startswith("scores")}
                              for m, v in r["methods"].items()}} for r in rows]
    atomic_write_json(out / "ood.json", {"mode": mode, "seed": seed, "protocol": PROTOCOLS[mode],
                                         "sets": list(names), "summary": table, "boosting": bsum,
                                         "results": slim, "boosting_runs": boost,
                                         "seconds": elapsed, "cpu_seconds": cpu}, sort_keys=True)
    _plots(out, rows, names)

    header = ["set"] + [METHODS[m] for m in METHODS]
    body_a, body_f, verdict = [], [], []
    for n in names:
        best = max(v["auroc"][0] for v in table[n].values())
        best_base = max((v["auroc"][0] for m, v in table[n].items()
                         if not m.startswith("hopfield")), default=float("nan"))
        best_fpr = min(v["fpr95"][0] for v in table[n].values())
        ra, rf = [SETS[n]], [SETS[n]]
        for m in METHODS:
            v = table[n].get(m)
            if v is None:
                ra.append("n/a")
                rf.append("n/a")
                continue
            ca = f"{v['auroc'][0]:.1f} ± {v['auroc'][1]:.1f}"
            cf = f"{v['fpr95'][0]:.1f} ± {v['fpr95'][1]:.1f}"
            ra.append(f"**{ca}**" if v["auroc"][0] == best else ca)
            rf.append(f"**{cf}**" if v["fpr95"][0] == best_fpr else cf)
        body_a.append(ra)
        body_f.append(rf)
        hop = max(table[n][m]["auroc"][0] for m in ("hopfield", "hopfield_class")
                  if m in table[n])
        gap = hop - best_base
        verdict.append(f"{n}: best Hopfield − best baseline = {gap:+.1f} AUROC points "
                       f"({'met' if gap >= -1.0 else 'missed'})")
    lines = [
        "## Out-of-distribution detection (AUROC %, FPR@95 %TPR %)", "",
        (f"Mode `{mode}`, seed {seed}: {PROTOCOLS[mode]['seeds']} split seed(s); ID rows split "
        "70/30, every method fitted on the ID training rows; ± is the std over split seeds. "
        f"Best per set in bold. This invocation: {elapsed / 60:.1f} min wall, {cpu / 60:.1f} min "
        "CPU (single-threaded torch; cached results are not recomputed)."), "",
        "AUROC (higher is better):", "", markdown_table(header, body_a), "",
        "FPR at 95 % TPR (lower is better):", "", markdown_table(header, body_f), "",
        "Target (Hopfield within 1 AUROC point of the best baseline): "
        + "; ".join(verdict) + ".", "",
    ]
    if bsum:
        bh = ["encoder", "accuracy ID %", "AUROC (ID memory)", "FPR@95 (ID memory)",
              "AUROC (+aux memory)", "FPR@95 (+aux memory)"]
        bb = []
        for var in ("plain", "boosted_photo", "boosted_digits"):
            acc = bsum[f"{var}/accuracy"]
            r = [var, f"{acc['mean']:.1f} ± {acc['std']:.1f}"]
            for sco in ("id_memory", "with_aux"):
                v = bsum[f"{var}/{sco}"]
                r += [f"{v['auroc'][0]:.1f} ± {v['auroc'][1]:.1f}",
                      f"{v['fpr95'][0]:.1f} ± {v['fpr95'][1]:.1f}"]
            bb.append(r)
        lines += [("Hopfield Boosting on digits (the same MLP and seed; OOD = digits 5–9, never "
                  "seen in training; auxiliary outliers: `photo` = 8×8 patches of scikit-learn's "
                  "sample photographs, `digits` = flipped, rotated and blended ID training digits; "
                  "the +aux columns score with the auxiliary memory, for `plain` the digits "
                  f"set; boosting β = {BOOST['beta']}, weight {BOOST['weight']}):"), "",
                  markdown_table(bh, bb), ""]
    lines += ["![score histograms](ood/hist.png)", "", "![ROC curves](ood/roc.png)", "",
              ("Files: `ood/results.csv`, `ood/summary.csv`, `ood/boosting.csv`, `ood/ood.json`, "
              "`ood/hist.png`, `ood/roc.png`."), ""]
    return "\n".join(lines)
