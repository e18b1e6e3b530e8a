"""``hopfield reproduce [mil|uci|all] [--quick|--full] [--out DIR] [--seed N] [--data-dir DIR]``.

Runs the real-data reproductions (:mod:`hopfield.reproduce.mil`, :mod:`hopfield.reproduce.uci`)
and writes ``OUT/report.md`` (atomically) combining their markdown sections, next to each part's
CSV/JSON/PNG files under ``OUT/<part>/``. Finished folds are cached, so rerunning the same command
after an interruption resumes where it stopped.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path

import typer

from ._app import app

__all__ = ["reproduce"]


@app.command()
def reproduce(
    part: str = typer.Argument("all", help="Which part: mil, uci or all."),
    quick: bool = typer.Option(True, "--quick/--full",
                               help="--quick: short documented protocol (minutes); --full: the paper's "
                                    "protocol (hours, resumable)."),
    out: Path = typer.Option(Path("reproduce-out"), "--out", help="Output directory."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed; results are deterministic for a seed."),
    data_dir: Path | None = typer.Option(None, "--data-dir",
                                         help="Data directory (default $HOPFIELD_DATA or ~/.cache/hopfield)."),
    smoke: bool = typer.Option(False, "--smoke", hidden=True, help="Tiny settings for tests."),
) -> int:
    """Reproduce the paper's real-data results (MIL and small UCI sets) next to baselines."""
    from ..reproduce import PARTS, get_part
    from ..reproduce.report import write_report

    if part not in (*PARTS, "all"):
        raise typer.BadParameter(f"must be one of {[*PARTS, 'all']}, got {part!r}", param_hint="PART")
    mode = "smoke" if smoke else ("quick" if quick else "full")
    parts = PARTS if part == "all" else (part,)
    argv = ["hopfield", "reproduce", part, "--smoke" if smoke else f"--{'quick' if quick else 'full'}",
            "--out", str(out), "--seed", str(seed)] + (["--data-dir", str(data_dir)] if data_dir else [])
    out.mkdir(parents=True, exist_ok=True)
    t0, sections, failed = time.perf_counter(), [], []
    for name in parts:
        typer.echo(f"[reproduce] {name} ({mode}) -> {out / name}", err=True)
        try:
            sections.append(get_part(name).run(out, mode=mode, seed=seed, data_dir=data_dir))
        except (FileNotFoundError, ImportError) as err:
            failed.append(name)
            sections.append(f"## {name}\n\nNot run: {err}\n")
            typer.echo(f"[reproduce] {name} failed: {err}", err=True)
    path = write_report(out, sections, command=shlex.join(argv), elapsed=time.perf_counter() - t0)
    typer.echo(f"[reproduce] report: {path} ({(time.perf_counter() - t0) / 60:.1f} min)")
    if failed:
        raise typer.Exit(code=1)
    return 0
