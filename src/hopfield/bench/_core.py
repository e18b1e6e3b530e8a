"""The vocabulary shared by the suites, the worker and the runner.

A *suite* is a module with

- ``cases(quick: bool) -> list[Case]`` — what to run (JSON-able configs),
- ``setup(config: dict, peer: str) -> Bench`` — builds inputs and returns the timed callable
  (runs inside a fresh worker process),
- optionally ``derive(case, record) -> dict`` (extra numbers from the measured times, e.g. GFLOP/s)
  and ``prepare(config, workdir) -> dict`` (one-off setup in the parent, e.g. writing a store),
- optionally ``DEVICES`` — the devices its ``setup`` can build on (default ``("cpu",)``). The
  runner puts the requested device into every config as ``config["device"]``; a suite that lists
  ``"cuda"`` builds its inputs and models there.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

__all__ = ["DEVICES", "SUITES", "Bench", "Case", "Ratio", "Unavailable", "check_device",
           "load_suite", "ratio_value", "suite_devices", "suites_for_device"]

#: devices ``hopfield bench --device`` accepts.
DEVICES = ("cpu", "cuda")

#: suite name -> module implementing it, in the order a full run executes them.
SUITES: dict[str, str] = {
    "layers": "hopfield.bench.layers",
    "steps": "hopfield.bench.steps",
    "retrieval": "hopfield.bench.retrieval",
    "streaming": "hopfield.bench.streaming",
    "ood": "hopfield.bench.ood",
    "tabular": "hopfield.bench.tabular",
    "transformer": "hopfield.bench.transformer",
    "hflayers": "hopfield.bench.peers",
}


class Unavailable(RuntimeError):
    """A peer cannot run here (missing implementation, package or memory); the reason is
    reported."""


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


def suite_devices(name: str) -> tuple[str, ...]:
    """The devices suite ``name`` can run on (its module's ``DEVICES``; CPU only by default)."""
    return tuple(getattr(load_suite(name), "DEVICES", ("cpu",)))


def suites_for_device(device: str) -> list[str]:
    """The registered suites that run on ``device``, in :data:`SUITES` order."""
    return [name for name in SUITES if device in suite_devices(name)]


def check_device(device: object, suites: Sequence[str] | None = None) -> str:
    """Validate a benchmark device (and that every suite in ``suites`` runs on it).

    Raises ``ValueError`` naming what was expected and what was found: an unknown device, a suite
    that only runs on the CPU, or ``"cuda"`` without a CUDA build of torch and a visible GPU.
    """
    if not isinstance(device, str) or device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(map(repr, DEVICES))}, got {device!r}")
    for name in suites or ():
        devices = suite_devices(name)
        if device not in devices:
            raise ValueError(f"suite {name!r} runs on {', '.join(devices)} only, not on "
                             f"device={device!r}; suites that run on {device}: "
                             f"{', '.join(suites_for_device(device))}")
    if device == "cuda" and not _cuda_ready():
        import torch

        build = torch.version.cuda or "none (a CPU-only build)"
        raise ValueError(
            "device='cuda' needs a CUDA build of torch and a visible GPU; found torch "
            f"{torch.__version__} (CUDA build: {build}), torch.cuda.is_available() = False, "
            f"{torch.cuda.device_count()} GPU(s). Install a CUDA torch (see docs/gpu.md) or use "
            "device='cpu'")
    return device


def _cuda_ready() -> bool:
    import torch

    return bool(torch.cuda.is_available())


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
        num = table.get(ratio.num, {}).get("peak_mib")
        den = table.get(ratio.den, {}).get("peak_mib")
    if num is None or den is None or den <= (MIN_MEMORY_MIB if ratio.metric == "memory" else 0):
        return None
    return num / den
