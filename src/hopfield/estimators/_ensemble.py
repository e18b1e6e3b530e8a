"""Ensembles as one module: M copies of an ordinary ``nn.Module`` with stacked parameters.

Shape legend: M members; every forward argument carries the member dimension first.

:class:`StackedEnsemble` takes M independently initialised copies of a module (for example an
MIL network built from ``hopfield.HopfieldPooling``), stacks their parameters and buffers with
``torch.func.stack_module_state`` (each parameter gets a leading M dimension, so the estimators'
training loop can keep each member's best epoch by indexing), and evaluates member m with
``torch.func.functional_call`` on its slice. ``forward`` maps over the members with a Python loop
over the stacked parameters (default) or with ``torch.vmap`` (``vectorize=True``;
``randomness="different"``: own dropout per member; ``"auto"`` tries vmap once and remembers).
Outputs are stacked to (M, ...).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

__all__ = ["StackedEnsemble"]


def _key(name: str) -> str:
    return name.replace(".", "__")


class StackedEnsemble(nn.Module):
    """M members of one architecture as a single module with (M, ...) parameters.

    Args:
        members: M modules of identical structure (their current weights become the members').
        vectorize: ``True`` = always ``torch.vmap``, ``False`` (default) = loop over members,
            ``"auto"`` = vmap, falling back to the loop if the module cannot run under vmap.
            The loop is the default because vmap measured no faster on CPU for the MIL network
            (torch has no vmap batching rule for CPU flash attention and falls back to a slow
            per-sample loop). The MIL estimators run K > 1 members through
            ``hopfield.estimators._mil_net._BatchedMILNet`` instead, a subclass with this stacked
            state whose forward is batched by hand (numbers in ``docs/reproduce.md``,
            "Ensembles"; ``benchmarks/mil_ensemble.py``).
    """

    def __init__(self, members: Sequence[nn.Module], *, vectorize: bool | str = False):
        super().__init__()
        members = list(members)
        if not members:
            raise ValueError("members must hold at least one module, got 0")
        if vectorize not in (True, False, "auto"):
            raise ValueError(f"vectorize must be True, False or 'auto', got {vectorize!r}")
        params, buffers = stack_module_state(members)
        self._pnames, self._bnames = list(params), list(buffers)
        for k, v in params.items():
            self.register_parameter(_key(k), nn.Parameter(v.detach()))
        for k, v in buffers.items():
            self.register_buffer(_key(k), v)
        # structure only, not children: ``_base`` runs every functional_call; ``_template`` is never
        # run, so copies of it (member(), pickling) never carry state a layer left behind in a call
        object.__setattr__(self, "_template", copy.deepcopy(members[0]))
        object.__setattr__(self, "_base", copy.deepcopy(members[0]))
        self.n_members = len(members)
        self.vectorize = vectorize

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_base", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        object.__setattr__(self, "_base", copy.deepcopy(self._template))
        self._base.train(self.training)

    def __deepcopy__(self, memo):
        new = copy.copy(self)
        new.__dict__ = {k: copy.deepcopy(v, memo) for k, v in self.__getstate__().items()}
        object.__setattr__(new, "_base", copy.deepcopy(self._template, memo))
        new._base.train(self.training)
        return new

    def train(self, mode: bool = True) -> StackedEnsemble:
        super().train(mode)
        self._base.train(mode)
        return self

    def _state(self) -> tuple[dict, dict]:
        return ({k: getattr(self, _key(k)) for k in self._pnames},
                {k: getattr(self, _key(k)) for k in self._bnames})

    def member(self, m: int) -> nn.Module:
        """Member ``m`` as an ordinary module (a copy with its weights, in their dtype and on
        their device, so also after ``.double()``)."""
        mod = copy.deepcopy(self._template)
        p, b = self._state()
        mod.load_state_dict({k: v[m].detach().clone() for k, v in {**p, **b}.items()},
                            assign=True)
        return mod.to(next(iter(p.values())).device)

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        """Every argument (M, ...) -> stacked member outputs (M, ...)."""
        params, buffers = self._state()
        base = self._base

        def one(p, b, *a):
            return functional_call(base, (p, b), a)

        if self.vectorize in (True, "auto"):
            try:
                return vmap(one, randomness="different")(params, buffers, *args)
            except RuntimeError:
                if self.vectorize is True:
                    raise
                self.vectorize = False      # this module cannot run under vmap: loop from now on
        return torch.stack([
            one({k: v[m] for k, v in params.items()}, {k: v[m] for k, v in buffers.items()},
                *(a[m] for a in args))
            for m in range(self.n_members)])
