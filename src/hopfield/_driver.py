"""The one retrieval driver: iterate an update until every state has converged.

Every multi-step Hopfield retrieval in the package runs through :func:`iterate`: in memory
(:func:`hopfield.functional.retrieve`), chunked (:func:`hopfield.streaming.stream_retrieve`),
sharded (:mod:`hopfield.distributed`), the memories (:class:`hopfield.ModernHopfield`) and the
layers' head-space updates (:mod:`hopfield.nn`). Only the *step* differs between them (one fused
call, one pass over chunks, one pass plus two collectives); the loop, the stopping rule and the
meaning of :class:`RetrievalInfo` are the same everywhere.

Shape legend: ``...`` leading batch dims, L states, D pattern dimension, T updates applied.

Signature::

    iterate(step, state, *, max_steps, tol, freeze=True, energy=None, need_energy=False)
        -> (state (..., L, D), RetrievalInfo)

    step(xi, need_energy) -> (new (..., L, D), e (..., L) or None)
        one update of every state; ``e`` is the energy of the *input* ``xi`` when the step gets it
        for free (streaming: from the same pass), otherwise ``None`` and ``energy(xi)`` is called.
    energy(xi) -> (..., L)
        the energy of states ``xi``; needed when ``need_energy`` (the trace) is True.

Modes:

* ``freeze=True`` (retrieval): each state stops at its own convergence step (the paper's
  per-state criterion); the converging update itself is applied. The loop ends when every state
  has converged (one host sync per step, skipped after the last step: ``max_steps=1`` costs none)
  or after ``max_steps``. A non-finite state (an overflow inside the step) raises ``ValueError``
  at that same sync instead of being returned.
* ``freeze=False`` (layers): all states take every update together (``xi = new``, plain autograd,
  no ``torch.where``); the early exit when all have converged is skipped while ``torch.compile``
  traces (no graph break) or under ``torch.func.vmap`` (ensembles), and the non-finite check is
  left to the caller.

Semantics of :class:`RetrievalInfo` (the same in every mode and backend):

* ``steps`` (..., L) int64: the number of updates applied to each state.
* ``converged`` (..., L) bool: the last update applied to the state moved it by less than ``tol``
  (‖ξ_new − ξ‖₂ < tol).
* ``iterations`` int: the number of update passes the loop ran (= ``steps.max()``, known without a
  host sync).
* ``energy`` (T + 1, ..., L) or None: the energy of every state before the first update and after
  each one (frozen states repeat their value).
* ``weights`` (..., L, N) or None: filled in by the caller (the association weights of the final
  states, when it materialises them).

Example (what :func:`hopfield.functional.retrieve` does)::

    def step(xi, need_energy):
        return _associate(xi, X, X, beta)[0], None

    xi, info = iterate(step, state, max_steps=100, tol=1e-5,
                       energy=lambda s: _energy(s, X, beta), need_energy=return_info)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ._validation import is_compiling

__all__ = ["RetrievalInfo", "iterate"]


def _tracing(x: torch.Tensor) -> bool:
    """True under ``torch.compile`` or ``torch.func.vmap``: no data-dependent early exit."""
    if is_compiling():
        return True
    is_batched = getattr(torch._C._functorch, "is_batchedtensor", None)
    return bool(is_batched is not None and is_batched(x))

Step = Callable[[torch.Tensor, bool], "tuple[torch.Tensor, torch.Tensor | None]"]


@dataclass
class RetrievalInfo:
    """Diagnostics of a multi-step retrieval (the same meaning for every backend).

    Attributes:
        steps: (..., L) number of updates applied to each state.
        converged: (..., L) whether the last update applied to the state moved it by less than
            ``tol`` (‖ξ_new − ξ‖ < tol) within ``max_steps``.
        energy: (T + 1, ..., L) energy of each state before the first and after every update
            (softmax separation only; ``None`` otherwise).
        weights: (..., L, N) association weights sep(β Xᵀ ξ) of the retrieved states (``None``
            when the backend does not materialise them, e.g. streaming).
        iterations: the number of update passes run (``steps.max()``, without a host sync).
    """

    steps: torch.Tensor
    converged: torch.Tensor
    energy: torch.Tensor | None = None
    weights: torch.Tensor | None = None
    iterations: int = 0


def iterate(
    step: Step,
    state: torch.Tensor,
    *,
    max_steps: int,
    tol: float,
    freeze: bool = True,
    energy: Callable[[torch.Tensor], torch.Tensor] | None = None,
    need_energy: bool = False,
) -> tuple[torch.Tensor, RetrievalInfo]:
    """Apply ``step`` until every state moved less than ``tol`` or ``max_steps`` (unchecked).

    See the module docstring for the contract of ``step``/``energy`` and the two modes.
    ``max_steps`` may be 0 (no update; ``converged`` all False).
    """
    xi = state
    lead_l = xi.shape[:-1]
    converged = torch.zeros(lead_l, dtype=torch.bool, device=xi.device)
    steps = torch.zeros(lead_l, dtype=torch.long, device=xi.device)
    trace: list[torch.Tensor] = []
    if need_energy and energy is None:
        raise ValueError("iterate: need_energy=True requires an energy callable")
    n = 0
    for n in range(1, max_steps + 1):
        new, e = step(xi, need_energy)
        if need_energy:
            trace.append(e if e is not None else energy(xi))
        with torch.no_grad():
            delta = (new.detach() - xi.detach()).norm(dim=-1)  # (..., L)
            moved_little = delta < tol
        if freeze:
            active = ~converged
            xi = torch.where(active.unsqueeze(-1), new, xi)
            steps = steps + active.long()
            converged = converged | moved_little
        else:
            xi = new
            steps = steps + 1
            converged = moved_little
        if n == max_steps:
            break
        if _tracing(xi):  # no data-dependent exit under compile / vmap: run all max_steps
            continue
        if freeze:  # one host sync: stop when all converged; a NaN/inf state is an error
            done, finite = torch.stack([converged.all(), torch.isfinite(delta).all()]).tolist()
            if not finite:
                raise ValueError(
                    f"retrieval produced non-finite states at step {n} (the scores β·xᵀξ overflow "
                    f"{xi.dtype}); use float64 inputs or a smaller beta / smaller norms")
        else:
            done = bool(converged.all())
        if done:
            break
    if need_energy:
        trace.append(energy(xi))
    info = RetrievalInfo(steps=steps, converged=converged,
                         energy=torch.stack(trace) if need_energy else None, iterations=n)
    return xi, info
