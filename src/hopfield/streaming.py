"""Exact streaming retrieval over stored patterns that need not fit in memory.

Shape legend:
    ...  leading batch dims of the states (broadcast; the stored patterns are shared)
    L    number of state (query) patterns
    N    number of stored patterns (streamed in chunks of at most C)
    D    pattern dimension
    k    number of nearest stored patterns kept by the top-k

One Hopfield update ξ ← X softmax(β Xᵀ ξ) needs, for each state, only three running quantities
over the stored patterns x_i with scores a_i = β x_iᵀ ξ (the online softmax of flash attention):

    m = max_i a_i,    s = Σ_i exp(a_i − m),    o = Σ_i exp(a_i − m) x_i,    ξ_new = o / s.

Two partial results over disjoint sets of patterns merge exactly:

    m = max(m₁, m₂),  s = s₁ e^{m₁−m} + s₂ e^{m₂−m},  o = o₁ e^{m₁−m} + o₂ e^{m₂−m},

so one pass over the chunks gives the same update as the in-memory softmax, with peak extra memory
O(C × L) for the chunk's scores. ``m + log s`` is the log-sum-exp, which also gives the energy and
the exact association weights p_i = exp(a_i − lse) of the top-k patterns.

Only softmax streams exactly (sparsemax/entmax thresholds depend on all scores jointly); other
separations raise ``ValueError``. ``source`` is an (N, D) tensor, a :class:`hopfield.PatternStore`,
or any object with ``iter_chunks(chunk_size) -> iterable of (start, (C, D) tensor)`` and ``len``.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from . import functional as HF
from ._driver import iterate
from ._validation import (
    check_finite,
    check_positive_float,
    check_positive_int,
    check_tensor,
    shape_str,
    skip_data_checks,
)
from .separations import Separation, get_separation
from .storage import PatternStore

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "SoftmaxPartial",
    "TopK",
    "chunk_partial",
    "stream_energy",
    "stream_lse",
    "stream_retrieve",
    "stream_topk",
    "stream_update",
    "stream_weights",
]

DEFAULT_CHUNK_SIZE = 65536
Beta = float | torch.Tensor


# ----------------------------------------------------------------------------- partial results


@dataclass
class SoftmaxPartial:
    """Online-softmax partial over a subset of the stored patterns.

    Attributes:
        m: (..., L) running max of the scores (-inf when the subset is empty).
        s: (..., L) Σ exp(a_i − m).
        o: (..., L, D) Σ exp(a_i − m) x_i.
    """

    m: torch.Tensor
    s: torch.Tensor
    o: torch.Tensor

    @classmethod
    def empty(cls, lead_l: tuple[int, ...], dim: int, like: torch.Tensor) -> SoftmaxPartial:
        """The identity of :meth:`merge`; accumulates in float64 (merging thousands of float32
        chunk partials otherwise drifts by ~1e-5)."""
        dt = torch.float64 if like.dtype != torch.float64 else like.dtype
        m = torch.full(lead_l, float("-inf"), dtype=dt, device=like.device)
        return cls(m, torch.zeros_like(m), torch.zeros(*lead_l, dim, dtype=dt, device=like.device))

    def merge(self, other: SoftmaxPartial) -> SoftmaxPartial:
        """Exact combination of two partials over disjoint pattern sets."""
        m = torch.maximum(self.m, other.m)
        safe = torch.where(torch.isfinite(m), m, torch.zeros_like(m))  # both empty -> weights 0
        a, b = torch.exp(torch.stack([self.m, other.m.to(m.dtype)]) - safe)  # 2 x (..., L)
        return SoftmaxPartial(m, self.s * a + other.s * b,
                              self.o * a.unsqueeze(-1) + other.o * b.unsqueeze(-1))

    def result(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The update ξ_new = o / s, shape (..., L, D)."""
        return (self.o / self.s.unsqueeze(-1)).to(dtype or self.o.dtype)

    def lse(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """log Σ_i exp(a_i), shape (..., L)."""
        return (self.m + torch.log(self.s)).to(dtype or self.m.dtype)


@dataclass
class TopK:
    """The k most associated stored patterns of each state.

    Attributes:
        weights: (..., L, k) exact softmax association weights p_i (normalised over all N).
        indices: (..., L, k) int64 row indices into the stored patterns, by decreasing weight.
    """

    weights: torch.Tensor
    indices: torch.Tensor


def _flash_cpu(q: torch.Tensor, x: torch.Tensor, scale: float) -> SoftmaxPartial | None:
    """Fused CPU kernel returning (out, lse); ``None`` if unavailable for these inputs."""
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is None or q.device.type != "cpu" or q.requires_grad or x.requires_grad:
        return None
    lead, (L, D) = q.shape[:-2], q.shape[-2:]
    b = math.prod(lead)
    if b * L == 0 or x.shape[0] == 0:  # the kernel dies with SIGFPE on empty inputs
        return None
    try:
        q4 = q.reshape(b, 1, L, D)  # (B, 1, L, D)
        x4 = x.reshape(1, 1, *x.shape).expand(b, 1, *x.shape)  # (B, 1, C, D)
        out, lse = op(q4, x4, x4, 0.0, False, scale=scale)[:2]
    except (RuntimeError, TypeError):
        return None
    lse = lse.reshape(*lead, L).to(q.dtype)
    return SoftmaxPartial(lse, torch.ones_like(lse), out.reshape(*lead, L, D))


def chunk_partial(state: torch.Tensor, chunk: torch.Tensor, beta: Beta, k: int = 0,
                  fused: bool = True) -> tuple[SoftmaxPartial, tuple | None]:
    """Partial (m, s, o) of ``state`` (..., L, D) over one ``chunk`` (C, D); unchecked.

    ``beta`` is a float or shaped (..., 1, 1). With ``k > 0`` also returns the chunk's top-k
    ``(scores, local indices)``, each (..., L, min(k, C)). The fused CPU kernel gives (m, s, o)
    when available (``fused=False`` forces the two-matmul path); top-k then adds one matmul.
    """
    q, scale = HF._fold_beta(state, beta)
    part = _flash_cpu(q, chunk, scale) if fused else None
    if part is not None:
        if not k:
            return part, None
        scores = (q * scale) @ chunk.mT  # (..., L, C)
        return part, tuple(scores.topk(min(k, chunk.shape[0]), dim=-1))
    scores = (q * scale) @ chunk.mT  # (..., L, C)
    top = scores.topk(min(k, chunk.shape[0]), dim=-1) if k else None
    m = scores.amax(dim=-1)  # (..., L)
    if scores.requires_grad:  # keep autograd intact
        p = torch.exp(scores - m.unsqueeze(-1))  # (..., L, C)
    else:  # in place: saves one (..., L, C) buffer per chunk
        p = scores.sub_(m.unsqueeze(-1)).exp_()
    return SoftmaxPartial(m, p.sum(dim=-1), p @ chunk), (tuple(top) if k else None)


#: score-block budget of the top-k pass: at most this many (L × rows) scores per tile (64 MiB of
#: float32, the (256, 65,536) block the top-k always materialised). Smaller, cache-sized tiles were
#: 2.5x faster with one thread but 4x slower with two threads on a loaded machine (many small
#: parallel regions), so a default chunk at L <= 256 is one tile.
_TOPK_TILE_SCORES = 1 << 24
_TOPK_MIN_TILE = 4096  # rows: fewer would mean many small parallel regions at large L


def _topk_partial(state: torch.Tensor, chunk: torch.Tensor, beta: Beta,
                  k: int) -> tuple[SoftmaxPartial, tuple]:
    """The top-k pass over one ``chunk`` (C, D): ``(partial, (scores, local indices))`` with the
    chunk's top-k each (..., L, min(k, C)) and a partial whose ``o`` is zero (the top-k needs only
    the log-sum-exp ``m + log s``, not the weighted sum).

    One score matmul per tile of rows (at most :data:`_TOPK_TILE_SCORES` scores), then its top-k,
    max and in-place exp-sum, instead of the fused kernel (which also computes the unused weighted
    sum) plus a separate (L, C) score matmul for the top-k: per 65,536-row chunk at L = 256,
    D = 64, k = 1, 504 vs 787 ms with two threads and 557 vs 866 ms with one (``/tmp/g1/micro.py``,
    median of 15, shared machine at load ~13). Differentiable in the states and the chunk (no
    in-place exp when a gradient is needed)."""
    q, scale = HF._fold_beta(state, beta)
    qs = q * scale
    grad = torch.is_grad_enabled() and (qs.requires_grad or chunk.requires_grad)
    rows = max(1, math.prod(qs.shape[:-1]))
    tile = max(_TOPK_MIN_TILE, _TOPK_TILE_SCORES // rows)
    ms, ss, vals, idxs = [], [], [], []
    for c in range(0, chunk.shape[0], tile):
        scores = qs @ chunk[c:c + tile].mT  # (..., L, T)
        kk = min(k, scores.shape[-1])
        v, i = scores.topk(kk, dim=-1) if kk > 1 else scores.max(dim=-1, keepdim=True)
        m = v[..., 0]  # the tile's max: topk is sorted
        if grad:
            e = torch.exp(scores - m.unsqueeze(-1)).sum(dim=-1)
        else:  # in place: no second (..., L, T) buffer
            e = scores.sub_(m.unsqueeze(-1)).exp_().sum(dim=-1)
        ms.append(m)
        ss.append(e)
        vals.append(v)
        idxs.append(i + c)
    if len(ms) == 1:
        m, s = ms[0], ss[0]
        top = (vals[0], idxs[0])
    else:
        mt = torch.stack(ms, -1)  # (..., L, J) per-tile maxima
        m = mt.amax(dim=-1)
        s = (torch.stack(ss, -1) * torch.exp(mt - m.unsqueeze(-1))).sum(dim=-1)
        v, pos = torch.cat(vals, -1).topk(min(k, chunk.shape[0]), dim=-1)
        top = (v, torch.cat(idxs, -1).gather(-1, pos))
    o = m.new_zeros(()).expand(*m.shape, state.shape[-1])
    return SoftmaxPartial(m, s, o), top


# ----------------------------------------------------------------------------- chunk sources


def _check_finite_fast(x: torch.Tensor, name: str) -> None:
    """Any NaN/inf makes the sum non-finite, so a finite sum proves a finite tensor in one
    reduction (no bool temporaries; ~10x faster than ``isfinite`` on 1M x 64). A non-finite sum
    (possibly a mere overflow) falls back to the exact check."""
    if skip_data_checks() or bool(torch.isfinite(x.sum())):
        return
    for s in range(0, x.shape[0], DEFAULT_CHUNK_SIZE):  # bounded temporaries
        check_finite(x[s:s + DEFAULT_CHUNK_SIZE], name)


def _source_info(source: Any, name: str = "source") -> tuple[int, int]:
    """(N, D) of a tensor / PatternStore / chunked source."""
    if isinstance(source, torch.Tensor):
        check_tensor(source, name, ndim=2, layout="(N, D)", finite=False)
        _check_finite_fast(source, name)
        n, d = source.shape
    elif hasattr(source, "iter_chunks") and hasattr(source, "__len__") and hasattr(source, "dim"):
        n, d = len(source), int(source.dim)
    else:
        raise TypeError(f"{name} must be a (N, D) tensor or a PatternStore, got "
                        f"{type(source).__name__}")
    if n == 0:
        raise ValueError(f"{name} must hold at least one pattern, got 0")
    return int(n), int(d)


def _prefetch(it: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """Run ``it`` in a background thread (disk reads overlap compute; both release the GIL)."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():  # give up when the consumer has stopped
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in it:
                if not put(item):
                    return
            put(done)
        except BaseException as e:  # noqa: BLE001 - re-raised in the consumer
            put(e)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def _checked_chunks(source: Any, chunk_size: int) -> Iterator[tuple[int, torch.Tensor]]:
    """``source.iter_chunks`` with every chunk checked for NaN/inf (in the reader thread, so the
    check overlaps compute); the error names the source and the row range. A PatternStore checks
    its own chunks as it reads them (``PatternStore.iter_chunks``), so it is not checked twice."""
    if isinstance(source, PatternStore):
        yield from source.iter_chunks(chunk_size)
        return
    where = getattr(source, "path", None)
    label = type(source).__name__ + (f" at {where}" if where is not None else "")
    for s, chunk in source.iter_chunks(chunk_size):
        if isinstance(chunk, torch.Tensor) and torch.is_floating_point(chunk):
            _check_finite_fast(chunk, f"{label} rows {s}..{s + chunk.shape[0] - 1}")
        yield s, chunk


class _PinnedRing:
    """A ring of ``depth`` host buffers (C, D), pinned when CUDA exists, filled in order by a reader
    thread from a CPU tensor or a :class:`PatternStore` (``preadv`` straight into the buffer: no
    fresh allocation and no second host copy per chunk).

    Iterating yields ``(start, n, i)``: rows ``[start, start + n)`` are in ``buffers[i][:n]``. The
    consumer hands buffer ``i`` back with :meth:`release` (optionally with a CUDA event recorded
    after the device copy out of it: the reader waits for that event before refilling it, so
    the copy may still be in flight). Reader errors (a corrupt store chunk) re-raise here.
    """

    def __init__(self, source: Any, chunk_size: int, depth: int = 3, pin: bool | None = None):
        self.source = source
        n, d = (source.shape if isinstance(source, torch.Tensor) else (len(source), source.dim))
        self.n, self.chunk_size = int(n), int(min(chunk_size, max(int(n), 1)))
        pin = torch.cuda.is_available() if pin is None else pin
        self.buffers = [torch.empty((self.chunk_size, int(d)), dtype=source.dtype, pin_memory=pin)
                        for _ in range(depth)]
        self._free: queue.Queue = queue.Queue()
        self._events: list[Any] = [None] * depth
        for i in range(depth):
            self._free.put(i)
        self._filled: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, daemon=True)
        self._thread.start()

    def _fill(self, buf: torch.Tensor, start: int, n: int) -> None:
        src = self.source
        if isinstance(src, torch.Tensor):
            buf[:n].copy_(src[start:start + n])
            return
        src._check_open()
        read_into = getattr(src, "read_into", None)
        if read_into is not None:  # public API (requested from the storage owner)
            read_into(buf[:n].numpy(), start)
            return
        out = buf[:n].numpy()
        got = src._read_at(out, start * src._row_bytes)
        if got != n * src._row_bytes:
            raise ValueError(f"{src.path} is truncated: expected {(start + n) * src._row_bytes} "
                             f"bytes of data, found {start * src._row_bytes + got}")
        src._check_rows_finite(out, start, start + n)

    def _work(self) -> None:
        try:
            for start in range(0, self.n, self.chunk_size):
                i = self._take()
                if i is None:
                    return
                event = self._events[i]
                if event is not None:
                    event.synchronize()  # the device copy out of this buffer has finished
                n = min(self.chunk_size, self.n - start)
                self._fill(self.buffers[i], start, n)
                self._filled.put((start, n, i))
            self._filled.put(None)
        except BaseException as e:  # noqa: BLE001 - re-raised in the consumer
            self._filled.put(e)

    def _take(self) -> int | None:
        while not self._stop.is_set():
            try:
                return self._free.get(timeout=0.1)
            except queue.Empty:
                continue
        return None

    def release(self, i: int, event: Any = None) -> None:
        self._events[i] = event
        self._free.put(i)

    def close(self) -> None:
        self._stop.set()

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        try:
            while True:
                item = self._filled.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.close()


def _cuda_chunks(source: Any, chunk_size: int,
                 like: torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
    """Chunks of a CPU tensor / PatternStore for states on CUDA: pinned ring buffers filled by a
    reader thread, host-to-device copies on a side stream (one chunk ahead, so the copy of chunk
    k+1 overlaps the compute on chunk k), events order copy -> compute, and the dtype cast runs on
    the device (a float16 store moves half the bytes of a float32 one)."""
    ring = _PinnedRing(source, chunk_size)
    side = torch.cuda.Stream(device=like.device)
    compute = torch.cuda.current_stream(like.device)

    def issue(item: tuple[int, int, int]) -> tuple[int, torch.Tensor, Any]:
        start, n, i = item
        with torch.cuda.stream(side):
            host = ring.buffers[i][:n]
            dev = torch.empty(host.shape, dtype=host.dtype, device=like.device)  # never aliases
            dev.copy_(host, non_blocking=True)
            copied = torch.cuda.Event()
            copied.record(side)
        ring.release(i, copied)
        return start, dev, copied

    it = iter(ring)
    try:
        ahead = next(it, None)
        pending = issue(ahead) if ahead is not None else None
        while pending is not None:
            nxt = next(it, None)
            following = issue(nxt) if nxt is not None else None  # copy k+1 in flight
            start, dev, copied = pending
            compute.wait_event(copied)
            dev.record_stream(compute)  # allocated on the side stream, used on this one
            yield start, dev.to(like.dtype)
            pending = following
    finally:
        ring.close()


def _iter_chunks(source: Any, chunk_size: int,
                 like: torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
    """(start, (C, D) chunk on ``like``'s device and dtype) over ``source``.

    States on CUDA with a CPU tensor (not requiring grad) or a PatternStore source go through
    :func:`_cuda_chunks` (pinned ring, side-stream copies, cast on the device); every other case
    is unchanged."""
    if like.device.type == "cuda" and (
            isinstance(source, PatternStore)
            or (isinstance(source, torch.Tensor) and source.device.type == "cpu"
                and not (source.requires_grad and torch.is_grad_enabled()))):  # keep autograd
        yield from _cuda_chunks(source, chunk_size, like)
        return
    if isinstance(source, torch.Tensor):
        for s in range(0, source.shape[0], chunk_size):
            yield s, source[s:s + chunk_size].to(device=like.device, dtype=like.dtype)
        return
    for s, chunk in _prefetch(_checked_chunks(source, chunk_size)):
        yield s, chunk.to(device=like.device, dtype=like.dtype, non_blocking=True)


def _prepare(state: Any, source: Any, beta: Beta, chunk_size: int,
             separation: str | Separation = "softmax") -> tuple[int, Beta, int]:
    check_tensor(state, "state", min_ndim=2, layout="(..., L, D)")
    n, d = _source_info(source)
    if state.shape[-1] != d:
        raise ValueError(f"state must have shape (..., L, {d}) to match the stored patterns, got "
                         f"{shape_str(state.shape)}")
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    sep = get_separation(separation)
    if not sep.is_softmax:
        raise ValueError(f"separation must be 'softmax' for streaming retrieval (only the softmax "
                         f"merges exactly across chunks), got {sep.name!r}; load the patterns "
                         "into memory (e.g. store[:]) to use it")
    beta = HF._beta_grid(HF._check_beta(beta), tuple(state.shape[:-2]))
    return n, beta, chunk_size


def _pass(state: torch.Tensor, source: Any, beta: Beta, chunk_size: int, k: int = 0,
          max_norm: bool = False) -> tuple[SoftmaxPartial, tuple | None, torch.Tensor | None]:
    """One pass over ``source``: the merged partial, optional running top-k, optional max ‖x_i‖.

    With ``k > 0`` the partial carries the log-sum-exp only (``o`` is zero: see
    :func:`_topk_partial`); its callers (top-k) need nothing else."""
    lead_l = tuple(state.shape[:-1])
    acc = SoftmaxPartial.empty(lead_l, state.shape[-1], state)
    top, norm = None, None
    for start, chunk in _iter_chunks(source, chunk_size, state):  # chunk: (C, D)
        part, ctop = _topk_partial(state, chunk, beta, k) if k else chunk_partial(state, chunk, beta)
        acc = acc.merge(part)
        if k:
            vals, idx = ctop  # (..., L, k')
            idx = idx + start
            if top is not None:
                both = torch.cat([top[0], vals], -1)  # (..., L, k + k')
                vals, pos = both.topk(min(k, both.shape[-1]), dim=-1)
                idx = torch.cat([top[1], idx], -1).gather(-1, pos)
            top = (vals, idx)
        if max_norm:
            cn = chunk.norm(dim=-1).max()
            norm = cn if norm is None else torch.maximum(norm, cn)
    return acc, top, norm


# ----------------------------------------------------------------------------- operations on a pass
#
# Every softmax operation below is written once against a *pass function*
#     pass_fn(state, k, max_norm) -> (SoftmaxPartial over all N patterns, top-k or None, max ‖x‖)
# In memory it is one fused call over the whole tensor, chunked it is :func:`_pass` over the
# chunks, sharded (hopfield.distributed) the local pass plus two collectives. The loop is
# :func:`hopfield._driver.iterate`; the energy formula is :func:`hopfield.functional._energy_from`.

PassFn = Callable[[torch.Tensor, int, bool],
                  "tuple[SoftmaxPartial, tuple | None, torch.Tensor | None]"]


def source_pass(source: Any, beta: Beta, chunk_size: int) -> PassFn:
    """The pass function of an (N, D) tensor or a PatternStore streamed in chunks. It also
    carries ``lme_exact(state)`` (see :func:`_lme_exact`) for the energy at small β."""

    def pass_fn(state: torch.Tensor, k: int = 0, max_norm: bool = False):
        return _pass(state, source, beta, chunk_size, k, max_norm)

    pass_fn.lme_exact = lambda state: _lme_exact(state, source, beta, chunk_size)
    return pass_fn


def _lme(part: SoftmaxPartial, beta: Beta, n: int, dtype: torch.dtype) -> torch.Tensor:
    """β⁻¹ log((1/N) Σ_i exp(β x_iᵀξ)) from a merged partial (float64 arithmetic), (..., L).
    Its absolute error is ~eps(float32)·log(C)/β, so small β goes through :func:`_lme_exact`."""
    b = HF._beta_rows(beta)
    b = b.to(torch.float64) if isinstance(b, torch.Tensor) else b
    return ((part.lse(torch.float64) - math.log(n)) / b).to(HF._compute_dtype(dtype))


_SMALL_BETA = 1e-2  # below it the partials' log-sum-exp loses digits to the β⁻¹ scaling


def _small_beta(beta: Beta) -> bool:
    if isinstance(beta, torch.Tensor):
        return beta.dim() == 0 and float(beta) < _SMALL_BETA
    return float(beta) < _SMALL_BETA


def _lme_exact(state: torch.Tensor, source: Any, beta: Beta,
               chunk_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact β⁻¹ log mean exp(β x_iᵀξ) at any β (float64 scores per chunk, then the chunks'
    values merged by the same log-mean-exp with weights n_j / N), and max ‖x_i‖."""
    vals, counts, norm = [], [], None
    s64 = state.to(torch.float64)
    for _, chunk in _iter_chunks(source, chunk_size, state):
        c64 = chunk.to(torch.float64)
        vals.append(HF._log_mean_exp(s64 @ c64.mT, beta, None))  # (..., L)
        counts.append(chunk.shape[0])
        cn = chunk.norm(dim=-1).max()
        norm = cn if norm is None else torch.maximum(norm, cn)
    u = torch.stack(vals, -1)  # (..., L, J)
    return merge_lme(u, torch.tensor(counts, dtype=torch.float64, device=u.device), beta), norm


def merge_lme(u: torch.Tensor, counts: torch.Tensor, beta: Beta) -> torch.Tensor:
    """Exact log-mean-exp over disjoint parts: u (..., L, J) the parts' β⁻¹ log mean exp values,
    counts (J,) their sizes (0 = an empty part): β⁻¹ log Σ_j (n_j/N) exp(β u_j), float64."""
    w = counts.to(torch.float64) / counts.sum()
    u = torch.where(w > 0, u, u.new_zeros(()))  # empty parts carry weight 0 (and no -inf)
    m = torch.where(w > 0, u, u.new_full((), float("-inf"))).amax(-1, keepdim=True)
    b = HF._beta_rows(beta)
    b = b.to(torch.float64) if isinstance(b, torch.Tensor) else b
    x = (u - m) * (b.unsqueeze(-1) if isinstance(b, torch.Tensor) and b.dim() else b)
    x = torch.where(w > 0, x, x.new_zeros(()))
    big = (w * torch.exp(x)).sum(-1).log()
    small = torch.log1p((w * torch.expm1(x)).sum(-1))
    r = torch.where(x.amin(-1) > -1.0, small, big)
    return m.squeeze(-1) + r / b


def _energy_with(pass_fn: PassFn, state: torch.Tensor, beta: Beta, n: int) -> torch.Tensor:
    exact = getattr(pass_fn, "lme_exact", None)
    if exact is not None and _small_beta(beta):
        lme, norm = exact(state)
        return HF._energy_from(state, lme.to(HF._compute_dtype(state.dtype)), norm)
    part, _, norm = pass_fn(state, 0, True)
    return HF._energy_from(state, _lme(part, beta, n, state.dtype), norm)


def _lse_with(pass_fn: PassFn, state: torch.Tensor, beta: Beta, n: int,
              mean: bool) -> torch.Tensor:
    b = HF._beta_rows(beta)
    b = b.to(torch.float64) if isinstance(b, torch.Tensor) else b
    exact = getattr(pass_fn, "lme_exact", None)
    if exact is not None and _small_beta(beta):
        lme = exact(state)[0]
        out = lme if mean else lme + math.log(n) / b
        return out.to(HF._compute_dtype(state.dtype))
    part = pass_fn(state, 0, False)[0]
    if mean:
        return _lme(part, beta, n, state.dtype)
    return (part.lse(torch.float64) / b).to(HF._compute_dtype(state.dtype))


def _topk_with(pass_fn: PassFn, state: torch.Tensor, k: int) -> TopK:
    part, (vals, idx), _ = pass_fn(state, k, False)
    return TopK(weights=torch.exp(vals - part.lse(vals.dtype).unsqueeze(-1)), indices=idx)


def _retrieve_with(pass_fn: PassFn, state: torch.Tensor, beta: Beta, n: int, max_steps: int,
                   tol: float, return_info: bool) -> tuple[torch.Tensor, HF.RetrievalInfo]:
    """Multi-step retrieval through :func:`hopfield._driver.iterate`, one pass per step; the
    energy trace comes from the same passes (plus one final pass)."""
    norm: list[torch.Tensor] = []  # max ‖x_i‖, taken once from the first pass
    small = return_info and getattr(pass_fn, "lme_exact", None) is not None and _small_beta(beta)

    def step(xi: torch.Tensor, need_energy: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        part, _, cn = pass_fn(xi, 0, need_energy and not small and not norm)
        if cn is not None:
            norm.append(cn)
        e = None
        if need_energy and not small:
            e = HF._energy_from(xi, _lme(part, beta, n, xi.dtype), norm[0])
        return part.result(xi.dtype), e  # small β: the driver calls the exact energy instead

    return iterate(step, state, max_steps=max_steps, tol=tol, need_energy=return_info,
                   energy=lambda xi: _energy_with(pass_fn, xi, beta, n))


def _finite_result(x: torch.Tensor, what: str) -> torch.Tensor:
    if not skip_data_checks() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{what} is not finite: the scores β·xᵀξ overflow {x.dtype}; use "
                         "float64 inputs or a smaller beta / smaller norms")
    return x


# ----------------------------------------------------------------------------- public API


def stream_update(state: torch.Tensor, source: Any, beta: Beta, *,
                  chunk_size: int = DEFAULT_CHUNK_SIZE,
                  separation: str | Separation = "softmax") -> torch.Tensor:
    """One exact Hopfield update ξ ← X softmax(β Xᵀ ξ), streaming X in chunks.

    Args:
        state: (..., L, D) states.
        source: (N, D) tensor or :class:`hopfield.PatternStore`.
        beta: inverse temperature (float, or tensor broadcastable to ``...``).
        chunk_size: patterns per chunk C; peak extra memory is O(C × L).

    Returns:
        (..., L, D), equal to :func:`hopfield.functional.update` up to float rounding.

    Reference::

        p = softmax(beta * state @ X.mT, -1);  return p @ X
    """
    _, beta, chunk_size = _prepare(state, source, beta, chunk_size, separation)
    out = _pass(state, source, beta, chunk_size)[0].result(state.dtype)
    return _finite_result(out, "stream_update")


def stream_retrieve(state: torch.Tensor, source: Any, beta: Beta, max_steps: int = 100,
                    tol: float = 1e-5, *, chunk_size: int = DEFAULT_CHUNK_SIZE,
                    separation: str | Separation = "softmax", return_info: bool = False,
                    ) -> torch.Tensor | tuple[torch.Tensor, HF.RetrievalInfo]:
    """Multi-step :func:`stream_update` (one pass over ``source`` per step) until every state
    moves less than ``tol`` or ``max_steps``; states freeze at their own convergence step, as in
    :func:`hopfield.functional.retrieve` (the same driver, :func:`hopfield._driver.iterate`).

    With ``return_info`` also returns a :class:`hopfield.RetrievalInfo` whose ``energy`` trace is
    computed from the same passes (plus one final pass) and whose ``weights`` is ``None`` (the
    (L, N) matrix is what streaming avoids; use :func:`stream_topk`).
    """
    n, beta, chunk_size = _prepare(state, source, beta, chunk_size, separation)
    max_steps = check_positive_int(max_steps, "max_steps")
    tol = check_positive_float(tol, "tol")
    xi, info = _retrieve_with(source_pass(source, beta, chunk_size), state, beta, n, max_steps,
                              tol, return_info)
    return (xi, info) if return_info else xi


def stream_topk(state: torch.Tensor, source: Any, beta: Beta, k: int, *,
                chunk_size: int = DEFAULT_CHUNK_SIZE) -> TopK:
    """Indices and exact softmax weights of the ``k`` most associated stored patterns, in one pass.

    The weights are normalised by the global sum over all N patterns (so they equal the
    corresponding entries of ``functional.update(..., return_info=True)[1].weights``).
    """
    n, beta, chunk_size = _prepare(state, source, beta, chunk_size)
    k = check_positive_int(k, "k")
    if k > n:
        raise ValueError(f"k must be <= the number of stored patterns ({n}), got {k}")
    return _topk_with(source_pass(source, beta, chunk_size), state, k)


def stream_energy(state: torch.Tensor, source: Any, beta: Beta, *,
                  chunk_size: int = DEFAULT_CHUNK_SIZE) -> torch.Tensor:
    """The Hopfield energy of each state (..., L), as :func:`hopfield.functional.energy`."""
    n, beta, chunk_size = _prepare(state, source, beta, chunk_size)
    e = _energy_with(source_pass(source, beta, chunk_size), state, beta, n)
    return _finite_result(e, "stream_energy")


def stream_lse(state: torch.Tensor, source: Any, beta: Beta, *, mean: bool = False,
               chunk_size: int = DEFAULT_CHUNK_SIZE) -> torch.Tensor:
    """:func:`hopfield.functional.lse` streamed over ``source`` in one pass, shape (..., L):
    β⁻¹ log Σ_i exp(β x_iᵀξ) (``mean=True``: minus β⁻¹ log N)."""
    n, beta, chunk_size = _prepare(state, source, beta, chunk_size)
    out = _lse_with(source_pass(source, beta, chunk_size), state, beta, n, mean)
    return _finite_result(out, "stream_lse")


def stream_weights(state: torch.Tensor, source: Any, beta: Beta, *,
                   chunk_size: int = DEFAULT_CHUNK_SIZE) -> torch.Tensor:
    """The full (..., L, N) softmax association weights in two passes (log-sum-exp, then fill).

    The output itself is O(L × N); use it only when that fits in memory.
    """
    n, beta, chunk_size = _prepare(state, source, beta, chunk_size)
    lse = _pass(state, source, beta, chunk_size)[0].lse(state.dtype).unsqueeze(-1)  # (..., L, 1)
    out = state.new_empty(*state.shape[:-1], n)
    q, scale = HF._fold_beta(state, beta)
    for start, chunk in _iter_chunks(source, chunk_size, state):
        out[..., start:start + chunk.shape[0]] = torch.exp(scale * (q @ chunk.mT) - lse)
    return out
