"""Argument checks of :func:`hopfield.nn.functional.hopfield_forward` and of the layers that call
it: the explicit weights (``_Weights``), inputs and masks, per-head β / steps / tolerances, head
norms, and ``check_result`` (no non-finite output leaves a layer unnoticed).

Shape legend as in :mod:`hopfield.nn.functional`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from .._validation import (
    check_beta,
    check_finite,
    check_positive_float,
    check_positive_int,
    check_tensor,
    shape_str,
    skip_data_checks,
)


def batch_size(*tensors: torch.Tensor) -> int:
    """The batch size of inputs whose batch sizes are B or 1 (B may be 0)."""
    return next((t.shape[0] for t in tensors if t.shape[0] != 1), 1)


def _traced(x: torch.Tensor) -> bool:
    """True under torch.compile, inside torch.func.vmap or with validation off
    (``hopfield.validation(False)``): no data-dependent checks (no host sync)."""
    return skip_data_checks() or torch._C._functorch.is_batchedtensor(x)


class _Weights(NamedTuple):
    wq: torch.Tensor
    bq: torch.Tensor | None
    wk: torch.Tensor
    bk: torch.Tensor | None
    wv: torch.Tensor
    bv: torch.Tensor | None
    wo: torch.Tensor | None  # None: no output projection (the heads concatenated)
    bo: torch.Tensor | None


_WEIGHT_NAMES = ("q_proj_weight", "q_proj_bias", "k_proj_weight", "k_proj_bias",
                 "v_proj_weight", "v_proj_bias", "out_proj_weight", "out_proj_bias")


def _check_weights(H: int, *tensors: torch.Tensor | None) -> _Weights:
    wq, wk, wv, wo, bq, bk, bv, bo = tensors
    for name, t in zip(("q_proj_weight", "k_proj_weight", "v_proj_weight", "out_proj_weight"),
                       (wq, wk, wv, wo)):
        if t is None and name == "out_proj_weight":
            continue
        check_tensor(t, name, ndim=2, layout="(rows, columns)", finite=False)
    E = wq.shape[0]
    if E == 0 or E % H:
        raise ValueError(f"q_proj_weight must have E = num_heads * head_size > 0 rows "
                         f"(num_heads={H}), got shape {shape_str(wq.shape)}")
    if wk.shape[0] != E:
        raise ValueError(f"k_proj_weight must have E = {E} rows like q_proj_weight, got shape "
                         f"{shape_str(wk.shape)}")
    Ev = wv.shape[0]
    if Ev == 0 or Ev % H:
        raise ValueError(f"v_proj_weight must have num_heads * pattern_size > 0 rows (num_heads="
                         f"{H}), got shape {shape_str(wv.shape)}")
    if wo is not None and wo.shape[1] != Ev:
        raise ValueError(f"out_proj_weight must have shape (O, {Ev}) (one column per "
                         f"v_proj_weight row), got {shape_str(wo.shape)}")
    if wo is None and bo is not None:
        raise ValueError("out_proj_bias must be None when out_proj_weight is None")
    rows = {"q_proj_bias": E, "k_proj_bias": E, "v_proj_bias": Ev,
            "out_proj_bias": None if wo is None else wo.shape[0]}
    for (name, size), b in zip(rows.items(), (bq, bk, bv, bo)):
        if b is not None:
            check_tensor(b, name, ndim=1, layout=f"({size},)", finite=False)
            if b.shape[0] != size:
                raise ValueError(f"{name} must have shape ({size},), got {shape_str(b.shape)}")
    for name, t in zip(_WEIGHT_NAMES, (wq, bq, wk, bk, wv, bv, wo, bo)):
        if t is not None and t.dtype != wq.dtype:
            raise TypeError(f"{name} must have the dtype of q_proj_weight ({wq.dtype}), got "
                            f"{t.dtype}")
    return _Weights(wq, bq, wk, bk, wv, bv, wo, bo)


def _check_inputs(y: object, r: object, v: object,
                  w: _Weights) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    sizes = {"stored": w.wk.shape[1], "state": w.wq.shape[1], "projection": w.wv.shape[1]}
    rows = {"stored": "N", "state": "L", "projection": "N"}
    for name, x in zip(sizes, (y, r, v)):
        layout = f"(B, {rows[name]}, {sizes[name]})"
        check_tensor(x, name, ndim=3, layout=layout, finite=False)
        if x.shape[-1] != sizes[name]:
            raise ValueError(f"{name} must have shape {layout} to match the projection "
                             f"weights, got {shape_str(x.shape)}")
        if x.dtype != w.wq.dtype:
            raise TypeError(f"{name} must have the weights' dtype {w.wq.dtype}, got {x.dtype}")
    batch = {y.shape[0], r.shape[0], v.shape[0]} - {1}
    if len(batch) > 1:
        raise ValueError("stored, state and projection must share the batch size (or have batch "
                         f"size 1), got {shape_str(y.shape)}, {shape_str(r.shape)}, "
                         f"{shape_str(v.shape)}")
    if y.shape[1] != v.shape[1]:
        raise ValueError(f"projection must hold one pattern per stored pattern (N == "
                         f"{y.shape[1]}), got {shape_str(v.shape)}")
    B = batch_size(y, r, v)
    if y.shape[1] == 0 and B * r.shape[1] > 0:
        raise ValueError("stored must hold at least one pattern for the states to retrieve from, "
                         f"got shape {shape_str(y.shape)}")
    return y, r, v


def check_steps(max_steps: object, tol: object, H: int,
                ) -> tuple[int | None | tuple[int, ...], float | tuple[float, ...]]:
    """``max_steps``: int >= 0, None, or H ints >= 0; ``tol``: float > 0 or H floats > 0.
    Per-head values that are all equal become one int / float (the default path)."""
    if max_steps is not None and not isinstance(max_steps, (bool, int, np.integer)):
        steps = _per_head_values(max_steps, "max_steps", H, int)
        for x in steps:  # None = that head iterates until converged
            if x is not None:
                check_positive_int(x, "max_steps", minimum=0)
        max_steps = steps[0] if len(set(steps)) == 1 else steps
    elif max_steps is not None:
        max_steps = check_positive_int(max_steps, "max_steps", minimum=0)
    if isinstance(tol, (Sequence, torch.Tensor, np.ndarray)):
        tols = _per_head_values(tol, "tol", H, float)
        for x in tols:
            check_positive_float(x, "tol")
        tol = tols[0] if len(set(tols)) == 1 else tols
    else:
        tol = check_positive_float(tol, "tol")
    return max_steps, tol


def _per_head_values(x: object, name: str, H: int, kind: type) -> tuple:
    if isinstance(x, (torch.Tensor, np.ndarray)):
        if x.ndim != 1:
            raise ValueError(f"{name} must be a number or one value per head (length {H}), got "
                             f"shape {shape_str(tuple(x.shape))}")
        if kind is int and (x.dtype.is_floating_point if isinstance(x, torch.Tensor)
                            else np.issubdtype(x.dtype, np.floating)):
            raise TypeError(f"{name} must hold ints, got dtype {x.dtype}")
        x = x.tolist()
    if not isinstance(x, Sequence) or isinstance(x, str):
        raise TypeError(f"{name} must be a number or a sequence of {H} numbers (one per head), "
                        f"got {type(x).__name__}")
    if len(x) != H:
        raise ValueError(f"{name} must have one value per head ({H}), got {len(x)}")
    return tuple(kind(v) if kind is float and not isinstance(v, bool) else v for v in x)


def _split_float_mask(am: torch.Tensor, H: int) -> tuple[torch.Tensor, torch.Tensor]:
    """An additive float association mask → (bool mask of its -inf entries, finite bias (B|1,
    H|1, L|1, N) with those entries 0). NaN or +inf entries are a ValueError (one host sync,
    only for float masks and only with validation on)."""
    neg = torch.isneginf(am)
    if not skip_data_checks() and not _traced(am) and bool(
            (torch.isnan(am) | torch.isposinf(am)).any()):
        raise ValueError("association_mask (additive float mask) must hold finite values or "
                         "-inf, got NaN or +inf")
    bias = am.masked_fill(neg, 0.0)
    if bias.dim() == 3:
        bias = bias.unflatten(0, (-1, H))
    elif bias.dim() == 2:
        bias = bias[None, None]
    return neg, bias


def _check_head_norm(head_norm: object, Dh: int, dtype: torch.dtype) -> None:
    if not isinstance(head_norm, tuple) or len(head_norm) != 3:
        raise TypeError("head_norm must be None or a tuple (weight, bias, eps), got "
                        f"{type(head_norm).__name__}")
    for name, t in zip(("head_norm weight", "head_norm bias"), head_norm[:2]):
        if t is not None:
            check_tensor(t, name, ndim=1, layout=f"({Dh},)", finite=False)
            if t.shape != (Dh,):
                raise ValueError(f"{name} must have shape ({Dh},) (head size), got "
                                 f"{shape_str(t.shape)}")
    check_positive_float(head_norm[2], "head_norm eps")


def _check_beta(beta: object, H: int) -> float | torch.Tensor:
    beta = check_beta(beta)
    if isinstance(beta, torch.Tensor) and beta.dim() > 0 and beta.shape != (H,):
        raise ValueError(f"beta must be a float, a 0-d tensor or a tensor of shape ({H},) (one "
                         f"per head), got shape {shape_str(beta.shape)}")
    return beta


def _parameters(module: torch.nn.Module) -> list[torch.Tensor]:
    """All parameters of ``module``: a plain walk (microseconds for these small modules; no global
    hooks). The finiteness check below skips them while their tensor versions are unchanged."""
    return list(module.parameters())


def check_result(out: torch.Tensor, inputs: dict[str, torch.Tensor],
                 params: dict[str, torch.Tensor] | torch.nn.Module,
                 mask: torch.Tensor | None) -> None:
    """After a pass: inputs, parameters and output finite, and ``mask`` leaves each batch element
    a stored pattern. Raises ``ValueError`` naming the culprit.

    One host sync in the normal case (none under torch.compile or vmap). The parameters of a
    module are summed only when they changed since they were last found finite (tracked by
    tensor version), so inference pays nothing for them. The exact diagnosis runs only when
    something is wrong.
    """
    if _traced(out):
        return
    key = None
    if isinstance(params, torch.nn.Module):
        plist = _parameters(params)
        # the parameters themselves (held, so their ids are not reused) and their versions
        key = (tuple(plist), tuple(p._version for p in plist))
        seen = params.__dict__.get("_hopfield_finite_params")
        if (seen is not None and len(seen[0]) == len(plist)
                and all(a is b for a, b in zip(seen[0], plist)) and seen[1] == key[1]):
            plist = []
    else:
        plist = list(params.values())
    total = out.detach().sum()  # detached: no autograd nodes for the check
    for x in {id(t): t for t in inputs.values()}.values():
        total = total + x.detach().sum()
    if plist:
        total = total + torch.cat([p.detach().reshape(-1).to(total.dtype) for p in plist]).sum()
    ok = torch.isfinite(total)
    if mask is not None and mask.numel():
        ok = ok & ~mask.all(dim=-1).any()
    if bool(ok):
        if key is not None:
            params.__dict__["_hopfield_finite_params"] = key  # plain attribute, not state
        return
    if mask is not None and mask.numel() and bool(mask.all(dim=-1).any()):
        raise ValueError("mask must leave at least one stored pattern per batch element, got a "
                         "row with every pattern masked")
    for name, x in inputs.items():
        check_finite(x, name)  # exact check: raises naming the input
    named = dict(params.named_parameters()) if isinstance(params, torch.nn.Module) else params
    for name, p in named.items():
        finite = torch.isfinite(p.detach())
        if not bool(finite.all()):
            raise ValueError(f"{name} must be finite, got {int((~finite).sum())} NaN or infinite "
                             "value(s) (did training diverge?)")
    if bool(torch.isfinite(out).all()):
        return  # only a sum overflowed; every value is finite
    name, x = max(inputs.items(), key=lambda kv: float(kv[1].detach().abs().amax())
                  if kv[1].numel() else 0.0)
    raise ValueError(f"{name} is too large for {out.dtype}: the association overflowed (largest "
                     f"|{name}| = {float(x.detach().abs().amax()):.3g}); scale it down, lower beta "
                     "or use a wider dtype")
