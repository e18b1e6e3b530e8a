"""Host synchronisations on the hot paths (issue 15 item 2), counted on the CPU.

On a GPU every ``bool(tensor)``, ``.item()``, ``.tolist()``, ``float(tensor)`` or ``int(tensor)``
waits for the device. The counter below patches those ``torch.Tensor`` methods, so the same code
run here on the CPU shows each sync a CUDA run would pay. Targets: zero syncs in a retrieve with
``max_steps=1`` and in ``functional.update``/``retrieve`` under ``hopfield.validation(False)``;
with validation on, a small documented count (the one-reduction input checks).
"""

from __future__ import annotations

import collections
import contextlib
import sys
import traceback
from collections.abc import Iterator

import pytest
import torch

import hopfield
import hopfield.functional as HF
from hopfield import ModernHopfield

_SYNC_METHODS = ("__bool__", "item", "tolist", "__float__", "__int__", "__index__")


@contextlib.contextmanager
def count_host_syncs() -> Iterator[collections.Counter]:
    """Count reads of tensor values back to the host (by method name); ``where`` lists stacks."""
    hits: collections.Counter = collections.Counter()
    hits.where = []  # type: ignore[attr-defined]
    originals = {n: getattr(torch.Tensor, n) for n in _SYNC_METHODS}

    def wrap(name):
        original = originals[name]

        def counted(self, *args, **kwargs):
            hits[name] += 1
            hits.where.append(name + "\n" + "".join(traceback.format_stack(limit=6)[:-1]))
            return original(self, *args, **kwargs)

        return counted

    for name in _SYNC_METHODS:
        setattr(torch.Tensor, name, wrap(name))
    try:
        yield hits
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)


def _syncs(fn) -> collections.Counter:
    fn()  # warm-up: lazy imports and one-off caches are not the hot loop
    with count_host_syncs() as hits:
        fn()
    return hits


def _explain(hits) -> str:
    return f"{sum(hits.values())} host syncs {dict(hits)}:\n" + "\n".join(hits.where)


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(50, 8, generator=g)
    q = torch.randn(4, 8, generator=g)
    return X, q


def test_counter_counts_the_sync_methods():
    t = torch.ones(3)
    with count_host_syncs() as hits:
        bool(t.sum() > 0)
        t.sum().item()
        t.tolist()
        float(t[0])
        int(t[0])
    assert hits == {"__bool__": 1, "item": 1, "tolist": 1, "__float__": 1, "__int__": 1}


def _cases(X, q):
    beta_t = torch.tensor(2.0)
    mask = torch.zeros(X.shape[0], dtype=torch.bool)
    memory = ModernHopfield(beta=2.0).store(X)
    return {
        "ModernHopfield.retrieve(max_steps=1)": lambda: memory.retrieve(q, max_steps=1),
        "ModernHopfield.update": lambda: memory.update(q),
        "functional.update": lambda: HF.update(q, X, 2.0),
        "functional.update(mask)": lambda: HF.update(q, X, 2.0, mask=mask),
        "functional.update(tensor beta)": lambda: HF.update(q, X, beta_t),
        "functional.retrieve(max_steps=1)": lambda: HF.retrieve(q, X, 2.0, max_steps=1),
    }


def _more_cases(X, q):
    import hopfield.streaming as HS

    memory = ModernHopfield(beta=2.0).store(X)
    chunked = ModernHopfield(beta=2.0, chunk_size=16).store(X)
    return {
        "functional.energy": lambda: HF.energy(q, X, 2.0),
        "functional.lse": lambda: HF.lse(q, X, 2.0),
        "functional.similarity": lambda: HF.similarity(q, X, 2.0),
        "functional.retrieve(return_info)": lambda: HF.retrieve(q, X, 2.0, max_steps=1,
                                                                return_info=True),
        "streaming.stream_update": lambda: HS.stream_update(q, X, 2.0, chunk_size=16),
        "streaming.stream_retrieve(max_steps=1)": lambda: HS.stream_retrieve(
            q, X, 2.0, max_steps=1, chunk_size=16),
        "streaming.stream_topk": lambda: HS.stream_topk(q, X, 2.0, 3, chunk_size=16),
        "ModernHopfield.energy": lambda: memory.energy(q),
        "ModernHopfield.lse": lambda: memory.lse(q),
        "ModernHopfield.weights": lambda: memory.weights(q),
        "ModernHopfield.retrieve_topk": lambda: memory.retrieve_topk(q, 3),
        "ModernHopfield(chunk_size).retrieve(max_steps=1)": lambda: chunked.retrieve(q, max_steps=1),
    }


def _all_cases(X, q):
    return {**_cases(X, q), **_more_cases(X, q)}


@pytest.mark.parametrize("case", list(_all_cases(torch.zeros(2, 2), torch.zeros(1, 2))))
def test_zero_host_syncs_with_validation_off(data, case):
    X, q = data
    fn = _all_cases(X, q)[case]
    with hopfield.validation(False):
        hits = _syncs(fn)
    assert sum(hits.values()) == 0, _explain(hits)


# With validation on, each entry point pays a fixed, small number of syncs (the one-reduction
# finiteness/overflow-bound check of its inputs, plus one per extra checked argument). These
# numbers are the documented cost (docs/gpu.md); a change here must update the doc.
_VALIDATED = {
    "ModernHopfield.retrieve(max_steps=1)": 1,  # max|query| (finite + score bound)
    "ModernHopfield.update": 1,
    "functional.update": 1,  # max|state|, max|patterns| in one .tolist()
    "functional.update(mask)": 2,  # + fully masked row check
    "functional.update(tensor beta)": 3,  # + beta finite and > 0
    "functional.retrieve(max_steps=1)": 1,
}


@pytest.mark.parametrize("case", list(_VALIDATED))
def test_host_syncs_with_validation_on_are_few_and_documented(data, case):
    X, q = data
    hits = _syncs(_cases(X, q)[case])
    assert sum(hits.values()) == _VALIDATED[case], _explain(hits)


def test_retrieve_pays_one_sync_per_extra_step_at_most(data):
    X, q = data
    memory = ModernHopfield(beta=0.01).store(X)  # small beta: does not converge in 5 steps
    with hopfield.validation(False):
        hits = _syncs(lambda: memory.retrieve(q, max_steps=5))
    assert sum(hits.values()) <= 4, _explain(hits)  # early-exit test after steps 1..4, not 5


def test_validation_off_skips_checks_but_keeps_shape_errors(data):
    X, q = data
    bad = q.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        HF.update(bad, X, 2.0)
    with hopfield.validation(False):
        HF.update(bad, X, 2.0)  # the caller's responsibility now: no check, no sync
        with pytest.raises(ValueError, match="shape|dimension|match"):
            HF.update(q[:, :3], X, 2.0)
    assert hopfield.validation_enabled()


def test_layer_forward_backward_has_no_host_sync_with_validation_off():
    from hopfield.nn import Hopfield

    torch.manual_seed(0)
    layer = Hopfield(input_size=8)
    x = torch.randn(2, 5, 8, requires_grad=True)
    with hopfield.validation(False):
        hits = _syncs(lambda: layer(x).sum().backward())
    assert sum(hits.values()) == 0, _explain(hits)


def test_layer_forward_backward_syncs_with_validation_on_are_few():
    from hopfield.nn import Hopfield

    torch.manual_seed(0)
    layer = Hopfield(input_size=8)
    x = torch.randn(2, 5, 8, requires_grad=True)
    hits = _syncs(lambda: layer(x).sum().backward())
    assert sum(hits.values()) <= 1, _explain(hits)  # one finiteness check per forward


# ----------------------------------------------------------------------------- estimator training
#
# Issue 15: estimators read device values back to the host at most once per epoch.
#
# What `count_device_syncs` counts, for tensors that would live on the GPU in a CUDA run:
# - reads back to the host: bool / item / tolist / float / int / index (as `count_host_syncs`),
#   plus `Tensor.numpy()` and `Tensor.cpu()`;
# - through a TorchDispatchMode, the aten ops whose output size depends on the data and so wait
#   for the device: `nonzero` (also `torch.where(cond)`), `masked_select`, `unique*`,
#   `repeat_interleave` without `output_size`, and indexing / index_put with a boolean mask
#   (`x[mask]`, and its backward).
# Host tensors are not counted: a tensor made by a factory call without `device=` (e.g.
# `torch.randperm(n, generator=cpu_gen)`) stays on the CPU in a CUDA run too, and so does whatever
# is computed only from host tensors; a tensor passed through `.to(device)` / `.cuda()` counts as a
# device tensor from then on. Reads made by torch.optim itself are not counted either: its step
# counters are CPU tensors (`device="cpu"`) on CUDA too, unless `capturable`/`fused`.
# Host -> device uploads (`torch.as_tensor(a, device=dev)` per batch) are not counted.
# The fit runs under `hopfield.validation(False)` (the inputs are still checked once by `fit`).
# The syncs of one epoch are those of a fit with 2E epochs minus those of a fit with E epochs,
# divided by E, so the one-off work of `fit` (input checks, the split, the final copy-back) is
# excluded; `tol=0` and a large `n_iter_no_change` make every epoch run.

_HIDDEN_SYNC_OPS = ("nonzero", "masked_select", "unique", "_unique", "_unique2",
                    "unique_consecutive", "unique_dim")
_HOST_FACTORIES = ("randperm", "randint", "rand", "randn", "arange", "zeros", "ones", "empty",
                   "full", "tensor", "as_tensor", "from_numpy", "linspace")
_READS = ("__bool__", "item", "tolist", "__float__", "__int__", "__index__", "numpy", "cpu")


def _is_host(t) -> bool:
    return isinstance(t, torch.Tensor) and getattr(t, "_hopfield_host", False)


def _mark_host(out) -> None:
    for t in (out if isinstance(out, (tuple, list)) else (out,)):
        if isinstance(t, torch.Tensor):
            t._hopfield_host = True


def _is_bool_index(args) -> bool:
    indices = args[1] if len(args) > 1 else ()
    return any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8)
               for i in (indices or ()))


@contextlib.contextmanager
def count_device_syncs() -> Iterator[collections.Counter]:
    """Count the host syncs a CUDA run would pay (see the comment above); ``where`` lists stacks."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    hits: collections.Counter = collections.Counter()
    hits.where = []  # type: ignore[attr-defined]

    def hit(name, depth=6):
        hits[name] += 1
        hits.where.append(name + "\n" + "".join(traceback.format_stack(limit=depth)[:-2]))

    class _Ops(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            tensors = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
            if tensors and all(_is_host(t) for t in tensors):
                _mark_host(out)  # computed from host tensors only: a host tensor
                return out
            name = func.overloadpacket.__name__
            if name in _HIDDEN_SYNC_OPS or (
                    name == "repeat_interleave" and not kwargs.get("output_size")) or (
                    name in ("index", "index_put", "index_put_", "_index_put_impl_")
                    and _is_bool_index(args)):
                hit(f"aten.{name}", 9)
            return out

    saved = {("T", n): getattr(torch.Tensor, n) for n in (*_READS, "to", "cuda")}
    saved.update({("torch", n): getattr(torch, n) for n in _HOST_FACTORIES})

    def read(name):
        original = saved["T", name]

        def counted(self, *args, **kwargs):
            if not _is_host(self) and "torch/optim/" not in sys._getframe(1).f_code.co_filename:
                hit(name)
            out = original(self, *args, **kwargs)
            if name == "cpu":
                _mark_host(out)  # the copy is on the host: `.cpu().numpy()` is one sync
            return out

        return counted

    def moved(name):
        original = saved["T", name]

        def to(self, *args, **kwargs):
            out = original(self, *args, **kwargs)
            to_device = name == "cuda" or "device" in kwargs or any(
                isinstance(a, (str, torch.device, torch.Tensor)) for a in args)
            if to_device and out is self:
                self._hopfield_host = False  # same object on the CPU: now a device tensor
            return out

        return to

    def factory(name):
        original = saved["torch", name]

        def make(*args, **kwargs):
            out = original(*args, **kwargs)
            first_is_tensor = bool(args) and isinstance(args[0], torch.Tensor)
            if kwargs.get("device") is None and not first_is_tensor:
                _mark_host(out)
            return out

        return make

    for name in _READS:
        setattr(torch.Tensor, name, read(name))
    for name in ("to", "cuda"):
        setattr(torch.Tensor, name, moved(name))
    for name in _HOST_FACTORIES:
        setattr(torch, name, factory(name))
    try:
        with _Ops():
            yield hits
    finally:
        for (where, name), original in saved.items():
            setattr(torch.Tensor if where == "T" else torch, name, original)


def test_device_sync_counter_sees_the_hidden_syncs_and_skips_host_tensors():
    x = torch.randn(6, 3, requires_grad=True).to("cpu")  # .to(device): a device tensor
    with count_device_syncs() as hits:
        m = x.detach()[:, 0] > 0
        x[m].sum().backward()  # bool index forward and backward
        torch.where(m)
        x.detach().numpy()
        x.detach().cpu().numpy()  # one sync, not two
        x.sum().item()
        torch.arange(3, device="cpu").repeat_interleave(torch.tensor([1, 2, 3], device="cpu"))
        # host tensors (no device=): not counted, nor what is computed from them alone
        perm = torch.randperm(5)
        perm[:3].numpy()
        step = torch.tensor(0.0)
        step += 1
        step.item()
        bool((torch.arange(4) > 1).any())
    assert hits == {"aten.index": 1, "aten.index_put": 1, "aten.nonzero": 1, "numpy": 1,
                    "cpu": 1, "item": 1, "aten.repeat_interleave": 1}, dict(hits)


def _epoch_syncs(make, fit_args, epochs: int = 2) -> tuple[float, collections.Counter]:
    def fit(n):
        est = make(n)
        with hopfield.validation(False), count_device_syncs() as hits:
            est.fit(*fit_args)
        assert est.n_iter_ == n
        return hits

    fit(1)  # warm-up: lazy imports
    short, long = fit(epochs), fit(2 * epochs)
    diff = collections.Counter(long)
    diff.subtract(short)
    diff.where = long.where  # type: ignore[attr-defined]
    return sum(diff.values()) / epochs, diff


def _tabular_data():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(96, 5, generator=g).numpy()
    return X, (X[:, 0] > 0).astype(int)


def _mil_data():
    import numpy as np

    rng = np.random.RandomState(0)
    bags = [rng.randn(int(rng.randint(3, 7)), 5).astype("float32") for _ in range(24)]
    return bags, np.array([int(b[:, 0].max() > 1.0) for b in bags])


@pytest.mark.parametrize("early_stopping", [False, True])
def test_hopfield_classifier_syncs_at_most_once_per_epoch(early_stopping):
    from hopfield.estimators import HopfieldClassifier

    X, y = _tabular_data()
    make = lambda n: HopfieldClassifier(
        embedding_size=8, num_heads=2, quantity=4, n_members=2, batch_size=16, max_iter=n,
        early_stopping=early_stopping, n_iter_no_change=100, tol=0.0, random_state=0)
    per_epoch, diff = _epoch_syncs(make, (X, y))
    assert per_epoch <= 1, f"{per_epoch} per epoch; " + _explain(diff)


@pytest.mark.parametrize("early_stopping", [False, True])
def test_mil_classifier_syncs_at_most_once_per_epoch(early_stopping):
    from hopfield.estimators import HopfieldMILClassifier

    bags, y = _mil_data()
    make = lambda n: HopfieldMILClassifier(
        embedding_size=8, n_layers=1, num_heads=2, head_size=4, batch_size=4, max_iter=n,
        early_stopping=early_stopping, n_iter_no_change=100, tol=0.0, random_state=0)
    per_epoch, diff = _epoch_syncs(make, (bags, y))
    assert per_epoch <= 1, f"{per_epoch} per epoch; " + _explain(diff)


@pytest.mark.parametrize("early_stopping", [False, True])
def test_deeprc_classifier_syncs_at_most_once_per_epoch(early_stopping):
    from hopfield.repertoire import DeepRCClassifier, simulate_repertoires

    data = simulate_repertoires(12, 40, 0.2, seed=0)
    make = lambda n: DeepRCClassifier(
        n_kernels=4, embedding_size=8, num_heads=2, head_size=4, max_length=24,
        n_train_sequences=16, pretrain_steps=2, max_iter=n, batch_size=4,
        early_stopping=early_stopping, n_iter_no_change=100, tol=0.0, random_state=0)
    per_epoch, diff = _epoch_syncs(make, (data.repertoires, data.y))
    assert per_epoch <= 1, f"{per_epoch} per epoch; " + _explain(diff)
