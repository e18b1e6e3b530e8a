"""Command-line interface: ``hopfield <command> ...``.

One module per subcommand (accelerate-style); each registers itself on :data:`app`.
Tests call :func:`main` in-process with an argument list.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

import click
import typer

from ._app import app

__all__ = ["app", "main"]

# Subcommand modules; each one registers its command(s) on ``app`` when imported.
_COMMAND_MODULES = ("demo", "reproduce", "bench", "heads", "capacity", "landscape")

for _name in _COMMAND_MODULES:
    try:
        importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as err:  # a module not written yet is simply absent
        if err.name != f"{__name__}.{_name}":
            raise


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=list(argv) if argv is not None else sys.argv[1:],
                              prog_name="hopfield", standalone_mode=False)
    except click.exceptions.Exit as exit_:
        return int(exit_.exit_code)
    except click.ClickException as err:
        err.show()
        return err.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted!", err=True)
        return 1
    return int(result) if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
