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

__all__ = ["convert_state_dict", "from_hflayers"]

# hflayers' constructor arguments and their defaults (hflayers/__init__.py).
_HOPFIELD_ARGS: dict[str, object] = {
    "input_size": None, "hidden_size": None, "output_size": None, "pattern_size": None,
    "num_heads": 1, "scaling": None, "update_steps_max": 0, "update_steps_eps": 1e-4,
    "normalize_stored_pattern": True, "normalize_stored_pattern_affine": True,
    "normalize_stored_pattern_eps": 1e-5,
    "normalize_state_pattern": True, "normalize_state_pattern_affine": True,
    "normalize_state_pattern_eps": 1e-5,
    "normalize_pattern_projection": True, "normalize_pattern_projection_affine": True,
    "normalize_pattern_projection_eps": 1e-5,
    "normalize_hopfield_space": False, "normalize_hopfield_space_affine": False,
    "normalize_hopfield_space_eps": 1e-5,
    "stored_pattern_as_static": False, "state_pattern_as_static": False,
    "pattern_projection_as_static": False, "pattern_projection_as_connected": False,
    "stored_pattern_size": None, "pattern_projection_size": None,
    "batch_first": True, "association_activation": None, "dropout": 0.0, "input_bias": True,
    "concat_bias_pattern": False, "add_zero_association": False, "disable_out_projection": False,
}
_POOLING_ARGS: dict[str, object] = {
    **{k: v for k, v in _HOPFIELD_ARGS.items() if not k.endswith("_eps")
       or k == "update_steps_eps"},
    "quantity": 1, "trainable": True,
}
_LAYER_ARGS: dict[str, object] = {
    **_POOLING_ARGS, "lookup_weights_as_separated": False, "lookup_targets_as_trainable": True,
}
_KINDS = {"Hopfield": _HOPFIELD_ARGS, "HopfieldPooling": _POOLING_ARGS,
          "HopfieldLayer": _LAYER_ARGS}
_NORMS = (("stored_pattern", "norm_stored_pattern", "normalize_stored", "norm_stored"),
          ("state_pattern", "norm_state_pattern", "normalize_state", "norm_state"),
          ("pattern_projection", "norm_pattern_projection", "normalize_projection",
           "norm_projection"))


def _kind_of(state_dict: Mapping[str, object]) -> str:
    if "pooling_weights" in state_dict:
        return "HopfieldPooling"
    if "lookup_weights" in state_dict:
        return "HopfieldLayer"
    return "Hopfield"


def _resolve(kind: str, kwargs: Mapping[str, object]) -> dict[str, object]:
    if not isinstance(kwargs, Mapping):
        raise TypeError(f"hflayers_kwargs must be a dict of the hflayers constructor arguments, "
                        f"got {type(kwargs).__name__}")
    known = _KINDS[kind]
    for key in kwargs:
        if key not in known:
            raise TypeError(f"hflayers_kwargs: {key!r} is not an argument of hflayers.{kind} "
                            f"(known: {', '.join(known)})")
    a = {**known, **kwargs}
    if a["input_size"] is None:
        raise ValueError("hflayers_kwargs must give input_size (hflayers allows None only when "
                         "every projection is static, which cannot be converted)")
    return a


def _refuse(a: dict[str, object], kind: str) -> None:
    """Raise for configurations without an exact equivalent, saying why."""
    qs, ks, vs = (bool(a[n]) for n in ("state_pattern_as_static", "stored_pattern_as_static",
                                         "pattern_projection_as_static"))
    if qs and ks and vs:
        raise ValueError("hflayers_kwargs: all three *_as_static=True (hflayers' static-only "
                         "execution, no module sizes) cannot be converted; use "
                         "hopfield.functional for projection-free retrieval")
    if ks and vs:
        raise ValueError("hflayers_kwargs: stored_pattern_as_static=True with "
                         "pattern_projection_as_static=True cannot be converted: hflayers then "
                         "does not repeat the pattern projections per head but splits their "
                         "features across the heads (a bug), which hopfield.nn does not copy")
    if (vs or ks) and a["pattern_projection_as_connected"]:
        raise ValueError("hflayers_kwargs: a static stored pattern or pattern projection with "
                         "pattern_projection_as_connected=True cannot be converted: hflayers "
                         "then silently skips the connection (static stored pattern) or the "
                         "value projection (static projection), so the flag does not mean what "
                         "it says")
    act = a["association_activation"]
    if act is not None and not (isinstance(act, str) and callable(getattr(torch, act, None))):
        raise ValueError(f"hflayers_kwargs: association_activation={act!r} must name a torch "
                         "function (hflayers applies getattr(torch, name))")
    for base, *_ in _NORMS:
        if a[f"normalize_{base}_affine"] and not a[f"normalize_{base}"]:
            raise ValueError(f"hflayers_kwargs: normalize_{base}_affine=True needs "
                             f"normalize_{base}=True (hflayers asserts the same)")
    steps = a["update_steps_max"]
    if isinstance(steps, torch.Tensor) and (steps.dim() != 1 or steps.numel() != a["num_heads"]):
        raise ValueError(f"hflayers_kwargs: update_steps_max must be an int, None or a tensor of "
                         f"shape ({a['num_heads']},), got shape {shape_str(steps.shape)}")
    eps = a["update_steps_eps"]
    if isinstance(eps, torch.Tensor) and (eps.dim() != 1 or eps.numel() != a["num_heads"]):
        raise ValueError(f"hflayers_kwargs: update_steps_eps must be a float or a tensor of "
                         f"shape ({a['num_heads']},), got shape {shape_str(eps.shape)}")
    if kind == "HopfieldLayer":
        D = a["input_size"]
        Dk = D if a["stored_pattern_size"] is None else a["stored_pattern_size"]
        Dv = D if a["pattern_projection_size"] is None else a["pattern_projection_size"]
        targets = (Dk if a["pattern_projection_size"] is None else Dv) \
            if a["lookup_weights_as_separated"] else Dk
        if targets != Dv:
            raise ValueError(f"hflayers_kwargs: this HopfieldLayer cannot run in hflayers itself "
                             f"(its {'targets' if a['lookup_weights_as_separated'] else 'lookup weights'}"
                             f" have {targets} features, its pattern projection expects {Dv}); "
                             "give pattern_projection_size")


def _steps(x: object, H: int) -> int | None | tuple[int, ...]:
    """hflayers update_steps_max (int, None, or an (H,) tensor with -1 = unlimited)."""
    if x is None:
        return None
    if isinstance(x, torch.Tensor):
        v = tuple(int(t) for t in x.tolist())
        if len(set(v)) == 1:
            return None if v[0] < 0 else v[0]
        return v
    return None if int(x) < 0 else int(x)


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

    D, H = int(a["input_size"]), int(a["num_heads"])
    if a["hidden_size"] is None:
        if D % H:
            raise ValueError(f"hflayers_kwargs: input_size={D} is not divisible by "
                             f"num_heads={H}; give hidden_size")
        Dh = D // H
    else:
        Dh = int(a["hidden_size"])
    E = H * Dh
    Pd = Dh if a["pattern_size"] is None else int(a["pattern_size"])
    Ev = H * Pd
    no_out = bool(a["disable_out_projection"])
    Dk = D if a["stored_pattern_size"] is None else int(a["stored_pattern_size"])
    Dv = D if a["pattern_projection_size"] is None else int(a["pattern_projection_size"])
    O = D if a["output_size"] is None else int(a["output_size"])
    connected = bool(a["pattern_projection_as_connected"])
    if connected and Pd != Dh:
        raise ValueError(f"hflayers_kwargs: pattern_projection_as_connected=True needs "
                         f"pattern_size == hidden_size, got {Pd} and {Dh} (hflayers asserts it)")
    if connected and Dk != Dv:
        raise ValueError(f"hflayers_kwargs: pattern_projection_as_connected=True needs "
                         f"stored_pattern_size == pattern_projection_size, got {Dk} and {Dv}")
    same = Dk == D and Dv == D and a["pattern_size"] is None and not connected
    bias = bool(a["input_bias"])
    pre = "" if kind == "Hopfield" else "hopfield."
    core = pre + "association_core."

    qs, ks, vs = (bool(a[n]) for n in ("state_pattern_as_static", "stored_pattern_as_static",
                                         "pattern_projection_as_static"))
    for flag, size, need, what in ((qs, D, Dh, "input_size == hidden_size"),
                                   (ks, Dk, Dh, "stored_pattern_size == hidden_size"),
                                   (vs, Dv, Pd, "pattern_projection_size == pattern_size")):
        if flag and size != need:
            raise ValueError(f"hflayers_kwargs: a static input needs {what} ({need}), got {size}")
    rows = (0 if qs else E) + (0 if ks else E) + (0 if vs else Ev)
    expected: dict[str, tuple[int, ...]] = {}
    if same:
        expected[core + "in_proj_weight"] = (rows, D)
    else:
        if not qs:
            expected[core + "q_proj_weight"] = (E, D)
        if not ks:
            expected[core + "k_proj_weight"] = (E, Dk)
        if not vs:
            expected[core + "v_proj_weight"] = (Ev, E if connected else Dv)
    if bias:  # hflayers keeps the v part of the bias even for a static projection
        expected[core + "in_proj_bias"] = ((0 if qs else E) + (0 if ks else E) + Ev,)
    if not no_out:
        expected[core + "out_proj.weight"] = (O, Ev)
        if bias:
            expected[core + "out_proj.bias"] = (O,)
    if a["normalize_hopfield_space"] and a["normalize_hopfield_space_affine"]:
        expected[core + "p_norm_weight"] = (Dh,)
        expected[core + "p_norm_bias"] = (Dh,)
    if a["normalize_hopfield_space_affine"] and not a["normalize_hopfield_space"]:
        raise ValueError("hflayers_kwargs: normalize_hopfield_space_affine=True needs "
                         "normalize_hopfield_space=True (hflayers asserts the same)")
    if a["concat_bias_pattern"]:
        expected[core + "bias_k"] = (1, 1, E)
        expected[core + "bias_v"] = (1, 1, E)
    sizes = {"stored_pattern": Dk, "state_pattern": D, "pattern_projection": Dv}
    for base, hf_name, _, _ in _NORMS:
        if a[f"normalize_{base}"] and a[f"normalize_{base}_affine"]:
            expected[pre + hf_name + ".weight"] = (sizes[base],)
            expected[pre + hf_name + ".bias"] = (sizes[base],)
    batch_first = bool(a["batch_first"])
    if kind != "Hopfield":
        Q = int(a["quantity"])
        lead = (1, Q) if batch_first else (Q, 1)
        if kind == "HopfieldPooling":
            expected["pooling_weights"] = (*lead, D)
        else:
            expected["lookup_weights"] = (*lead, Dk)
            if a["lookup_weights_as_separated"]:
                expected["target_weights"] = (*lead, Dv)

    for key, shape in expected.items():
        if key not in sd:
            raise ValueError(f"hflayers_state_dict is missing key {key!r} (expected shape "
                             f"{shape_str(shape)} for hflayers.{kind} with these kwargs)")
        if tuple(sd[key].shape) != shape:
            raise ValueError(f"hflayers_state_dict[{key!r}] must have shape {shape_str(shape)} "
                             f"for these hflayers_kwargs, got {shape_str(sd[key].shape)}")
    extra = sorted(set(sd) - set(expected))
    if extra:
        raise ValueError(f"hflayers_state_dict has unexpected key(s) {extra} for hflayers.{kind} "
                         "with these kwargs (check hflayers_kwargs: e.g. input_bias, "
                         "concat_bias_pattern, normalize_*_affine, lookup_weights_as_separated)")
    if a["concat_bias_pattern"]:
        warnings.warn("hflayers' concat_bias_pattern=True creates bias_k/bias_v but its forward "
                      "never concatenates them (they do not change its output); they are "
                      "dropped", UserWarning, stacklevel=2)

    # ----------------------------------------------------------- the projections
    # rows of the non-static projections, in the order q, k, v
    sizes_qkv = [(n, r) for n, r, static in (("q", E, qs), ("k", E, ks), ("v", Ev, vs))
                 if not static]
    if same:
        parts = dict(zip([n for n, _ in sizes_qkv],
                         sd[core + "in_proj_weight"].split([r for _, r in sizes_qkv])))
    else:
        parts = {n: sd[core + f"{n}_proj_weight"] for n, _ in sizes_qkv}
    bparts: dict[str, torch.Tensor] = {}
    if bias:
        bsizes = [(n, r) for n, r in sizes_qkv if n != "v"] + [("v", Ev)]
        bparts = dict(zip([n for n, _ in bsizes],
                          sd[core + "in_proj_bias"].split([r for _, r in bsizes])))

    ref_dtype = next(iter(sd.values())).dtype

    def fixed(rows_per_head: int) -> torch.Tensor:  # every head sees the raw input
        return torch.eye(rows_per_head, dtype=ref_dtype).repeat(H, 1)

    wq = parts["q"] if not qs else fixed(Dh)
    wk = parts["k"] if not ks else fixed(Dh)
    wv = parts["v"] if not vs else fixed(Pd)
    bq = None if qs else bparts.get("q")
    bk = None if ks else bparts.get("k")
    bv = None if vs else bparts.get("v")
    # connected: v = W_v (W_k V + b_k) + b_v is HeadSpace(connected=True) with the same weights

    steps = _steps(a["update_steps_max"], H)
    tol = a["update_steps_eps"]
    tol = tuple(float(t) for t in tol.tolist()) if isinstance(tol, torch.Tensor) else float(tol)
    unlimited = steps is None or (isinstance(steps, tuple) and min(steps) < 0)
    if unlimited:
        warnings.warn("hflayers update_steps_max=None (or < 0) iterates until its stop test "
                      "holds: the change of the association weights <= update_steps_eps; the "
                      "converted layer (max_steps=None) stops once every state moved less than "
                      "tol=update_steps_eps, so the outputs agree only to about that tolerance",
                      UserWarning, stacklevel=2)
        if isinstance(steps, tuple):  # -1 = unlimited for that head
            steps = tuple(MAX_STEPS_UNTIL_CONVERGED if t < 0 else t for t in steps)
    scaling = a["scaling"]
    if scaling is None:
        beta, fold = 1.0 / math.sqrt(Dh), None
    elif isinstance(scaling, torch.Tensor):
        s = scaling.detach().flatten()
        if s.numel() == 1:
            s = s.expand(H)
        if s.shape != (H,):
            raise ValueError(f"hflayers_kwargs: scaling must be a float or a tensor of shape "
                             f"({H},) (one per head), got shape {shape_str(scaling.shape)}")
        if bool((s == s[0]).all()) and float(s[0]) > 0 and math.isfinite(float(s[0])):
            beta, fold = float(s[0]), None
        elif a["normalize_hopfield_space"]:
            raise ValueError(
                "hflayers_kwargs: a per-head scaling tensor with normalize_hopfield_space=True "
                "cannot be converted: hflayers scales the normalised query by scaling.repeat("
                "E // H) (per feature, not per head), which no per-head β reproduces")
        else:
            if steps != 0:
                raise ValueError(
                    "hflayers_kwargs: a per-head scaling tensor with update_steps_max > 0 cannot "
                    "be converted: after the first step hflayers multiplies each head's "
                    "state by scaling.repeat(head_dim // num_heads) along the feature axis (a "
                    "per-feature, not per-head, scale), which has no per-head β equivalent")
            beta, fold = 1.0, s.to(torch.float64).repeat(E // H)  # feature j gets s[j % H]
    else:
        scaling = float(scaling)
        if scaling > 0 and math.isfinite(scaling):
            beta, fold = scaling, None
        elif steps != 0 or a["normalize_hopfield_space"]:
            raise ValueError(f"hflayers_kwargs: scaling={scaling} <= 0 cannot be converted with "
                             "update_steps_max > 0 or normalize_hopfield_space=True (beta must "
                             "be > 0)")
        else:
            beta, fold = 1.0, torch.full((E,), scaling, dtype=torch.float64)
    if fold is not None:
        wq = (wq.double() * fold[:, None]).to(wq.dtype)
        if bq is not None:
            bq = (bq.double() * fold).to(bq.dtype)

    # ----------------------------------------------------------- the new layer
    hk: dict[str, object] = {  # hopfield.nn constructor arguments
        "input_size": D, "head_size": Dh, "output_size": None if no_out else O,
        "num_heads": H, "beta": beta,
        "max_steps": steps, "dropout": float(a["dropout"]), "bias": bias,
        "batch_first": batch_first,
    }
    if Pd != Dh:
        hk["pattern_size"] = Pd
    unprojected = tuple(n for n, flag in (("state", qs), ("stored", ks), ("projection", vs))
                        if flag)
    if a["normalize_hopfield_space"] or a["add_zero_association"] or unprojected or connected:
        from ..nn import HeadSpace

        hk["head_space"] = HeadSpace(
            unprojected=unprojected, connected=connected,
            normalize=bool(a["normalize_hopfield_space"]),
            affine=bool(a["normalize_hopfield_space_affine"]),
            eps=float(a.get("normalize_hopfield_space_eps", 1e-5)),
            add_zero=bool(a["add_zero_association"]))
        if a["normalize_hopfield_space_affine"]:
            out_hs = {f"{pre}head_norm.weight": sd[core + "p_norm_weight"].detach().clone(),
                      f"{pre}head_norm.bias": sd[core + "p_norm_bias"].detach().clone()}
        else:
            out_hs = {}
    else:
        out_hs = {}
    if no_out:
        hk["out_projection"] = False
    if a["association_activation"] is not None:
        hk["association_activation"] = a["association_activation"]
    if steps != 0:
        hk["tol"] = tol
    if kind == "Hopfield" or Dk != D:
        hk["stored_pattern_size"] = Dk
    if kind == "Hopfield" or Dv != D:
        hk["pattern_projection_size"] = Dv
    out: dict[str, torch.Tensor] = {}
    for name, w, b in (("q_proj", wq, bq), ("k_proj", wk, bk), ("v_proj", wv, bv),
                       ("out_proj", sd.get(core + "out_proj.weight"),
                        sd.get(core + "out_proj.bias"))):
        if w is None:  # disable_out_projection
            continue
        out[f"{pre}{name}.weight"] = w.detach().clone()
        if b is not None:
            out[f"{pre}{name}.bias"] = b.detach().clone()
    from ..nn import Norm

    for base, hf_name, flag, ours in _NORMS:
        if not a[f"normalize_{base}"]:
            hk[flag] = False
            continue
        affine = bool(a[f"normalize_{base}_affine"])
        eps = float(a.get(f"normalize_{base}_eps", 1e-5))
        hk[flag] = True if affine and eps == 1e-5 else Norm(affine=affine, eps=eps)
        if affine:
            out[f"{pre}{ours}.weight"] = sd[pre + hf_name + ".weight"].detach().clone()
            out[f"{pre}{ours}.bias"] = sd[pre + hf_name + ".bias"].detach().clone()
    out.update(out_hs)
    # float64: load_state_dict casts it to the layer's dtype (a float64 layer keeps β exact)
    out[f"{pre}fixed_beta"] = torch.full((H,), beta, dtype=torch.float64)
    if kind != "Hopfield" and not a["trainable"]:
        hk["trainable"] = False
    if kind == "HopfieldLayer" and a["lookup_weights_as_separated"] \
            and not a["lookup_targets_as_trainable"]:
        hk["trainable_targets"] = False
    if kind == "HopfieldPooling":
        hk["quantity"] = int(a["quantity"])
        out["query"] = sd["pooling_weights"].detach().reshape(-1, D).clone()
    elif kind == "HopfieldLayer":
        hk["quantity"] = int(a["quantity"])
        hk["lookup_targets"] = bool(a["lookup_weights_as_separated"])
        out["patterns"] = sd["lookup_weights"].detach().reshape(-1, Dk).clone()
        if a["lookup_weights_as_separated"]:
            out["targets"] = sd["target_weights"].detach().reshape(-1, Dv).clone()
    return hk, out


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
    if kind in _BLOCKS and type(module).__module__.startswith("hflayers"):
        return _from_block(module, kind)
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


#: hflayers block class → (our attention attribute ← hflayers association attribute, norms)
_BLOCKS = {
    "HopfieldEncoderLayer": ((("self_attn", "hopfield_association"),),
                             (("norm1", "norm_residual"), ("norm2", "norm_output")),
                             (("dropout1", "dropout_hopfield_association"),
                              ("dropout2", "dropout_output"))),
    "HopfieldDecoderLayer": ((("self_attn", "hopfield_association_self"),
                              ("multihead_attn", "hopfield_association_cross")),
                             (("norm1", "norm_residual_self"), ("norm2", "norm_residual_cross"),
                              ("norm3", "norm_output")),
                             (("dropout1", "dropout_hopfield_association_self"),
                              ("dropout2", "dropout_hopfield_association_cross"),
                              ("dropout3", "dropout_output"))),
}


def _from_block(module: torch.nn.Module, kind: str) -> torch.nn.Module:
    """hflayers HopfieldEncoderLayer / HopfieldDecoderLayer → ours (post-norm, same math)."""
    from ..nn import HopfieldDecoderLayer, HopfieldEncoderLayer

    attns, norms, dropouts = _BLOCKS[kind]
    converted = {ours: from_hflayers(getattr(module, theirs)) for ours, theirs in attns}
    first = converted["self_attn"]
    D = first.input_size
    for ours, layer in converted.items():
        if type(layer).__name__ != "Hopfield" or layer.output_size != D or layer.input_size != D:
            raise ValueError(f"{kind}: the association for {ours} must be an hflayers Hopfield "
                             f"with input_size == output_size == {D} (the residual needs it), "
                             f"got {type(layer).__name__} {layer.input_size} -> "
                             f"{layer.output_size}")
        if layer.batch_first != first.batch_first:
            raise ValueError(f"{kind}: the associations must share batch_first")
    act = module.activation_residual
    if not callable(act):
        raise TypeError(f"{kind}: activation_residual must be a torch function, got {act!r}")
    lin1, lin2 = module.linear_residual, module.linear_output
    norm0 = getattr(module, norms[0][1])
    cls = HopfieldEncoderLayer if kind == "HopfieldEncoderLayer" else HopfieldDecoderLayer
    new = cls(D, first.num_heads, dim_feedforward=lin1.out_features,
              dropout=float(module.dropout_residual.p), activation=act,
              layer_norm_eps=float(norm0.eps), batch_first=bool(first.batch_first),
              norm_first=False, bias=True, head_size=first.head_size,
              device=lin1.weight.device, dtype=lin1.weight.dtype)
    for ours, layer in converted.items():
        setattr(new, ours, layer)
    with torch.no_grad():
        new.linear1.load_state_dict(lin1.state_dict())
        new.linear2.load_state_dict(lin2.state_dict())
        for ours, theirs in norms:
            src = getattr(module, theirs)
            dst = getattr(new, ours)
            dst.eps = float(src.eps)
            if src.weight is None:  # hflayers' are affine; keep any variant exact
                dst.weight.fill_(1.0)
                dst.bias.zero_()
            else:
                dst.load_state_dict(src.state_dict())
    for ours, theirs in dropouts:
        getattr(new, ours).p = float(getattr(module, theirs).p)
    new.dropout.p = float(module.dropout_residual.p)
    return new.train(module.training)
