"""Measurement primitives: wall-clock medians, peak memory of a code region, machine facts.

Peak memory of a region (Linux): reset the kernel's resident-set high-water mark by writing ``5`` to
``/proc/self/clear_refs``, run the region, read ``VmHWM`` from ``/proc/self/status`` and subtract
the resident set size ``VmRSS`` at the start. The worker processes run with
``MALLOC_MMAP_THRESHOLD_`` fixed at 64 KiB, so every tensor larger than that is its own ``mmap`` and
returns to the OS when freed: the resident set then tracks the live tensors. Where ``clear_refs`` is
not writable the fallback is ``ru_maxrss`` after minus before (an underestimate when setup had a
higher transient peak; flagged ``method="ru_maxrss"`` in the results).

On CUDA (``hopfield bench --device cuda``) the device's queued work is waited for with
``torch.cuda.synchronize()`` before the clock starts and before it stops (:func:`device_sync`), so a
time covers the kernels, not only their launch; peak memory is the device's
(:class:`CudaMemoryProbe`: ``torch.cuda.max_memory_allocated`` with the peak statistics reset on
entry, minus what was allocated before), since process RSS says nothing about GPU memory.
"""

from __future__ import annotations

import datetime as _dt
import gc
import os
import platform
import re
import resource
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["CudaMemoryProbe", "MemoryProbe", "Timing", "device_sync", "machine_info",
           "matmul_gflops", "time_calls"]

_MIB = 1024.0 * 1024.0


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            match = re.search(rf"^{field}:\s+(\d+)\s+kB", fh.read(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


@dataclass
class Timing:
    """Wall-clock seconds of each repeat; ``median`` is what the reports use."""

    times: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def _no_sync() -> None:
    return None


def device_sync(device: str) -> Callable[[], None]:
    """The call that waits until ``device`` has finished its queued work: ``torch.cuda.synchronize``
    on CUDA (kernels run asynchronously: without it a time measures the launches only), a no-op on
    the CPU."""
    if device == "cuda":
        return torch.cuda.synchronize
    return _no_sync


def time_calls(fn: Callable[[], object], repeats: int,
               sync: Callable[[], None] | None = None) -> Timing:
    """Time ``repeats`` calls of ``fn`` (after the caller's warm-up); ``sync`` (see
    :func:`device_sync`) runs before the clock starts and before it stops."""
    sync = sync or _no_sync
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return Timing(times)


class MemoryProbe:
    """Context manager measuring the peak resident memory added by its body (MiB).

    ``peak_mib`` uses the kernel high-water mark (see module docstring). With ``sample_anon=True``
    a thread also samples ``RssAnon`` every ``interval`` seconds, giving ``peak_anon_mib``: the
    anonymous (heap) part only, which excludes file pages mapped from a memory-mapped store.
    """

    def __init__(self, sample_anon: bool = False, interval: float = 0.005) -> None:
        self.sample_anon = sample_anon
        self.interval = interval
        self.peak_mib = float("nan")
        self.peak_anon_mib: float | None = None
        self.method = "VmHWM"

    def __enter__(self) -> Self:
        gc.collect()
        self._rss0 = _status_kib("VmRSS")
        self._anon0 = _status_kib("RssAnon")
        if self._rss0 is None or not _reset_hwm():
            self.method = "ru_maxrss"
            self._maxrss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self._stop = threading.Event()
        self._anon_peak = self._anon0 or 0
        if self.sample_anon and self._anon0 is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._anon_peak = max(self._anon_peak, _status_kib("RssAnon") or 0)
            self._stop.wait(self.interval)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.sample_anon and self._anon0 is not None:
            self._thread.join()
            self._anon_peak = max(self._anon_peak, _status_kib("RssAnon") or 0)
            self.peak_anon_mib = (self._anon_peak - self._anon0) / 1024.0
        if self.method == "VmHWM":
            self.peak_mib = ((_status_kib("VmHWM") or 0) - self._rss0) / 1024.0
        else:  # ru_maxrss is in KiB on Linux
            self.peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                             - self._maxrss0) / 1024.0


class CudaMemoryProbe:
    """Context manager measuring the peak CUDA memory added by its body (MiB).

    On entry: synchronise, reset the device's peak statistics
    (``torch.cuda.reset_peak_memory_stats``) and note ``torch.cuda.memory_allocated()``; on exit:
    synchronise and take ``torch.cuda.max_memory_allocated()`` minus that base. It counts tensors
    the caching allocator handed out (not its cached, unused blocks), so it is comparable between
    peers.
    """

    method = "cuda_max_memory_allocated"

    def __init__(self, device: torch.device | str | None = None) -> None:
        self.device = device
        self.peak_mib = float("nan")

    def __enter__(self) -> Self:
        gc.collect()
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        self._base = torch.cuda.memory_allocated(self.device)
        return self

    def __exit__(self, *exc: object) -> None:
        torch.cuda.synchronize(self.device)
        self.peak_mib = (torch.cuda.max_memory_allocated(self.device) - self._base) / _MIB


def matmul_gflops(threads: int, size: int = 2048, repeats: int = 5) -> float:
    """This machine's sgemm throughput (GFLOP/s): median over ``repeats`` of a size³ float32
    matmul."""
    torch.set_num_threads(threads)
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    a @ b  # warm-up
    timing = time_calls(lambda: a @ b, repeats)
    return 2.0 * size**3 / timing.median / 1e9


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total_gib() -> float | None:
    try:
        with open("/proc/meminfo") as fh:
            kib = int(re.search(r"MemTotal:\s+(\d+)", fh.read()).group(1))
    except (OSError, AttributeError):
        return None
    return round(kib / _MIB, 1)


def machine_info(threads: int, device: str = "cpu") -> dict[str, object]:
    """CPU model, core count, memory, library versions, thread count, the benchmark device (with
    the GPU's name, compute capability and memory on CUDA) and UTC date of the run."""
    info: dict[str, object] = {
        "device": device,
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _mem_total_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": threads,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    if device == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["cuda_capability"] = f"{props.major}.{props.minor}"
        info["cuda_memory_gib"] = round(props.total_memory / 1024**3, 1)
        info["cuda_runtime"] = torch.version.cuda
    try:
        import faiss

        info["faiss"] = faiss.__version__
    except ImportError:
        info["faiss"] = None
    return info
