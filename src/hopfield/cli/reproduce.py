"""``hopfield reproduce [PART ...] [--quick|--full] [--out DIR] [--seed N] [--data-dir DIR]``.

Runs the real-data reproductions registered in :data:`hopfield.reproduce.PARTS` (without a part:
:data:`hopfield.reproduce.DEFAULT_PARTS`; ``all``: every registered part) and writes
``OUT/report.md`` (atomically) combining their markdown sections, next to each part's CSV/JSON/PNG
files under ``OUT/<part>/``. Finished folds are cached, so rerunning the same command after an
interruption resumes where it stopped.
"""

from __future__ import annotations

import inspect
import shlex
import time
from pathlib import Path

import typer

from ..reproduce import DEFAULT_PARTS, PARTS
from ._app import app
from ._common import out_option, usage_error

__all__ = ["reproduce"]

# "\b" keeps Click from re-wrapping the list (one part per line).
_PARTS_HELP = "\n".join(
    ["\b", "Parts (registry hopfield.reproduce.PARTS; default: " + " ".join(DEFAULT_PARTS) + "):"]
    + [f"  {name:<8} {part.description}" for name, part in PARTS.items()]
    + [f"  {'all':<8} every part above."])


def _selected_parts(names: list[str] | None) -> tuple[str, ...]:
    names = list(names or [])
    if not names:
        return DEFAULT_PARTS
    valid = [*PARTS, "all"]
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise usage_error("PART", f"must be one of {valid}, got {unknown[0]!r}")
    if "all" in names:
        return tuple(PARTS)
    return tuple(dict.fromkeys(names))  # order as given, duplicates dropped


@app.command(help="Reproduce published results of modern Hopfield networks next to baselines.\n\n" + _PARTS_HELP)
def reproduce(
    part: list[str] = typer.Argument(None, metavar="PART",
                                     help="Parts to run (see the list above); default: "
                                          + " ".join(DEFAULT_PARTS) + "."),
    quick: bool = typer.Option(True, "--quick/--full",
                               help="--quick: short documented protocol (minutes); --full: the paper's "
                                    "protocol per part (resumable; from ~30 min for MIL's four paper sets to hours for "
                                    "tabular; times in docs/reproduce.md)."),
    out: Path = out_option(Path("reproduce-out"), "Output folder."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed; results are deterministic for a seed."),
    datasets: str | None = typer.Option(None, "--datasets", metavar="NAME[,NAME...]",
                                        help="Only these datasets (for parts whose run() takes "
                                             "datasets, e.g. mil); default: the part's protocol sets."),
    data_dir: Path | None = typer.Option(None, "--data-dir", metavar="DIR",
                                         help="Data folder (default $HOPFIELD_DATA or ~/.cache/hopfield)."),
    smoke: bool = typer.Option(False, "--smoke", hidden=True, help="Tiny settings for tests."),
) -> int:
    from ..reproduce import get_part
    from ..reproduce.report import write_report

    parts = _selected_parts(part)
    kwargs = {}
    if datasets is not None:
        names = tuple(n.strip() for n in datasets.split(",") if n.strip())
        if not names:
            raise usage_error("--datasets", f"must name at least one dataset, got {datasets!r}")
        without = [p for p in parts if "datasets" not in inspect.signature(get_part(p).run).parameters]
        if without:
            raise usage_error("--datasets", f"is not supported by part(s) {without}; run them "
                                            "without --datasets")
        kwargs["datasets"] = names
    mode = "smoke" if smoke else ("quick" if quick else "full")
    argv = ["hopfield", "reproduce", *(part or []), "--smoke" if smoke else f"--{'quick' if quick else 'full'}",
            "--out", str(out), "--seed", str(seed)] + (["--data-dir", str(data_dir)] if data_dir else []) \
        + (["--datasets", ",".join(kwargs["datasets"])] if kwargs else [])
    out.mkdir(parents=True, exist_ok=True)
    t0, sections, failed = time.perf_counter(), [], []
    for name in parts:
        typer.echo(f"[reproduce] {name} ({mode}) -> {out / name}", err=True)
        try:
            sections.append(get_part(name).run(out, mode=mode, seed=seed, data_dir=data_dir, **kwargs))
        except ValueError as err:
            if not kwargs or "must be one of" not in str(err):
                raise
            raise usage_error("--datasets", str(err)) from None  # e.g. an unknown dataset name
        except (FileNotFoundError, ImportError) as err:
            failed.append(name)
            sections.append(f"## {name}\n\nNot run: {err}\n")
            typer.echo(f"[reproduce] {name} failed: {err}", err=True)
    path = write_report(out, sections, command=shlex.join(argv), elapsed=time.perf_counter() - t0)
    typer.echo(f"[reproduce] report: {path} ({(time.perf_counter() - t0) / 60:.1f} min)")
    if failed:
        raise typer.Exit(code=1)
    return 0
