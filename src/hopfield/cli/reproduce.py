"""``hopfield reproduce [PART ...] [--quick|--full|--defaults] [--out DIR] [--seed N]
[--data-dir DIR] [--datasets NAME,...] [--splits J,...]``.

Runs the real-data reproductions registered in :data:`hopfield.reproduce.PARTS` (without a part:
:data:`hopfield.reproduce.DEFAULT_PARTS`; ``all``: every registered part) and writes
``OUT/report.md`` (atomically) combining their markdown sections, next to each part's CSV/JSON/PNG
files under ``OUT/<part>/``. Finished folds are cached, so rerunning the same command after an
interruption resumes where it stopped. ``--defaults`` (part ``tabular`` only) is the tabular
benchmark's mode "defaults"; ``--datasets`` / ``--splits`` pass ``datasets=`` / ``splits=`` to the
parts whose ``run`` takes them.
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
_PART_ARG_HELP = "Parts to run (see the list above); default: " + " ".join(DEFAULT_PARTS) + "."


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


def _for_parts(flag: str, value, parts: tuple[str, ...]):
    """``value`` of ``flag`` (``--datasets`` -> ``datasets=``), if every selected part's ``run``
    takes that keyword; else a usage error naming the parts that do not."""
    from ..reproduce import get_part

    name = flag.lstrip("-")
    without = [p for p in parts if name not in inspect.signature(get_part(p).run).parameters]
    if without:
        raise usage_error(flag, f"is not supported by part(s) {without}; run them without {flag}")
    return value


@app.command(help="Reproduce published results of modern Hopfield networks next to "
                  "baselines.\n\n" + _PARTS_HELP)
def reproduce(
    part: list[str] = typer.Argument(None, metavar="PART", help=_PART_ARG_HELP),
    quick: bool | None = typer.Option(None, "--quick/--full", show_default=False,
                                      help="--quick (the default): short documented protocol "
                                           "(minutes); --full: the paper's protocol per part "
                                           "(resumable; from ~30 min for MIL's four paper sets to "
                                           "hours for tabular; times in docs/reproduce.md)."),
    defaults: bool = typer.Option(False, "--defaults",
                                  help="Part tabular only: mode 'defaults' (every method with its "
                                       "defaults, 21 small sets x 4 splits, no tuning) instead of "
                                       "--quick/--full."),
    out: Path = out_option(Path("reproduce-out"), "Output folder."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed; results are deterministic for a "
                                                      "seed."),
    datasets: str | None = typer.Option(None, "--datasets", metavar="NAME[,NAME...]",
                                        help="Only these datasets (for parts whose run() takes "
                                             "datasets, e.g. mil, tabular); default: the part's "
                                             "protocol sets."),
    splits: str | None = typer.Option(None, "--splits", metavar="J[,J...]",
                                      help="Only these splits of the mode's splits (for parts "
                                           "whose run() takes splits, e.g. tabular: 0-3 in "
                                           "--full/--defaults, 0 in --quick)."),
    data_dir: Path | None = typer.Option(None, "--data-dir", metavar="DIR",
                                         help="Data folder (default $HOPFIELD_DATA or "
                                              "~/.cache/hopfield)."),
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
        kwargs["datasets"] = _for_parts("--datasets", names, parts)
    if splits is not None:
        try:
            js = tuple(int(j) for j in splits.split(",") if j.strip())
        except ValueError:
            raise usage_error("--splits", f"must be split numbers separated by commas, e.g. 0,1, "
                                          f"got {splits!r}") from None
        if not js:
            raise usage_error("--splits", f"must name at least one split, got {splits!r}")
        kwargs["splits"] = _for_parts("--splits", js, parts)
    if defaults:
        if parts != ("tabular",):
            raise usage_error("--defaults", f"is for part tabular only (hopfield reproduce tabular "
                                            f"--defaults), got part(s) {list(parts)}")
        if smoke or quick is not None:
            raise usage_error("--defaults", "is a mode of its own; give it without --quick, --full "
                                            "or --smoke")
    mode = ("smoke" if smoke else "defaults" if defaults else
            "full" if quick is False else "quick")
    argv = ["hopfield", "reproduce", *(part or []), f"--{mode}",
            "--out", str(out), "--seed", str(seed)] \
        + (["--data-dir", str(data_dir)] if data_dir else []) \
        + (["--datasets", ",".join(kwargs["datasets"])] if "datasets" in kwargs else []) \
        + (["--splits", ",".join(map(str, kwargs["splits"]))] if "splits" in kwargs else [])
    out.mkdir(parents=True, exist_ok=True)
    t0, sections, failed = time.perf_counter(), [], []
    for name in parts:
        typer.echo(f"[reproduce] {name} ({mode}) -> {out / name}", err=True)
        try:
            sections.append(get_part(name).run(out, mode=mode, seed=seed, data_dir=data_dir,
                                               **kwargs))
        except ValueError as err:
            if "splits" in kwargs and str(err).startswith("splits "):
                # e.g. not one of the mode's splits
                raise usage_error("--splits", str(err)) from None
            if "datasets" not in kwargs or "must be one of" not in str(err):
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
