"""``hopfield capacity --out DIR [--quick] [--seed S]``: capacity of every memory against theory.

Writes ``DIR/capacity.json`` (every success curve, measured N*, theory value),
``DIR/capacity.png`` (N* against D with the theory curves), ``DIR/capacity_success.png`` (success
rate against N) and ``DIR/theorem5.png`` + its numbers (one-step error against Theorem 5's bound).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ._app import app
from ._common import out_option, usage_error

__all__ = ["capacity"]


@app.command()
def capacity(
    out: Path = out_option(..., "Output folder."),
    quick: bool = typer.Option(False, "--quick", help="Two dimensions, two noise levels, 16 "
                               "queries: seconds instead of minutes."),
    seed: int = typer.Option(0, "--seed", help="Seed of patterns, noise and update order."),
    n_queries: int = typer.Option(32, "--queries", help="Queries per (memory, D, noise, N)."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    from_json: Path | None = typer.Option(None, "--from-json", help="Only redraw the figures "
                                         "from a capacity.json written by this command."),
) -> int:
    """Retrieval success vs N and D for classical, dense and modern memories, against theory."""
    from .._io import atomic_write_json as write_json
    from ..analysis import plotting
    from ..analysis.capacity import capacity_study
    from ..analysis.error_bound import theorem5_study

    if seed < 0:
        raise usage_error("--seed", f"must be >= 0, got {seed}")
    if n_queries < 1:
        raise usage_error("--queries", f"must be >= 1, got {n_queries}")
    if from_json is not None:
        from ..analysis.capacity import CapacityCurve
        from ..analysis.error_bound import ErrorBoundResult

        if not from_json.is_file():
            raise usage_error("--from-json", f"must be an existing file, got {from_json}")
        try:
            saved = json.loads(from_json.read_text())
            curves = [CapacityCurve(**c) for c in saved["curves"]]
            thm5 = ErrorBoundResult(**saved["theorem5"])
            seed, quick = saved["seed"], saved["quick"]
        except (ValueError, KeyError, TypeError) as e:  # JSONDecodeError is a ValueError
            raise usage_error("--from-json", "must be a capacity.json written by this command, "
                                             f"got {from_json} ({type(e).__name__}: {e})") from None
    else:
        curves = capacity_study(quick=quick, seed=seed, n_queries=n_queries, progress=progress)
        thm5 = theorem5_study(quick=quick, seed=seed)

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "capacity.json", {
        "seed": seed, "quick": quick,
        "success_rule": "overlap m = x·sign(ξ*)/D >= 0.95; capacity = largest N of the grid "
                        "before the success rate first drops below 0.5",
        "curves": [c.to_dict() for c in curves],
        "theorem5": thm5.to_dict(),
    })
    plotting.plot_capacity(curves, out / "capacity.png")
    plotting.plot_success_curves(curves, out / "capacity_success.png")
    plotting.plot_theorem5(thm5, out / "theorem5.png")
    typer.echo(f"{'memory':<16} {'D':>4} {'corrupt':>7} {'level':>5} {'N*':>6} {'theory':>10}")
    for c in curves:
        mark = "≥" if c.meta.get("censored") else " "
        typer.echo(f"{c.memory:<16} {c.dim:>4} {c.corruption:>7} {c.noise:>5.2f} "
                   f"{mark}{c.capacity:>5} {c.meta['theory']:>10.3g}")
    typer.echo(f"Theorem 5 bound holds for {min(thm5.bound_holds):.0%} of patterns at every β")
    typer.echo(f"wrote {out / 'capacity.json'}, capacity.png, capacity_success.png, theorem5.png")
    return 0
