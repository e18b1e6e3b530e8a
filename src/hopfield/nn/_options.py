"""Constructor options of the Hopfield layers: deprecated keyword names (kept for one release with a
FutureWarning), hints for hflayers users, the ``Norm`` and ``HeadSpace`` option groups, the
association activation and the initial β (fixed or learnable, one per head).

Used by :class:`hopfield.nn.Hopfield` and the layers built on it (``HopfieldPooling``,
``HopfieldLayer``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .._validation import (
    check_beta,
    check_positive_float,
    shape_str,
)
from ._inputs import check_bool

#: Deprecated constructor names (kept for one release with a FutureWarning) → new names.
RENAMED = {"hidden_size": "head_size", "update_steps_max": "max_steps",
           "update_steps_eps": "tol"}


def renamed_kwargs(owner: str, deprecated: dict[str, object], new: dict[str, object],
                   defaults: dict[str, object], stacklevel: int = 3) -> dict[str, object]:
    """Resolve deprecated constructor names: warn (FutureWarning) and return ``new`` updated.

    ``deprecated`` holds keyword arguments that are not in the signature; a name that is not a
    deprecated alias is a TypeError, as is giving an alias together with its new name.
    """
    for old, value in deprecated.items():
        if old not in RENAMED:
            raise TypeError(f"{owner}.__init__() got an unexpected keyword argument {old!r}"
                            + hflayers_hint(old))
        name = RENAMED[old]
        if new[name] != defaults[name]:
            raise TypeError(f"{owner} got both {name}= and its deprecated alias {old}=; pass "
                            f"only {name}=")
        warnings.warn(f"{owner}: {old}= is deprecated and will be removed in the next release; "
                      f"use {name}=", FutureWarning, stacklevel=stacklevel)
        new[name] = value
    return new


#: hflayers (ml-jku/hopfield-layers) argument names that are not names here → what to use.
#: An unknown keyword that hflayers has raises a TypeError with this hint (docs/hflayers.md).
HFLAYERS_NAMES: dict[str, str] = {
    "scaling": "beta=",
    "input_bias": "bias=",
    "normalize_stored_pattern": "normalize_stored=",
    "normalize_state_pattern": "normalize_state=",
    "normalize_pattern_projection": "normalize_projection=",
    "stored_pattern_padding_mask": "mask=",
    "return_raw_associations": "return_info=True (info.weights)",
    "return_projected_patterns": "return_info=True",
    "need_weights": "return_info=True",
    "lookup_weights_as_separated": "lookup_targets= (HopfieldLayer)",
    "concat_bias_pattern": "nothing: hflayers never uses these biases in its forward (dropped)",
    "lookup_targets_as_trainable": "trainable_targets= (HopfieldLayer)",
    "disable_out_projection": "out_projection=False",
    "normalize_hopfield_space": "head_space=HeadSpace(normalize=True)",
    "normalize_hopfield_space_affine": "head_space=HeadSpace(normalize=True, affine=True)",
    "normalize_hopfield_space_eps": "head_space=HeadSpace(normalize=True, eps=...)",
    "add_zero_association": "head_space=HeadSpace(add_zero=True)",
    "stored_pattern_as_static": "head_space=HeadSpace(unprojected=('stored',))",
    "state_pattern_as_static": "head_space=HeadSpace(unprojected=('state',))",
    "pattern_projection_as_static": "head_space=HeadSpace(unprojected=('projection',))",
    "pattern_projection_as_connected": "head_space=HeadSpace(connected=True)",
}


def hflayers_hint(name: str) -> str:
    """``"; hflayers' X is Y here (…)"`` for an hflayers argument name, else ``""``."""
    if name in HFLAYERS_NAMES:
        return (f"; hflayers' {name} is {HFLAYERS_NAMES[name]} here (see docs/hflayers.md for "
                "every hflayers argument)")
    if name.startswith("normalize_") and name.endswith(("_affine", "_eps")):
        return (f"; hflayers' {name} is normalize_...=Norm(affine=..., eps=...) here (see "
                "docs/hflayers.md for every hflayers argument)")
    hflayers_only = ("normalize_", "stored_pattern_as_static", "state_pattern_as_static",
                     "pattern_projection_as")
    if name.startswith(hflayers_only):
        return ("; this hflayers argument has no equivalent here yet (docs/hflayers.md lists "
                "every hflayers argument and its status)")
    return ""


def reject_forward_kwargs(module: nn.Module, unexpected: dict[str, object]) -> None:
    """TypeError for unknown forward keywords, with the hflayers hint when there is one."""
    name = next(iter(unexpected))
    raise TypeError(f"{type(module).__name__}.forward() got an unexpected keyword argument "
                    f"{name!r}" + hflayers_hint(name))


def _deprecated_attribute(old: str) -> property:
    new = RENAMED[old]

    def fget(self: nn.Module) -> object:
        warnings.warn(f"{type(self).__name__}.{old} is deprecated; use .{new}", FutureWarning,
                      stacklevel=2)
        return getattr(self, new)

    def fset(self: nn.Module, value: object) -> None:
        warnings.warn(f"{type(self).__name__}.{old} is deprecated; use .{new}", FutureWarning,
                      stacklevel=2)
        setattr(self, new, value)

    return property(fget, fset, doc=f"Deprecated alias of ``{new}``.")


def _activation(act: object) -> str | Callable[[torch.Tensor], torch.Tensor] | None:
    if act is None or (callable(act) and not isinstance(act, str)):
        return act
    if not isinstance(act, str):
        raise TypeError("association_activation must be None, a torch function name or a "
                        f"callable, got {type(act).__name__}")
    if not callable(getattr(torch, act, None)):  # a value error: the name, not its type
        raise ValueError(  # noqa: TRY004
            f"association_activation must name a torch function (e.g. 'tanh', "
                         f"'relu'), got {act!r}")
    return act


@dataclass(frozen=True)
class Norm:
    """Settings of an input LayerNorm: ``Hopfield(..., normalize_state=Norm(affine=False))``.

    Attributes:
        affine: learn a weight and bias (hflayers' ``normalize_*_affine``; default True).
        eps: the LayerNorm's eps (hflayers' ``normalize_*_eps``; default 1e-5).
    """

    affine: bool = True
    eps: float = 1e-5

    def __post_init__(self) -> None:
        check_bool(self.affine, "Norm.affine")
        check_positive_float(self.eps, "Norm.eps")


def _layer_norm(spec: object, name: str, size: int) -> nn.LayerNorm | None:
    if isinstance(spec, Norm):
        return nn.LayerNorm(size, eps=spec.eps, elementwise_affine=spec.affine)
    if not isinstance(spec, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool or a hopfield.nn.Norm, got {type(spec).__name__}")
    return nn.LayerNorm(size) if spec else None


@dataclass(frozen=True)
class HeadSpace:
    """Rarely needed options of the association (head) space, grouped in one argument
    (``Hopfield(..., head_space=HeadSpace(normalize=True))``). hflayers names in brackets.

    Attributes:
        normalize: LayerNorm over each head's ``head_size`` features of the projected states and
            stored patterns, shared by the heads, before β (``normalize_hopfield_space``).
        affine: learn that LayerNorm's weight and bias (``normalize_hopfield_space_affine``).
        eps: its eps (``normalize_hopfield_space_eps``).
        add_zero: append one all-zero stored pattern per head, which every state sees: its
            softmax weight absorbs part of the mass, so a state can retrieve "little"
            (``add_zero_association``, PyTorch's ``add_zero_attn``). Info weights get N + 1
            columns.
        unprojected: inputs used as they are, without a learned projection, by every head
            (pure retrieval): any of ``"state"``, ``"stored"``, ``"projection"``
            (``*_as_static`` in hflayers). Their feature size must then be ``head_size``
            (state, stored) or ``pattern_size`` (projection); the projection becomes a fixed
            identity per head (``requires_grad=False``, no bias).
        connected: the pattern projections go through the stored-pattern projection before
            their own: ``v = W_v (W_k V + b_k) + b_v``, the paper's value ``Y W_K W_V``
            (``pattern_projection_as_connected``). ``v_proj`` then maps the ``num_heads *
            head_size`` features of ``k_proj`` to ``num_heads * pattern_size``, and
            ``pattern_projection_size`` must equal ``stored_pattern_size``. The two matrices
            are multiplied once per forward (not per pattern), so the association keeps its
            fused paths.
    """

    normalize: bool = False
    affine: bool = False
    eps: float = 1e-5
    add_zero: bool = False
    unprojected: tuple[str, ...] = ()
    connected: bool = False

    def __post_init__(self) -> None:
        names = self.unprojected
        if isinstance(names, str) or not all(isinstance(n, str) for n in names):
            raise TypeError("HeadSpace.unprojected must be a tuple of names among 'state', "
                            f"'stored', 'projection', got {names!r}")
        bad = sorted(set(names) - {"state", "stored", "projection"})
        if bad:
            raise ValueError(f"HeadSpace.unprojected names must be among 'state', 'stored', "
                             f"'projection', got {bad}")
        object.__setattr__(self, "unprojected", tuple(sorted(set(names))))
        for name in ("normalize", "affine", "add_zero", "connected"):
            check_bool(getattr(self, name), f"HeadSpace.{name}")
        check_positive_float(self.eps, "HeadSpace.eps")
        if self.affine and not self.normalize:
            raise ValueError("HeadSpace.affine=True needs normalize=True (an affine map without "
                             "the normalisation has no meaning here)")
        if self.connected and "projection" in names:
            raise ValueError("HeadSpace.connected=True needs a learned pattern projection, got "
                             "unprojected=('projection',) as well (pick one)")


_DEFAULTS: dict[str, object] = {"head_size": None, "max_steps": 0, "tol": 1e-4}


def _init_beta(module: nn.Module, beta: object, num_heads: int, head_dim: int,
               learnable: bool) -> None:
    """Register β as buffer ``fixed_beta`` (H,) or as parameter ``log_beta`` (H,)."""
    if beta is None:
        b = torch.full((num_heads,), 1.0 / math.sqrt(head_dim))
    elif isinstance(beta, torch.Tensor):
        check_beta(beta)
        if beta.dim() == 0:
            b = beta.detach().float().expand(num_heads).clone()
        elif beta.shape == (num_heads,):
            b = beta.detach().float().clone()
        else:
            raise ValueError(f"beta must be a float or a tensor of shape ({num_heads},) (one per "
                             f"head), got shape {shape_str(beta.shape)}")
    else:
        b = torch.full((num_heads,), check_beta(beta))
    b = b.to(torch.get_default_dtype())
    if learnable:
        module.log_beta = nn.Parameter(b.log())
    else:
        module.register_buffer("fixed_beta", b)
