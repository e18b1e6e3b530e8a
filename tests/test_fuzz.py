"""Fuzz table: every public entry point against one shared table of bad and extreme inputs.

For each (entry point, argument, bad value) the call must end in exactly one of two ways:

* a ``ValueError`` / ``TypeError`` whose message names the argument (or, for a value inside an
  array, says what is wrong with it), and — for calls that write files — every file as it was;
* a result that is finite everywhere and, where a float64 reference exists, equal to it.

Never NaN or inf, never another exception type (``RuntimeError``, ``OverflowError``,
``ZeroDivisionError``, ``IndexError`` …), never a crash of the interpreter.

The tables below are the whole test: add a row to ``BAD_TENSORS`` / ``BAD_BETAS`` and every entry
point is tried with it. The number of generated cases is printed by ``test_case_count``.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import hopfield.functional as HF
from hopfield import (
    ClassicalHopfield,
    DenseAssociativeMemory,
    Hopfield,
    HopfieldLayer,
    HopfieldPooling,
    ModernHopfield,
    PatternStore,
)
from hopfield.losses import cloob, info_loob, info_nce
from hopfield.ood import HopfieldOODDetector, hopfield_boosting_loss

D = 8  # pattern dimension used throughout


# --------------------------------------------------------------------------------------------
# The shared table of bad inputs. Each entry maps a valid float tensor to a bad variant.
# --------------------------------------------------------------------------------------------
def _with(x: torch.Tensor, value: float) -> torch.Tensor:
    x = x.clone()
    x.view(-1)[0] = value
    return x


BAD_TENSORS: dict[str, Callable[[torch.Tensor], Any]] = {
    "nan": lambda x: _with(x, float("nan")),
    "inf": lambda x: _with(x, float("inf")),
    "-inf": lambda x: _with(x, float("-inf")),
    "f64_over_f32": lambda x: _with(x.double(), 1e39),   # finite in float64, inf in float32
    "f64_huge": lambda x: _with(x.double(), 1e200),
    "huge_norm": lambda x: x * 1e19,                      # float32-representable, overflows dots
    "empty_rows": lambda x: x[..., :0, :],
    "zero_dim": lambda x: x[..., :0],
    "wrong_dim": lambda x: torch.cat([x, x[..., :1]], dim=-1),
    "one_d": lambda x: x.reshape(-1)[:D],
    "scalar": lambda x: x.reshape(-1)[0],
    "complex": lambda x: x.to(torch.complex64),
    "int": lambda x: x.round().to(torch.int64),
    "bool": lambda x: x > 0,
    "string": lambda x: "patterns",
    "none": lambda x: None,
    "object_array": lambda x: np.array([object()] * x.shape[-1], dtype=object),
    "float16": lambda x: x.half() * 300,                  # large norms in half precision
}

BAD_BETAS: dict[str, Any] = {
    "zero": 0.0,
    "negative": -1.0,
    "nan": float("nan"),
    "inf": float("inf"),
    "tiny": 1e-40,           # positive, underflows float32
    "huge": 1e30,
    "string": "one",
    "none": None,
    "bool": True,
    "tensor_nan": torch.tensor(float("nan")),
    "tensor_neg": torch.tensor([-1.0, 1.0]),
    "np_0d": np.array(0.5),
    "np_scalar": np.float32(0.5),
}

ALLOWED = (ValueError, TypeError)


# --------------------------------------------------------------------------------------------
# Checks shared by all cases
# --------------------------------------------------------------------------------------------
def _finite(obj: Any) -> bool:
    if obj is None or isinstance(obj, (str, bool, int)):
        return True
    if isinstance(obj, float):
        return math.isfinite(obj)
    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point() or obj.is_complex():
            return bool(torch.isfinite(obj.detach()).all())
        return True
    if isinstance(obj, np.ndarray):
        if np.issubdtype(obj.dtype, np.inexact):
            return bool(np.isfinite(obj).all())
        return True
    if isinstance(obj, (tuple, list)):
        return all(_finite(o) for o in obj)
    if hasattr(obj, "__dataclass_fields__"):
        return all(_finite(getattr(obj, f)) for f in obj.__dataclass_fields__)
    if isinstance(obj, torch.nn.Module) or hasattr(obj, "__dict__"):
        return True  # fluent APIs return the object itself
    return True


def _snapshot(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
        elif p.is_dir():
            out[str(p.relative_to(root)) + "/"] = "dir"
    return out


def run_case(call: Callable[[], Any], *, names: tuple[str, ...] = (),
             reference: Callable[[], Any] | None = None, atol: float = 1e-4,
             files: Path | None = None) -> str:
    """Run one case; return "error" or "finite". Fails the test on any other outcome."""
    before = _snapshot(files) if files is not None else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = call()
    except ALLOWED as err:
        msg = str(err)
        assert msg.strip(), f"{type(err).__name__} without a message"
        if names:
            assert any(n in msg for n in names) or any(
                w in msg.lower() for w in ("finite", "nan", "inf", "overflow", "empty", "dtype",
                                           "shape", "dimension", "float", "range")
            ), f"error does not name {names} or the problem: {msg!r}"
        if files is not None:
            assert _snapshot(files) == before, "a failed call changed files"
        return "error"
    except Exception as err:  # noqa: BLE001 - the point of the test
        pytest.fail(f"raised {type(err).__name__} (expected ValueError/TypeError or a finite "
                    f"result): {err}")
    assert _finite(result), f"non-finite result returned silently: {result!r}"[:500]
    if reference is not None:
        ref = reference()
        got = result[0] if isinstance(result, tuple) else result
        got = torch.as_tensor(np.asarray(got.detach() if isinstance(got, torch.Tensor) else got))
        ref = torch.as_tensor(np.asarray(ref))
        assert got.shape == ref.shape, f"shape {tuple(got.shape)} vs reference {tuple(ref.shape)}"
        if got.numel():
            scale = max(1.0, float(ref.abs().max()))
            err = float((got.double() - ref.double()).abs().max()) / scale
            assert err <= atol, f"differs from the float64 reference by {err:.3g} (relative)"
    return "finite"


# --------------------------------------------------------------------------------------------
# float64 references (plain math, independent of the library)
# --------------------------------------------------------------------------------------------
def ref_update(state, patterns, beta):
    s = torch.as_tensor(np.asarray(state, dtype=np.float64))
    p = torch.as_tensor(np.asarray(patterns, dtype=np.float64))
    w = torch.softmax(float(beta) * s @ p.mT, dim=-1)
    return (w @ p).numpy()


def ref_energy(state, patterns, beta):
    """E = -lme + ½ξᵀξ + ½M², lme = β⁻¹ log mean_i exp(β x_iᵀξ) (stable as β → 0 via expm1)."""
    s = torch.as_tensor(np.asarray(state, dtype=np.float64))
    p = torch.as_tensor(np.asarray(patterns, dtype=np.float64))
    b = float(beta)
    S = s @ p.mT
    m = S.max(dim=-1, keepdim=True).values
    lme = m[..., 0] + torch.log1p(torch.expm1(b * (S - m)).mean(-1)) / b
    big_m = p.norm(dim=-1).max(dim=-1).values
    return (-lme + 0.5 * (s * s).sum(-1) + 0.5 * big_m[..., None] ** 2).numpy()


def ref_margin(patterns):
    p = torch.as_tensor(np.asarray(patterns, dtype=np.float64))
    g = p @ p.mT
    eye = torch.eye(g.shape[-1], dtype=torch.bool)
    return (g.diagonal(dim1=-2, dim2=-1) - g.masked_fill(eye, -math.inf).max(-1).values).numpy()


def _margin_fn():
    return getattr(HF, "separation_margin", None) or HF.separation


# --------------------------------------------------------------------------------------------
# Entry points with tensor arguments
# --------------------------------------------------------------------------------------------
@dataclass
class Entry:
    name: str
    call: Callable[..., Any]        # call(**kwargs)
    valid: Callable[[], dict]       # fresh valid kwargs
    tensor_args: tuple[str, ...]
    reference: Callable[..., Any] | None = None  # reference(**kwargs) when the call returns


def _gen(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


ENTRIES = [
    Entry("functional.update", lambda **k: HF.update(**k),
          lambda: {"state": _gen(2, 3, D), "patterns": _gen(2, 5, D, seed=1), "beta": 0.5},
          ("state", "patterns"), lambda **k: ref_update(k["state"], k["patterns"], k["beta"])),
    Entry("functional.retrieve", lambda **k: HF.retrieve(**k, max_steps=3),
          lambda: {"state": _gen(2, 3, D), "patterns": _gen(2, 5, D, seed=1), "beta": 0.5},
          ("state", "patterns")),
    Entry("functional.energy", lambda **k: HF.energy(**k),
          lambda: {"state": _gen(2, 3, D), "patterns": _gen(2, 5, D, seed=1), "beta": 0.5},
          ("state", "patterns"), lambda **k: ref_energy(k["state"], k["patterns"], k["beta"])),
    Entry("functional.associate", lambda **k: HF.associate(**k)[0],
          lambda: {"query": _gen(2, 3, D), "keys": _gen(2, 5, D, seed=1),
                   "values": _gen(2, 5, D, seed=2), "beta": 0.5},
          ("query", "keys", "values")),
    Entry("functional.separation_margin", lambda **k: _margin_fn()(**k),
          lambda: {"patterns": _gen(2, 5, D, seed=1)}, ("patterns",),
          lambda **k: ref_margin(k["patterns"])),
    Entry("ModernHopfield.store", lambda patterns: ModernHopfield(beta=0.5).store(patterns),
          lambda: {"patterns": _gen(5, D).numpy()}, ("patterns",)),
    Entry("ModernHopfield.retrieve",
          lambda queries: ModernHopfield(beta=0.5).store(_gen(5, D, seed=1).numpy()).retrieve(
              queries),
          lambda: {"queries": _gen(3, D).numpy()}, ("queries",)),
    Entry("ModernHopfield.energy",
          lambda states: ModernHopfield(beta=0.5).store(_gen(5, D, seed=1).numpy()).energy(
              states),
          lambda: {"states": _gen(3, D).numpy()}, ("states",)),
    Entry("ModernHopfield.retrieve_topk",
          lambda queries: ModernHopfield(beta=0.5).store(_gen(5, D, seed=1).numpy())
          .retrieve_topk(queries, k=2),
          lambda: {"queries": _gen(3, D).numpy()}, ("queries",)),
    Entry("DenseAssociativeMemory.retrieve",
          lambda queries: DenseAssociativeMemory("polynomial", degree=3).store(
              np.sign(_gen(4, D, seed=1).numpy()) + (np.sign(_gen(4, D, seed=1).numpy()) == 0)
          ).retrieve(queries),
          lambda: {"queries": np.sign(_gen(3, D).numpy())}, ("queries",)),
    Entry("ClassicalHopfield.retrieve",
          lambda queries: ClassicalHopfield("storkey", random_state=0).store(
              np.where(_gen(2, D, seed=1).numpy() > 0, 1, -1)).retrieve(queries),
          lambda: {"queries": np.where(_gen(3, D).numpy() > 0, 1.0, -1.0)}, ("queries",)),
    Entry("Hopfield.forward",
          lambda x: Hopfield(D, num_heads=2)(x),
          lambda: {"x": _gen(2, 4, D)}, ("x", "input", "state")),
    Entry("Hopfield.forward(return_info)",
          lambda x: Hopfield(D, num_heads=2)(x, return_info=True)[0],
          lambda: {"x": _gen(2, 4, D)}, ("x", "input", "state")),
    Entry("HopfieldPooling.forward",
          lambda x: HopfieldPooling(D, num_heads=2)(x),
          lambda: {"x": _gen(2, 4, D)}, ("x", "input", "stored")),
    Entry("HopfieldLayer.forward",
          lambda x: HopfieldLayer(D, num_heads=2, quantity=3)(x),
          lambda: {"x": _gen(2, 4, D)}, ("x", "input", "state")),
    Entry("losses.info_nce", lambda **k: info_nce(**k),
          lambda: {"x": _gen(6, D), "y": _gen(6, D, seed=1)}, ("x", "y")),
    Entry("losses.info_loob", lambda **k: info_loob(**k),
          lambda: {"x": _gen(6, D), "y": _gen(6, D, seed=1)}, ("x", "y")),
    Entry("losses.cloob", lambda **k: cloob(**k),
          lambda: {"x": _gen(6, D), "y": _gen(6, D, seed=1)}, ("x", "y")),
    Entry("ood.hopfield_boosting_loss", lambda **k: hopfield_boosting_loss(**k),
          lambda: {"in_embeddings": _gen(6, D), "aux_embeddings": _gen(4, D, seed=1)},
          ("in_embeddings", "aux_embeddings")),
    Entry("HopfieldOODDetector.fit", lambda X: HopfieldOODDetector(beta=1.0).fit(X),
          lambda: {"X": _gen(20, D).numpy()}, ("X",)),
    Entry("HopfieldOODDetector.score_samples",
          lambda X: HopfieldOODDetector(beta=1.0).fit(_gen(20, D, seed=1).numpy()).score_samples(X),
          lambda: {"X": _gen(5, D).numpy()}, ("X",)),
]


def _is_numpy_entry(entry: Entry) -> bool:
    return entry.name.split(".")[0] in {"ModernHopfield", "DenseAssociativeMemory",
                                        "ClassicalHopfield", "HopfieldOODDetector"}


TENSOR_CASES = [
    pytest.param(entry, arg, bad, id=f"{entry.name}-{arg}-{bad}")
    for entry in ENTRIES for arg in entry.tensor_args[:3]
    if arg in entry.valid() for bad in BAD_TENSORS
]


@pytest.mark.parametrize("entry, arg, bad", TENSOR_CASES)
def test_bad_tensor(entry: Entry, arg: str, bad: str) -> None:
    torch.manual_seed(0)
    kwargs = entry.valid()
    value = kwargs[arg]
    as_tensor = torch.as_tensor(value) if isinstance(value, np.ndarray) else value
    bad_value = BAD_TENSORS[bad](as_tensor.float())
    if _is_numpy_entry(entry) and isinstance(bad_value, torch.Tensor):
        bad_value = bad_value.numpy()
    kwargs[arg] = bad_value
    reference = None
    if entry.reference is not None and isinstance(bad_value, (torch.Tensor, np.ndarray)):
        reference = lambda: entry.reference(**kwargs)
    with torch.no_grad():
        run_case(lambda: entry.call(**kwargs), names=(arg, *entry.tensor_args), reference=reference,
                 atol=1e-3)


BETA_ENTRIES = [
    ("functional.update", lambda b: HF.update(_gen(2, 3, D), _gen(2, 5, D, seed=1), b),
     lambda b: ref_update(_gen(2, 3, D), _gen(2, 5, D, seed=1), b)),
    ("functional.energy", lambda b: HF.energy(_gen(2, 3, D), _gen(2, 5, D, seed=1), b),
     lambda b: ref_energy(_gen(2, 3, D), _gen(2, 5, D, seed=1), b)),
    ("functional.retrieve", lambda b: HF.retrieve(_gen(2, 3, D), _gen(2, 5, D, seed=1), b,
                                                  max_steps=3), None),
    ("ModernHopfield", lambda b: ModernHopfield(beta=b).store(_gen(5, D, seed=1).numpy())
     .retrieve(_gen(3, D).numpy()), None),
    ("ModernHopfield.energy", lambda b: ModernHopfield(beta=b).store(_gen(5, D, seed=1).numpy())
     .energy(_gen(3, D).numpy()), None),
    ("Hopfield", lambda b: Hopfield(D, num_heads=2, beta=b)(_gen(2, 4, D)), None),
    ("losses.cloob", lambda b: cloob(_gen(6, D), _gen(6, D, seed=1), beta=b), None),
    ("losses.info_nce(inverse_temperature)",
     lambda b: info_nce(_gen(6, D), _gen(6, D, seed=1), inverse_temperature=b), None),
    ("ood.hopfield_boosting_loss",
     lambda b: hopfield_boosting_loss(_gen(6, D), _gen(4, D, seed=1), beta=b), None),
    ("HopfieldOODDetector", lambda b: HopfieldOODDetector(beta=b).fit(_gen(20, D).numpy())
     .score_samples(_gen(5, D, seed=1).numpy()), None),
    ("HopfieldPooling", lambda b: HopfieldPooling(D, num_heads=2, beta=b)(_gen(2, 4, D)), None),
]


@pytest.mark.parametrize("bad", list(BAD_BETAS))
@pytest.mark.parametrize("name, call, reference", BETA_ENTRIES, ids=[e[0] for e in BETA_ENTRIES])
def test_bad_beta(name: str, call, reference, bad: str) -> None:
    beta = BAD_BETAS[bad]
    ref = None
    if reference is not None and isinstance(beta, (float, np.floating, np.ndarray)) \
            and not isinstance(beta, bool) and np.ndim(beta) == 0 and math.isfinite(float(beta)) \
            and float(beta) > 0:
        ref = lambda: reference(float(beta))
    with torch.no_grad():
        run_case(lambda: call(beta), names=("beta", "inverse_temperature"), reference=ref,
                 atol=1e-3)


# --------------------------------------------------------------------------------------------
# Masks, empty batches, degenerate sizes
# --------------------------------------------------------------------------------------------
BAD_MASKS: dict[str, Callable[[int, int, int], Any]] = {
    "float": lambda B, L, N: torch.zeros(B, N),
    "wrong_N": lambda B, L, N: torch.zeros(B, N + 1, dtype=torch.bool),
    "wrong_B": lambda B, L, N: torch.zeros(B + 1, N, dtype=torch.bool),
    "all_masked": lambda B, L, N: torch.ones(B, N, dtype=torch.bool),
    "row_all_masked": lambda B, L, N: torch.zeros(B, L, N, dtype=torch.bool).index_fill_(
        1, torch.tensor([0]), True),
    "list": lambda B, L, N: [[False] * N] * B,
    "numpy": lambda B, L, N: np.zeros((B, N), dtype=bool),
}

MASK_ENTRIES = [
    ("functional.update", lambda m: HF.update(_gen(2, 3, D), _gen(2, 5, D, seed=1), 0.5, mask=m)),
    ("functional.energy", lambda m: HF.energy(_gen(2, 3, D), _gen(2, 5, D, seed=1), 0.5, mask=m)),
    ("functional.retrieve", lambda m: HF.retrieve(_gen(2, 3, D), _gen(2, 5, D, seed=1), 0.5,
                                                  max_steps=2, mask=m)),
    ("Hopfield", lambda m: Hopfield(D, num_heads=2)(
        (_gen(2, 5, D, seed=1), _gen(2, 3, D), _gen(2, 5, D, seed=1)), mask=m)),
    ("Hopfield(return_info)", lambda m: Hopfield(D, num_heads=2)(
        (_gen(2, 5, D, seed=1), _gen(2, 3, D), _gen(2, 5, D, seed=1)), mask=m,
        return_info=True)[0]),
    ("HopfieldPooling", lambda m: HopfieldPooling(D, num_heads=2)(_gen(2, 5, D), mask=m)),
]


@pytest.mark.parametrize("bad", list(BAD_MASKS))
@pytest.mark.parametrize("name, call", MASK_ENTRIES, ids=[e[0] for e in MASK_ENTRIES])
def test_bad_mask(name: str, call, bad: str) -> None:
    mask = BAD_MASKS[bad](2, 3, 5)
    with torch.no_grad():
        run_case(lambda: call(mask), names=("mask",))


@pytest.mark.parametrize("layer", ["Hopfield", "HopfieldPooling", "HopfieldLayer"])
@pytest.mark.parametrize("return_info", [False, True])
@pytest.mark.parametrize("shape", [(0, 4, D), (2, 0, D)], ids=["B=0", "L=0"])
def test_empty_batches_in_layers(layer: str, return_info: bool, shape: tuple) -> None:
    module = {"Hopfield": lambda: Hopfield(D, num_heads=2),
              "HopfieldPooling": lambda: HopfieldPooling(D, num_heads=2),
              "HopfieldLayer": lambda: HopfieldLayer(D, num_heads=2, quantity=3)}[layer]()
    x = torch.randn(*shape)

    def call():
        out = module(x, return_info=True) if return_info else module(x)
        return out[0] if return_info else out

    with torch.no_grad():
        run_case(call, names=("input", "x", "state", "stored", "L", "N", "batch"))


# --------------------------------------------------------------------------------------------
# Persistent objects: a failed call changes no file
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [b for b in BAD_TENSORS if b not in ("huge_norm", "float16",
                                                                      "int", "bool")])
def test_pattern_store_append_leaves_files(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "store"
    with PatternStore.create(path, dim=D) as store:
        store.append(np.ones((3, D), dtype=np.float32))
    value = BAD_TENSORS[bad](torch.ones(2, D))
    value = value.numpy() if isinstance(value, torch.Tensor) else value

    def call():
        with PatternStore.open(path, "r+") as st:
            st.append(value)

    outcome = run_case(call, names=("patterns",), files=tmp_path)
    if outcome == "finite":  # an accepted append must keep everything finite
        with PatternStore.open(path) as st:
            assert np.isfinite(np.asarray(st[:])).all()


@pytest.mark.parametrize("bad", ["nan", "inf", "f64_over_f32", "f64_huge"])
def test_modern_add_rejects_and_keeps_memory(bad: str) -> None:
    mem = ModernHopfield(beta=0.5).store(_gen(5, D).numpy())
    before = torch.as_tensor(mem.patterns_).clone()
    value = BAD_TENSORS[bad](torch.ones(1, D)).numpy()
    with pytest.raises(ALLOWED):
        mem.add(value)
    assert torch.equal(torch.as_tensor(mem.patterns_), before)


def _estimators():
    from hopfield.estimators import HopfieldClassifier, HopfieldMILClassifier

    out = [("HopfieldClassifier", HopfieldClassifier)]
    try:
        from hopfield.estimators import HopfieldRegressor
        out.append(("HopfieldRegressor", HopfieldRegressor))
    except ImportError:  # pragma: no cover - older layout
        pass
    out.append(("HopfieldMILClassifier", HopfieldMILClassifier))
    return out


def _fast(est):
    params = est.get_params()
    fast = {k: v for k, v in (("max_iter", 2), ("n_members", 1), ("random_state", 0))
            if k in params}
    return est.set_params(**fast)


@pytest.mark.parametrize("name, cls", _estimators(), ids=[e[0] for e in _estimators()])
def test_estimator_save_refuses_foreign_folder(tmp_path: Path, name: str, cls) -> None:
    rng = np.random.default_rng(0)
    if "MIL" in name:
        X = [rng.normal(size=(3, 4)) for _ in range(8)]
        y = np.array([0, 1] * 4)
    else:
        X = rng.normal(size=(24, 4))
        y = np.array([0, 1] * 12) if "Classifier" in name else rng.normal(size=24)
    est = _fast(cls()).fit(X, y)
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    (folder / "other_model").mkdir()
    (folder / "other_model" / "weights.bin").write_bytes(b"\x00" * 10)
    for path in (folder, tmp_path):
        before = _snapshot(tmp_path)
        with pytest.raises(ALLOWED):
            est.save(path)
        assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("bad", ["nan", "inf", "f64_over_f32", "f64_huge"])
@pytest.mark.parametrize("name, cls", _estimators(), ids=[e[0] for e in _estimators()])
def test_estimator_non_finite_cells(name: str, cls, bad: str) -> None:
    rng = np.random.default_rng(0)
    if "MIL" in name:
        X = [rng.normal(size=(3, 4)) for _ in range(8)]
        y = np.array([0, 1] * 4)
        X_bad = [x.copy() for x in X]
        X_bad[0] = BAD_TENSORS[bad](torch.as_tensor(X_bad[0])).numpy()
    else:
        X = rng.normal(size=(24, 4))
        y = np.array([0, 1] * 12) if "Classifier" in name else rng.normal(size=24)
        X_bad = BAD_TENSORS[bad](torch.as_tensor(X)).numpy()
    # at fit time
    run_case(lambda: _fast(cls()).fit(X_bad, y).predict(X), names=("X",))
    # at predict time
    est = _fast(cls()).fit(X, y)
    run_case(lambda: est.predict(X_bad), names=("X",))


def test_case_count() -> None:
    n = (len(TENSOR_CASES) + len(BETA_ENTRIES) * len(BAD_BETAS)
         + len(MASK_ENTRIES) * len(BAD_MASKS) + 3 * 2 * 2)
    print(f"fuzz cases generated: {n}")
    assert n > 300, n
