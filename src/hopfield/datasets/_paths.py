"""Where datasets are read from.

Order: an explicit ``data_dir`` argument (CLI ``--data-dir``), then the ``HOPFIELD_DATA``
environment variable, then ``~/.cache/hopfield``. Data bundled with the package (the 21 UCI sets
with fixed splits) and data from installed packages (``mil``) are used when the data directory
does not have them.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["BUNDLED_DIR", "DATA_ENV", "data_dir"]

DATA_ENV = "HOPFIELD_DATA"
BUNDLED_DIR = Path(__file__).resolve().parent / "_data"


def data_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: ``path`` if given, else ``$HOPFIELD_DATA``, else
    ``~/.cache/hopfield``."""
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "hopfield"
