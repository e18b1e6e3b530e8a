"""Energy landscape of a 2-D modern Hopfield memory with update trajectories.

E(ξ) = −β⁻¹ log Σ_i exp(β x_iᵀ ξ) + ½ ξᵀξ + β⁻¹ log N + ½ M²   (:func:`hopfield.functional.energy`)
trajectory ξ_{t+1} = X softmax(β Xᵀ ξ_t)                        (:func:`hopfield.functional.update`)

Hand check: with one stored pattern x the energy is ½‖ξ − x‖² + ½(M² − ‖x‖²) = ½‖ξ − x‖² and
every trajectory reaches x in one update.

Shape legend: N stored patterns, S starts, T updates, G grid points per axis.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import functional as HF
from .._validation import check_beta, check_positive_int, check_tensor

__all__ = ["Landscape", "energy_landscape", "plot_landscape", "toy_patterns"]


@dataclass
class Landscape:
    """Energy on a grid plus trajectories (float64 numpy).

    Attributes:
        xs, ys: (G,) grid coordinates; energy: (G, G), energy[j, i] at (xs[i], ys[j]).
        trajectories: (S, T + 1, 2) states from each start; traj_energy: (S, T + 1).
        patterns: (N, 2); beta: inverse temperature.
    """

    xs: np.ndarray
    ys: np.ndarray
    energy: np.ndarray
    trajectories: np.ndarray
    traj_energy: np.ndarray
    patterns: np.ndarray
    beta: float


def toy_patterns() -> torch.Tensor:
    """Four 2-D patterns: two close ones (a metastable pair at moderate β) and two apart."""
    return torch.tensor([[1.0, 0.2], [1.0, -0.2], [-0.6, 0.9], [-0.5, -1.0]], dtype=torch.float64)


def energy_landscape(
    patterns: torch.Tensor,
    beta: float,
    starts: torch.Tensor,
    *,
    steps: int = 10,
    grid: int = 121,
    margin: float = 0.5,
) -> Landscape:
    """Energy of ``patterns`` (N, 2) on a G×G grid and ``steps`` updates from ``starts`` (S, 2)."""
    check_tensor(patterns, "patterns", ndim=2, layout="(N, 2)")
    check_tensor(starts, "starts", ndim=2, layout="(S, 2)")
    if patterns.shape[1] != 2 or starts.shape[1] != 2:
        raise ValueError(f"patterns and starts must be 2-D points (N, 2) and (S, 2), got "
                         f"{tuple(patterns.shape)} and {tuple(starts.shape)}")
    beta = float(check_beta(beta))
    steps = check_positive_int(steps, "steps")
    grid = check_positive_int(grid, "grid", minimum=2)
    x = patterns.to(torch.float64)
    s = starts.to(device=x.device, dtype=torch.float64)
    pts = torch.cat([x, s])
    lo = pts.min(0).values - margin
    hi = pts.max(0).values + margin
    xs = torch.linspace(float(lo[0]), float(hi[0]), grid, dtype=torch.float64, device=x.device)
    ys = torch.linspace(float(lo[1]), float(hi[1]), grid, dtype=torch.float64, device=x.device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")  # (G, G)
    cells = torch.stack([gx.reshape(-1), gy.reshape(-1)], -1)  # (G·G, 2)
    energy = HF.energy(cells, x, beta).reshape(grid, grid)  # (G, G)
    traj = [s]
    for _ in range(steps):
        traj.append(HF.update(traj[-1], x, beta))
    traj_t = torch.stack(traj, 1)  # (S, T + 1, 2)
    traj_e = HF.energy(traj_t.reshape(-1, 2), x, beta).reshape(traj_t.shape[:2])  # (S, T + 1)
    return Landscape(xs=xs.cpu().numpy(), ys=ys.cpu().numpy(), energy=energy.cpu().numpy(),
                     trajectories=traj_t.cpu().numpy(), traj_energy=traj_e.cpu().numpy(),
                     patterns=x.cpu().numpy(), beta=beta)


def plot_landscape(ls: Landscape | list[Landscape], path: str | os.PathLike) -> None:
    """Contours of the energy with trajectories (one panel per landscape, e.g. per β)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .._io import atomic_savefig as save_figure

    items = ls if isinstance(ls, list) else [ls]
    fig, axes = plt.subplots(1, len(items), figsize=(4.3 * len(items), 4.0), squeeze=False)
    for ax, l in zip(axes[0], items):
        cs = ax.contourf(l.xs, l.ys, l.energy, levels=25, cmap="viridis")
        ax.contour(l.xs, l.ys, l.energy, levels=25, colors="k", linewidths=0.3, alpha=0.5)
        fig.colorbar(cs, ax=ax, fraction=0.046)
        for tr in l.trajectories:
            ax.plot(tr[:, 0], tr[:, 1], "-", color="white", lw=1.0)
            ax.plot(tr[0, 0], tr[0, 1], "o", color="white", ms=3)
            ax.plot(tr[-1, 0], tr[-1, 1], "x", color="red", ms=6)
        ax.plot(l.patterns[:, 0], l.patterns[:, 1], "*", color="orange", ms=12, mec="k",
                label="stored patterns")
        ax.set_title(f"β = {l.beta:g}", fontsize=10)
        ax.set_aspect("equal")
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.suptitle("modern Hopfield energy E(ξ) with update trajectories (○ start, × after the "
                 "last update)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, Path(path), dpi=80)


def grid_starts(n: int, lo: float = -1.6, hi: float = 1.6) -> torch.Tensor:
    """n × n starting points on a square (float64, (n·n, 2))."""
    v = torch.linspace(lo, hi, n, dtype=torch.float64)
    gy, gx = torch.meshgrid(v, v, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], -1)
