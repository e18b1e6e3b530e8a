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
            patterns get weight 0; a state that the masks block from every stored pattern gets an
            all-zero row (and a zero retrieval).
        steps: T, the number of head-space state updates ξ ← sep(β ξ Kᵀ) K applied to every state
            before the final association (0 for a plain one-step layer). All states of a layer
            step together, so this is :class:`hopfield.functional.RetrievalInfo`'s per-state
            ``steps`` (equal for every state), i.e. its ``iterations``. Iteration stops when every
            state moved less than ``tol`` or at ``max_steps`` (always ``max_steps`` under
            torch.compile / vmap).
        converged: (B, H, L) bool, whether the last update applied moved each state by less than
            ``tol`` (the meaning of ``RetrievalInfo.converged``); ``None`` when ``max_steps == 0``.
        energy: (T + 1, B, H, L) the modern Hopfield energy of each head-space state before the
            first and after every update, with the projected stored patterns K as memory (softmax
            separation only, else ``None``). A state that sees no stored pattern has energy ½‖ξ‖².
        beta: (H,) the inverse temperature of each head used in this pass.

    For float16 / bfloat16 layers ``weights`` and ``energy`` are float32 (the association is
    computed in float32).
    """

    weights: torch.Tensor
    steps: int
    converged: torch.Tensor | None
    energy: torch.Tensor | None
    beta: torch.Tensor
