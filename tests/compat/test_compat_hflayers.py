"""hopfield.compat.hflayers: converted layers equal a float64 reference of hflayers' math.

hflayers is not installable here, so the checkpoints are built from its documented state-dict
layout, and the reference below is written from its documented forward (hflayers/functional.py):
LayerNorms on the inputs, q/k/v projections split from ``in_proj_weight`` / ``in_proj_bias``,
``q * scaling`` (a per-head tensor applied as ``scaling.repeat(E // H)`` along the features),
softmax association, update steps ``q ← softmax(q kᵀ) k`` (scaled again), read-out, out_proj.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hopfield.compat.hflayers import convert_state_dict, from_hflayers
from hopfield.nn import Hopfield, HopfieldLayer, HopfieldPooling

DEF = {
    "association_activation": None, "disable_out_projection": False,
    "normalize_hopfield_space": False, "normalize_hopfield_space_affine": False,
    "normalize_hopfield_space_eps": 1e-5, "add_zero_association": False,
    "hidden_size": None, "output_size": None, "pattern_size": None, "num_heads": 1,
    "scaling": None, "update_steps_max": 0, "update_steps_eps": 1e-4,
    "normalize_stored_pattern": True, "normalize_stored_pattern_affine": True,
    "normalize_state_pattern": True, "normalize_state_pattern_affine": True,
    "normalize_pattern_projection": True, "normalize_pattern_projection_affine": True,
    "pattern_projection_as_connected": False, "stored_pattern_size": None,
    "pattern_projection_size": None, "batch_first": True, "input_bias": True,
    "concat_bias_pattern": False, "quantity": 1, "lookup_weights_as_separated": False,
}


def _dims(kw):
    a = {**DEF, **kw}
    D, H = a["input_size"], a["num_heads"]
    Dh = a["hidden_size"] or D // H
    return a, D, H, Dh, H * Dh, a["stored_pattern_size"] or D, a["pattern_projection_size"] or D, \
        a["output_size"] or D


def make_sd(kind, kw, gen):
    """A random hflayers-shaped state dict (documented key layout)."""
    a, D, H, Dh, E, Dk, Dv, O = _dims(kw)
    Ev = H * (a["pattern_size"] or Dh)
    r = lambda *s: torch.randn(*s, generator=gen) * 0.5
    pre = "" if kind == "Hopfield" else "hopfield."
    c = pre + "association_core."
    sd = {}
    same = Dk == D and Dv == D and a["pattern_size"] is None and not a["pattern_projection_as_connected"]
    qs, ks, vs = (a.get(n, False) for n in ("state_pattern_as_static",
                                            "stored_pattern_as_static",
                                            "pattern_projection_as_static"))
    if same:
        sd[c + "in_proj_weight"] = r((not qs) * E + (not ks) * E + (not vs) * Ev, D)
    else:
        if not qs:
            sd[c + "q_proj_weight"] = r(E, D)
        if not ks:
            sd[c + "k_proj_weight"] = r(E, Dk)
        if not vs:
            sd[c + "v_proj_weight"] = r(Ev, E if a["pattern_projection_as_connected"] else Dv)
    if a["input_bias"]:
        sd[c + "in_proj_bias"] = r((not qs) * E + (not ks) * E + Ev)
    if not a["disable_out_projection"]:
        sd[c + "out_proj.weight"] = r(O, Ev)
        if a["input_bias"]:
            sd[c + "out_proj.bias"] = r(O)
    if a["concat_bias_pattern"]:
        sd[c + "bias_k"], sd[c + "bias_v"] = r(1, 1, E), r(1, 1, E)
    if a["normalize_hopfield_space_affine"]:
        sd[c + "p_norm_weight"], sd[c + "p_norm_bias"] = 1 + r(Dh), r(Dh)
    for base, n in (("stored_pattern", Dk), ("state_pattern", D), ("pattern_projection", Dv)):
        if a[f"normalize_{base}"] and a[f"normalize_{base}_affine"]:
            hf = {"stored_pattern": "norm_stored_pattern", "state_pattern": "norm_state_pattern",
                  "pattern_projection": "norm_pattern_projection"}[base]
            sd[pre + hf + ".weight"] = 1 + r(n)
            sd[pre + hf + ".bias"] = r(n)
    lead = (1, a["quantity"]) if a["batch_first"] else (a["quantity"], 1)
    if kind == "HopfieldPooling":
        sd["pooling_weights"] = r(*lead, D)
    if kind == "HopfieldLayer":
        sd["lookup_weights"] = r(*lead, Dk)
        if a["lookup_weights_as_separated"]:
            sd["target_weights"] = r(*lead, Dv)
    return sd


def hf_reference(kind, sd, kw, x):
    """float64 hflayers forward (batch-first tensors in, batch-first out)."""
    a, D, H, Dh, E, Dk, Dv, _O = _dims(kw)
    sd = {k: v.double() for k, v in sd.items()}
    pre = "" if kind == "Hopfield" else "hopfield."
    c = pre + "association_core."
    if kind == "Hopfield":
        y, rr, v = x if isinstance(x, tuple) else (x, x, x)
    elif kind == "HopfieldPooling":
        y = v = x
        rr = sd["pooling_weights"].reshape(-1, D).expand(x.shape[0], -1, -1)
    else:
        rr = x
        y = sd["lookup_weights"].reshape(-1, Dk).expand(x.shape[0], -1, -1)
        v = sd["target_weights"].reshape(-1, Dv).expand(x.shape[0], -1, -1) \
            if a["lookup_weights_as_separated"] else y

    def norm(t, base, hf):
        if not a[f"normalize_{base}"]:
            return t
        w = sd.get(pre + hf + ".weight")
        b = sd.get(pre + hf + ".bias")
        return F.layer_norm(t, (t.shape[-1],), w, b, eps=a.get(f"normalize_{base}_eps", 1e-5))

    y = norm(y, "stored_pattern", "norm_stored_pattern")
    rr = norm(rr, "state_pattern", "norm_state_pattern")
    v = norm(v, "pattern_projection", "norm_pattern_projection")
    b = sd.get(c + "in_proj_bias")
    Ev = H * (a["pattern_size"] or Dh)
    st = [a.get(n, False) for n in ("state_pattern_as_static", "stored_pattern_as_static",
                                    "pattern_projection_as_static")]
    names = [n for n, s_ in zip("qkv", st) if not s_]
    bnames = [n for n in names if n != "v"] + ["v"]
    sizes = {"q": E, "k": E, "v": Ev}
    bb = {} if b is None else dict(zip(bnames, b.split([sizes[n] for n in bnames])))
    if c + "in_proj_weight" in sd:
        ww = dict(zip(names, sd[c + "in_proj_weight"].split([sizes[n] for n in names])))
    else:
        ww = {n: sd[c + f"{n}_proj_weight"] for n in names}

    def project(x, n):  # static: the raw input repeated for every head (hflayers' .repeat)
        return x.repeat(1, 1, H) if n not in ww else F.linear(x, ww[n], bb.get(n))

    q, k = project(rr, "q"), project(y, "k")
    if a["pattern_projection_as_connected"]:
        v = F.linear(v, ww["k"], bb.get("k"))
    v = project(v, "v")
    s = a["scaling"]
    if s is None:
        s = 1 / math.sqrt(Dh)
    # hflayers: feature j of the query gets scaling[j % H] (a tensor), after the head-space norm
    scale = s.double().repeat(E // H) if isinstance(s, torch.Tensor) else s
    heads = lambda t: t.unflatten(-1, (H, -1)).transpose(1, 2)
    q, k, v = heads(q), heads(k), heads(v)
    if a["normalize_hopfield_space"]:
        ln = lambda t: F.layer_norm(t, (Dh,), sd.get(c + "p_norm_weight"),
                                    sd.get(c + "p_norm_bias"), a["normalize_hopfield_space_eps"])
        q, k = ln(q), ln(k)
    q = q * (heads(scale.view(1, 1, E)) if isinstance(scale, torch.Tensor) else scale)
    if a["add_zero_association"]:
        k = torch.cat([k, torch.zeros_like(k[:, :, :1])], 2)
        v = torch.cat([v, torch.zeros_like(v[:, :, :1])], 2)
    w = torch.softmax(q @ k.mT, -1)
    steps = a["update_steps_max"]
    steps = steps.tolist() if isinstance(steps, torch.Tensor) else [steps] * H
    for n in range(max(steps)):  # eps is tiny in these cases: only the step limits stop
        active = torch.tensor([n < t for t in steps]).view(1, H, 1, 1)
        qn = (w @ k) * s  # float scaling only (tensor + steps is refused)
        w = torch.where(active, torch.softmax(qn @ k.mT, -1), w)
    out = (w @ v).transpose(1, 2).flatten(2)
    if not a["disable_out_projection"]:
        out = F.linear(out, sd[c + "out_proj.weight"], sd.get(c + "out_proj.bias"))
    if a.get("association_activation"):
        out = getattr(torch, a["association_activation"])(out)
    return out.flatten(1) if kind == "HopfieldPooling" else out


CASES = [
    ("Hopfield", {"input_size": 8, "num_heads": 2}, "self"),
    ("Hopfield", {"input_size": 6, "hidden_size": 3, "output_size": 7, "num_heads": 3,
                  "stored_pattern_size": 5, "pattern_projection_size": 4,
                  "scaling": torch.tensor([0.3, 0.7, 1.1]),
                  "normalize_state_pattern_affine": False,
                  "normalize_stored_pattern_eps": 1e-2}, "tuple"),
    ("Hopfield", {"input_size": 8, "num_heads": 2, "scaling": torch.tensor([0.2, 0.9]),
                  "input_bias": False, "normalize_stored_pattern": False,
                  "normalize_stored_pattern_affine": False}, "self"),
    ("Hopfield", {"input_size": 8, "num_heads": 2, "stored_pattern_size": 6,
                  "pattern_projection_size": 6, "pattern_projection_as_connected": True}, "tuple"),
    ("Hopfield", {"input_size": 8, "num_heads": 2, "scaling": 0.4, "update_steps_max": 2,
                  "update_steps_eps": 1e-12}, "self"),
    ("Hopfield", {"input_size": 8, "num_heads": 2, "pattern_size": 4, "scaling": -0.5}, "tuple"),
    ("Hopfield", {"input_size": 9, "num_heads": 3, "scaling": 0.6,
                  "update_steps_max": torch.tensor([0, 3, 1]), "update_steps_eps": 1e-12}, "self"),
    ("Hopfield", {"input_size": 8, "num_heads": 2, "batch_first": False}, "tuple"),
    ("Hopfield", {"input_size": 8, "num_heads": 2, "stored_pattern_size": 4,
                  "stored_pattern_as_static": True, "scaling": torch.tensor([0.4, 0.9])}, "tuple"),
    ("Hopfield", {"input_size": 8, "hidden_size": 8, "num_heads": 2,
                  "state_pattern_as_static": True, "update_steps_max": 1,
                  "update_steps_eps": 1e-12}, "self"),
    ("Hopfield", {"input_size": 8, "num_heads": 2, "pattern_projection_size": 4,
                  "pattern_projection_as_static": True, "input_bias": True}, "tuple"),
    ("Hopfield", {"input_size": 8, "hidden_size": 8, "num_heads": 2,
                  "state_pattern_as_static": True, "pattern_projection_as_static": True},
     "self"),
    ("Hopfield", {"input_size": 8, "num_heads": 2, "normalize_hopfield_space": True,
                  "normalize_hopfield_space_affine": True, "scaling": 0.7,
                  "update_steps_max": 1, "update_steps_eps": 1e-12}, "self"),
    ("Hopfield", {"input_size": 8, "num_heads": 2, "normalize_hopfield_space": True,
                  "normalize_hopfield_space_eps": 1e-3}, "tuple"),
    ("Hopfield", {"input_size": 8, "num_heads": 2, "add_zero_association": True,
                  "scaling": torch.tensor([0.5, 2.0])}, "self"),
    ("Hopfield", {"input_size": 8, "num_heads": 2, "pattern_size": 3, "output_size": 5,
                  "stored_pattern_size": 6}, "tuple"),
    ("Hopfield", {"input_size": 8, "num_heads": 2, "pattern_size": 5,
                  "disable_out_projection": True, "scaling": torch.tensor([0.3, 0.6])}, "tuple"),
    ("HopfieldPooling", {"input_size": 8, "num_heads": 2, "quantity": 2, "pattern_size": 3,
                         "disable_out_projection": True}, "pool"),
    ("Hopfield", {"input_size": 8, "num_heads": 2, "association_activation": "tanh"}, "self"),
    ("HopfieldPooling", {"input_size": 8, "num_heads": 2, "quantity": 3,
                         "scaling": torch.tensor([0.5, 1.5])}, "pool"),
    ("HopfieldPooling", {"input_size": 6, "hidden_size": 4, "output_size": 5, "quantity": 2,
                         "update_steps_max": torch.tensor([1]), "update_steps_eps": 1e-12,
                         "normalize_pattern_projection": False,
                         "normalize_pattern_projection_affine": False}, "pool"),
    ("HopfieldLayer", {"input_size": 8, "num_heads": 2, "quantity": 5,
                       "lookup_weights_as_separated": True,
                       "scaling": torch.tensor([0.3, 0.8])}, "layer"),
    ("HopfieldLayer", {"input_size": 8, "num_heads": 4, "quantity": 4, "batch_first": False},
     "layer"),
    # pooling / lookup with their own pattern sizes
    ("HopfieldPooling", {"input_size": 8, "num_heads": 2, "quantity": 2,
                         "stored_pattern_size": 6, "pattern_projection_size": 6}, "pool"),
    ("HopfieldLayer", {"input_size": 8, "num_heads": 2, "quantity": 3,
                       "stored_pattern_size": 6, "pattern_projection_size": 5,
                       "lookup_weights_as_separated": True}, "layer"),
    ("HopfieldLayer", {"input_size": 8, "num_heads": 2, "quantity": 3,
                       "stored_pattern_size": 6, "pattern_projection_size": 6}, "layer"),
    # pattern_projection_as_connected → HeadSpace(connected=True), the same weights
    ("Hopfield", {"input_size": 8, "num_heads": 2, "pattern_projection_as_connected": True,
                  "scaling": 0.5, "update_steps_max": 2, "update_steps_eps": 1e-12,
                  "input_bias": False}, "self"),
    ("Hopfield", {"input_size": 8, "hidden_size": 8, "num_heads": 2,
                  "state_pattern_as_static": True, "pattern_projection_as_connected": True},
     "self"),
    ("HopfieldPooling", {"input_size": 8, "num_heads": 2, "quantity": 3,
                         "pattern_projection_as_connected": True,
                         "scaling": torch.tensor([0.5, 1.5])}, "pool"),
    ("HopfieldLayer", {"input_size": 8, "num_heads": 2, "quantity": 5,
                       "lookup_weights_as_separated": True,
                       "pattern_projection_as_connected": True}, "layer"),
]
CLASSES = {"Hopfield": Hopfield, "HopfieldPooling": HopfieldPooling,
           "HopfieldLayer": HopfieldLayer}


def _inputs(kind, kw, how, gen, dtype):
    _a, D, _H, _Dh, _E, Dk, Dv, _O = _dims(kw)
    B, L, N = 3, 4, 5
    r = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64)
    if how == "self":
        return r(B, N, D)
    if how == "tuple":
        return (r(B, N, Dk), r(B, L, D), r(B, N, Dv))
    if how == "pool":
        return r(B, N, Dk)
    return r(B, N, D)


def _run(layer, x, batch_first):
    if batch_first:
        return layer(x)
    t = (lambda u: u.transpose(0, 1))
    if isinstance(x, tuple):
        return layer(tuple(t(u) for u in x)).transpose(0, 1)
    out = layer(t(x))
    return out if isinstance(layer, HopfieldPooling) else out.transpose(0, 1)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("kind,kw,how", CASES)
def test_converted_layer_equals_hflayers_reference(kind, kw, how, dtype):
    gen = torch.Generator().manual_seed(0)
    sd = make_sd(kind, kw, gen)
    x = _inputs(kind, kw, how, gen, dtype)
    ref = hf_reference(kind, sd, kw, x)
    hk, new = convert_state_dict(sd, kw)
    layer = CLASSES[kind](**hk).to(dtype)
    layer.load_state_dict(new)
    xin = tuple(u.to(dtype) for u in x) if isinstance(x, tuple) else x.to(dtype)
    with torch.no_grad():
        out = _run(layer, xin, hk["batch_first"])
    assert out.shape == ref.shape
    assert (out.double() - ref).abs().max() <= 1e-5


def test_concat_bias_pattern_is_dropped_with_a_warning():
    kw = {"input_size": 8, "num_heads": 2, "concat_bias_pattern": True}
    sd = make_sd("Hopfield", kw, torch.Generator().manual_seed(1))
    with pytest.warns(UserWarning, match="never concatenates"):
        hk, new = convert_state_dict(sd, kw)
    layer = Hopfield(**hk).double()
    layer.load_state_dict(new)
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    ref = hf_reference("Hopfield", sd, kw, x)
    assert (layer(x) - ref).abs().max() <= 1e-10


def test_until_converged_converts_with_a_warning():
    kw = {"input_size": 8, "num_heads": 2, "scaling": 0.3, "update_steps_max": None,
          "update_steps_eps": 1e-9}
    sd = make_sd("Hopfield", kw, torch.Generator().manual_seed(4))
    with pytest.warns(UserWarning, match="agree only to about that tolerance"):
        hk, new = convert_state_dict(sd, kw)
    assert hk["max_steps"] is None and hk["tol"] == 1e-9
    layer = Hopfield(**hk).double()
    layer.load_state_dict(new)
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    ref = hf_reference("Hopfield", sd, {**kw, "update_steps_max": 200}, x)
    assert (layer(x) - ref).abs().max() <= 1e-5
    kw["update_steps_max"] = torch.tensor([-1, 2])
    with pytest.warns(UserWarning):
        hk, _ = convert_state_dict(sd, kw)
    assert hk["max_steps"][1] == 2 and hk["max_steps"][0] >= 1000


def test_trainable_flags_carry_over():
    kw = {"input_size": 8, "quantity": 2, "trainable": False}
    hk, new = convert_state_dict(make_sd("HopfieldPooling", kw, torch.Generator()), kw)
    pool = HopfieldPooling(**hk)
    pool.load_state_dict(new)
    assert not pool.query.requires_grad
    kw = {"input_size": 8, "quantity": 2, "lookup_weights_as_separated": True,
          "lookup_targets_as_trainable": False}
    hk, new = convert_state_dict(make_sd("HopfieldLayer", kw, torch.Generator()), kw)
    look = HopfieldLayer(**hk)
    assert look.patterns.requires_grad and not look.targets.requires_grad


def test_beta_is_kept_as_beta():
    kw = {"input_size": 8, "num_heads": 2, "scaling": 0.25}
    hk, new = convert_state_dict(make_sd("Hopfield", kw, torch.Generator().manual_seed(2)), kw)
    assert hk["beta"] == 0.25
    assert torch.equal(new["fixed_beta"], torch.full((2,), 0.25))
    kw = {"input_size": 8, "num_heads": 2}
    hk, _ = convert_state_dict(make_sd("Hopfield", kw, torch.Generator().manual_seed(2)), kw)
    assert hk["beta"] == pytest.approx(0.5)


def _sd(kind="Hopfield", **kw):
    kw = {"input_size": 8, "num_heads": 2, **kw}
    return make_sd(kind, kw, torch.Generator().manual_seed(3)), kw


@pytest.mark.parametrize("edit,match", [
    (lambda sd, kw: sd.pop("association_core.in_proj_bias"), "missing key 'association_core.in_proj_bias'"),
    (lambda sd, kw: sd.__setitem__("association_core.extra", torch.zeros(1)), "unexpected key"),
    (lambda sd, kw: sd.__setitem__("association_core.in_proj_weight", torch.zeros(24, 7)),
     r"in_proj_weight'\] must have shape \(24, 8\)"),
    (lambda sd, kw: kw.__setitem__("input_size", 10), "in_proj_weight"),
    (lambda sd, kw: kw.update(stored_pattern_as_static=True, pattern_projection_as_static=True),
     "splits their features across the heads"),
    (lambda sd, kw: kw.__setitem__("stored_pattern_as_static", True), r"stored_pattern_size == hidden_size \(4\)"),
    (lambda sd, kw: kw.update(normalize_hopfield_space=True, scaling=torch.tensor([0.5, 1.0])),
     "normalize_hopfield_space=True"),
    (lambda sd, kw: kw.__setitem__("normalize_hopfield_space_affine", True), "needs normalize_hopfield_space"),
    (lambda sd, kw: kw.__setitem__("disable_out_projection", True), "unexpected key"),
    (lambda sd, kw: kw.__setitem__("association_activation", "no_such_fn"), "association_activation"),
    (lambda sd, kw: kw.__setitem__("update_steps_max", torch.tensor([1, 2, 3])), r"update_steps_max must be .* shape \(2,\)"),
    (lambda sd, kw: kw.__setitem__("update_steps_eps", torch.tensor([1e-3])), r"update_steps_eps must be .* shape \(2,\)"),
    (lambda sd, kw: kw.update(scaling=torch.tensor([0.5, 1.0]), update_steps_max=None), "per-feature"),
    (lambda sd, kw: kw.update(scaling=torch.tensor([0.5, 1.0]), update_steps_max=1), "per-feature"),
    (lambda sd, kw: kw.__setitem__("scaling", torch.tensor([0.5, 1.0, 2.0])), r"scaling must be .* shape \(2,\)"),
    (lambda sd, kw: kw.__setitem__("pattern_size", 3), "missing key 'association_core.q_proj_weight'"),
    (lambda sd, kw: kw.__setitem__("input_size", None), "must give input_size"),
])
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_bad_input_is_a_clear_error(edit, match):
    sd, kw = _sd()
    edit(sd, kw)
    with pytest.raises(ValueError, match=match):
        convert_state_dict(sd, kw)


def test_bad_types():
    sd, kw = _sd()
    with pytest.raises(TypeError, match="'scalling' is not an argument of hflayers.Hopfield"):
        convert_state_dict(sd, {**kw, "scalling": 1.0})
    with pytest.raises(TypeError, match="hflayers_kwargs must be a dict"):
        convert_state_dict(sd, [1])
    with pytest.raises(TypeError, match="hflayers_state_dict must be a mapping"):
        convert_state_dict([1], kw)
    sd["association_core.in_proj_bias"] = torch.zeros(24, dtype=torch.long)
    with pytest.raises(TypeError, match="in_proj_bias'\\] must be floating point"):
        convert_state_dict(sd, kw)
    with pytest.raises(TypeError, match="must be an hflayers"):
        from_hflayers(Hopfield(8))
    sd, kw = _sd("HopfieldPooling", quantity=2)
    with pytest.raises(TypeError, match="not an argument of hflayers.HopfieldPooling"):
        convert_state_dict(sd, {**kw, "normalize_state_pattern_eps": 1e-5})
    sd, kw = _sd("HopfieldLayer", quantity=2)
    with pytest.raises(ValueError, match="cannot run in hflayers itself .* give "
                                         "pattern_projection_size"):
        convert_state_dict(sd, {**kw, "stored_pattern_size": 6})


# ----------------------------------------------------------------------------- from_hflayers
# Stand-ins with hflayers' attribute and parameter layout (class names and module as in hflayers).


class _Core(torch.nn.Module):
    def __init__(self, D, H, with_bias):
        super().__init__()
        self.embed_dim, self.num_heads, self.head_dim = D, H, D // H
        self.out_dim, self.pattern_dim, self.kdim, self.vdim = D, D // H, D, D
        self.normalize_pattern = self.normalize_pattern_affine = False
        self.key_as_static = self.query_as_static = self.value_as_static = False
        self.value_as_connected = self.add_zero_attn = self.disable_out_projection = False
        self._qkv_same_embed_dim, self.dropout = True, 0.0
        self.in_proj_weight = torch.nn.Parameter(torch.empty(3 * D, D))
        self.in_proj_bias = torch.nn.Parameter(torch.empty(3 * D)) if with_bias else None
        self.out_proj = torch.nn.Linear(D, D, bias=with_bias)
        self.bias_k = self.bias_v = None


def _fake(name, **attrs):
    return type(name, (torch.nn.Module,), {"__module__": "hflayers", **attrs})


def _hopfield(D, H, scaling, with_bias=True):
    m = _fake("Hopfield")()
    m.association_core = _Core(D, H, with_bias)
    m.association_activation = None
    m.scaling, m.update_steps_max, m.update_steps_eps, m.batch_first = scaling, 0, 1e-4, True
    m.norm_stored_pattern = torch.nn.LayerNorm(D)
    m.norm_state_pattern = torch.nn.LayerNorm(D, elementwise_affine=False)
    m.norm_pattern_projection = None
    return m


def test_from_hflayers_on_stand_ins():
    gen = torch.Generator().manual_seed(5)
    D, H = 8, 2
    hop = _hopfield(D, H, torch.tensor([0.4, 1.2]))
    kw = {"input_size": D, "num_heads": H, "scaling": torch.tensor([0.4, 1.2]),
          "normalize_state_pattern_affine": False, "normalize_pattern_projection": False,
          "normalize_pattern_projection_affine": False}
    sd = make_sd("Hopfield", kw, gen)
    hop.load_state_dict(sd)
    layer = from_hflayers(hop.double())
    x = torch.randn(2, 5, D, dtype=torch.float64)
    assert layer.q_proj.weight.dtype == torch.float64
    assert (layer(x) - hf_reference("Hopfield", sd, kw, x)).abs().max() <= 1e-10

    pool = _fake("HopfieldPooling")()
    pool.hopfield = _hopfield(D, H, 0.5)
    pool.quantity = 3
    pool.pooling_weights = torch.nn.Parameter(torch.empty(1, 3, D), requires_grad=False)
    kw = {"input_size": D, "num_heads": H, "scaling": 0.5, "quantity": 3,
          "normalize_state_pattern_affine": False, "normalize_pattern_projection": False,
          "normalize_pattern_projection_affine": False}
    sd = make_sd("HopfieldPooling", kw, gen)
    pool.load_state_dict(sd)
    converted = from_hflayers(pool)
    assert not converted.query.requires_grad
    x = torch.randn(2, 5, D)
    assert (converted(x).double() - hf_reference("HopfieldPooling", sd, kw, x.double())
            ).abs().max() <= 1e-5

    look = _fake("HopfieldLayer")()
    look.hopfield = _hopfield(D, H, None)
    look.quantity = 4
    look.lookup_weights = torch.nn.Parameter(torch.empty(1, 4, D))
    look.target_weights = torch.nn.Parameter(torch.empty(1, 4, D), requires_grad=False)
    kw = {"input_size": D, "num_heads": H, "quantity": 4, "lookup_weights_as_separated": True,
          "normalize_state_pattern_affine": False, "normalize_pattern_projection": False,
          "normalize_pattern_projection_affine": False}
    sd = make_sd("HopfieldLayer", kw, gen)
    look.load_state_dict(sd)
    converted = from_hflayers(look.eval())
    assert converted.patterns.requires_grad and not converted.targets.requires_grad
    assert not converted.training
    assert (converted(x).double() - hf_reference("HopfieldLayer", sd, kw, x.double())
            ).abs().max() <= 1e-5


def test_connected_uses_the_switch_with_hflayers_own_weights():
    kw = {"input_size": 8, "num_heads": 2, "stored_pattern_size": 6,
          "pattern_projection_size": 6, "pattern_projection_as_connected": True}
    sd = make_sd("Hopfield", kw, torch.Generator().manual_seed(7))
    hk, new = convert_state_dict(sd, kw)
    assert hk["head_space"].connected
    c = "association_core."
    assert torch.equal(new["v_proj.weight"], sd[c + "v_proj_weight"])  # W_v itself, not folded
    assert torch.equal(new["k_proj.weight"], sd[c + "k_proj_weight"])
    assert torch.equal(new["v_proj.bias"], sd[c + "in_proj_bias"][16:])
    with pytest.raises(ValueError, match="silently skips the connection"):
        convert_state_dict(make_sd("Hopfield", {**kw, "stored_pattern_size": 4,
                                                "pattern_projection_size": 4,
                                                "stored_pattern_as_static": True},
                                   torch.Generator().manual_seed(7)),
                           {**kw, "stored_pattern_size": 4, "pattern_projection_size": 4,
                            "stored_pattern_as_static": True})


def _block_stand_in(kind, hops, D, F_, gen):
    """hflayers' HopfieldEncoderLayer / HopfieldDecoderLayer layout around stand-in Hopfields."""
    m = _fake(kind)()
    names = (["hopfield_association"] if kind == "HopfieldEncoderLayer"
             else ["hopfield_association_self", "hopfield_association_cross"])
    for n, h in zip(names, hops):
        setattr(m, n, h)
    m.linear_residual, m.linear_output = torch.nn.Linear(D, F_), torch.nn.Linear(F_, D)
    norms = (["norm_residual", "norm_output"] if kind == "HopfieldEncoderLayer"
             else ["norm_residual_self", "norm_residual_cross", "norm_output"])
    for n in norms:
        ln = torch.nn.LayerNorm(D)
        with torch.no_grad():
            ln.weight.copy_(1 + 0.3 * torch.randn(D, generator=gen))
            ln.bias.copy_(0.3 * torch.randn(D, generator=gen))
        setattr(m, n, ln)
    drops = (["dropout_hopfield_association", "dropout_output"] if kind == "HopfieldEncoderLayer"
             else ["dropout_hopfield_association_self", "dropout_hopfield_association_cross",
                   "dropout_output"])
    for n in drops + ["dropout_residual"]:
        setattr(m, n, torch.nn.Dropout(0.1))
    m.activation_residual = torch.tanh
    return m, norms


@pytest.mark.parametrize("kind", ["HopfieldEncoderLayer", "HopfieldDecoderLayer"])
def test_from_hflayers_blocks_on_stand_ins(kind):
    gen = torch.Generator().manual_seed(9)
    D, H, F_ = 8, 2, 12
    kw = {"input_size": D, "num_heads": H, "scaling": 0.6,
          "normalize_state_pattern_affine": False, "normalize_pattern_projection": False,
          "normalize_pattern_projection_affine": False}
    n_attn = 1 if kind == "HopfieldEncoderLayer" else 2
    hops, sds = [], []
    for _ in range(n_attn):
        hop = _hopfield(D, H, 0.6)
        sd = make_sd("Hopfield", kw, gen)
        hop.load_state_dict(sd)
        hops.append(hop)
        sds.append(sd)
    block, norms = _block_stand_in(kind, hops, D, F_, gen)
    block = block.double().eval()
    new = from_hflayers(block)
    assert type(new).__name__ == kind and not new.training and new.dropout.p == 0.1
    x = torch.randn(3, 5, D, dtype=torch.float64)
    mem = torch.randn(3, 4, D, dtype=torch.float64)
    d = {n: getattr(block, n) for n in norms}
    ff = lambda t: block.linear_output(torch.tanh(block.linear_residual(t)))
    with torch.no_grad():  # hflayers' post-norm forward, associations by the float64 reference
        t = d[norms[0]](x + hf_reference("Hopfield", sds[0], kw, x))
        if kind == "HopfieldDecoderLayer":
            t = d[norms[1]](t + hf_reference("Hopfield", sds[1], kw, (mem, t, mem)))
        ref = d[norms[-1]](t + ff(t))
        out = new(x) if kind == "HopfieldEncoderLayer" else new(x, mem)
    assert (out - ref).abs().max() <= 1e-10
    bad, _ = _block_stand_in(kind, [_hopfield(D, H, 0.6) for _ in range(n_attn)], D, F_, gen)
    bad.activation_residual = None
    with pytest.raises(TypeError, match="activation_residual must be a torch function"):
        from_hflayers(bad)


def test_block_checkpoint_recipe_equals_from_hflayers():
    """docs/hflayers.md 'A block from a checkpoint' equals from_hflayers on the module."""
    from hopfield.nn import HopfieldEncoderLayer

    gen = torch.Generator().manual_seed(11)
    D, H, F_ = 8, 2, 12
    kw = {"input_size": D, "num_heads": H, "normalize_state_pattern_affine": False,
          "normalize_pattern_projection": False, "normalize_pattern_projection_affine": False}
    hop = _hopfield(D, H, None)
    hop.load_state_dict(make_sd("Hopfield", kw, gen))
    block, _ = _block_stand_in("HopfieldEncoderLayer", [hop], D, F_, gen)
    block.activation_residual = torch.relu
    block.eval()
    ckpt = block.state_dict()
    with pytest.raises(ValueError, match="HopfieldEncoderLayer/DecoderLayer checkpoint"):
        convert_state_dict(ckpt, kw)
    prefix = "hopfield_association."
    kwargs, attn_sd = convert_state_dict(
        {k[len(prefix):]: v for k, v in ckpt.items() if k.startswith(prefix)}, kw)
    new = HopfieldEncoderLayer(D, H, dim_feedforward=F_, activation=torch.relu,
                               batch_first=True)
    new.self_attn = Hopfield(**kwargs)
    renames = {"linear_residual": "linear1", "linear_output": "linear2",
               "norm_residual": "norm1", "norm_output": "norm2"}
    new.load_state_dict({**{f"self_attn.{k}": v for k, v in attn_sd.items()},
                         **{renames[k.split(".")[0]] + "." + k.split(".", 1)[1]: v
                            for k, v in ckpt.items() if not k.startswith(prefix)}})
    x = torch.randn(3, 5, D)
    with torch.no_grad():
        assert (new.eval()(x) - from_hflayers(block)(x)).abs().max() <= 1e-6
