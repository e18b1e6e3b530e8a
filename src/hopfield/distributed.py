"""A modern Hopfield memory sharded across processes with ``torch.distributed``.

Shape legend: L queries, D pattern dimension, N = Σ_r N_r stored patterns over all ranks r,
k nearest patterns.

Every rank holds a shard X_r (N_r, D) of the stored patterns (an in-memory tensor or its own
:class:`hopfield.PatternStore`) and the *same* queries ξ (L, D) (replicate them, e.g. with
``dist.broadcast``, before calling). Each rank computes its online-softmax partial over its shard
(:mod:`hopfield.streaming`): m_r = max_i a_i, s_r = Σ_i e^{a_i − m_r}, o_r = Σ_i e^{a_i − m_r} x_i.
Two collectives then combine them exactly:

    1. all_reduce(MAX) of m_r (L values)                           → m
    2. all_reduce(SUM) of [s_r e^{m_r − m}, o_r e^{m_r − m}] packed → s, o  (L × (1 + D) values)

and every rank gets ξ_new = o / s, identical across ranks. (One all_gather of the raw partials
would also work in a single collective, but moves world_size × more data; a single sum all-reduce
without the max is not safe because e^{a_i} overflows.) Top-k adds one all_gather of k scores and
global indices per query. Works with gloo (CPU tensors) and nccl (CUDA tensors); the collectives
are not differentiated (inference and memory lookup, not training through the shards).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from . import functional as HF
from . import streaming as HS
from ._chunk_sources import _check_finite_fast
from ._validation import (
    check_positive_float,
    check_positive_int,
    check_tensor,
    shape_str,
    skip_data_checks,
)
from .memory.base import NotStoredError, from_user, to_user
from .storage import PatternStore

__all__ = ["ShardedModernHopfield", "distributed_lse", "distributed_topk", "distributed_update"]


def _check_dist(group: Any) -> None:
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError("torch.distributed is not initialized: call "
                           "torch.distributed.init_process_group(...) first (or use torchrun)")


def _local_info(local: Any, d: int) -> int:
    """Validate this rank's shard once (at entry) and return N_r."""
    if isinstance(local, torch.Tensor):
        check_tensor(local, "local_patterns", ndim=2, layout="(N_r, D)", finite=False)
        _check_finite_fast(local, "local_patterns")
        n, dd = local.shape
    elif isinstance(local, PatternStore):
        n, dd = len(local), local.dim
    else:
        raise TypeError(f"local_patterns must be a (N_r, D) tensor or a PatternStore, got "
                        f"{type(local).__name__}")
    if dd != d:
        raise ValueError(f"local_patterns must have shape (N_r, {d}) to match the state, got "
                         f"{shape_str((n, dd))}")
    return int(n)


def _local_pass(state: torch.Tensor, local: Any, n_local: int, beta: Any, chunk_size: int,
                k: int = 0, max_norm: bool = False):
    """This rank's partial over its (already validated) shard of ``n_local`` rows."""
    if n_local == 0:  # an empty shard contributes nothing
        empty = HS.SoftmaxPartial.empty(tuple(state.shape[:-1]), state.shape[-1], state)
        return empty, None, None
    return HS._pass(state, local, beta, chunk_size, k=k, max_norm=max_norm)


def _merge(part: HS.SoftmaxPartial, group: Any) -> HS.SoftmaxPartial:
    """Exact cross-rank merge: MAX all-reduce of m, then one SUM all-reduce of rescaled (s, o)."""
    m = part.m.clone()
    dist.all_reduce(m, op=dist.ReduceOp.MAX, group=group)  # (L,)
    safe = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    scale = torch.exp(part.m - safe)  # (L,), 0 on an empty shard
    packed = torch.cat([(part.s * scale).unsqueeze(-1), part.o * scale.unsqueeze(-1)], -1)
    dist.all_reduce(packed, op=dist.ReduceOp.SUM, group=group)  # (L, 1 + D)
    return HS.SoftmaxPartial(m, packed[..., 0], packed[..., 1:])


def sharded_pass(local: Any, n_local: int, beta: Any, chunk_size: int, group: Any) -> HS.PassFn:
    """The pass function (see :mod:`hopfield.streaming`) over all ranks' shards: the local pass
    plus the two collectives; with ``max_norm`` one more MAX all-reduce of max ‖x_i‖. Top-k is
    not merged here (it needs global indices: :func:`distributed_topk`)."""

    def pass_fn(state: torch.Tensor, k: int = 0, max_norm: bool = False):
        part, _, norm = _local_pass(state, local, n_local, beta, chunk_size, max_norm=max_norm)
        merged = _merge(part, group)
        if max_norm:
            norm = (torch.zeros((), dtype=state.dtype, device=state.device) if norm is None
                    else norm.clone())
            dist.all_reduce(norm, op=dist.ReduceOp.MAX, group=group)
        return merged, None, norm

    def lme_exact(state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact small-β log-mean-exp over all ranks: each rank's exact value, gathered and merged
        with weights N_r / N (see :func:`hopfield.streaming.merge_lme`)."""
        lead_l = tuple(state.shape[:-1])
        if n_local:
            lme, norm = HS._lme_exact(state, local, beta, chunk_size)
        else:
            lme = torch.zeros(lead_l, dtype=torch.float64, device=state.device)
            norm = torch.zeros((), dtype=state.dtype, device=state.device)
        world = dist.get_world_size(group)
        parts = [torch.empty_like(lme) for _ in range(world)]
        dist.all_gather(parts, lme.contiguous(), group=group)
        counts = torch.tensor([n_local], dtype=torch.float64, device=state.device)
        all_counts = [torch.empty_like(counts) for _ in range(world)]
        dist.all_gather(all_counts, counts, group=group)
        norm = norm.to(state.dtype).clone()
        dist.all_reduce(norm, op=dist.ReduceOp.MAX, group=group)
        return HS.merge_lme(torch.stack(parts, -1), torch.cat(all_counts), beta), norm

    pass_fn.lme_exact = lme_exact
    return pass_fn


def _prepare(state: Any, beta: Any, chunk_size: int, group: Any) -> tuple[Any, int]:
    _check_dist(group)
    check_tensor(state, "state", min_ndim=2, layout="(..., L, D)")
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    return HF._beta_grid(HF._check_beta(beta), tuple(state.shape[:-2])), chunk_size


def _global_n(n_local: int, state: torch.Tensor, group: Any) -> int:
    n = torch.tensor([n_local], dtype=torch.long, device=state.device)
    dist.all_reduce(n, op=dist.ReduceOp.SUM, group=group)
    total = int(n[0])
    if total == 0:
        raise ValueError("local_patterns are empty on every rank: nothing is stored")
    return total


def distributed_update(state: torch.Tensor, local_patterns: Any, beta: float | torch.Tensor,
                       group: Any = None, *,
                       chunk_size: int = HS.DEFAULT_CHUNK_SIZE) -> torch.Tensor:
    """One exact update ξ ← X softmax(β Xᵀ ξ) with X = concat of every rank's ``local_patterns``.

    Collective: every rank of ``group`` must call it with the same ``state`` (..., L, D).
    ``local_patterns`` is this rank's (N_r, D) tensor (N_r may be 0) or PatternStore.
    """
    beta, chunk_size = _prepare(state, beta, chunk_size, group)
    n_local = _local_info(local_patterns, state.shape[-1])
    merged = sharded_pass(local_patterns, n_local, beta, chunk_size, group)(state)[0]
    if not skip_data_checks() and not bool(torch.isfinite(merged.m).all()):
        if not bool(torch.isinf(merged.m).all() & (merged.m < 0).all()):
            raise ValueError("distributed_update is not finite: the scores β·xᵀξ overflow "
                             f"{state.dtype}; use float64 inputs or a smaller beta")
        raise ValueError("local_patterns are empty on every rank: nothing is stored")
    return merged.result(state.dtype)


def distributed_lse(state: torch.Tensor, local_patterns: Any, beta: float | torch.Tensor,
                    group: Any = None, *, mean: bool = False,
                    chunk_size: int = HS.DEFAULT_CHUNK_SIZE) -> torch.Tensor:
    """:func:`hopfield.functional.lse` over the patterns of all ranks (collective), (..., L):
    β⁻¹ log Σ_i exp(β x_iᵀξ) (``mean=True``: minus β⁻¹ log N), identical on every rank."""
    beta, chunk_size = _prepare(state, beta, chunk_size, group)
    n_local = _local_info(local_patterns, state.shape[-1])
    n = _global_n(n_local, state, group)
    out = HS._lse_with(sharded_pass(local_patterns, n_local, beta, chunk_size, group), state,
                       beta, n, mean)
    return HS._finite_result(out, "distributed_lse")


def distributed_topk(state: torch.Tensor, local_patterns: Any, beta: float | torch.Tensor, k: int,
                     offset: int, group: Any = None, *,
                     chunk_size: int = HS.DEFAULT_CHUNK_SIZE) -> HS.TopK:
    """The k most associated patterns over all ranks: exact weights, global indices.

    ``offset`` is the global index of this rank's first pattern (see
    :attr:`ShardedModernHopfield.offset_`). Collective, like :func:`distributed_update`.
    """
    beta, chunk_size = _prepare(state, beta, chunk_size, group)
    k = check_positive_int(k, "k")
    n_local = _local_info(local_patterns, state.shape[-1])
    return _topk(state, local_patterns, n_local, beta, k, offset, group, chunk_size)


def _topk(state: torch.Tensor, local: Any, n_local: int, beta: Any, k: int, offset: int,
          group: Any, chunk_size: int) -> HS.TopK:
    part, top, _ = _local_pass(state, local, n_local, beta, chunk_size, k=k)
    merged = _merge(part, group)
    lead_l = tuple(state.shape[:-1])
    vals = torch.full((*lead_l, k), float("-inf"), dtype=state.dtype, device=state.device)
    idx = torch.full((*lead_l, k), -1, dtype=torch.long, device=state.device)
    if top is not None:  # pad this rank's (..., L, k_r) to k
        kr = top[0].shape[-1]
        vals[..., :kr], idx[..., :kr] = top[0], top[1] + offset
    world = dist.get_world_size(group)
    all_vals = [torch.empty_like(vals) for _ in range(world)]
    all_idx = [torch.empty_like(idx) for _ in range(world)]
    dist.all_gather(all_vals, vals, group=group)
    dist.all_gather(all_idx, idx, group=group)
    vals, pos = torch.cat(all_vals, -1).topk(k, dim=-1)  # (..., L, k)
    idx = torch.cat(all_idx, -1).gather(-1, pos)
    if bool((idx < 0).any()):
        raise ValueError(f"k must be <= the number of stored patterns over all ranks, got {k}")
    return HS.TopK(weights=torch.exp(vals - merged.lse(state.dtype).unsqueeze(-1)), indices=idx)


class ShardedModernHopfield:
    """:class:`hopfield.ModernHopfield` whose stored patterns are sharded over ranks.

    Args:
        beta: inverse temperature β > 0.
        group: process group (``None``: the default group).
        max_steps, tol: as in :class:`hopfield.ModernHopfield`.
        chunk_size: patterns per chunk of the local pass (bounds memory at O(chunk × L)).

    Example (run under ``torchrun --nproc-per-node 2``)::

        dist.init_process_group("gloo")
        mem = ShardedModernHopfield(beta=8.0).store(my_shard)     # (N_r, D) on this rank
        out = mem.retrieve(queries)                                # same (L, D) on every rank
        w, idx = mem.retrieve_topk(queries, k=5)                   # global indices

    Under NCCL every rank must use its own GPU: call ``torch.cuda.set_device(local_rank)``
    before ``init_process_group("nccl")`` (ranks that do not all use GPU 0). Queries (numpy,
    CPU tensors) are then moved to ``cuda:torch.cuda.current_device()``; a CPU or PatternStore
    shard is streamed to that GPU chunk by chunk. See docs/gpu.md.
    """

    def __init__(self, beta: float = 1.0, group: Any = None, *, max_steps: int = 100,
                 tol: float = 1e-5, chunk_size: int = HS.DEFAULT_CHUNK_SIZE) -> None:
        self.beta = HF._check_beta(beta)
        self.group = group
        self.max_steps = check_positive_int(max_steps, "max_steps")
        self.tol = check_positive_float(tol, "tol")
        self.chunk_size = check_positive_int(chunk_size, "chunk_size")

    def store(self, local_patterns: Any) -> ShardedModernHopfield:
        """Collective: each rank stores its shard (array/tensor (N_r, D), or a PatternStore kept
        by reference). Sets ``n_patterns_`` (global N), ``local_n_``, ``offset_``, ``dim_``."""
        _check_dist(self.group)
        if isinstance(local_patterns, PatternStore):
            local, n, d = local_patterns, len(local_patterns), local_patterns.dim
        else:
            local, _ = from_user(local_patterns, "local_patterns")
            if local.dim() != 2:
                raise ValueError(f"local_patterns must have shape (N_r, D), got "
                                 f"{shape_str(local.shape)}")
            n, d = local.shape
        dev = local.device if isinstance(local, torch.Tensor) else torch.device("cpu")
        if dist.get_backend(self.group) == "nccl":
            dev = torch.device("cuda", torch.cuda.current_device())
        mine = torch.tensor([n, d], dtype=torch.long, device=dev)
        world = dist.get_world_size(self.group)
        counts = [torch.empty_like(mine) for _ in range(world)]
        dist.all_gather(counts, mine, group=self.group)
        sizes = [int(c[0]) for c in counts]
        dims = {int(c[1]) for c in counts}
        if len(dims) != 1:
            raise ValueError(f"local_patterns must have the same D on every rank, got "
                             f"{sorted(dims)}")
        if sum(sizes) == 0:
            raise ValueError("local_patterns must hold at least one pattern on some rank, got 0 "
                             "on every rank")
        rank = dist.get_rank(self.group)
        self.patterns_ = local
        self.local_n_, self.n_patterns_, self.dim_ = n, sum(sizes), int(d)
        self.offset_ = sum(sizes[:rank])
        self.shard_sizes_ = sizes
        return self

    def _queries(self, queries: Any) -> tuple[torch.Tensor, bool, bool]:
        if not hasattr(self, "patterns_"):
            raise NotStoredError("This ShardedModernHopfield is empty: call "
                                 "store(local_patterns) before retrieve")
        if isinstance(self.patterns_, torch.Tensor):  # queries follow the shard's dtype/device
            dtype, device = self.patterns_.dtype, self.patterns_.device
        else:  # PatternStore: chunks are moved to the queries' device
            dtype = torch.float64 if self.patterns_.dtype == torch.float64 else torch.float32
            device = None
        if dist.get_backend(self.group) == "nccl":  # NCCL collectives need CUDA tensors
            device = torch.device("cuda", torch.cuda.current_device())
        t, as_numpy = from_user(queries, "queries", dtype=dtype, device=device)
        single = t.dim() == 1
        t = t.unsqueeze(0) if single else t
        if t.dim() != 2 or t.shape[1] != self.dim_:
            raise ValueError(f"queries must have shape (L, {self.dim_}) or ({self.dim_},), got "
                             f"{shape_str(t.shape)}")
        return t, as_numpy, single

    def _backend(self) -> Any:
        from .memory._backends import ShardedBackend

        _check_dist(self.group)
        return ShardedBackend(self.patterns_, self.local_n_, self.n_patterns_, self.offset_,
                              self.beta, self.chunk_size, self.group)

    def update(self, queries: Any) -> Any:
        """One exact update over all shards (collective)."""
        q, as_numpy, single = self._queries(queries)
        xi = self._backend().update(q)
        return to_user(xi[0] if single else xi, as_numpy)

    def retrieve(self, queries: Any, *, max_steps: int | None = None,
                 return_info: bool = False) -> Any:
        """Iterate :meth:`update` until every query moves < ``tol`` (collective; all ranks get
        identical results and so stop at the same step). The loop is
        :func:`hopfield._driver.iterate`; ``return_info=True`` also returns its
        :class:`hopfield.RetrievalInfo` (``weights`` is ``None``)."""
        steps = (self.max_steps if max_steps is None
                 else check_positive_int(max_steps, "max_steps"))  # 0 is an error, not "default"
        q, as_numpy, single = self._queries(queries)
        xi, info = self._backend().retrieve(q, steps, self.tol, return_info)
        xi = to_user(xi[0] if single else xi, as_numpy)
        return (xi, info) if return_info else xi

    def retrieve_topk(self, queries: Any, k: int) -> tuple[Any, Any]:
        """``(weights (L, k), indices (L, k))`` of the k most associated patterns over all ranks;
        indices are global (rank r's patterns are ``offset_ .. offset_ + local_n_ - 1``)."""
        q, as_numpy, single = self._queries(queries)
        k = check_positive_int(k, "k")
        if k > self.n_patterns_:
            raise ValueError(f"k must be <= the number of stored patterns ({self.n_patterns_}), "
                             f"got {k}")
        w, idx = self._backend().topk(q, k)
        w, idx = (w[0], idx[0]) if single else (w, idx)
        return to_user(w, as_numpy), to_user(idx, as_numpy)

    def energy(self, queries: Any) -> Any:
        """The Hopfield energy of each query over all shards (collective), as
        :func:`hopfield.functional.energy` on the concatenated patterns."""
        q, as_numpy, single = self._queries(queries)
        e = self._backend().energy(q)
        return to_user(e[0] if single else e, as_numpy)

    def lse(self, queries: Any, *, mean: bool = False) -> Any:
        """:func:`hopfield.functional.lse` of each query over all shards (collective)."""
        q, as_numpy, single = self._queries(queries)
        e = self._backend().lse(q, mean)
        return to_user(e[0] if single else e, as_numpy)

    def __repr__(self) -> str:
        stored = (f", n_patterns_={self.n_patterns_}, local_n_={self.local_n_}"
                  if hasattr(self, "patterns_") else "")
        return f"ShardedModernHopfield(beta={self.beta!r}{stored})"

