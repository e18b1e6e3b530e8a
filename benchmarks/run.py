"""Thin wrapper: ``python benchmarks/run.py [SUITE ...] [--quick] ...`` = ``hopfield bench ...``.

Writes benchmarks/results/latest.{json,md} next to this file unless ``--out`` is given.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hopfield.cli import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--out" not in argv:
        argv += ["--out", str(Path(__file__).resolve().parent / "results")]
    raise SystemExit(main(["bench", *argv]))
