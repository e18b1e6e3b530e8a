"""Figures of the MIL report: ROC AUC per set and method, instance association weights.

Part of :mod:`hopfield.reproduce.mil` (``auc.png``, ``instance_weights.png``; written atomically).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._io import atomic_savefig


def _plot_weights(out: Path, rec: dict, name: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    cols = max(1, len(rec["correct"]), len(rec["wrong"]))
    fig, axes = plt.subplots(2, cols, figsize=(2.6 * cols, 4.6), squeeze=False)
    for row, kind in enumerate(("correct", "wrong")):
        for c in range(cols):
            ax = axes[row][c]
            if c >= len(rec[kind]):
                ax.axis("off")
                if c == 0:
                    ax.text(0.5, 0.5, f"no {kind}ly classified test bag", ha="center", va="center",
                            transform=ax.transAxes, fontsize=8)
                continue
            b = rec[kind][c]
            wts = np.asarray(b["weights"])
            ax.bar(np.arange(len(wts)), wts, color="tab:green" if kind == "correct" else "tab:red")
            # uniform weight = mean pooling
            ax.axhline(1 / len(wts), color="k", lw=0.7, ls="--")
            ax.set_title(f"bag {b['bag_id']:g}: y={b['label']}, p(1)={b['p_positive']:.2f}",
                         fontsize=8)
            ax.set_xlabel("instance", fontsize=7)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.tick_params(labelsize=6)
            if c == 0:
                ax.set_ylabel(f"{kind}\nassociation weight", fontsize=8)
    fig.suptitle(f"{name}: Hopfield pooling instance weights (test bags of repeat 0, fold "
                 f"{rec.get('fold', 0)}; dashed = uniform 1/n)", fontsize=9)
    fig.tight_layout()
    atomic_savefig(fig, out / "instance_weights.png")
    plt.close(fig)


def _plot(out: Path, table, names, methods, labels: dict[str, str], paper: dict) -> None:
    """``auc.png``: mean ± std ROC AUC per set (bars per method, ``labels``), ``paper`` dashed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.9 * len(names) + 3, 4))
    w = 0.8 / len(methods)
    x = np.arange(len(names))
    for k, m in enumerate(methods):
        mu = [table[n][m][0] for n in names]
        sd = [table[n][m][1] for n in names]
        ax.bar(x + (k - (len(methods) - 1) / 2) * w, mu, w, yerr=sd, capsize=2, label=labels[m])
    for i, n in enumerate(names):
        if paper.get(n):
            ax.hlines(paper[n][0], i - 0.42, i + 0.42, colors="k", linestyles="--",
                      label="paper (Hopfield)" if i == 0 or "paper (Hopfield)" not in
                      ax.get_legend_handles_labels()[1] else None)
    ax.set_xticks(x, names)
    lo = min(min(table[n][m][0] - table[n][m][1] for m in methods) for n in names)
    ax.set_ylim(max(0, lo - 5), 100)
    ax.set_ylabel("ROC AUC (%)")
    ax.set_title("MIL: ROC AUC on the same folds")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    atomic_savefig(fig, out / "auc.png")
    plt.close(fig)
