"""``hopfield bench``: run the benchmark suites and write JSON + markdown results."""

from __future__ import annotations

from pathlib import Path

import typer

from ..bench._core import DEVICES, SUITES, check_device
from ._app import app
from ._common import out_option, usage_error

__all__ = ["bench"]

_SUITES_HELP = "Suites to run (default: all): " + ", ".join(SUITES) + "."


@app.command()
def bench(
    suites: list[str] = typer.Argument(None, metavar="SUITE", help=_SUITES_HELP),
    quick: bool = typer.Option(False, "--quick", help="Small sizes: a smoke run of a few minutes."),
    out: Path = out_option(Path("benchmarks/results"), "Folder for latest.json and latest.md."),
    repeats: int = typer.Option(None, "--repeats", help="Timed repeats per peer (default 5; "
                                                        "3 with --quick)."),
    threads: int = typer.Option(2, "--threads", help="torch (and faiss) threads."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda. cuda runs the suites that "
                               "support it on the GPU: times synchronised, peak memory from "
                               "torch.cuda.max_memory_allocated, streaming split into read / copy "
                               "/ compute stages."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    peers: list[str] = typer.Option(None, "--peers", help="External reference packages to run "
                                    "side by side: hflayers (the real ml-jku/hopfield-layers, "
                                    "suite 'hflayers'; alone when no SUITE is named). If it is "
                                    "not importable, nothing runs and the exit code is 3."),
) -> int:
    """Benchmark the layers, multi-step updates, retrieval, streaming, OOD scoring and tabular
    fitting side by side with their peers. Exit codes: 0 done, 2 usage error, 3 a --peers
    package is not installed."""
    from hopfield.bench import run, write_report
    from hopfield.bench.peers import KNOWN_PEERS, missing_peer

    for peer in peers or ():
        if peer not in KNOWN_PEERS:
            raise usage_error("--peers", f"must be among {', '.join(KNOWN_PEERS)}, got {peer!r}")
    for peer in dict.fromkeys(peers or ()):
        message = missing_peer(peer)
        if message:
            typer.echo(f"hopfield bench --peers {peer}: {message}", err=True)
            raise typer.Exit(3)
        if peer not in (suites or []):
            suites = [*(suites or []), peer]  # suite 'hflayers' runs the real package
    if device not in DEVICES:
        raise usage_error("--device", f"must be one of {', '.join(DEVICES)}, got {device!r}")
    names = list(suites or SUITES)
    unknown = [s for s in names if s not in SUITES]
    if unknown:
        raise usage_error("SUITE", f"must be among {', '.join(SUITES)}, got "
                                     f"{', '.join(unknown)}")
    if repeats is None:
        repeats = 3 if quick else 5
    if repeats < 1:
        raise usage_error("--repeats", f"must be a positive integer, got {repeats}")
    if threads < 1:
        raise usage_error("--threads", f"must be a positive integer, got {threads}")
    try:
        check_device(device, suites)
    except ValueError as err:
        raise usage_error("--device", str(err)) from None
    command = " ".join(["hopfield bench", *(s for s in suites or [] if s not in (peers or [])),
                        *(f"--peers {p}" for p in dict.fromkeys(peers or ())),
                        *(["--quick"] if quick else []),
                        f"--repeats {repeats}", f"--threads {threads}",
                        *([f"--device {device}"] if device != "cpu" else [])])
    report = run(suites or None, quick=quick, repeats=repeats, threads=threads, progress=progress,
                 device=device)
    json_path, md_path = write_report(report, out, command=command)
    typer.echo(md_path.read_text(encoding="utf-8"))
    typer.echo(f"wrote {json_path} and {md_path}")
    return 0
