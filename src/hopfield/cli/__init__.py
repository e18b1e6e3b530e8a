"""Command-line interface: ``hopfield <command> ...``.

One module per subcommand (accelerate-style); each registers itself on :data:`app`.
Tests call :func:`main` in-process with an argument list.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

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
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``) and return the exit code.

    Usage errors print the usage and return 2 (Click's convention); commands signal failure with
    ``typer.Exit(code)``.
    """
    command = typer.main.get_command(app)
    args = list(argv) if argv is not None else sys.argv[1:]
    try:
        command.main(args=args, prog_name="hopfield", standalone_mode=True)
    except SystemExit as exit_:
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
