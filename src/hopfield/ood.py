"""Out-of-distribution detection with the modern Hopfield energy, and Hopfield Boosting.

Shape legend: N stored in-distribution patterns, L queries, D features, K auxiliary outliers.

Score. A query ξ is as normal as its modern Hopfield energy against the stored in-distribution
patterns X is low (Ramsauer et al. 2020; :func:`hopfield.functional.energy`)::

    score(ξ) = −E(ξ; X) = β⁻¹ log Σ_i exp(β x_iᵀξ) − ½ ξᵀξ − β⁻¹ log N − ½ M²,   M = max_i ‖x_i‖

Higher = more normal (scikit-learn's ``score_samples`` convention). With ``per_class=True`` the
score is the maximum of −E(ξ; X_c) over the classes c (each class its own memory, so a class's
size enters only through its ``log N_c``). With auxiliary outliers O given to ``fit`` (``X_aux``)
the score is Hopfield Boosting's (Hofmann et al. 2024)::

    score(ξ) = −E(ξ; X) + E(ξ; O)   (= β⁻¹lse(β Xᵀξ) − β⁻¹lse(β Oᵀξ) + constants)

For unit-norm patterns and queries (``normalize=True``: centre by the in-distribution mean, then
scale every row to unit length) ``exp(−β E(ξ; X))`` is, up to a constant, the Gaussian kernel
density ``(1/N) Σ_i exp(−β/2 ‖ξ − x_i‖²)`` with bandwidth β^{-1/2}: the energy is a density score.

Choice of β (``beta=None``). β maximises the held-out log-likelihood of that kernel density::

    β* = argmax_β mean_{ξ ∈ held-out} [ (D'/2) log(β / 2π) − β E(ξ; X_fit) ]

with D' = D − 1 on the unit sphere (``normalize=True``) and D otherwise; X_fit is a random 80 % of
the training rows (at most 20,000) and the held-out set the other 20 % (at most 2,000), and β runs
over a geometric grid 2^k / d², k = −4..10, with d² the median squared distance from a held-out row
to its nearest stored row. No outliers are needed. The rule picks the density model of the data,
not the β of best AUROC; ``beta_`` records the choice, ``beta_scores_`` the grid.

Threshold. ``offset_`` is the ``contamination`` quantile (or the ``1 − target_recall`` quantile) of
leave-one-out training scores (each of up to 2,000 training rows scored against the memory without
itself), so about that fraction of in-distribution data is predicted −1.

Large memories. ``fit`` also takes a :class:`hopfield.PatternStore` (N rows on disk); scoring then
streams it in chunks (exact online log-sum-exp, memory O(chunk × L)). The store's rows are used as
they are (``normalize`` must be False and ``per_class`` is unavailable).

Hopfield Boosting (training): :func:`hopfield_boosting_loss`, :func:`boundary_energy` and
:func:`hopfield_boosting_weights` live in :mod:`hopfield.ood_boosting` and are re-exported here.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.exceptions import NotFittedError

from . import streaming as HS
from ._validation import (
    check_beta,
    check_finite,
    check_positive_int,
    shape_str,
)
from .ood_boosting import boundary_energy, hopfield_boosting_loss, hopfield_boosting_weights
from .storage import PatternStore

__all__ = [
    "HopfieldOODDetector",
    "boundary_energy",
    "hopfield_boosting_loss",
    "hopfield_boosting_weights",
    "lse_scores",
]

_BLOCK = 1 << 22  # elements of one (query block × chunk) score matrix
DEFAULT_CHUNK_SIZE = 65536
BETA_GRID_EXPONENTS = tuple(range(-4, 11))


# ----------------------------------------------------------------------------- streaming lse


def _iter_source(source: Any, chunk_size: int, like: torch.Tensor):
    if isinstance(source, torch.Tensor):
        for s in range(0, source.shape[0], chunk_size):
            yield s, source[s:s + chunk_size].to(dtype=like.dtype)
    else:
        for s, chunk in source.iter_chunks(chunk_size):
            yield s, chunk.to(dtype=like.dtype)


@torch.no_grad()
def lse_scores(queries: torch.Tensor, source: Any, beta: float, *,
               exclude: torch.Tensor | None = None,
               chunk_size: int = DEFAULT_CHUNK_SIZE) -> torch.Tensor:
    """log Σ_i exp(β x_iᵀξ) of every query (L,), in float64, streaming the stored patterns.

    ``source`` is an (N, D) tensor or a :class:`hopfield.PatternStore`; ``exclude`` (L,) int64
    gives per query one stored row to leave out (−1: none). The stored patterns are read once
    (without ``exclude`` through the fused kernel of :func:`hopfield.streaming.chunk_partial`;
    with it in cache-sized chunks of at most 8,192 rows and 2²² scores per block).
    """
    n = source.shape[0] if isinstance(source, torch.Tensor) else len(source)
    chunk = max(1, min(chunk_size, n))
    if exclude is None:  # fused kernel per chunk (online softmax of hopfield.streaming)
        acc = HS.SoftmaxPartial.empty((queries.shape[0],), queries.shape[1], queries)
        for _, x in _iter_source(source, chunk, queries):
            acc = acc.merge(HS.chunk_partial(queries, x, float(beta))[0])
        return acc.lse(torch.float64)
    chunk = min(chunk, 8192)  # cache-sized chunks: every query block reuses the chunk
    lb = max(1, min(queries.shape[0], _BLOCK // chunk))  # queries per block
    out = torch.full((queries.shape[0],), float("-inf"), dtype=torch.float64)
    blocks = [(s, queries[s:s + lb]) for s in range(0, queries.shape[0], lb)]
    for start, x in _iter_source(source, chunk, queries):  # one pass over the stored patterns
        for s, q in blocks:
            out[s:s + q.shape[0]] = torch.logaddexp(
                out[s:s + q.shape[0]], _chunk_lse(q, x, beta, start, exclude, s))
    return out


def _chunk_lse(q, x, beta, start, exclude, s) -> torch.Tensor:
    scores = (q * beta) @ x.mT  # (Lb, C)
    if exclude is not None:
        local = exclude[s:s + q.shape[0]] - start  # (Lb,)
        hit = (local >= 0) & (local < x.shape[0])
        if bool(hit.any()):
            rows = hit.nonzero().squeeze(1)
            scores[rows, local[rows]] = float("-inf")
    return torch.logsumexp(scores, dim=-1).to(torch.float64)


# ----------------------------------------------------------------------------- detector


def _as_2d(X: Any, name: str) -> np.ndarray:
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    try:
        arr = np.asarray(X)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a 2-D numeric array, got {type(X).__name__}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a 2-D numeric array, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (n_samples, n_features), got "
                         f"{shape_str(arr.shape)}")
    arr = arr.astype(np.float64 if arr.dtype == np.float64 else np.float32, copy=False)
    check_finite(arr, name)
    return arr


class HopfieldOODDetector(OutlierMixin, BaseEstimator):
    """Out-of-distribution detector scoring queries by their modern Hopfield energy.

    Follows scikit-learn's outlier detectors (IsolationForest, LocalOutlierFactor): ``fit(X[, y])``,
    ``score_samples`` (higher = more normal), ``decision_function`` (= score − ``offset_``; < 0 is
    an outlier) and ``predict`` (+1 inlier, −1 outlier). See the module docstring for the math.

    Args:
        beta: inverse temperature β > 0, or ``None`` to choose it on held-in data (the rule in the
            module docstring).
        per_class: one memory per class of ``y`` (``fit`` then needs ``y``); score = max over
            classes.
        normalize: centre by the in-distribution mean and scale rows to unit length.
        contamination: fraction of in-distribution data to flag as outliers, in (0, 0.5].
        target_recall: alternatively, the fraction of in-distribution data to keep (in (0, 1));
            overrides ``contamination``.
        chunk_size: stored patterns per streamed chunk; ``None``: an in-memory memory in one fused
            call (as :class:`hopfield.ModernHopfield` does), a PatternStore in chunks of 65,536.
        random_state: seed of the held-in split and the threshold sample.

    Attributes: ``beta_``, ``offset_``, ``n_features_in_``, ``patterns_`` (tensor or PatternStore),
    ``classes_`` (``per_class``), ``aux_patterns_`` (with ``X_aux``), ``beta_scores_`` (β rule).
    """

    def __init__(self, beta: float | None = None, *, per_class: bool = False,
                 normalize: bool = True, contamination: float = 0.1,
                 target_recall: float | None = None, chunk_size: int | None = None,
                 random_state: int | None = None) -> None:
        self.beta = beta
        self.per_class = per_class
        self.normalize = normalize
        self.contamination = contamination
        self.target_recall = target_recall
        self.chunk_size = chunk_size
        self.random_state = random_state

    # ------------------------------------------------------------------ validation
    def _check_params(self) -> None:
        if self.beta is not None:
            check_beta(self.beta, "beta")
            if isinstance(self.beta, torch.Tensor):
                raise TypeError("beta must be a float or None, got a tensor")
        c = self.contamination
        if isinstance(c, bool) or not isinstance(c, numbers.Real) or not 0 < float(c) <= 0.5:
            raise ValueError(f"contamination must be a float in (0, 0.5], got {c!r}")
        r = self.target_recall
        if r is not None and (isinstance(r, bool) or not isinstance(r, numbers.Real)
                              or not 0 < float(r) < 1):
            raise ValueError(f"target_recall must be None or a float in (0, 1), got {r!r}")
        if self.chunk_size is not None:
            check_positive_int(self.chunk_size, "chunk_size")
        if not isinstance(self.per_class, bool) or not isinstance(self.normalize, bool):
            raise TypeError("per_class and normalize must be bools")

    def _prep(self, X: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
        if self.normalize:
            t = F.normalize(t - self.mean_, dim=-1)
        return t

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, y: Any = None, *, X_aux: Any = None) -> HopfieldOODDetector:
        """Store the in-distribution rows ``X`` (n, d) (or a PatternStore); choose β, offset."""
        self._check_params()
        rng = np.random.default_rng(self.random_state)
        if isinstance(X, PatternStore):
            return self._fit_store(X, y, X_aux, rng)
        X = _as_2d(X, "X")
        n, d = X.shape
        if n < 2:
            raise ValueError(f"X must hold at least 2 in-distribution samples, got {n}")
        if d == 0:
            raise ValueError("X must have at least one feature, got 0")
        self.n_features_in_ = d
        if self.per_class:
            if y is None:
                raise ValueError("per_class=True needs the class labels y in fit(X, y)")
            y = np.asarray(y)
            if y.shape != (n,):
                raise ValueError(f"y must have shape ({n},), got {shape_str(y.shape)}")
            self.classes_, y_idx = np.unique(y, return_inverse=True)
            if np.bincount(y_idx).min() < 2:
                raise ValueError("per_class=True needs at least 2 samples of every class in y")
        self.mean_ = torch.from_numpy(X.mean(0).astype(np.float32))
        P = self._prep(X)  # (N, D)
        if self.normalize and bool((P.norm(dim=-1) == 0).any()):
            raise ValueError("X has a row equal to the in-distribution mean: it has no direction "
                             "after centring; pass normalize=False")
        self.patterns_ = P
        self._members = [np.arange(n)] if not self.per_class else [
            np.flatnonzero(y_idx == c) for c in range(len(self.classes_))]
        self._memories = [P[torch.from_numpy(m)] for m in self._members]
        self.aux_patterns_ = None
        if X_aux is not None:
            A = _as_2d(X_aux, "X_aux")
            if A.shape[1] != d:
                raise ValueError(f"X_aux must have {d} features like X, got {A.shape[1]}")
            if A.shape[0] == 0:
                raise ValueError("X_aux must hold at least one sample, got 0")
            self.aux_patterns_ = self._prep(A)
            self._aux_m2 = self._max_sq_norm(self.aux_patterns_)
        self._m2 = [self._max_sq_norm(m) for m in self._memories]
        self.beta_ = float(self.beta) if self.beta is not None else self._choose_beta(P, rng)
        self._set_offset(P, rng)
        return self

    def _fit_store(self, store: PatternStore, y, X_aux, rng) -> HopfieldOODDetector:
        if self.normalize:
            raise ValueError("normalize must be False with a PatternStore (its rows are used as "
                             "they are: store preprocessed rows)")
        if self.per_class or y is not None or X_aux is not None:
            raise ValueError("a PatternStore memory supports neither per_class, y nor X_aux")
        n = len(store)
        if n < 2:
            raise ValueError(f"X must hold at least 2 in-distribution samples, got {n}")
        self.n_features_in_ = int(store.dim)
        self.mean_ = None
        self.patterns_ = store
        self._members = None
        self._memories = [store]
        self._m2 = [self._max_sq_norm(store)]
        self.aux_patterns_ = None
        sample = np.sort(rng.choice(n, size=min(n, 22000), replace=False))
        P = store[sample].float()
        self.beta_ = float(self.beta) if self.beta is not None else self._choose_beta(P, rng)
        idx = np.sort(rng.choice(n, size=min(n, 2000), replace=False))
        q = store[idx].float()
        s = self._raw_scores(q, exclude=[torch.from_numpy(idx)])
        self._finish_offset(s)
        return self

    def _choose_beta(self, P: torch.Tensor, rng) -> float:
        n = P.shape[0]
        perm = rng.permutation(n)
        n_out = max(1, min(2000, n // 5))
        held, fit = perm[:n_out], perm[n_out:n_out + 20000]
        Q, X = P[torch.from_numpy(held)], P[torch.from_numpy(fit)]
        d2 = torch.cdist(Q, X).min(dim=1).values.pow(2)
        scale = float(d2.median())
        scale = scale if scale > 0 else float(d2.mean()) or 1.0
        dim = P.shape[1] - (1 if self.normalize else 0)
        dim = max(dim, 1)
        q2 = 0.5 * (Q.double() ** 2).sum(-1)
        m2 = 0.5 * float((X.double() ** 2).sum(-1).max())
        scores = {}
        for k in BETA_GRID_EXPONENTS:
            beta = 2.0 ** k / scale
            lse = lse_scores(Q, X, beta, chunk_size=self._chunk(X))
            minus_beta_e = lse - beta * q2 - math.log(X.shape[0]) - beta * m2  # −β E(ξ)
            ll = 0.5 * dim * math.log(beta / (2 * math.pi)) + minus_beta_e
            scores[beta] = float(ll.mean())
        self.beta_scores_ = scores
        return max(scores, key=scores.get)

    def _set_offset(self, P: torch.Tensor, rng) -> None:
        n = P.shape[0]
        idx = np.sort(rng.choice(n, size=min(n, 2000), replace=False))
        excl = []
        for m in self._members:  # global row -> row inside each memory (−1: not a member)
            pos = np.full(n, -1, dtype=np.int64)
            pos[m] = np.arange(len(m))
            excl.append(torch.from_numpy(pos[idx]))
        self._finish_offset(self._raw_scores(P[torch.from_numpy(idx)], exclude=excl))

    def _finish_offset(self, s: torch.Tensor) -> None:
        level = (1 - float(self.target_recall) if self.target_recall is not None
                 else float(self.contamination))
        self.offset_ = float(np.quantile(s.numpy(), level))

    # ------------------------------------------------------------------ scoring
    def _neg_energy(self, q: torch.Tensor, memory: Any, m2: float,
                    exclude: torch.Tensor | None) -> torch.Tensor:
        """−E(ξ; memory) in float64 (leaving ``exclude`` out of the sum and of N)."""
        beta = self.beta_
        q2 = 0.5 * (q.double() ** 2).sum(-1)
        if exclude is None:  # the core's streamed log-mean-exp: one fused pass, like one update
            lme = HS.stream_lse(q, memory, beta, mean=True, chunk_size=self._chunk(memory))
            return lme.double() - q2 - 0.5 * m2
        n = memory.shape[0] if isinstance(memory, torch.Tensor) else len(memory)
        lse = lse_scores(q, memory, beta, exclude=exclude, chunk_size=self._chunk(memory))
        log_n = torch.full_like(lse, math.log(n))
        if exclude is not None:
            hit = exclude >= 0
            if n == 1:
                raise ValueError("cannot leave the only stored pattern out")
            log_n[hit] = math.log(n - 1)
        return lse / beta - q2 - log_n / beta - 0.5 * m2

    def _chunk(self, memory: Any) -> int:
        if self.chunk_size is not None:
            return int(self.chunk_size)
        if isinstance(memory, torch.Tensor):
            return max(1, memory.shape[0])
        return DEFAULT_CHUNK_SIZE

    def _max_sq_norm(self, memory: Any) -> float:
        if isinstance(memory, torch.Tensor):
            return float((memory.double() ** 2).sum(-1).max())
        best = 0.0
        for _, chunk in memory.iter_chunks(self._chunk(memory)):
            best = max(best, float((chunk.double() ** 2).sum(-1).max()))
        return best

    def _raw_scores(self, q: torch.Tensor, exclude: list | None = None) -> torch.Tensor:
        per = [self._neg_energy(q, mem, m2, None if exclude is None else exclude[k])
               for k, (mem, m2) in enumerate(zip(self._memories, self._m2))]
        s = torch.stack(per).max(dim=0).values
        if self.aux_patterns_ is not None:
            s = s - self._neg_energy(q, self.aux_patterns_, self._aux_m2, None)
        return s

    def _check_fitted(self) -> None:
        if not hasattr(self, "offset_"):
            raise NotFittedError("this HopfieldOODDetector is not fitted yet; call fit(X) first")

    def score_samples(self, X: Any) -> np.ndarray:
        """−E(ξ; X_in) of each row (n,), float64; higher = more normal."""
        self._check_fitted()
        X = _as_2d(X, "X")
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but HopfieldOODDetector was fitted "
                             f"with {self.n_features_in_} features")
        if X.shape[0] == 0:
            return np.zeros(0)
        if self.mean_ is None:  # PatternStore memory: rows as they are
            q = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
        else:
            q = self._prep(X)
        return self._raw_scores(q).numpy()

    def decision_function(self, X: Any) -> np.ndarray:
        """``score_samples(X) − offset_``: negative for predicted outliers."""
        return self.score_samples(X) - self.offset_

    def predict(self, X: Any) -> np.ndarray:
        """+1 for inliers, −1 for outliers (``decision_function < 0``)."""
        return np.where(self.decision_function(X) < 0, -1, 1)
