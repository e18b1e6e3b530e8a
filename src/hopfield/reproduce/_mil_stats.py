"""Statistics of the MIL report: per-set summaries, paired tests over outer folds, fit times.

Part of :mod:`hopfield.reproduce.mil`. Every function takes the fold records (one dict per
(dataset, repeat, fold, method) with its ``auc``) and returns plain numbers: :func:`summarize`
(mean ± std per set and method), :func:`corrected_ttest` (Nadeau–Bengio corrected resampled
t-test) and :func:`wilcoxon_p` on paired fold differences, :func:`compare` (every method against
a reference on the same folds), :func:`fit_times` (summed per-fold wall / CPU seconds).
"""

from __future__ import annotations

import numpy as np

from .report import markdown_table


def summarize(rows: list[dict], names, methods) -> dict[str, dict[str, tuple[float, float, int]]]:
    """dataset -> method -> (mean AUC %, std %, n folds): std over repeat means, or folds if 1
    repeat."""
    table: dict[str, dict] = {}
    for n in names:
        table[n] = {}
        for m in methods:
            rs = [r for r in rows if r["dataset"] == n and r["method"] == m]
            reps = sorted({r["repeat"] for r in rs})
            if len(reps) > 1:
                vals = [np.mean([r["auc"] for r in rs if r["repeat"] == k]) for k in reps]
            else:
                vals = [r["auc"] for r in rs]
            table[n][m] = (100 * float(np.mean(vals)), 100 * float(np.std(vals)), len(rs))
    return table


def corrected_ttest(diff, test_train_ratio: float) -> tuple[float, float]:
    """Nadeau & Bengio (2003) corrected resampled t-test of paired differences; returns (t, p).

    ``diff`` holds one difference per outer fold (J = len(diff) folds over all repeats), e.g.
    AUC(method) − AUC(reference) on the same fold. The variance of the mean is corrected for the
    overlap of the training sets: ``t = mean(d) / sqrt((1/J + n_test/n_train) · var(d, ddof=1))``
    with J − 1 degrees of freedom; ``p`` is two-sided. For k-fold CV, ``n_test/n_train = 1/(k−1)``.
    With ``test_train_ratio=0`` this is the ordinary paired t-test. All differences equal: p = 1 if
    they are 0, else 0.
    """
    from scipy import stats

    d = np.asarray(diff, dtype=np.float64)
    if d.ndim != 1 or d.size < 2 or not np.isfinite(d).all():
        raise ValueError(f"diff must be a 1-D array of at least 2 finite values, got {d!r}")
    if not np.isfinite(test_train_ratio) or test_train_ratio < 0:
        raise ValueError(f"test_train_ratio must be a finite float >= 0, got {test_train_ratio!r}")
    mean, var = float(d.mean()), float(d.var(ddof=1))
    if var <= 1e-300:
        return (0.0, 1.0) if abs(mean) <= 1e-300 else (float(np.copysign(np.inf, mean)), 0.0)
    t = mean / np.sqrt((1.0 / d.size + test_train_ratio) * var)
    return float(t), float(2 * stats.t.sf(abs(t), d.size - 1))


def wilcoxon_p(diff) -> float:
    """Two-sided Wilcoxon signed-rank p of paired differences (exact for small samples; zeros are
    dropped; 1.0 if every difference is 0). With 5 folds the smallest possible p is 2/2⁵ =
    0.0625."""
    from scipy import stats

    d = np.asarray(diff, dtype=np.float64)
    if not np.any(d != 0):
        return 1.0
    return float(stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)


def compare(rows: list[dict], names, methods, *, folds: int, reference: str = "hopfield",
            alpha: float = 0.05) -> dict[str, dict[str, dict]]:
    """Paired comparison of every method with ``reference`` on the same outer folds.

    dataset -> method -> {"delta": mean of AUC(method) − AUC(reference) in %, "t", "p" (corrected
    resampled t-test, n_test/n_train = 1/(folds−1)), "p_wilcoxon", "n" (paired folds),
    "outcome" for the reference: "win" (reference significantly better at ``alpha``), "loss"
    (significantly worse) or "tie"}. Folds are paired by (repeat, fold); unpaired folds are skipped.
    """
    out: dict[str, dict] = {}
    for n in names:
        out[n] = {}
        ref = {(r["repeat"], r["fold"]): r["auc"] for r in rows
               if r["dataset"] == n and r["method"] == reference}
        for m in methods:
            if m == reference:
                continue
            other = {(r["repeat"], r["fold"]): r["auc"] for r in rows
                     if r["dataset"] == n and r["method"] == m}
            keys = sorted(set(ref) & set(other))
            d = np.array([other[k] - ref[k] for k in keys])
            if len(d) < 2:
                out[n][m] = {"delta": float("nan"), "t": float("nan"), "p": float("nan"),
                             "p_wilcoxon": float("nan"), "n": len(d), "outcome": "n/a"}
                continue
            t, p = corrected_ttest(d, 1.0 / (folds - 1))
            delta = 100 * float(d.mean())
            outcome = "tie" if not p < alpha else ("loss" if delta > 0 else "win")
            out[n][m] = {"delta": delta, "t": t, "p": p, "p_wilcoxon": wilcoxon_p(d), "n": len(d),
                         "outcome": outcome}
    return out


def _finite_or_none(obj):
    """Strict-JSON copy of nested dicts: NaN/inf floats become None."""
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def fit_times(rows: list[dict], names) -> dict[str, tuple[int, float, float | None]]:
    """dataset -> (n folds, summed wall seconds, summed CPU seconds or None if a record lacks it).

    The sums are over the per-fold records (``seconds``, ``cpu_seconds``), i.e. the time each fold
    took when it was computed, possibly by an earlier run; a ``"total"`` entry sums all datasets."""
    out: dict[str, tuple[int, float, float | None]] = {}
    for n in [*names, "total"]:
        rs = [r for r in rows if n == "total" or r["dataset"] == n]
        cpus = [r.get("cpu_seconds") for r in rs]
        out[n] = (len(rs), float(sum(r["seconds"] for r in rs)),
                  None if any(c is None for c in cpus) else float(sum(cpus)))
    return out


def _fit_time_lines(rows, names) -> list[str]:
    ft = fit_times(rows, names)
    fmt = lambda v: "n/a" if v is None else f"{v / 60:.1f}"
    body = [[n if n != "total" else "**all**", str(k), fmt(w), fmt(c)]
            for n, (k, w, c) in ft.items()]
    return [
        ("Fit time behind this table: the sums of the per-fold records (each fold as timed when "
         "it was computed, possibly by an earlier run; one process, single-threaded torch; on a "
         "loaded machine wall exceeds CPU, and sets run in parallel processes overlap in wall "
         "time)."), "",
        markdown_table(["dataset", "fits", "wall (min, summed)", "CPU (min, summed)"], body), ""]
