"""Helpers shared by every subcommand: one usage-error format and one ``--out`` check.

Usage errors are ``typer.BadParameter`` (Click prints ``Error: Invalid value for '--x': ...`` after
the usage line and exits with code 2); no command prints its own error format.

``--out`` is validated by :func:`out_option`'s callback while the command line is parsed, i.e.
before the command does any work: it must not name an existing file (nor sit below one), and the
folder it names (or its nearest existing parent, where the folder would be created) must be
writable — a read-only filesystem or a folder without write permission is a usage error, not a
traceback half-way through a run. The check creates nothing: it probes writability with an
anonymous temporary file that disappears when closed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import typer

__all__ = ["check_out_dir", "out_option", "usage_error"]


def usage_error(param: str, message: str) -> typer.BadParameter:
    """The usage error every command raises, e.g.
    ``raise usage_error("--seed", "must be >= 0, got -1")``.

    ``param`` is the option as typed (``--seed``) or an argument's metavar (``PART``).
    """
    return typer.BadParameter(message, param_hint=f"'{param}'")


def check_out_dir(out: Path, *, param: str = "--out") -> Path:
    """Check that ``out`` can be the output folder of a command; raise :func:`usage_error` if not.

    Accepts an existing writable folder or a path whose nearest existing parent is a writable
    folder. Creates nothing. Returns ``out`` unchanged.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise usage_error(param, f"must be a folder, but {str(out)!r} is an existing file")
    base = out
    while not base.exists():  # nearest existing ancestor: where the folder would be created
        if base.parent == base:
            break
        base = base.parent
    if base.exists() and not base.is_dir():
        raise usage_error(param, f"must be a folder, but its parent {str(base)!r} is a file, "
                                 f"got {str(out)!r}")
    try:
        with tempfile.TemporaryFile(dir=base):
            pass
    except OSError as err:  # read-only filesystem, no permission, ...
        reason = err.strerror or type(err).__name__
        raise usage_error(param, f"must be a writable folder, but {str(base)!r} is not writable "
                                 f"({reason}), got {str(out)!r}") from None
    return out


def _out_callback(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:
    if value is None or ctx.resilient_parsing:  # optional --out not given / shell completion
        return value
    return check_out_dir(Path(value), param=(param.opts or ["--out"])[0])


def out_option(default: Any, help: str) -> Any:  # ``help``: typer's own keyword
    """The ``--out DIR`` option of every command, checked by :func:`check_out_dir` at parse time."""
    return typer.Option(default, "--out", metavar="DIR", callback=_out_callback, help=help)
