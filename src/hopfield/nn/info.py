"""Optional diagnostics returned by the Hopfield layers with ``return_info=True``.

Shape legend: B batch, H heads, L state patterns (queries), N stored patterns (keys),
T number of state updates actually applied.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["HopfieldInfo"]


@dataclass
class HopfieldInfo:
    """What a Hopfield layer did in one forward pass, computed in that same pass.

    Attributes:
        weights: (B, H, L, N) association weights sep(β ξ Kᵀ) of the final association (the one
            that reads out the pattern projections), per head. Rows sum to one; masked stored
            patterns get weight 0.
        steps: T, the number of head-space state updates ξ ← sep(β ξ Kᵀ) K applied before the
            final association (0 for a plain one-step layer). All states share it: iteration
            stops when every state moved less than ``update_steps_eps`` or at ``update_steps_max``.
        converged: (B, H, L) bool, whether the last update moved each state by less than
            ``update_steps_eps`` (``None`` when ``update_steps_max == 0``).
        energy: (T + 1, B, H, L) the modern Hopfield energy of each head-space state before the
            first and after every update, with the projected stored patterns K as memory (softmax
            separation only, else ``None``).
        beta: (H,) the inverse temperature of each head used in this pass.
    """

    weights: torch.Tensor
    steps: int
    converged: torch.Tensor | None
    energy: torch.Tensor | None
    beta: torch.Tensor
