"""The modern (continuous) Hopfield network of Ramsauer et al. (2020) as an associative memory.

Patterns live either in memory (an (N, D) tensor) or in a :class:`hopfield.PatternStore` on disk.
A store-backed memory (or any memory built with ``chunk_size``) streams the patterns in chunks and
merges them exactly with the online softmax (:mod:`hopfield.streaming`), so N is limited by disk,
not RAM. Streaming supports the softmax separation only.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .. import functional as HF
from .. import streaming as HS
from .._validation import check_positive_float, check_positive_int, shape_str, skip_data_checks
from ..separations import Separation, get_separation
from ..storage import PatternStore
from ._backends import ChunkedBackend, InMemoryBackend
from .base import AssociativeMemory, from_user, to_user

__all__ = ["ModernHopfield"]


class ModernHopfield(AssociativeMemory):
    """Continuous modern Hopfield memory: ξ ← X sep(β Xᵀ ξ), many queries at once.

    Args:
        beta: inverse temperature β > 0. Small β retrieves the mean of all patterns, large β the
            nearest single pattern, intermediate β metastable averages of similar patterns.
        separation: ``"softmax"`` (default), ``"sparsemax"``, ``"entmax"`` or an instance.
        max_steps: maximum number of updates in :meth:`retrieve`.
        tol: stop when ‖ξ_new − ξ‖ < tol for every query.
        chunk_size: stream the stored patterns in chunks of this many rows (exact online softmax;
            peak extra memory O(chunk_size × L)). ``None``: in-memory patterns are used whole,
            a :class:`hopfield.PatternStore` streams with ``streaming.DEFAULT_CHUNK_SIZE``.

    Example:
        >>> mem = ModernHopfield(beta=8.0).store(patterns)      # (N, D)
        >>> out = mem.retrieve(noisy_queries)                    # (L, D)
        >>> w, idx = mem.retrieve_topk(noisy_queries, k=5)       # (L, 5), (L, 5)
        >>> disk = ModernHopfield(beta=8.0).store(PatternStore.open("/data/mem"))  # streams
    """

    def __init__(self, beta: float = 1.0, separation: str | Separation = "softmax", *,
                 max_steps: int = 100, tol: float = 1e-5, chunk_size: int | None = None) -> None:
        self.beta = HF._check_beta(beta)  # numpy scalars / 0-d arrays accepted as floats
        if isinstance(self.beta, torch.Tensor) and self.beta.dim() != 0:
            raise ValueError(f"beta must be a float or a 0-d tensor (one β for the memory), got "
                             f"shape {shape_str(self.beta.shape)}")
        self.separation = get_separation(separation)
        self.max_steps = check_positive_int(max_steps, "max_steps")
        self.tol = check_positive_float(tol, "tol")
        self.chunk_size = None if chunk_size is None else check_positive_int(chunk_size,
                                                                             "chunk_size")
        if self.chunk_size is not None:
            self._check_streamable("use chunk_size")

    def _repr_params(self) -> dict[str, Any]:
        params = {"beta": self.beta, "separation": self.separation.name}
        if self.chunk_size is not None:
            params["chunk_size"] = self.chunk_size
        return params

    # ------------------------------------------------------------------ storage
    @property
    def is_streaming(self) -> bool:
        """True when retrieval streams chunks (store-backed, or ``chunk_size`` was given)."""
        return isinstance(getattr(self, "patterns_", None), PatternStore) or (
            self.chunk_size is not None)

    def _chunk(self) -> int:
        return self.chunk_size if self.chunk_size is not None else HS.DEFAULT_CHUNK_SIZE

    def _backend(self, work: torch.dtype | None = None) -> Any:
        """The retrieval backend for the stored patterns (no branching in the methods below).
        ``work``: a wider dtype to compute in when the scores could overflow the patterns' own."""
        if self.is_streaming:
            return ChunkedBackend(self.patterns_, self.beta, self._chunk(), self.n_patterns_)
        patterns = self.patterns_ if work is None else self.patterns_.to(work)
        return InMemoryBackend(patterns, self.beta, self.separation, self._chunk())

    def _fit(self, patterns: torch.Tensor) -> None:
        # max |x|, for the overflow bound of queries; with validation off it is computed at the
        # first validated retrieval instead (no host sync here)
        self._pmax = None if skip_data_checks() else float(HF._max_abs(patterns))

    def _fit_add(self, new: torch.Tensor) -> None:
        if skip_data_checks() or getattr(self, "_pmax", None) is None:
            self._pmax = None
        else:
            self._pmax = max(self._pmax, float(HF._max_abs(new)))

    def store(self, patterns: Any) -> ModernHopfield:
        """Replace the content with ``patterns``: an (N, D) array/tensor, or a
        :class:`hopfield.PatternStore` (kept by reference and streamed, never loaded into RAM;
        ``patterns_`` is then the store itself)."""
        if isinstance(patterns, PatternStore):
            if patterns.closed:
                raise ValueError(f"patterns must be an open PatternStore, got a closed one at "
                                 f"{patterns.path}")
            if len(patterns) == 0:
                raise ValueError(f"patterns must hold at least one pattern, got an empty "
                                 f"PatternStore at {patterns.path}")
            self._check_streamable("store a PatternStore")
            self._pmax = None  # unknown without a pass: streaming raises on overflow instead
            self.patterns_ = patterns
            self.n_patterns_ = len(patterns)
            return self
        return super().store(patterns)

    def add(self, patterns: Any) -> ModernHopfield:
        """Append ``patterns`` (M, D); a store-backed memory appends to its PatternStore on disk
        (which must be open with ``mode="r+"``)."""
        if isinstance(getattr(self, "patterns_", None), PatternStore):
            self.patterns_.append(patterns)
            self.n_patterns_ = len(self.patterns_)
            return self
        return super().add(patterns)

    def _check_streamable(self, what: str) -> None:
        if not self.separation.is_softmax:
            raise ValueError(f"separation must be 'softmax' to {what} (only the softmax merges "
                             f"exactly across chunks), got {self.separation.name!r}")

    def _as_queries(self, queries: Any, name: str = "queries") -> tuple[torch.Tensor, bool, bool]:
        t, as_numpy, single, _ = self._queries(queries, name)
        return t, as_numpy, single

    def _queries(self, queries: Any, name: str) -> tuple[torch.Tensor, bool, bool, float | None]:
        """(queries (L, D), was_numpy, was_1d, max |query| or None). One host sync: for in-memory
        patterns the max |query| both proves finiteness and bounds the scores."""
        self._check_stored()
        in_memory = not isinstance(self.patterns_, PatternStore)
        if in_memory:
            dtype, device = self.patterns_.dtype, self.patterns_.device
        else:  # store-backed: queries keep their device (chunks are moved there); float16
            # stores are computed in float32
            dtype = torch.float64 if self.patterns_.dtype == torch.float64 else torch.float32
            device = None
        t, as_numpy = from_user(queries, name, dtype=dtype, device=device, finite=not in_memory)
        single = t.dim() == 1
        t = t.unsqueeze(0) if single else t
        if t.dim() != 2 or t.shape[1] != self.dim_:
            raise ValueError(f"{name} must have shape (L, {self.dim_}) or ({self.dim_},), got "
                             f"{shape_str(t.shape)}")
        # validation off / tracing: no host sync (no bound: compute in the patterns' dtype)
        qmax = float(HF._max_abs(t)) if in_memory and not skip_data_checks() else None
        if qmax is not None and not math.isfinite(qmax):
            from_user(queries, name, dtype=dtype, device=device)  # raises the precise error
            raise ValueError(f"{name} must be finite")  # pragma: no cover - defensive
        return t, as_numpy, single, qmax

    def _work_dtype(self, q: torch.Tensor, qmax: float | None) -> torch.dtype | None:
        """float64 when β·D·max|ξ|·max|x| could overflow the queries' dtype (in-memory patterns;
        max|x| is kept from ``store``/``add``), else None. Streaming raises on overflow instead."""
        if qmax is None or q.dtype == torch.float64:
            return None
        pmax = getattr(self, "_pmax", None)
        if pmax is None:  # stored with validation off: bound the stored patterns now, once
            pmax = self._pmax = float(HF._max_abs(self.patterns_))
        bound = float(self.beta) * self.dim_ * max(1.0, pmax) * max(1.0, qmax)
        return torch.float64 if bound >= 1e-3 * torch.finfo(q.dtype).max else None

    def _run(self, queries: Any, name: str = "queries"):
        """(backend, queries in its dtype, caller's dtype, was_numpy, was_1d)."""
        q, as_numpy, single, qmax = self._queries(queries, name)
        work = None if self.is_streaming else self._work_dtype(q, qmax)
        backend = self._backend(work)
        return backend, (q if work is None else q.to(work)), q.dtype, as_numpy, single

    # ------------------------------------------------------------------ retrieval

    def retrieve(
        self,
        queries: Any,
        *,
        max_steps: int | None = None,
        return_info: bool = False,
    ) -> Any:
        """Retrieve from ``queries`` (L, D) or (D,); returns the fixed points in the caller's type.

        With ``return_info=True`` also returns a :class:`hopfield.RetrievalInfo` (torch tensors;
        when streaming its ``weights`` is ``None``: use :meth:`retrieve_topk`).
        """
        backend, q, dtype, as_numpy, single = self._run(queries)
        max_steps = (self.max_steps if max_steps is None
                     else check_positive_int(max_steps, "max_steps"))
        xi, info = backend.retrieve(q, max_steps, self.tol, return_info)
        xi = to_user((xi[0] if single else xi).to(dtype), as_numpy)
        return (xi, info) if return_info else xi

    def update(self, queries: Any) -> Any:
        """A single update step (equals one head of attention with ``scale=beta``)."""
        backend, q, dtype, as_numpy, single = self._run(queries)
        xi = backend.update(q).to(dtype)
        return to_user(xi[0] if single else xi, as_numpy)

    def weights(self, queries: Any) -> np.ndarray | torch.Tensor:
        """Association weights sep(β Xᵀ ξ) of each query, shape (L, N)."""
        backend, q, dtype, as_numpy, single = self._run(queries)
        w = backend.weights(q).to(dtype)
        return to_user(w[0] if single else w, as_numpy)

    def retrieve_topk(self, queries: Any, k: int) -> tuple[Any, Any]:
        """The ``k`` stored patterns most associated with each query.

        Returns ``(weights (L, k), indices (L, k))`` (``(k,)`` each for a single query), sorted by
        decreasing weight; the weights are the exact association weights sep(β Xᵀ ξ) of those
        patterns (normalised over all N). With softmax it streams in one pass (memory
        O(chunk × L), also for in-memory patterns); other separations compute the full weights and
        need in-memory patterns.
        """
        backend, q, dtype, as_numpy, single = self._run(queries)
        k = check_positive_int(k, "k")
        if k > self.n_patterns_:
            raise ValueError(f"k must be <= the number of stored patterns ({self.n_patterns_}), "
                             f"got {k}")
        w, idx = backend.topk(q, k)
        w = w.to(dtype)
        w, idx = (w[0], idx[0]) if single else (w, idx)
        return to_user(w, as_numpy), to_user(idx, as_numpy)

    def lse(self, queries: Any, *, mean: bool = False) -> Any:
        """β⁻¹ log Σ_i exp(β x_iᵀξ) of each query over the stored patterns (``mean=True``: minus
        β⁻¹ log N), as :func:`hopfield.functional.lse`; (L,) or a scalar for one query."""
        backend, q, _, as_numpy, single = self._run(queries)
        e = backend.lse(q, mean)
        return to_user(e[0] if single else e, as_numpy)

    def energy(self, states: Any) -> np.ndarray | torch.Tensor:
        """Energy of each state: (L, D) → (L,), or (D,) → scalar (float32 for half queries)."""
        backend, q, dtype, as_numpy, single = self._run(states, "states")
        e = HF._check_output(backend.energy(q), "energy", HF._compute_dtype(dtype))
        return to_user(e[0] if single else e, as_numpy)
