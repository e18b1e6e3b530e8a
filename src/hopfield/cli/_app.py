"""The shared Typer application that every subcommand module registers on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="hopfield",
    help="Modern Hopfield networks: demos, reproduction of the paper's results, benchmarks and analysis.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain Click help and errors: one error format; flags show no '<bool>'
)


@app.callback()
def _root() -> None:
    """Modern Hopfield networks: demos, reproduction of the paper's results, benchmarks and analysis."""
