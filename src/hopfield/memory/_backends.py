"""Retrieval backends of :class:`hopfield.ModernHopfield` (and the sharded memory).

A backend owns *where the stored patterns live* and answers the five questions a memory asks —
``update``, ``retrieve``, ``weights``, ``topk``, ``energy`` (plus ``lse``) — for validated (L, D)
queries. The memory validates inputs, picks a backend once, and converts results back to the
caller's type; it never branches on where the patterns are.

* :class:`InMemoryBackend` — an (N, D) tensor. Softmax without diagnostics runs the fused kernel
  over the whole tensor (one "chunk"); other separations and ``return_info`` use
  :mod:`hopfield.functional`.
* :class:`ChunkedBackend` — an (N, D) tensor or a :class:`hopfield.PatternStore` streamed in
  chunks with the exact online softmax (:mod:`hopfield.streaming`).
* :class:`ShardedBackend` — shards over ``torch.distributed`` ranks (:mod:`hopfield.distributed`).

All three softmax paths share one implementation (:class:`SoftmaxBackend`) written against a
*pass function* (one fused call / one pass over chunks / one pass plus two collectives), and one
loop, :func:`hopfield._driver.iterate`. To add a backend, give :class:`SoftmaxBackend` a pass
function (see :func:`hopfield.streaming.source_pass`).
"""

from __future__ import annotations

from typing import Any

import torch

from .. import functional as HF
from .. import streaming as HS
from .._driver import RetrievalInfo, iterate
from ..separations import Separation

__all__ = ["ChunkedBackend", "InMemoryBackend", "ShardedBackend", "SoftmaxBackend"]


class SoftmaxBackend:
    """Softmax retrieval over a pass function ``pass_fn(state, k, max_norm)``.

    Args:
        pass_fn: see :mod:`hopfield.streaming` ("operations on a pass").
        beta: float, 0-d tensor (or shaped for the states' leading dims).
        n: total number of stored patterns N.
        topk_pass: pass function used by :meth:`topk` (default ``pass_fn``).
    """

    def __init__(self, pass_fn: HS.PassFn, beta: Any, n: int,
                 topk_pass: HS.PassFn | None = None) -> None:
        self.pass_fn, self.beta, self.n = pass_fn, beta, n
        self.topk_pass = topk_pass or pass_fn

    def update(self, q: torch.Tensor) -> torch.Tensor:
        return HS._finite_result(self.pass_fn(q, 0, False)[0].result(q.dtype), "update")

    def retrieve(self, q: torch.Tensor, max_steps: int, tol: float,
                 return_info: bool) -> tuple[torch.Tensor, RetrievalInfo]:
        return HS._retrieve_with(self.pass_fn, q, self.beta, self.n, max_steps, tol, return_info)

    def topk(self, q: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        top = HS._topk_with(self.topk_pass, q, k)
        return top.weights, top.indices

    def energy(self, q: torch.Tensor) -> torch.Tensor:
        return HF._check_output(HS._energy_with(self.pass_fn, q, self.beta, self.n), "energy",
                                HF._compute_dtype(q.dtype))

    def lse(self, q: torch.Tensor, mean: bool = False) -> torch.Tensor:
        return HS._finite_result(HS._lse_with(self.pass_fn, q, self.beta, self.n, mean), "lse")

    def weights(self, q: torch.Tensor) -> torch.Tensor:  # pragma: no cover - per backend
        raise ValueError(f"{type(self).__name__} cannot return the full association weights; "
                         "use topk")


class ChunkedBackend(SoftmaxBackend):
    """An (N, D) tensor or PatternStore streamed in chunks of ``chunk_size`` rows."""

    def __init__(self, source: Any, beta: Any, chunk_size: int, n: int,
                 topk_chunk: int | None = None) -> None:
        self.source, self.chunk_size = source, chunk_size
        topk = None if topk_chunk is None else HS.source_pass(source, beta, topk_chunk)
        super().__init__(HS.source_pass(source, beta, chunk_size), beta, n, topk)

    def weights(self, q: torch.Tensor) -> torch.Tensor:
        return HS.stream_weights(q, self.source, self.beta, chunk_size=self.chunk_size)


class InMemoryBackend(ChunkedBackend):
    """An (N, D) tensor. Softmax without diagnostics: the fused kernel over the whole tensor on
    CPU (one chunk; skips re-validating the patterns checked at ``store``/``add`` and passes 4-D
    views to the kernel — the (L, D) SDPA call falls back to the L × N math path on CPU: 4.1x the
    time and +2.2 GiB at N = 1M, L = 256); ``DEFAULT_CHUNK_SIZE`` chunks on other devices.
    Other separations, and retrieval with ``return_info``, go through :mod:`hopfield.functional`
    (the same driver), which materialises the association weights."""

    def __init__(self, patterns: torch.Tensor, beta: Any, separation: Separation,
                 topk_chunk: int) -> None:
        chunk = (max(1, patterns.shape[0]) if patterns.device.type == "cpu"
                 else HS.DEFAULT_CHUNK_SIZE)
        super().__init__(patterns, beta, chunk, patterns.shape[0], topk_chunk)
        self.patterns, self.separation = patterns, separation

    @property
    def _softmax(self) -> bool:
        return self.separation.is_softmax

    @property
    def _partials(self) -> bool:
        """Softmax through online-softmax partials: on CPU the fused kernel that also returns the
        log-sum-exp. On other devices ``update``/``retrieve`` call the fused SDPA kernel instead
        (no (L, chunk) score matrix; issue 15 item 4)."""
        return self._softmax and self.patterns.device.type == "cpu"

    def _step(self, xi: torch.Tensor, _: bool = False) -> tuple[torch.Tensor, None]:
        return HF._associate(xi, self.patterns, self.patterns, self.beta, None,
                             self.separation)[0], None

    def update(self, q: torch.Tensor) -> torch.Tensor:
        if self._partials:  # no result check: the memory bounded the scores before the call
            return self.pass_fn(q, 0, False)[0].result(q.dtype)
        return self._step(q)[0]

    def retrieve(self, q: torch.Tensor, max_steps: int, tol: float,
                 return_info: bool) -> tuple[torch.Tensor, RetrievalInfo | None]:
        if self._partials and not return_info:
            return super().retrieve(q, max_steps, tol, False)
        if self._softmax and not return_info:  # CUDA & co: fused SDPA steps, the same driver
            return iterate(self._step, q, max_steps=max_steps, tol=tol)
        out = HF.retrieve(q, self.patterns, self.beta, max_steps, tol,
                          separation=self.separation, return_info=return_info)
        return out if return_info else (out, None)

    def weights(self, q: torch.Tensor) -> torch.Tensor:
        return HF._associate(q, self.patterns, self.patterns, self.beta, None, self.separation,
                             need_weights=True)[1]

    def topk(self, q: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._softmax:  # one streaming pass, O(chunk × L) memory
            return super().topk(q, k)
        return self.weights(q).topk(k, dim=-1)

    def energy(self, q: torch.Tensor) -> torch.Tensor:
        return HF._check_output(HF._energy(q, self.patterns, self.beta), "energy",
                                HF._compute_dtype(q.dtype))

    def lse(self, q: torch.Tensor, mean: bool = False) -> torch.Tensor:
        return HF.lse(q, self.patterns, self.beta, mean=mean)


class ShardedBackend(SoftmaxBackend):
    """This rank's shard of a pattern set spread over ``torch.distributed`` ranks."""

    def __init__(self, local: Any, n_local: int, n: int, offset: int, beta: Any, chunk_size: int,
                 group: Any) -> None:
        from .. import distributed as HD

        self.local, self.n_local, self.offset = local, n_local, offset
        self.chunk_size, self.group = chunk_size, group
        super().__init__(HD.sharded_pass(local, n_local, beta, chunk_size, group), beta, n)

    def topk(self, q: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        from .. import distributed as HD

        top = HD._topk(q, self.local, self.n_local, self.beta, k, self.offset, self.group,
                       self.chunk_size)
        return top.weights, top.indices
