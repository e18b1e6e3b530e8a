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
