"""The vocabulary shared by the suites, the worker and the runner.

A *suite* is a module with

- ``cases(quick: bool) -> list[Case]`` — what to run (JSON-able configs),
- ``setup(config: dict, peer: str) -> Bench`` — builds inputs and returns the timed callable
  (runs inside a fresh worker process),
- optionally ``derive(case, record) -> dict`` (extra numbers from the measured times, e.g. GFLOP/s)
  and ``prepare(config, workdir) -> dict`` (one-off setup in the parent, e.g. writing a store).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

__all__ = ["SUITES", "Bench", "Case", "Ratio", "Unavailable", "load_suite", "ratio_value"]

#: suite name -> module implementing it, in the order a full run executes them.
SUITES: dict[str, str] = {
    "layers": "hopfield.bench.layers",
    "steps": "hopfield.bench.steps",
    "retrieval": "hopfield.bench.retrieval",
    "streaming": "hopfield.bench.streaming",
    "ood": "hopfield.bench.ood",
    "tabular": "hopfield.bench.tabular",
}


class Unavailable(RuntimeError):
    """A peer cannot run here (missing implementation, package or memory); the reason is reported."""


@dataclass
class Bench:
    """What a suite's ``setup`` returns: ``fn()`` runs one measured iteration."""

    fn: Callable[[], object]
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Ratio:
    """``metric`` of peer ``num`` divided by that of ``den``; ``target`` is the allowed maximum."""

    num: str
    den: str
    metric: str = "time"  # "time" (median seconds) or "memory" (peak MiB)
    target: float | None = None

    @property
    def label(self) -> str:
        return f"{self.metric} {self.num} / {self.den}"


@dataclass(frozen=True)
class Case:
    """One configuration of a suite, run with every peer side by side."""

    suite: str
    name: str
    config: dict[str, Any]
    peers: tuple[str, ...]
    ratios: tuple[Ratio, ...] = ()
    memory: tuple[str, ...] | None = None  # peers whose peak memory is measured (None = all)
    sample_anon: bool = False  # also sample anonymous RSS (for memory-mapped data)
    max_repeats: int | None = None  # cap on timed repeats (very long cases)
    warmup: bool = True  # one untimed call per peer before timing and before the memory probe

    @property
    def memory_peers(self) -> tuple[str, ...]:
        return self.peers if self.memory is None else self.memory


def load_suite(name: str) -> ModuleType:
    if name not in SUITES:
        raise ValueError(f"suite must be one of {sorted(SUITES)}, got {name!r}")
    return importlib.import_module(SUITES[name])


#: a memory ratio whose denominator peak is below this (MiB) is not reported: page granularity
#: and allocator noise make it meaningless (e.g. a fused kernel adding only a few KiB).
MIN_MEMORY_MIB = 1.0


def ratio_value(ratio: Ratio, record: dict[str, Any]) -> float | None:
    """The ratio's value from a case record, or None when either side did not run (or, for
    memory, when the denominator is below :data:`MIN_MEMORY_MIB`)."""
    if ratio.metric == "time":
        table = record.get("time", {})
        num, den = table.get(ratio.num, {}).get("median"), table.get(ratio.den, {}).get("median")
    else:
        table = record.get("memory", {})
        num, den = table.get(ratio.num, {}).get("peak_mib"), table.get(ratio.den, {}).get("peak_mib")
    if num is None or den is None or den <= (MIN_MEMORY_MIB if ratio.metric == "memory" else 0):
        return None
    return num / den
