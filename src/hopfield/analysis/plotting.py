"""Figures of the head analysis (matplotlib, Agg backend, PNG written atomically).

The plotting functions only draw numbers that the analysis functions computed; tests check those
numbers, and these functions return the arrays they drew so tests can check them too.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from .._io import atomic_savefig as save_figure
from .metastable import CLASS_NAMES
from .transformer import HeadReport

__all__ = [
    "CLASS_COLORS",
    "plot_beta_sweep",
    "plot_capacity",
    "plot_class_composition",
    "plot_head_heatmap",
    "plot_success_curves",
    "plot_theorem5",
]

# Class I (global averaging) ... IV (single pattern), the colours of the paper's figure order.
CLASS_COLORS = ("#4c72b0", "#55a868", "#dd8452", "#c44e52")


def plot_head_heatmap(report: HeadReport, path: str | os.PathLike, *,
                      title: str | None = None) -> np.ndarray:
    """Layer × head heat map of log2(k̄/N), annotated with k̄ and the class. Returns the grid."""
    grid = np.log2(np.clip(report.ratio, 1e-6, None))  # (layers, heads)
    fig, ax = plt.subplots(figsize=(1.0 + 0.62 * report.n_heads, 1.2 + 0.55 * report.n_layers))
    im = ax.imshow(grid, cmap="viridis", vmin=-7, vmax=0, aspect="auto")
    for li in range(report.n_layers):
        for h in range(report.n_heads):
            txt = f"{report.k_bar[li, h]:.0f}\n{CLASS_NAMES[int(report.classes[li, h])]}"
            ax.text(h, li, txt, ha="center", va="center", fontsize=7,
                    color="white" if grid[li, h] < -3.5 else "black")
    ax.set_xticks(range(report.n_heads), [str(h + 1) for h in range(report.n_heads)])
    ax.set_yticks(range(report.n_layers), [str(li + 1) for li in range(report.n_layers)])
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    cbar = fig.colorbar(im, ax=ax, fraction=0.04)
    cbar.set_label("log2 median(k / N)")
    for b in (np.log2(1 / 2), np.log2(1 / 8), np.log2(1 / 32)):
        cbar.ax.axhline(b, color="red", lw=1)
    ax.set_title(title or f"k̄ and class per head (median N = {report.n_median:.0f} tokens, "
                 f"{report.n_sequences} texts)", fontsize=9)
    save_figure(fig, Path(path))
    return grid


def plot_class_composition(report: HeadReport, path: str | os.PathLike, *,
                           title: str | None = None) -> np.ndarray:
    """Stacked bars: share of heads of class I..IV in each layer (as in the paper). Returns it."""
    counts = report.class_counts.astype(float)  # (layers, 4)
    share = counts / counts.sum(1, keepdims=True)
    fig, ax = plt.subplots(figsize=(1.5 + 0.7 * report.n_layers, 3.4))
    x = np.arange(1, report.n_layers + 1)
    bottom = np.zeros(report.n_layers)
    for c in range(4):
        ax.bar(x, share[:, c], bottom=bottom, color=CLASS_COLORS[c],
               label=f"class {CLASS_NAMES[c]}")
        bottom += share[:, c]
    ax.set_xticks(x)
    ax.set_xlabel("layer")
    ax.set_ylabel("share of heads")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(title or "heads per class: I global, II/III metastable, IV single", fontsize=9)
    save_figure(fig, Path(path))
    return share


# ----------------------------------------------------------------------------- capacity

_PANELS = (("classical (Hebbian ●, Storkey ■)", ("hebbian", "storkey"), "linear"),
           ("polynomial DAM", ("polynomial",), "loglog"),
           ("exponential DAM", ("exponential",), "logy"),
           ("modern Hopfield", ("modern",), "logy"))
_NOISE_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")
_BETA_COLORS = ("#9467bd", "#8c564b", "#e377c2", "#17becf")


def plot_capacity(curves: list, path: str | os.PathLike) -> dict[str, list[tuple]]:
    """Measured capacity N* against D (markers) and theory (lines) in four panels.

    Open markers are censored (every N of the grid succeeded: N* ≥ the marker). Returns, per
    panel title, the plotted points (memory, D, noise, N*, theory).
    """
    curves = [c for c in curves if getattr(c, "corruption", "flip") == "flip"]  # masks: see
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5))                         # success curves
    drawn: dict[str, list[tuple]] = {}
    noises = sorted({c.noise for c in curves})
    for ax, (title, kinds, scale) in zip(axes.ravel(), _PANELS):
        pts = [c for c in curves if c.meta.get("kind") in kinds]
        drawn[title] = [(c.memory, c.dim, c.noise, c.capacity, c.meta["theory"]) for c in pts]
        names = sorted({c.memory for c in pts})
        for c in pts:
            ni = noises.index(c.noise)
            jitter = 1.0
            if kinds == ("modern",):
                color = _BETA_COLORS[names.index(c.memory) % 4]
                marker = ("o", "s", "^")[ni % 3]
                jitter = 1.0 + 0.04 * (names.index(c.memory) - 1)  # keep the β's apart
            else:
                color = _NOISE_COLORS[ni % 4]
                marker = "s" if c.memory == "storkey" else "o"
            ax.plot(c.dim * jitter, max(c.capacity, 0.8), marker=marker, ls="none", ms=6,
                    color=color, mfc="none" if c.meta.get("censored") else color)
        for name in names:  # theory lines
            for rho in noises if kinds == ("exponential",) else noises[:1]:
                sel = sorted((c.dim, c.meta["theory"]) for c in pts
                             if c.memory == name and c.noise == rho)
                if not sel:
                    continue
                d, t = zip(*sel)
                if kinds == ("modern",):
                    color, lab = _BETA_COLORS[names.index(name) % 4], f"Thm 3 bound, {name}"
                elif kinds == ("exponential",):
                    color = _NOISE_COLORS[noises.index(rho) % 4]
                    lab = f"exp(D·I(1−2ρ)/2), ρ={rho:g}"
                else:
                    color = "k"
                    lab = {"hebbian": "0.138·D", "storkey": "D/√(2 ln D)"}.get(
                        name, "D^(n−1)/(2(2n−3)!! ln D)")
                ax.plot(d, t, ls=":" if name == "storkey" else "--", color=color, label=lab)
        for ni, rho in enumerate(noises):
            if kinds == ("modern",):
                ax.plot([], [], marker=("o", "s", "^")[ni % 3], ls="none", color="gray",
                        label=f"measured, ρ={rho:g}")
            else:
                ax.plot([], [], marker="o", ls="none", color=_NOISE_COLORS[ni % 4],
                        label=f"measured, ρ={rho:g}")
        if scale in ("loglog", "logy"):
            ax.set_yscale("log")
        if scale == "loglog":
            ax.set_xscale("log")
        dims = sorted({c.dim for c in pts})
        ax.set_xticks(dims, [str(d) for d in dims])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("dimension D")
        ax.set_ylabel("capacity N*")
        ax.legend(fontsize=6.5)
    fig.suptitle("capacity: largest N with ≥ 50 % of queries retrieved (overlap ≥ 0.95); "
                 "ρ = flipped fraction; open = ≥ grid max", fontsize=9)
    fig.tight_layout()
    save_figure(fig, Path(path))
    return drawn


def plot_success_curves(curves: list, path: str | os.PathLike) -> None:
    """Success rate against N for every memory (one panel each), lines per D and noise."""
    names = list(dict.fromkeys(c.memory for c in curves))
    cols = 4
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    levels = sorted({(getattr(c, "corruption", "flip"), c.noise) for c in curves},
                    key=lambda t: (t[0] != "flip", t[1]))
    styles = ("-", "--", ":", "-.", (0, (1, 1)), (0, (5, 1, 1, 1)))
    for ax, name in zip(axes.ravel(), names):
        pts = [c for c in curves if c.memory == name]
        dims = sorted({c.dim for c in pts})
        for c in pts:
            color = plt.cm.viridis(dims.index(c.dim) / max(1, len(dims) - 1))
            lev = (getattr(c, "corruption", "flip"), c.noise)
            tag = f"ρ={c.noise:g}" if lev[0] == "flip" else f"erase {c.noise:g}"
            ax.plot(c.n_patterns, c.success, color=color, ls=styles[levels.index(lev) % 6],
                    label=f"D={c.dim}, {tag}", lw=1.2)
        ax.set_xscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("stored patterns N")
        ax.set_ylabel("success rate")
        ax.set_ylim(-0.03, 1.03)
        ax.legend(fontsize=5, ncol=2)
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    fig.tight_layout()
    save_figure(fig, Path(path), dpi=90)


def plot_theorem5(result, path: str | os.PathLike) -> None:
    """Measured one-step error and Theorem 5's bound against β (log scale)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    pos = lambda v: np.where(np.asarray(v) > 0, v, np.nan)  # (0.0 = underflow)
    ax.plot(result.betas, pos(result.bound_median), "k--", label="Thm 5 bound (median)")
    ax.plot(result.betas, pos(result.error_median), "o-", label="measured (median)")
    ax.plot(result.betas, pos(result.error_max), "s:", label="measured (max)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    nonzero = [v for v in result.error_median + result.error_max if v > 0] or [1.0]
    ax.set_ylim(bottom=max(1e-18, min(nonzero) / 10))
    ax.set_xlabel("β")
    ax.set_ylabel("‖f(ξ) − x_i‖ after one update")
    ax.set_title(f"Theorem 5: N={result.n_patterns}, D={result.dim}, ‖x‖={result.radius:.2g}, "
                 f"‖ξ−x_i‖={result.perturbation:g} (errors of exactly 0 not drawn)", fontsize=8)
    ax.legend(fontsize=8)
    save_figure(fig, Path(path))


def plot_beta_sweep(sweep, path: str | os.PathLike, *, title: str | None = None) -> None:
    """Stacked shares of single / metastable / global fixed points against β, and median k."""
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(6, 5), sharex=True,
                                  gridspec_kw={"height_ratios": [2, 1]})
    b = np.asarray(sweep.betas)
    ax.stackplot(b, sweep.global_, sweep.metastable, sweep.single,
                 labels=["global average", "metastable", "single pattern"],
                 colors=[CLASS_COLORS[0], CLASS_COLORS[2], CLASS_COLORS[3]], alpha=0.9)
    ax.set_ylabel("share of queries")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, loc="center left")
    ax2.plot(b, sweep.k_median, "o-", color="k", ms=3)
    ax2.set_yscale("log")
    ax2.set_ylabel("median k")
    ax2.set_xscale("log")
    ax2.set_xlabel("β")
    ax.set_title(title or f"fixed points vs β (N = {sweep.n_patterns}, "
                 f"{sweep.n_queries} queries)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, Path(path))
