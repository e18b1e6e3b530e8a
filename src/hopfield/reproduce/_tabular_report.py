"""The tabular benchmark's report: tables, ranks, paired tests over cells, figure.

Part of :mod:`hopfield.reproduce.tabular`: :func:`_report` turns the cells' records into the
markdown report, ``results.csv``, ``tabular.json`` and ``ranks.png``. Absent cells: a skip record
(the method cannot run there by design) is "n/a" and ranks last; a cell not fitted yet leaves its
set (or (set, split) cell) out of the average rank, and the report names it.
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
    """Per-row ranks of a (datasets, methods) score table (higher is better; NaN ranked last).

    The report passes only rows where every method finished or cannot run by design; its NaNs
    are those by-design cells ("n/a"), which rank last. Unfinished cells never reach it: their
    rows are left out of the average and named."""
    from scipy.stats import rankdata

    t = np.where(np.isnan(table), -np.inf, table)
    return np.vstack([rankdata(-r, method="average") for r in t]) if len(t) else t


def _report(out: Path, mode: str, seed: int, methods: tuple[str, ...], rows: list[dict],
            elapsed: float, n_trials: int) -> str:
    methods = list(methods)
    skips = [r for r in rows if r.get("skipped")]  # cells the method cannot run, by design
    rows = [r for r in rows if not r.get("skipped")]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["dataset", "split", "kind", "task", "method", "test", "default_test", "val",
                "seconds", "cpu_seconds", "peak_mb", "best_params", "skipped"])
    for r in rows:
        w.writerow([r["dataset"], r["split"], r["kind"], r["task"], r["method"],
                    f"{r['test']:.6f}", f"{r['default_test']:.6f}", f"{r['val']:.6f}",
                    f"{r['seconds']:.2f}", f"{r.get('cpu_seconds', math.nan):.2f}",
                    f"{r['peak_bytes'] / 2**20:.1f}",
                    json.dumps(r["best_params"]), ""])
    for r in skips:
        w.writerow([r["dataset"], r["split"], r["kind"], r["task"], r["method"]] + [""] * 7
                   + [r["skipped"]])
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
        head = (f"Hopular vs the baselines, every method with its defaults (mode `{mode}`, "
                f"seed {seed})")
    lines = [f"## Tabular: {head}", "", intro, ""]
    summary: dict = {"mode": mode, "seed": seed, "methods": methods, "rows": rows,
                     "skipped": skips, "groups": {}}
    figs = []
    for kind, task in (("small", "classification"), ("mid", "classification"),
                       ("mid", "regression")):
        sel = [r for r in rows if r["kind"] == kind and r["task"] == task]
        skip = [r for r in skips if r["kind"] == kind and r["task"] == task]
        if not sel and not skip:
            continue
        seen = [r["dataset"] for r in sel + skip]
        names = sorted(set(seen), key=seen.index)
        n_splits = len({r["split"] for r in sel + skip})
        # per set: is each method's entry n/a (every cell skipped by design) or unfinished
        # (a split of the set with neither a result nor a skip record)?
        na, unfinished = _absent(sel, skip, names, methods)
        complete = ~unfinished.any(1)
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
            # rank only the sets every method finished (n/a: NaN, ranked last)
            avg = (_ranks(tab[complete]).mean(0) if complete.any() else
                   np.full(len(methods), np.nan))
            secs = [sum(r["seconds"] for r in sel if r["method"] == m) for m in methods]
            # CPU seconds (cells cached before they were recorded count as missing)
            cpus = [sum(r.get("cpu_seconds", math.nan) for r in sel if r["method"] == m)
                    for m in methods]
            peak = [max([r["peak_bytes"] for r in sel if r["method"] == m] or [0]) / 2**20
                    for m in methods]
            label = {"test": "tuned", "default_test": "defaults"}[key]
            splits_all = sorted({r['split'] for r in sel + skip})
            group = ("small UCI sets (splits " + str(splits_all) + ")" if kind == "small"
                     else "mid-size sets")
            title = f"{group}, {task}, {label}"
            left_out = {n: [m for k, m in enumerate(methods) if unfinished[i, k]]
                        for i, n in enumerate(names) if not complete[i]}
            summary["groups"][f"{kind}-{task}-{label}"] = {
                "datasets": names, "scores": tab.tolist(), "average_rank": dict(zip(methods,
                                                                                   avg.tolist())),
                "average_rank_datasets": [n for i, n in enumerate(names) if complete[i]],
                "not_finished": left_out,
                "not_applicable": {n: [m for k, m in enumerate(methods) if na[i, k]]
                                   for i, n in enumerate(names) if na[i].any()},
                "fit_seconds": dict(zip(methods, secs)),
                "fit_cpu_seconds": dict(zip(methods, cpus)),
                "peak_mb": dict(zip(methods, peak))}
            order = np.argsort(avg, kind="stable")
            fmt = ((lambda v: "–" if math.isnan(v) else f"{100 * v:.1f}") if task ==
                   "classification" else (lambda v: "–" if math.isnan(v) else f"{-v:.4f}"))
            lines += [f"**{title}**", "",
                      "| dataset | " + " | ".join(methods[k] for k in order) + " |",
                      "|---|" + "---|" * len(methods)]
            for i, n in enumerate(names):
                best = np.max(tab[i], initial=-np.inf, where=~np.isnan(tab[i]))
                lines.append(f"| {n} | " + " | ".join(
                    "n/a" if na[i, k] else f"**{fmt(tab[i, k])}**" if tab[i, k] == best else
                    fmt(tab[i, k]) for k in order) + " |")
            with warnings.catch_warnings():  # a method with no result in the group: NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.nanmean(tab, 0)
            rank_label = ("**average rank**" if complete.all() else
                          f"**average rank** ({int(complete.sum())} of {len(names)} sets)")
            lines.append(f"| {rank_label} | " + " | ".join(
                "–" if math.isnan(avg[k]) else f"{avg[k]:.2f}" for k in order) + " |")
            lines.append("| mean | " + " | ".join(
                "n/a" if na[:, k].all() else fmt(mean[k]) for k in order) + " |")
            if n_splits > 1:  # per split: mean over the sets; then mean ± std over splits
                by_split = _split_means(sel, methods, key)
                sd = lambda v: (f" ± {100 * np.std(v, ddof=1):.1f}" if len(v) > 1 else
                                " (1 split)")
                lines.append("| mean ± std over splits | " + " | ".join(
                    "–" if not by_split[methods[k]] else
                    fmt(np.mean(by_split[methods[k]])) + sd(by_split[methods[k]])
                    for k in order) + " |")
            if over_cells:
                cell_rank, n_complete, cell_missing = _cell_ranks(sel, methods, key, skip)
                with_na = " or n/a" if skip else ""
                lines.append(f"| average rank over cells ({n_complete} with every method"
                             f"{with_na}) | " + " | ".join(
                                 "–" if math.isnan(cell_rank[k]) else f"{cell_rank[k]:.2f}"
                                 for k in order) + " |")
                n_cells = [sum(r["method"] == m for r in sel) for m in methods]
                n_na = [sum(r["method"] == m for r in skip) for m in methods]
                lines.append("| cells (set × split) | " + " | ".join(
                    str(n_cells[k]) + (f" (+{n_na[k]} n/a)" if n_na[k] else "")
                    for k in order) + " |")
            if key == keys[0]:
                lines.append("| fit time, all trials (s) | " + " | ".join(
                    f"{secs[k]:.0f}" for k in order) + " |")
                lines.append("| fit CPU time, all trials (s) | " + " | ".join(
                    "–" if math.isnan(cpus[k]) else f"{cpus[k]:.0f}" for k in order) + " |")
                lines.append("| peak extra RSS (MB) | " + " | ".join(
                    f"{peak[k]:.0f}" for k in order) + " |")
                figs.append((title, [methods[k] for k in order], avg[order]))
            lines.append("")
            notes = []
            if na.any():
                where = "; ".join(f"{m} on {', '.join(n for i, n in enumerate(names) if na[i, k])}"
                                  for k, m in enumerate(methods) if na[:, k].any())
                notes.append(f"n/a ({where}): the method cannot run there by design ("
                             + "; ".join(sorted({r["skipped"] for r in skip}))
                             + "), ranked last on that set.")
            if left_out:
                nc = int(complete.sum())
                unit = ("set" if nc == 1 else "sets") + ("" if n_splits == 1 else
                                                         " (all their splits)")
                notes.append(f"Average rank over the {nc} {unit} every method finished; not "
                             f"finished: " + ", ".join(
                                 f"{n} ({', '.join(ms)})" for n, ms in left_out.items()) + ".")
            if over_cells and cell_missing:
                notes.append(f"Over cells: {n_complete} of {n_complete + cell_missing['cells']} "
                             f"(set, split) cells ranked; not finished: " + ", ".join(
                                 f"{m} {c} cell{'s' if c != 1 else ''}"
                                 for m, c in cell_missing["by_method"].items()) + ".")
            if notes:
                lines += [" ".join(notes), ""]
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


def _absent(sel: list[dict], skip: list[dict], names: list[str],
            methods: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(datasets, methods) masks: ``na`` — every cell of the method on the set is skipped by
    design; ``unfinished`` — a split of the set (any method's) with neither a result nor a skip
    record for the method (not fitted yet)."""
    splits = {n: set() for n in names}
    have = {}
    for r in sel + skip:
        splits[r["dataset"]].add(r["split"])
        have.setdefault((r["dataset"], r["method"]), set()).add(r["split"])
    skipped = {}
    for r in skip:
        skipped.setdefault((r["dataset"], r["method"]), set()).add(r["split"])
    na = np.array([[bool(skipped.get((n, m))) and skipped[(n, m)] == have[(n, m)]
                    for m in methods] for n in names], dtype=bool).reshape(len(names),
                                                                         len(methods))
    unfinished = np.array([[not splits[n] <= have.get((n, m), set()) for m in methods]
                           for n in names], dtype=bool).reshape(len(names), len(methods))
    return na, unfinished


def _cell_ranks(sel: list[dict], methods: list[str], key: str,
                skip: list[dict] = ()) -> tuple[np.ndarray, int, dict]:
    """Average rank per method over the (dataset, split) cells where every method has a result
    or a skip record (skipped: ranked last; 1 = best, ties averaged), the number of those cells,
    and the cells left out: ``{"cells": n, "by_method": {method: cells it has not finished}}``
    (empty when none)."""
    per = [_cells(sel, m, key) for m in methods]
    na = [{(r["dataset"], r["split"]) for r in skip if r["method"] == m} for m in methods]
    every = set().union(*(set(c) for c in per), *na) if per else set()
    common = sorted(c for c in every if all(c in p or c in s for p, s in zip(per, na)))
    left = len(every) - len(common)
    missing = {}
    if left:
        by = {m: sum(c not in p and c not in s for c in every)
              for m, p, s in zip(methods, per, na)}
        missing = {"cells": left, "by_method": {m: v for m, v in by.items() if v}}
    if not common:
        return np.full(len(methods), np.nan), 0, missing
    tab = np.array([[p.get(cell, np.nan) for p in per] for cell in common])
    return _ranks(tab).mean(0), len(common), missing


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
