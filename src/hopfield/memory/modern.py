"""The modern (continuous) Hopfield network of Ramsauer et al. (2020) as an associative memory."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .. import functional as HF
from .._validation import check_beta, check_positive_int
from ..separations import Separation, get_separation
from .base import AssociativeMemory, to_user

__all__ = ["ModernHopfield"]


class ModernHopfield(AssociativeMemory):
    """Continuous modern Hopfield memory: ξ ← X sep(β Xᵀ ξ), many queries at once.

    Args:
        beta: inverse temperature β > 0. Small β retrieves the mean of all patterns, large β the
            nearest single pattern, intermediate β metastable averages of similar patterns.
        separation: ``"softmax"`` (default), ``"sparsemax"``, ``"entmax"`` or an instance.
        max_steps: maximum number of updates in :meth:`retrieve`.
        tol: stop when ‖ξ_new − ξ‖ < tol for every query.

    Example:
        >>> mem = ModernHopfield(beta=8.0).store(patterns)      # (N, D)
        >>> out = mem.retrieve(noisy_queries)                    # (L, D)
    """

    def __init__(self, beta: float = 1.0, separation: str | Separation = "softmax",
                 max_steps: int = 100, tol: float = 1e-5) -> None:
        self.beta = check_beta(beta)
        self.separation = get_separation(separation)
        self.max_steps = check_positive_int(max_steps, "max_steps")
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol > 0:
            raise ValueError(f"tol must be a float > 0, got {tol!r}")
        self.tol = float(tol)

    def _repr_params(self) -> dict[str, Any]:
        return {"beta": self.beta, "separation": self.separation.name}

    def retrieve(
        self,
        queries: Any,
        *,
        max_steps: int | None = None,
        return_info: bool = False,
    ) -> Any:
        """Retrieve from ``queries`` (L, D) or (D,); returns the fixed points in the caller's type.

        With ``return_info=True`` also returns a :class:`hopfield.RetrievalInfo` (torch tensors).
        """
        q, as_numpy, single = self._as_queries(queries)
        out = HF.retrieve(q, self.patterns_, self.beta, max_steps or self.max_steps, self.tol,
                          separation=self.separation, return_info=return_info)
        xi, info = out if return_info else (out, None)
        xi = to_user(xi[0] if single else xi, as_numpy)
        return (xi, info) if return_info else xi

    def update(self, queries: Any) -> Any:
        """A single update step (equals one head of attention with ``scale=beta``)."""
        q, as_numpy, single = self._as_queries(queries)
        xi = HF.update(q, self.patterns_, self.beta, separation=self.separation)
        return to_user(xi[0] if single else xi, as_numpy)

    def weights(self, queries: Any) -> np.ndarray | torch.Tensor:
        """Association weights sep(β Xᵀ ξ) of each query, shape (L, N)."""
        q, as_numpy, single = self._as_queries(queries)
        _, w = HF.update(q, self.patterns_, self.beta, separation=self.separation,
                         return_weights=True)
        return to_user(w[0] if single else w, as_numpy)

    def _energy(self, states: torch.Tensor) -> torch.Tensor:
        return HF.energy(states, self.patterns_, self.beta)
