"""Building blocks of :class:`~hopfield.estimators._base.HopfieldEstimator`: the float64
:class:`Standardizer`, per-member :class:`EarlyStopping`, the threads context ``_threads`` and the
padding estimate of random bag batches ``_random_batch_share``.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

__all__ = ["EarlyStopping", "Standardizer"]

#: Largest absolute standardised value accepted (far inside float32; larger values would only
#: come from a feature far outside the training range and saturate every layer).
_MAX_STANDARDISED = 1e18


class EarlyStopping:
    """Per-member early stopping on a validation loss (lower is better).

    ``update(losses (M,), iteration)`` returns a bool mask (M,) of the members that improved by
    more than ``tol`` (their weights should be kept); :attr:`stop` is True once every member has
    gone ``n_iter_no_change`` epochs without improving.
    """

    def __init__(self, tol: float, n_iter_no_change: int, n_members: int = 1):
        self.tol, self.n_iter_no_change = float(tol), int(n_iter_no_change)
        self.best = np.full(n_members, np.inf)
        self.best_iteration = np.zeros(n_members, dtype=np.int64)
        self.bad = np.zeros(n_members, dtype=np.int64)

    def update(self, losses, iteration: int) -> np.ndarray:
        losses = np.asarray(losses, dtype=np.float64)
        improved = losses < self.best - self.tol
        self.best = np.where(improved, losses, self.best)
        self.best_iteration[improved] = iteration
        self.bad = np.where(improved, 0, self.bad + 1)
        return improved

    @property
    def stop(self) -> bool:
        return bool((self.bad >= self.n_iter_no_change).all())


class Standardizer:
    """Column standardisation computed in float64; ``transform`` returns float32 or raises.

    Statistics are taken after dividing each column by its largest absolute value, so a column
    holding 1e200 does not overflow the variance. ``transform`` refuses values whose standardised
    magnitude exceeds 1e18 (they would overflow float32 arithmetic downstream), naming the column.
    """

    def __init__(self, mean=None, scale=None):
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float64)
        self.scale = None if scale is None else np.asarray(scale, dtype=np.float64)

    def fit(self, A: np.ndarray) -> Standardizer:
        A = np.asarray(A, dtype=np.float64)
        top = np.abs(A).max(axis=0)
        top = np.where(top > 0, top, 1.0)
        B = A / top
        self.mean = B.mean(axis=0) * top
        std = B.std(axis=0) * top
        self.scale = np.where(std > 1e-12 * np.maximum(top, 1e-300), std, 1.0)
        self.scale = np.where(std > 0, self.scale, 1.0)
        return self

    def transform(self, A: np.ndarray, *, names=None, what: str = "X") -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            Z = (np.asarray(A, dtype=np.float64) - self.mean) / self.scale
        bad = ~(np.abs(Z) <= _MAX_STANDARDISED)
        if bad.any():
            col = int(np.flatnonzero(bad.any(axis=tuple(range(Z.ndim - 1))))[0])
            name = f"{names[col]!r}" if names is not None else f"{col}"
            raise ValueError(
                f"{what} column {name} holds a value "
                f"({float(np.asarray(A, dtype=np.float64)[..., col][bad[..., col]][0])!r})"
                f" that is {float(np.abs(Z[..., col][bad[..., col]][0])):.3g} training standard "
                f"deviations from the training mean; values this far out overflow float32 and "
                f"would give NaN predictions. Rescale or clip that column.")
        return Z.astype(np.float32)


def _random_batch_share(lengths: np.ndarray, batch_size: int, draws: int = 8) -> float:
    """Share of real entries in padded random batches of ``batch_size`` (``lengths`` (n,));
    a fixed seed, so it never touches a fit's random stream."""
    lengths = np.asarray(lengths, dtype=np.float64)
    rng = np.random.RandomState(0)
    real = padded = 0.0
    for _ in range(draws):
        order = lengths[rng.permutation(len(lengths))]
        for s in range(0, len(order), batch_size):
            b = order[s:s + batch_size]
            real, padded = real + b.sum(), padded + b.max() * len(b)
    return real / padded


def _threads(n):
    """Temporarily set torch's intra-op CPU threads (None = leave unchanged)."""
    @contextlib.contextmanager
    def ctx():
        old = torch.get_num_threads()
        if n is not None:
            torch.set_num_threads(int(n))
        try:
            yield
        finally:
            torch.set_num_threads(old)
    return ctx()
