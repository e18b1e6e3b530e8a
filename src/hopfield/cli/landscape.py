"""``hopfield landscape`` (2-D energy contours with update trajectories) and ``hopfield
beta-sweep`` (single / metastable / global fixed points against β for a given memory).

Both live in this module because the CLI loads one module per topic (``landscape``).
"""

from __future__ import annotations

from pathlib import Path

import typer

from ._app import app
from ._common import out_option, usage_error

__all__ = ["beta_sweep", "landscape"]


@app.command()
def landscape(
    out: Path = out_option(..., "Output folder."),
    beta: list[float] = typer.Option([1.0, 4.0, 64.0], "--beta", help="β per panel (repeat)."),
    steps: int = typer.Option(8, "--steps", help="Updates per trajectory."),
    starts: int = typer.Option(5, "--starts", help="n: an n × n grid of starting points."),
    grid: int = typer.Option(121, "--grid", help="Grid points per axis for the contours."),
) -> int:
    """Energy landscape of a 2-D toy memory (four patterns) with trajectories, one panel per β."""
    import numpy as np

    from .._io import atomic_write_json as write_json
    from ..analysis.landscape import energy_landscape, grid_starts, plot_landscape, toy_patterns

    if starts < 1 or steps < 1 or grid < 2:
        raise usage_error("--starts/--steps/--grid", f"--starts and --steps must be >= 1 and "
                                                      f"--grid >= 2, got {starts}, {steps}, {grid}")
    bad = [b for b in beta if not 0 < b < float("inf")]  # also catches nan
    if bad:
        raise usage_error("--beta", f"must be > 0 and finite, got {bad}")
    pats, s = toy_patterns(), grid_starts(starts)
    items = [energy_landscape(pats, b, s, steps=steps, grid=grid) for b in beta]
    out.mkdir(parents=True, exist_ok=True)
    plot_landscape(items, out / "landscape.png")
    write_json(out / "landscape.json", {
        "patterns": pats.tolist(),
        "panels": [{"beta": it.beta, "energy_min": float(it.energy.min()),
                    "energy_max": float(it.energy.max()),
                    "starts": it.trajectories[:, 0].tolist(),
                    "ends": it.trajectories[:, -1].tolist(),
                    "energy_start": it.traj_energy[:, 0].tolist(),
                    "energy_end": it.traj_energy[:, -1].tolist(),
                    "max_energy_increase": float(np.diff(it.traj_energy, axis=1).max())}
                   for it in items],
    })
    for it in items:
        ends = np.unique(np.round(it.trajectories[:, -1], 3), axis=0)
        typer.echo(f"β={it.beta:g}: {len(ends)} distinct end points, energy "
                   f"{it.traj_energy[:, 0].mean():.3f} → {it.traj_energy[:, -1].mean():.3f} (mean)")
    typer.echo(f"wrote {out / 'landscape.png'}, landscape.json")
    return 0


@app.command("beta-sweep")
def beta_sweep(
    out: Path = out_option(..., "Output folder."),
    patterns: Path | None = typer.Option(None, "--patterns", help=".npy or text file (N, D); "
                                         "default: 4 clusters of 8 random patterns, D = 32."),
    beta_min: float = typer.Option(0.01, "--beta-min"),
    beta_max: float = typer.Option(10.0, "--beta-max"),
    n_betas: int = typer.Option(25, "--betas", help="Number of β values (log-spaced)."),
    noise: float = typer.Option(0.05, "--noise", help="Queries = patterns + noise·‖x‖/√D·N(0, I)."),
    seed: int = typer.Option(0, "--seed"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> int:
    """Fixed points (single / metastable / global) against β for a given memory."""
    import numpy as np
    import torch

    from .._io import atomic_write_json as write_json
    from ..analysis import plotting
    from ..analysis.fixed_points import beta_sweep as sweep_fn
    from ..analysis.fixed_points import clustered_patterns, noisy_queries

    if not (0 < beta_min < beta_max < float("inf") and n_betas >= 2
            and 0 <= noise < float("inf") and seed >= 0):
        raise usage_error("--beta-min/--beta-max/--betas/--noise/--seed",
                          "need 0 < --beta-min < --beta-max < inf, --betas >= 2, finite --noise "
                          f">= 0 and --seed >= 0, got {beta_min}, {beta_max}, {n_betas}, {noise}, "
                          f"{seed}")
    if patterns is None:
        x = clustered_patterns(4, 8, 32, spread=0.5, radius=4.0, seed=seed)
        source = "4 clusters x 8 patterns, D=32, radius 4, spread 0.5"
    else:
        if not patterns.is_file():
            raise usage_error("--patterns", f"must be an existing file, got {patterns}")
        try:
            arr = (np.load(patterns) if patterns.suffix == ".npy"
                   else np.loadtxt(patterns, ndmin=2, delimiter=None))
        except (ValueError, OSError) as e:
            raise usage_error("--patterns", f"must be a .npy file or a text file of numbers "
                                            f"(N, D), got {patterns} ({e})") from None
        if arr.ndim != 2 or arr.dtype.kind not in "biuf" or not np.isfinite(arr).all():
            raise usage_error("--patterns", f"must hold a finite (N, D) array, got shape "
                                            f"{arr.shape}")
        x, source = torch.as_tensor(arr, dtype=torch.float64), str(patterns)
    queries = noisy_queries(x, noise, seed=seed)
    betas = [float(b) for b in np.geomspace(beta_min, beta_max, n_betas)]
    res = sweep_fn(queries, x, betas, progress=progress)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "beta_sweep.json", {"patterns": source, "noise": noise, "seed": seed,
                                         **res.to_dict()})
    plotting.plot_beta_sweep(res, out / "beta_sweep.png",
                             title=f"fixed points vs β: {source}")
    for b, s, m, g, k in zip(res.betas, res.single, res.metastable, res.global_, res.k_median):
        typer.echo(f"β={b:8.4g}  single {s:5.2f}  metastable {m:5.2f}  global {g:5.2f}  "
                   f"median k {k:g}")
    typer.echo(f"wrote {out / 'beta_sweep.json'}, beta_sweep.png")
    return 0
