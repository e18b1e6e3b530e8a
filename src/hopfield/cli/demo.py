"""``hopfield demo``: store real images, corrupt them, and compare what each memory retrieves.

The work (digits, corruptions, scoring, the figure) is :mod:`hopfield.analysis.retrieval_demo`;
this module only parses the options, calls :func:`~hopfield.analysis.retrieval_demo.run_demo`,
writes ``results.json`` + ``demo.png`` and prints the table.
"""

from __future__ import annotations

from pathlib import Path

import typer

from ..analysis.retrieval_demo import (  # re-exported: older code imported them from here
    CORRUPTIONS,
    MAX_PATTERNS,
    DemoResult,
    binarise,
    corrupt,
    run_demo,
    save_figure,
    score,
)
from ._app import app
from ._common import out_option

__all__ = ["CORRUPTIONS", "DemoResult", "binarise", "corrupt", "demo", "run_demo", "save_figure",
           "score"]


@app.command("demo")
def demo(
    out: Path = out_option(Path("hopfield-demo"), "Output folder."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed for the image choice, corruption and "
                                                      "update order."),
    n_patterns: int = typer.Option(20, "--n-patterns", min=2, max=MAX_PATTERNS,
                                   help="Number of digit images to store (classes 0..9 in turn)."),
    quick: bool = typer.Option(False, "--quick", help="Fewer queries and betas (a few seconds)."),
) -> int:
    """Store digit images, corrupt them (mask half / flip / noise), retrieve with the classical,
    dense and modern memories over a β sweep, print an accuracy table, save a PNG and a JSON."""
    result, arrays = run_demo(n_patterns=n_patterns, seed=seed, quick=quick)
    out.mkdir(parents=True, exist_ok=True)
    result.to_json(out / "results.json")
    save_figure(arrays, out / "demo.png")
    typer.echo(f"Retrieval accuracy in % (nearest / exact), {n_patterns} stored digit images, "
               f"seed {seed}{', quick' if quick else ''}:\n")
    typer.echo(result.table())
    typer.echo(f"\nWrote {out / 'results.json'} and {out / 'demo.png'}")
    return 0
