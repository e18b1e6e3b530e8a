"""Issue 8 regression tests for the memories (items 4, 9, 12, 18) and the backend split (issue 14)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hopfield import ClassicalHopfield, DenseAssociativeMemory, ModernHopfield, PatternStore
from hopfield.memory._backends import ChunkedBackend, InMemoryBackend


def _x(n=5, d=16, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def test_add_rejects_values_overflowing_the_memory_dtype_and_keeps_it():
    mem = ModernHopfield().store(_x())
    before = mem.patterns_.clone()
    with pytest.raises(ValueError, match="patterns must fit the memory's dtype torch.float32"):
        mem.add(np.full((1, 16), 1e39))  # finite in float64, inf in float32
    assert torch.equal(mem.patterns_, before) and mem.n_patterns_ == 5
    mem.retrieve(_x(2, seed=1))  # still usable
    with pytest.raises(ValueError, match="queries must fit the memory's dtype torch.float32"):
        mem.retrieve(np.full((1, 16), 1e39))
    with pytest.raises(ValueError, match="states must fit the memory's dtype"):
        mem.energy(np.full((1, 16), 1e39))
    with pytest.raises(ValueError, match="must be finite"):
        ModernHopfield().store(np.full((2, 16), np.inf))
    for mem in (ClassicalHopfield(), DenseAssociativeMemory()):
        mem.store(np.ones((2, 16), dtype=np.float32))
        with pytest.raises(ValueError):
            mem.add(np.full((1, 16), 1e39))
        assert mem.n_patterns_ == 2


def test_modern_energy_and_retrieve_extreme_values():
    mem = ModernHopfield(beta=1e-40).store(_x())
    q = _x(3, seed=2)
    e = mem.energy(q)
    x, s = mem.patterns_.double(), torch.from_numpy(q).double()
    ref = 0.5 * (s * s).sum(-1) - (s @ x.mT).mean(-1) + 0.5 * x.norm(dim=-1).max() ** 2
    np.testing.assert_allclose(e, ref.numpy(), rtol=1e-5, atol=1e-4)
    big = ModernHopfield(beta=0.5).store(_x() * 1e19)
    out = big.retrieve(_x(3, seed=3) * 1e19, max_steps=2)
    assert np.isfinite(out).all() and np.abs(out).max() > 1e18  # was exactly 0 (fused path)
    with pytest.raises(ValueError, match="energy overflows"):
        big.energy(_x(3, seed=3) * 1e19)


def test_store_backed_memory_raises_on_overflow_and_corrupt_chunks(tmp_path):
    with PatternStore.create(tmp_path / "s", dim=16) as st:
        st.append(_x(50) * 1e19)
    with PatternStore.open(tmp_path / "s") as st:
        mem = ModernHopfield(beta=1.0, chunk_size=16).store(st)
        with pytest.raises(ValueError, match="overflow"):
            mem.retrieve(_x(2, seed=4) * 1e19, max_steps=3)


class _Source:
    """A chunked source (duck-typed like a PatternStore) with a NaN in row 20."""

    path = "/data/mem"

    def __init__(self):
        self.x = torch.from_numpy(_x(50))
        self.x[20, 3] = float("nan")
        self.dim = 16

    def __len__(self):
        return 50

    def iter_chunks(self, chunk_size):
        for s in range(0, 50, chunk_size):
            yield s, self.x[s:s + chunk_size]


def test_streamed_chunks_are_checked_and_named():
    """Issue 8 item 7: a NaN in a streamed chunk names the store and the row range."""
    from hopfield.streaming import stream_retrieve, stream_topk

    q = torch.from_numpy(_x(2, seed=4))
    with pytest.raises(ValueError, match=r"_Source at /data/mem rows 16\.\.31 must be finite"):
        stream_retrieve(q, _Source(), 1.0, chunk_size=16)
    with pytest.raises(ValueError, match=r"rows 16\.\.31"):
        stream_topk(q, _Source(), 1.0, 3, chunk_size=16)


def test_dense_polynomial_degree_is_validated():
    p = np.where(np.random.default_rng(0).standard_normal((5, 100)) > 0, 1.0, -1.0)
    with pytest.raises(ValueError, match="degree must be <= 5"):
        DenseAssociativeMemory("polynomial", degree=10_000)
    with pytest.raises(ValueError, match=r"degree must be <= \d+ for 5 patterns of dimension 100"):
        DenseAssociativeMemory("polynomial", degree=150).store(p)  # was OverflowError at retrieve
    mem = DenseAssociativeMemory("polynomial", degree=50, random_state=0).store(p)
    assert np.isfinite(mem.energy(p)).all()
    out = mem.retrieve(p[:2])
    np.testing.assert_array_equal(out, p[:2])
    small = np.where(np.random.default_rng(1).standard_normal((3, 4)) > 0, 1.0, -1.0)
    mem = DenseAssociativeMemory("polynomial", degree=150, random_state=0).store(small)
    assert np.isfinite(mem.energy(small)).all()  # comb(150, k) > int64 no longer overflows


def test_random_state_generator_and_numpy_beta():
    p = np.where(np.random.default_rng(0).standard_normal((3, 32)) > 0, 1.0, -1.0)
    mem = ClassicalHopfield(random_state=np.random.default_rng(0)).store(p)
    np.testing.assert_array_equal(mem.retrieve(p), p)
    a = ClassicalHopfield(random_state=np.random.default_rng(5)).store(p).retrieve(p[:1])
    b = ClassicalHopfield(random_state=np.random.default_rng(5)).store(p).retrieve(p[:1])
    np.testing.assert_array_equal(a, b)
    DenseAssociativeMemory(random_state=np.random.default_rng(0)).store(p).retrieve(p[:1])
    with pytest.raises(TypeError, match="random_state must be an int, a numpy.random.Generator"):
        ClassicalHopfield(random_state="0")
    x = _x()
    for beta in (np.array(1.0), np.float32(1.0), np.float64(1.0)):
        np.testing.assert_allclose(ModernHopfield(beta=beta).store(x).retrieve(x[:2]),
                                   ModernHopfield(beta=1.0).store(x).retrieve(x[:2]), rtol=1e-6)


def test_backend_is_chosen_once_and_paths_agree():
    x = _x(40)
    q = _x(3, seed=6)
    mem = ModernHopfield(beta=2.0).store(x)
    chunked = ModernHopfield(beta=2.0, chunk_size=7).store(x)
    assert isinstance(mem._backend(), InMemoryBackend)
    assert isinstance(chunked._backend(), ChunkedBackend)
    assert not isinstance(chunked._backend(), InMemoryBackend)
    np.testing.assert_allclose(mem.retrieve(q), chunked.retrieve(q), atol=1e-5)
    np.testing.assert_allclose(mem.energy(q), chunked.energy(q), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(mem.lse(q), chunked.lse(q), rtol=1e-5, atol=1e-5)
    _, ia = mem.retrieve(q, return_info=True)
    _, ib = chunked.retrieve(q, return_info=True)
    assert torch.equal(ia.steps, ib.steps) and torch.equal(ia.converged, ib.converged)
    torch.testing.assert_close(ia.energy, ib.energy, rtol=1e-5, atol=1e-5)


def test_in_memory_retrieval_off_cpu_uses_the_fused_kernel(monkeypatch):
    """Issue 15 item 4: in-memory softmax retrieval off the CPU calls SDPA (no (L, chunk) scores);
    the `meta` device stands in for CUDA."""
    import torch.nn.functional as F

    calls = []
    real = F.scaled_dot_product_attention

    def spy(q, k, v, **kw):
        calls.append(tuple(q.shape))
        return real(q, k, v, **kw)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    b = InMemoryBackend(torch.randn(1000, 16, device="meta"), 2.0,
                        __import__("hopfield").get_separation("softmax"), 64)
    q = torch.randn(8, 16, device="meta")
    out, _ = b.retrieve(q, 1, 1e-5, False)  # max_steps=1: no host sync (meta has no data)
    assert out.device.type == "meta" and out.shape == (8, 16)
    assert calls and all(c[-2:] == (8, 16) for c in calls)
    assert b.update(q).shape == (8, 16)
