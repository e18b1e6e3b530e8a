"""The shared Typer application that every subcommand module registers on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="hopfield",
    help="Modern Hopfield networks: demos, reproduction of the paper's results, benchmarks and "
         "analysis.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain Click help and errors: one error format for every command ("Error: Invalid value for
    # '--x': ..."), and flags are listed without a type ("--quick", not "--quick <bool>").
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"hopfield {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="Print the version and exit."),
) -> None:
    """Modern Hopfield networks: demos, reproduction of the paper's results, benchmarks and
    analysis."""
