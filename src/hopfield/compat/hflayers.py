"""Convert ``hflayers`` (ml-jku/hopfield-layers) modules and checkpoints to :mod:`hopfield.nn`.

``hflayers`` is not on PyPI; this module does not import it. It maps the documented state-dict
layout of ``hflayers.Hopfield``, ``hflayers.HopfieldPooling`` and ``hflayers.HopfieldLayer`` to
:class:`hopfield.nn.Hopfield`, :class:`~hopfield.nn.HopfieldPooling` and
:class:`~hopfield.nn.HopfieldLayer` so that the converted layer computes the same output
(≤ 1e-5 in float32; exact up to rounding):

- ``association_core.in_proj_weight`` (3E, D) or ``q/k/v_proj_weight`` → ``q_proj`` /
  ``k_proj`` / ``v_proj``; ``association_core.in_proj_bias`` (3E,) is split the same way;
  ``association_core.out_proj`` → ``out_proj``.
- ``norm_stored_pattern`` / ``norm_state_pattern`` / ``norm_pattern_projection`` (LayerNorms)
  → ``norm_stored`` / ``norm_state`` / ``norm_projection`` (a non-affine LayerNorm becomes an
  affine one with weight 1 and bias 0).
- ``scaling`` (β; hflayers checkpoints do not contain it, it comes from the constructor
  arguments) → ``beta``. A per-head tensor ``scaling`` is applied by hflayers as
  ``q * scaling.repeat(E // H)``, i.e. feature j of the query gets ``scaling[j % H]`` (interleaved,
  not per head block); this exact per-feature scale is folded into the query projection and
  ``beta`` is 1.
- ``pooling_weights`` (1, Q, D) → ``query`` (Q, D); ``lookup_weights`` / ``target_weights``
  (1, N, D) → ``patterns`` / ``targets`` (N, D).
- ``pattern_projection_as_connected=True`` (V projected by W_k, then by W_v) →
  ``head_space=HeadSpace(connected=True)`` with ``v_proj`` = W_v (E → H·pattern_size) and the
  same ``k_proj``: the same parametrisation, so fine-tuning the converted layer trains the same
  weights as hflayers would.

Configurations that cannot be converted raise a ``ValueError`` that says why (an option the
layers do not have yet, or an hflayers behaviour that is a bug and would not be reproduced).
See docs/hflayers.md for the full argument table and how to verify a conversion.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping

import torch

from .._validation import shape_str
from ..nn.functional import MAX_STEPS_UNTIL_CONVERGED
from ._hflayers_args import (
    _KINDS,
    _NORMS,
    Sizes,
    _kind_of,
    _refuse,
    _resolve,
    _steps,
    check_keys,
    sizes_of,
)
from ._hflayers_blocks import BLOCKS, from_block

__all__ = ["convert_state_dict", "from_hflayers"]

def convert_state_dict(
    hflayers_state_dict: Mapping[str, torch.Tensor], hflayers_kwargs: Mapping[str, object],
) -> tuple[dict[str, object], dict[str, torch.Tensor]]:
    """Convert an hflayers checkpoint to (constructor kwargs, state dict) of a hopfield.nn layer.

    Args:
        hflayers_state_dict: ``module.state_dict()`` of an ``hflayers.Hopfield``,
            ``HopfieldPooling`` or ``HopfieldLayer`` (the kind is read from the keys:
            ``pooling_weights`` → pooling, ``lookup_weights`` → lookup layer).
        hflayers_kwargs: the keyword arguments the hflayers module was constructed with (its
            defaults fill the rest, e.g. ``normalize_*=True``). hflayers checkpoints do not store
            ``scaling`` (β), so it must be given here if it was not the default.

    Returns:
        ``(kwargs, state_dict)``: build the matching class (``Hopfield``, ``HopfieldPooling`` or
        ``HopfieldLayer``) with ``**kwargs`` and ``load_state_dict(state_dict)``.

    Raises:
        TypeError: an argument that hflayers' class does not have.
        ValueError: a missing, extra or wrongly shaped key (named), or a configuration that
            cannot be converted exactly (the message says why).
    """
    if not isinstance(hflayers_state_dict, Mapping):
        raise TypeError("hflayers_state_dict must be a mapping of names to tensors (a "
                        f"state_dict), got {type(hflayers_state_dict).__name__}")
    sd = dict(hflayers_state_dict)
    block = sorted({k.split(".", 1)[0] for k in sd if k.startswith("hopfield_association")})
    if block:
        raise ValueError(
            f"hflayers_state_dict is an hflayers HopfieldEncoderLayer/DecoderLayer checkpoint "
            f"(keys under {', '.join(repr(b + '.') for b in block)}); convert_state_dict "
            "converts one association at a time: pass the sub-dict of each prefix (prefix "
            "removed) with that Hopfield's kwargs, or use from_hflayers on the module "
            "(docs/hflayers.md, 'A block from a checkpoint')")
    kind = _kind_of(sd)
    a = _resolve(kind, hflayers_kwargs)
    _refuse(a, kind)
    for key, t in sd.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"hflayers_state_dict[{key!r}] must be a tensor, got "
                            f"{type(t).__name__}")
        if not torch.is_floating_point(t):
            raise TypeError(f"hflayers_state_dict[{key!r}] must be floating point, got {t.dtype}")
    s = sizes_of(a)
    check_keys(sd, a, s, kind)
    pre = "" if kind == "Hopfield" else "hopfield."

    steps = _steps(a["update_steps_max"], s.H)
    tol = a["update_steps_eps"]
    tol = tuple(float(t) for t in tol.tolist()) if isinstance(tol, torch.Tensor) else float(tol)
    if steps is None or (isinstance(steps, tuple) and min(steps) < 0):
        warnings.warn("hflayers update_steps_max=None (or < 0) iterates until its stop test "
                      "holds: the change of the association weights <= update_steps_eps; the "
                      "converted layer (max_steps=None) stops once every state moved less than "
                      "tol=update_steps_eps, so the outputs agree only to about that tolerance",
                      UserWarning, stacklevel=2)
        if isinstance(steps, tuple):  # -1 = unlimited for that head
            steps = tuple(MAX_STEPS_UNTIL_CONVERGED if t < 0 else t for t in steps)
    beta, fold = _beta(a, s, steps)
    proj = _projections(sd, s, pre + "association_core.")
    if fold is not None:  # a per-feature query scale: folded into the query projection
        wq, bq = proj["q_proj"]
        proj["q_proj"] = ((wq.double() * fold[:, None]).to(wq.dtype),
                          None if bq is None else (bq.double() * fold).to(bq.dtype))
    return (_layer_kwargs(a, s, kind, beta, steps, tol),
            _layer_state(sd, a, s, kind, proj, beta))


def _projections(sd: dict[str, torch.Tensor], s: Sizes,
                 core: str) -> dict[str, tuple[torch.Tensor | None, torch.Tensor | None]]:
    """name → (weight, bias) of q_proj / k_proj / v_proj / out_proj (a static input: identity
    per head; ``connected``: v = W_v (W_k V + b_k) + b_v, i.e. HeadSpace(connected=True) with the
    same weights)."""
    E, Ev = s.E, s.Ev
    # rows of the non-static projections, in the order q, k, v
    sizes_qkv = [(n, r) for n, r, static in (("q", E, s.qs), ("k", E, s.ks), ("v", Ev, s.vs))
                 if not static]
    if s.packed:
        parts = dict(zip([n for n, _ in sizes_qkv],
                         sd[core + "in_proj_weight"].split([r for _, r in sizes_qkv])))
    else:
        parts = {n: sd[core + f"{n}_proj_weight"] for n, _ in sizes_qkv}
    bparts: dict[str, torch.Tensor] = {}
    if s.bias:
        bsizes = [(n, r) for n, r in sizes_qkv if n != "v"] + [("v", Ev)]
        bparts = dict(zip([n for n, _ in bsizes],
                          sd[core + "in_proj_bias"].split([r for _, r in bsizes])))
    dtype = next(iter(sd.values())).dtype
    out = {}
    for n, static, rows_per_head in (("q", s.qs, s.Dh), ("k", s.ks, s.Dh), ("v", s.vs, s.Pd)):
        if static:  # every head sees the raw input
            out[f"{n}_proj"] = (torch.eye(rows_per_head, dtype=dtype).repeat(s.H, 1), None)
        else:
            out[f"{n}_proj"] = (parts[n], bparts.get(n))
    out["out_proj"] = (sd.get(core + "out_proj.weight"), sd.get(core + "out_proj.bias"))
    return out


def _beta(a: Mapping[str, object], s: Sizes,
          steps: object) -> tuple[float, torch.Tensor | None]:
    """(β, per-feature query scale or None) of hflayers' ``scaling``; ValueError if inexact."""
    scaling, H, E = a["scaling"], s.H, s.E
    if scaling is None:
        return 1.0 / math.sqrt(s.Dh), None
    if isinstance(scaling, torch.Tensor):
        v = scaling.detach().flatten()
        if v.numel() == 1:
            v = v.expand(H)
        if v.shape != (H,):
            raise ValueError(f"hflayers_kwargs: scaling must be a float or a tensor of shape "
                             f"({H},) (one per head), got shape {shape_str(scaling.shape)}")
        if bool((v == v[0]).all()) and float(v[0]) > 0 and math.isfinite(float(v[0])):
            return float(v[0]), None
        if a["normalize_hopfield_space"]:
            raise ValueError(
                "hflayers_kwargs: a per-head scaling tensor with normalize_hopfield_space=True "
                "cannot be converted: hflayers scales the normalised query by scaling.repeat("
                "E // H) (per feature, not per head), which no per-head β reproduces")
        if steps != 0:
            raise ValueError(
                "hflayers_kwargs: a per-head scaling tensor with update_steps_max > 0 cannot "
                "be converted: after the first step hflayers multiplies each head's "
                "state by scaling.repeat(head_dim // num_heads) along the feature axis (a "
                "per-feature, not per-head, scale), which has no per-head β equivalent")
        return 1.0, v.to(torch.float64).repeat(E // H)  # feature j gets v[j % H]
    scaling = float(scaling)
    if scaling > 0 and math.isfinite(scaling):
        return scaling, None
    if steps != 0 or a["normalize_hopfield_space"]:
        raise ValueError(f"hflayers_kwargs: scaling={scaling} <= 0 cannot be converted with "
                         "update_steps_max > 0 or normalize_hopfield_space=True (beta must "
                         "be > 0)")
    return 1.0, torch.full((E,), scaling, dtype=torch.float64)


def _layer_kwargs(a: Mapping[str, object], s: Sizes, kind: str, beta: float, steps: object,
                  tol: object) -> dict[str, object]:
    """The hopfield.nn constructor arguments of the converted layer."""
    from ..nn import HeadSpace, Norm

    no_out = bool(a["disable_out_projection"])
    hk: dict[str, object] = {
        "input_size": s.D, "head_size": s.Dh, "output_size": None if no_out else s.O,
        "num_heads": s.H, "beta": beta,
        "max_steps": steps, "dropout": float(a["dropout"]), "bias": s.bias,
        "batch_first": bool(a["batch_first"]),
    }
    if s.Pd != s.Dh:
        hk["pattern_size"] = s.Pd
    unprojected = tuple(n for n, flag in (("state", s.qs), ("stored", s.ks),
                                          ("projection", s.vs)) if flag)
    if a["normalize_hopfield_space"] or a["add_zero_association"] or unprojected \
            or s.connected:
        hk["head_space"] = HeadSpace(
            unprojected=unprojected, connected=s.connected,
            normalize=bool(a["normalize_hopfield_space"]),
            affine=bool(a["normalize_hopfield_space_affine"]),
            eps=float(a.get("normalize_hopfield_space_eps", 1e-5)),
            add_zero=bool(a["add_zero_association"]))
    if no_out:
        hk["out_projection"] = False
    if a["association_activation"] is not None:
        hk["association_activation"] = a["association_activation"]
    if steps != 0:
        hk["tol"] = tol
    if kind == "Hopfield" or s.Dk != s.D:
        hk["stored_pattern_size"] = s.Dk
    if kind == "Hopfield" or s.Dv != s.D:
        hk["pattern_projection_size"] = s.Dv
    for base, _, flag, _ in _NORMS:
        if not a[f"normalize_{base}"]:
            hk[flag] = False
            continue
        affine = bool(a[f"normalize_{base}_affine"])
        eps = float(a.get(f"normalize_{base}_eps", 1e-5))
        hk[flag] = True if affine and eps == 1e-5 else Norm(affine=affine, eps=eps)
    if kind != "Hopfield" and not a["trainable"]:
        hk["trainable"] = False
    if kind == "HopfieldLayer" and a["lookup_weights_as_separated"] \
            and not a["lookup_targets_as_trainable"]:
        hk["trainable_targets"] = False
    if kind != "Hopfield":
        hk["quantity"] = int(a["quantity"])
    if kind == "HopfieldLayer":
        hk["lookup_targets"] = bool(a["lookup_weights_as_separated"])
    return hk


def _layer_state(sd: dict[str, torch.Tensor], a: Mapping[str, object], s: Sizes, kind: str,
                 proj: dict[str, tuple[torch.Tensor | None, torch.Tensor | None]],
                 beta: float) -> dict[str, torch.Tensor]:
    """The converted layer's state dict (copies; hflayers' tensors are not shared)."""
    pre = "" if kind == "Hopfield" else "hopfield."
    core = pre + "association_core."
    out: dict[str, torch.Tensor] = {}
    for name, (w, b) in proj.items():
        if w is None:  # disable_out_projection
            continue
        out[f"{pre}{name}.weight"] = w.detach().clone()
        if b is not None:
            out[f"{pre}{name}.bias"] = b.detach().clone()
    for base, hf_name, _, ours in _NORMS:
        if a[f"normalize_{base}"] and a[f"normalize_{base}_affine"]:
            out[f"{pre}{ours}.weight"] = sd[pre + hf_name + ".weight"].detach().clone()
            out[f"{pre}{ours}.bias"] = sd[pre + hf_name + ".bias"].detach().clone()
    if a["normalize_hopfield_space"] and a["normalize_hopfield_space_affine"]:
        out[f"{pre}head_norm.weight"] = sd[core + "p_norm_weight"].detach().clone()
        out[f"{pre}head_norm.bias"] = sd[core + "p_norm_bias"].detach().clone()
    # float64: load_state_dict casts it to the layer's dtype (a float64 layer keeps β exact)
    out[f"{pre}fixed_beta"] = torch.full((s.H,), beta, dtype=torch.float64)
    if kind == "HopfieldPooling":
        out["query"] = sd["pooling_weights"].detach().reshape(-1, s.D).clone()
    elif kind == "HopfieldLayer":
        out["patterns"] = sd["lookup_weights"].detach().reshape(-1, s.Dk).clone()
        if a["lookup_weights_as_separated"]:
            out["targets"] = sd["target_weights"].detach().reshape(-1, s.Dv).clone()
    return out


def from_hflayers(module: torch.nn.Module) -> torch.nn.Module:
    """A :mod:`hopfield.nn` layer computing what an hflayers ``Hopfield``, ``HopfieldPooling``,
    ``HopfieldLayer``, ``HopfieldEncoderLayer`` or ``HopfieldDecoderLayer`` computes (weights
    copied, same dtype/device and train/eval mode).

    hflayers' encoder/decoder blocks are post-norm transformer blocks around hflayers
    ``Hopfield`` modules; they become :class:`~hopfield.nn.HopfieldEncoderLayer` /
    :class:`~hopfield.nn.HopfieldDecoderLayer` (``norm_first=False``) whose ``self_attn`` /
    ``multihead_attn`` are the converted associations (``hopfield_association[_self]`` /
    ``hopfield_association_cross``); ``linear_residual`` → ``linear1``, ``linear_output`` →
    ``linear2``, ``norm_residual[_self]`` → ``norm1``, ``norm_residual_cross`` → ``norm2``,
    ``norm_output`` → the last norm.

    ``trainable=False`` / ``lookup_targets_as_trainable=False`` carry over (``trainable`` /
    ``trainable_targets``: ``requires_grad=False`` on the learned query / stored / target
    patterns).
    """
    from ..nn import Hopfield, HopfieldLayer, HopfieldPooling

    kind = type(module).__name__
    if kind in BLOCKS and type(module).__module__.startswith("hflayers"):
        return from_block(module, kind)
    if kind not in _KINDS or not type(module).__module__.startswith("hflayers"):
        raise TypeError("module must be an hflayers Hopfield, HopfieldPooling, HopfieldLayer, "
                        f"HopfieldEncoderLayer or HopfieldDecoderLayer, got "
                        f"{type(module).__module__}.{kind}")
    hop = module if kind == "Hopfield" else module.hopfield
    kwargs = _kwargs_of(hop)
    if kind != "Hopfield":
        kwargs = {k: v for k, v in kwargs.items() if k in _KINDS[kind]}
        kwargs["quantity"] = int(module.quantity)
    sd = module.state_dict()
    if kind == "HopfieldPooling":
        kwargs["trainable"] = bool(module.pooling_weights.requires_grad)
    if kind == "HopfieldLayer":
        kwargs["lookup_weights_as_separated"] = module.target_weights is not None
        kwargs["trainable"] = bool(module.lookup_weights.requires_grad)
        if module.target_weights is not None:
            kwargs["lookup_targets_as_trainable"] = bool(module.target_weights.requires_grad)
    hk, new_sd = convert_state_dict(sd, kwargs)
    cls = {"Hopfield": Hopfield, "HopfieldPooling": HopfieldPooling,
           "HopfieldLayer": HopfieldLayer}[kind]
    ref = next(iter(sd.values()))
    layer = cls(**hk).to(device=ref.device, dtype=ref.dtype)
    layer.load_state_dict(new_sd)
    return layer.train(module.training)


def _kwargs_of(hop: torch.nn.Module) -> dict[str, object]:
    """The constructor arguments of an hflayers ``Hopfield``, read back from its attributes."""
    core = hop.association_core
    act = hop.association_activation
    kwargs: dict[str, object] = {
        "input_size": core.embed_dim, "hidden_size": core.head_dim, "output_size": core.out_dim,
        "pattern_size": None if core.pattern_dim == core.head_dim else core.pattern_dim,
        "num_heads": core.num_heads, "scaling": hop.scaling,
        "update_steps_max": hop.update_steps_max, "update_steps_eps": hop.update_steps_eps,
        "normalize_hopfield_space": bool(core.normalize_pattern),
        "normalize_hopfield_space_affine": bool(core.normalize_pattern_affine),
        "stored_pattern_as_static": bool(core.key_as_static),
        "state_pattern_as_static": bool(core.query_as_static),
        "pattern_projection_as_static": bool(core.value_as_static),
        "pattern_projection_as_connected": bool(core.value_as_connected),
        "stored_pattern_size": core.kdim, "pattern_projection_size": core.vdim,
        "batch_first": bool(hop.batch_first),
        "association_activation": None if act is None else getattr(act, "__name__", str(act)),
        "dropout": float(core.dropout), "input_bias": core.in_proj_bias is not None,
        "concat_bias_pattern": core.bias_k is not None or core.bias_v is not None,
        "add_zero_association": bool(core.add_zero_attn),
        "disable_out_projection": bool(core.disable_out_projection),
    }
    if core._qkv_same_embed_dim is False and core.pattern_dim == core.head_dim \
            and not core.value_as_connected and core.kdim == core.embed_dim \
            and core.vdim == core.embed_dim:
        kwargs["pattern_size"] = core.pattern_dim  # separate weights although sizes agree
    for base, hf_name, _, _ in _NORMS:
        norm = getattr(hop, hf_name)
        kwargs[f"normalize_{base}"] = norm is not None
        kwargs[f"normalize_{base}_affine"] = norm is not None and bool(norm.elementwise_affine)
        if norm is not None:
            kwargs[f"normalize_{base}_eps"] = float(norm.eps)
    return kwargs
