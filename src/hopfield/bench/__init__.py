"""Benchmarks of the library against PyTorch attention, FAISS and the reference approach.

Run them with ``hopfield bench [SUITE ...] [--quick]`` or from Python::

    from hopfield.bench import run, write_report
    report = run(["retrieval"], quick=True, repeats=3)
    write_report(report, "benchmarks/results")

Suites (see each module's docstring; registry :data:`SUITES`): ``layers``, ``steps``, ``retrieval``,
``streaming``, ``ood``, ``tabular``, ``transformer``, ``hflayers``. Every
case runs its peers side by side (round-robin, medians of repeats) in a fresh process, and measures
each peer's peak memory in a further fresh process (see :mod:`hopfield.bench._measure`).
"""

from __future__ import annotations

from ._core import SUITES, Bench, Case, Ratio, Unavailable
from ._measure import MemoryProbe, machine_info, matmul_gflops
from ._runner import run
from .peers import MaterializedAttention
from .report import render_markdown, write_report

__all__ = [
    "SUITES",
    "Bench",
    "Case",
    "MaterializedAttention",
    "MemoryProbe",
    "Ratio",
    "Unavailable",
    "machine_info",
    "matmul_gflops",
    "render_markdown",
    "run",
    "write_report",
]
