"""hflayers' constructor arguments, and the checkpoint layout they imply.

What :func:`hopfield.compat.convert_state_dict` needs to know about ``hflayers`` (ml-jku/
hopfield-layers; not imported): the arguments of ``Hopfield`` / ``HopfieldPooling`` /
``HopfieldLayer`` with their defaults, the configurations that have no exact equivalent (refused
with the reason), the layer's sizes (:class:`Sizes`) and the exact keys and shapes of its
``state_dict`` (:func:`check_keys`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from .._validation import shape_str

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
            what = "targets" if a["lookup_weights_as_separated"] else "lookup weights"
            raise ValueError(f"hflayers_kwargs: this HopfieldLayer cannot run in hflayers itself "
                             f"(its {what}"
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


@dataclass(frozen=True)
class Sizes:
    """An hflayers layer's sizes and projection layout (names as in hflayers' source)."""

    D: int    # input (state pattern) size
    H: int    # heads
    Dh: int   # head size (hidden_size)
    Pd: int   # per-head pattern size
    Dk: int   # stored pattern size
    Dv: int   # pattern projection size
    O: int    # output size
    qs: bool  # state_pattern_as_static
    ks: bool  # stored_pattern_as_static
    vs: bool  # pattern_projection_as_static
    connected: bool  # pattern_projection_as_connected
    bias: bool       # input_bias
    packed: bool     # one in_proj_weight (every input of size D, no pattern_size, not connected)

    @property
    def E(self) -> int:
        return self.H * self.Dh

    @property
    def Ev(self) -> int:
        return self.H * self.Pd


def sizes_of(a: Mapping[str, object]) -> Sizes:
    """The sizes of resolved hflayers kwargs ``a``; ValueError for the sizes hflayers rejects."""
    D, H = int(a["input_size"]), int(a["num_heads"])
    if a["hidden_size"] is None:
        if D % H:
            raise ValueError(f"hflayers_kwargs: input_size={D} is not divisible by "
                             f"num_heads={H}; give hidden_size")
        Dh = D // H
    else:
        Dh = int(a["hidden_size"])
    Pd = Dh if a["pattern_size"] is None else int(a["pattern_size"])
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
    qs, ks, vs = (bool(a[n]) for n in ("state_pattern_as_static", "stored_pattern_as_static",
                                         "pattern_projection_as_static"))
    for flag, size, need, what in ((qs, D, Dh, "input_size == hidden_size"),
                                   (ks, Dk, Dh, "stored_pattern_size == hidden_size"),
                                   (vs, Dv, Pd, "pattern_projection_size == pattern_size")):
        if flag and size != need:
            raise ValueError(f"hflayers_kwargs: a static input needs {what} ({need}), got {size}")
    packed = Dk == D and Dv == D and a["pattern_size"] is None and not connected
    return Sizes(D, H, Dh, Pd, Dk, Dv, O, qs, ks, vs, connected, bool(a["input_bias"]), packed)


def check_keys(sd: Mapping[str, torch.Tensor], a: Mapping[str, object], s: Sizes,
               kind: str) -> None:
    """ValueError naming the first missing, wrongly shaped or unexpected key of ``sd``."""
    pre = "" if kind == "Hopfield" else "hopfield."
    core = pre + "association_core."
    E, Ev = s.E, s.Ev
    rows = (0 if s.qs else E) + (0 if s.ks else E) + (0 if s.vs else Ev)
    expected: dict[str, tuple[int, ...]] = {}
    if s.packed:
        expected[core + "in_proj_weight"] = (rows, s.D)
    else:
        if not s.qs:
            expected[core + "q_proj_weight"] = (E, s.D)
        if not s.ks:
            expected[core + "k_proj_weight"] = (E, s.Dk)
        if not s.vs:
            expected[core + "v_proj_weight"] = (Ev, E if s.connected else s.Dv)
    if s.bias:  # hflayers keeps the v part of the bias even for a static projection
        expected[core + "in_proj_bias"] = ((0 if s.qs else E) + (0 if s.ks else E) + Ev,)
    if not a["disable_out_projection"]:
        expected[core + "out_proj.weight"] = (s.O, Ev)
        if s.bias:
            expected[core + "out_proj.bias"] = (s.O,)
    if a["normalize_hopfield_space"] and a["normalize_hopfield_space_affine"]:
        expected[core + "p_norm_weight"] = (s.Dh,)
        expected[core + "p_norm_bias"] = (s.Dh,)
    if a["normalize_hopfield_space_affine"] and not a["normalize_hopfield_space"]:
        raise ValueError("hflayers_kwargs: normalize_hopfield_space_affine=True needs "
                         "normalize_hopfield_space=True (hflayers asserts the same)")
    if a["concat_bias_pattern"]:
        expected[core + "bias_k"] = (1, 1, E)
        expected[core + "bias_v"] = (1, 1, E)
    sizes = {"stored_pattern": s.Dk, "state_pattern": s.D, "pattern_projection": s.Dv}
    for base, hf_name, _, _ in _NORMS:
        if a[f"normalize_{base}"] and a[f"normalize_{base}_affine"]:
            expected[pre + hf_name + ".weight"] = (sizes[base],)
            expected[pre + hf_name + ".bias"] = (sizes[base],)
    if kind != "Hopfield":
        Q = int(a["quantity"])
        lead = (1, Q) if a["batch_first"] else (Q, 1)
        if kind == "HopfieldPooling":
            expected["pooling_weights"] = (*lead, s.D)
        else:
            expected["lookup_weights"] = (*lead, s.Dk)
            if a["lookup_weights_as_separated"]:
                expected["target_weights"] = (*lead, s.Dv)

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
                      "dropped", UserWarning, stacklevel=3)
