"""The tabular benchmark's report: tables, ranks, paired tests over cells, figure.

Part of :mod:`hopfield.reproduce.tabular`: :func:`_report` turns the cells' records into the
markdown report, ``results.csv``, ``tabular.json`` and ``ranks.png``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import warnings
from pathlib import Path

import numpy as np

from .._io import atomic_savefig, atomic_write_text


def _ranks(table: np.ndarray) -> np.ndarray:
    """Per-row ranks of a (datasets, methods) score table (higher is better; NaN = absent,
    ranked last)."""
    from scipy.stats import rankdata

    t = np.where(np.isnan(table), -np.inf, table)
    return np.vstack([rankdata(-r, method="average") for r in t]) if len(t) else t


def _report(out: Path, mode: str, seed: int, methods: tuple[str, ...], rows: list[dict],
            elapsed: float, n_trials: int) -> str:
    methods = list(methods)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["dataset", "split", "kind", "task", "method", "test", "default_test", "val",
                "seconds", "cpu_seconds", "peak_mb", "best_params"])
    for r in rows:
        w.writerow([r["dataset"], r["split"], r["kind"], r["task"], r["method"],
                    f"{r['test']:.6f}", f"{r['default_test']:.6f}", f"{r['val']:.6f}",
                    f"{r['seconds']:.2f}", f"{r.get('cpu_seconds', math.nan):.2f}",
                    f"{r['peak_bytes'] / 2**20:.1f}",
                    json.dumps(r["best_params"])])
    atomic_write_text(out / "results.csv", buf.getvalue())
    intro = (f"Every method: {n_trials} Optuna trial(s) on the validation rows, the first being "
             f"its defaults; test score of the best-validation trial ('tuned') and of the "
             f"defaults trial ('defaults'). Accuracy in %, RMSE on the target's scale "
             f"(log10 price for ames and diamonds); rank 1 = best.")
    head = f"Hopular vs tuned baselines (mode `{mode}`, seed {seed})"
    if n_trials == 1:  # the defaults only: no tuning, no "tuned" table
        intro = ("Every method with its defaults, fitted once per cell on the training rows "
                 "(no tuning, so the split's validation rows are not used; methods that stop "
                 "early hold out part of the training rows themselves); test accuracy in % "
                 "(RMSE for regression); rank 1 = best.")
        head = f"Hopular vs the baselines, every method with its defaults (mode `{mode}`, seed {seed})"
    lines = [f"## Tabular: {head}", "", intro, ""]
    summary: dict = {"mode": mode, "seed": seed, "methods": methods, "rows": rows, "groups": {}}
    figs = []
    for kind, task in (("small", "classification"), ("mid", "classification"),
                       ("mid", "regression")):
        sel = [r for r in rows if r["kind"] == kind and r["task"] == task]
        if not sel:
            continue
        names = sorted({r["dataset"] for r in sel}, key=lambda s: [r["dataset"] for r in
                                                                   sel].index(s))
        n_splits = len({r["split"] for r in sel})
        # the protocol modes (and any run with several splits) also compare over cells: ranks
        # over the cells every method has, cell counts, paired tests (quick/smoke: one split,
        # a demo, unchanged)
        over_cells = n_splits > 1 or mode in ("full", "defaults")
        # one trial = the defaults: the "tuned" table would repeat the "defaults" table
        keys = ("default_test",) if n_trials == 1 else ("test", "default_test")
        for key in keys:
            tab = np.full((len(names), len(methods)), np.nan)
            cnt = np.zeros_like(tab)
            for r in sel:
                i, k = names.index(r["dataset"]), methods.index(r["method"])
                tab[i, k] = (0 if cnt[i, k] == 0 else tab[i, k]) + r[key]
                cnt[i, k] += 1
            tab = tab / np.where(cnt > 0, cnt, 1)
            ranks = _ranks(tab)
            avg = ranks.mean(0) if len(ranks) else np.zeros(len(methods))
            secs = [sum(r["seconds"] for r in sel if r["method"] == m) for m in methods]
            # CPU seconds (cells cached before they were recorded count as missing)
            cpus = [sum(r.get("cpu_seconds", math.nan) for r in sel if r["method"] == m)
                    for m in methods]
            peak = [max([r["peak_bytes"] for r in sel if r["method"] == m] or [0]) / 2**20
                    for m in methods]
            label = {"test": "tuned", "default_test": "defaults"}[key]
            title = (f"{'small UCI sets (splits ' + str(sorted({r['split'] for r in sel})) + ')' if kind == 'small' else 'mid-size sets'}"
                     f", {task}, {label}")
            summary["groups"][f"{kind}-{task}-{label}"] = {
                "datasets": names, "scores": tab.tolist(), "average_rank": dict(zip(methods,
                                                                                   avg.tolist())),
                "fit_seconds": dict(zip(methods, secs)), "fit_cpu_seconds": dict(zip(methods, cpus)),
                "peak_mb": dict(zip(methods, peak))}
            order = np.argsort(avg, kind="stable")
            fmt = ((lambda v: "–" if math.isnan(v) else f"{100 * v:.1f}") if task ==
                   "classification" else (lambda v: "–" if math.isnan(v) else f"{-v:.4f}"))
            lines += [f"**{title}**", "",
                      "| dataset | " + " | ".join(methods[k] for k in order) + " |",
                      "|---|" + "---|" * len(methods)]
            for i, n in enumerate(names):
                best = np.nanmax(tab[i])
                lines.append(f"| {n} | " + " | ".join(
                    (f"**{fmt(tab[i, k])}**" if tab[i, k] == best else fmt(tab[i, k]))
                    for k in order) + " |")
            mean = np.nanmean(tab, 0)
            lines.append("| **average rank** | " + " | ".join(f"{avg[k]:.2f}" for k in order)
                         + " |")
            lines.append("| mean | " + " | ".join(fmt(mean[k]) for k in order) + " |")
            if n_splits > 1:  # per split: mean over the sets; then mean ± std over splits
                by_split = _split_means(sel, methods, key)
                sd = lambda v: (f" ± {100 * np.std(v, ddof=1):.1f}" if len(v) > 1 else
                                " (1 split)")
                lines.append("| mean ± std over splits | " + " | ".join(
                    "–" if not by_split[methods[k]] else
                    fmt(np.mean(by_split[methods[k]])) + sd(by_split[methods[k]])
                    for k in order) + " |")
            if over_cells:
                cell_rank, n_complete = _cell_ranks(sel, methods, key)
                lines.append(f"| average rank over cells ({n_complete} with every method) | "
                             + " | ".join(f"{cell_rank[k]:.2f}" for k in order) + " |")
                n_cells = [sum(r["method"] == m for r in sel) for m in methods]
                lines.append("| cells (set × split) | " + " | ".join(
                    str(n_cells[k]) for k in order) + " |")
            if key == keys[0]:
                lines.append("| fit time, all trials (s) | " + " | ".join(
                    f"{secs[k]:.0f}" for k in order) + " |")
                lines.append("| fit CPU time, all trials (s) | " + " | ".join(
                    "–" if math.isnan(cpus[k]) else f"{cpus[k]:.0f}" for k in order) + " |")
                lines.append("| peak extra RSS (MB) | " + " | ".join(
                    f"{peak[k]:.0f}" for k in order) + " |")
                figs.append((title, [methods[k] for k in order], avg[order]))
            lines.append("")
            if over_cells and task == "classification":
                ref, paired = _paired(sel, methods, key)
                if paired:
                    summary["groups"][f"{kind}-{task}-{label}"]["paired_vs"] = {
                        "reference": ref, "rows": paired}
                    lines += _paired_lines(ref, paired, label, n_splits)
    atomic_write_text(out / "tabular.json", json.dumps(summary, indent=1))
    if figs:
        _plot(out, figs)
        lines.append("![ranks](tabular/ranks.png)")
    cpu = sum(r.get("cpu_seconds", math.nan) for r in rows)
    tail = (f"Files: `tabular/results.csv`, `tabular/tabular.json`. Wall time of this "
            f"invocation {elapsed:.0f} s (cached cells are not recomputed); CPU time of all "
            f"fits {'–' if math.isnan(cpu) else f'{cpu:.0f} s'}.")
    lines += ["", tail, ""]
    return "\n".join(lines)


def _cells(sel: list[dict], method: str, key: str) -> dict:
    """(dataset, split) -> score of ``method`` in the group's rows."""
    return {(r["dataset"], r["split"]): r[key] for r in sel if r["method"] == method}


def _split_means(sel: list[dict], methods: list[str], key: str) -> dict:
    """method -> [mean over the sets of split j, for each split j the method has cells of]."""
    out = {}
    for m in methods:
        c = _cells(sel, m, key)
        out[m] = [float(np.mean([v for (_, j), v in c.items() if j == s]))
                  for s in sorted({j for _, j in c})]
    return out


def _cell_ranks(sel: list[dict], methods: list[str], key: str) -> tuple[np.ndarray, int]:
    """Average rank per method over the (dataset, split) cells every method has (1 = best, ties
    averaged), and the number of those cells."""
    per = [_cells(sel, m, key) for m in methods]
    common = sorted(set.intersection(*(set(c) for c in per))) if per else []
    if not common:
        return np.full(len(methods), np.nan), 0
    tab = np.array([[c[cell] for c in per] for cell in common])
    return _ranks(tab).mean(0), len(common)


def _paired(sel: list[dict], methods: list[str], key: str) -> tuple[str | None, list[dict]]:
    """Paired comparison over (dataset, split) cells of every method against the reference
    (``hopular`` if it has cells, else ``rf``): mean difference reference − method, cells where
    the reference is better / tied / worse, two-sided Wilcoxon signed-rank and paired t p-values
    (NaN when every difference is 0 or fewer than 2 cells are shared)."""
    from scipy.stats import ttest_rel, wilcoxon

    ref = next((m for m in ("hopular", "rf") if m in methods and _cells(sel, m, key)), None)
    if ref is None:
        return None, []
    a = _cells(sel, ref, key)
    rows = []
    for m in methods:
        b = _cells(sel, m, key)
        common = sorted(set(a) & set(b))
        if m == ref or not common:
            continue
        x, y = np.array([a[c] for c in common]), np.array([b[c] for c in common])
        d = x - y
        p_w = p_t = math.nan
        if len(d) >= 2 and np.any(d != 0):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                p_w = float(wilcoxon(x, y).pvalue)
                p_t = float(ttest_rel(x, y).pvalue)
        rows.append({"method": m, "cells": len(common), "reference_mean": float(x.mean()),
                     "method_mean": float(y.mean()), "difference": float(d.mean()),
                     "better": int((d > 0).sum()), "tie": int((d == 0).sum()),
                     "worse": int((d < 0).sum()), "wilcoxon_p": p_w, "ttest_p": p_t})
    return ref, rows


def _paired_lines(ref: str, rows: list[dict], label: str, n_splits: int) -> list[str]:
    p = lambda v: "–" if math.isnan(v) else (f"{v:.2g}" if v < 0.001 else f"{v:.3f}")
    title = (f"**Paired over cells (set × split, {n_splits} split{'s' if n_splits > 1 else ''}), "
             f"{label}: {ref} vs every "
             f"method** — Δ = {ref} − method in accuracy points, mean over the cells both have; "
             f"two-sided Wilcoxon signed-rank and paired t tests.")
    header = (f"| {ref} vs | cells | {ref} | method | Δ | {ref} better / tie / worse | "
              f"Wilcoxon p | paired t p |")
    lines = [title, "", header, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['cells']} | {100 * r['reference_mean']:.1f} | "
                     f"{100 * r['method_mean']:.1f} | {100 * r['difference']:+.2f} | "
                     f"{r['better']} / {r['tie']} / {r['worse']} | {p(r['wilcoxon_p'])} | "
                     f"{p(r['ttest_p'])} |")
    return lines + [""]


def _plot(out: Path, figs: list) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(figs), figsize=(4.2 * len(figs), 3.6), squeeze=False)
    for ax, (title, names, avg) in zip(axes[0], figs):
        colors = ["tab:red" if n == "hopular" else "tab:blue" for n in names]
        ax.barh(names[::-1], avg[::-1], color=colors[::-1])
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("average rank (lower is better)")
    fig.tight_layout()
    atomic_savefig(fig, out / "ranks.png", dpi=110)
    plt.close("all")
