"""ModernHopfield backed by a PatternStore / chunk_size equals the in-memory memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hopfield.functional as HF
from hopfield import ModernHopfield, PatternStore


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3000, 16)).astype(np.float32)
    q = x[:6] + 0.3 * rng.standard_normal((6, 16)).astype(np.float32)
    s = PatternStore.create(tmp_path / "mem", dim=16)
    s.append(x[:1000]).append(x[1000:])
    return x, q, s


def _ref_weights(q, x, beta):
    return torch.softmax(beta * torch.from_numpy(q).double() @ torch.from_numpy(x).double().T, -1)


@pytest.mark.parametrize("method", ["retrieve", "update", "weights", "energy"])
def test_store_backed_equals_in_memory(data, method):
    x, q, s = data
    mem = ModernHopfield(beta=2.0, max_steps=8).store(x)
    disk = ModernHopfield(beta=2.0, max_steps=8, chunk_size=700).store(s)
    chunked = ModernHopfield(beta=2.0, max_steps=8, chunk_size=333).store(x)
    assert disk.is_streaming and chunked.is_streaming and not mem.is_streaming
    ref = getattr(mem, method)(q)
    for other in (disk, chunked):
        got = getattr(other, method)(q)
        assert isinstance(got, np.ndarray) and got.shape == ref.shape  # numpy in, numpy out
        np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)
    one = getattr(disk, method)(q[0])  # a single (D,) query
    np.testing.assert_allclose(one, ref[0], atol=1e-5, rtol=0)


def test_store_is_kept_by_reference_not_loaded(data):
    _x, q, s = data
    disk = ModernHopfield(beta=2.0, max_steps=5).store(s)
    assert disk.patterns_ is s and disk.n_patterns_ == 3000 and disk.dim_ == 16
    assert "n_patterns_=3000" in repr(disk)
    _, info = disk.retrieve(q, return_info=True)
    assert info.weights is None and info.energy.shape[1:] == (6,)


@pytest.mark.parametrize("backing", ["memory", "store", "chunked"])
def test_retrieve_topk(data, backing):
    x, q, s = data
    src = {"memory": x, "store": s, "chunked": x}[backing]
    mem = ModernHopfield(beta=2.0, chunk_size=500 if backing == "chunked" else None).store(src)
    w, idx = mem.retrieve_topk(q, 4)
    ref_w, ref_i = _ref_weights(q, x, 2.0).topk(4, dim=-1)
    assert idx.shape == (6, 4) and idx.dtype == np.int64
    np.testing.assert_array_equal(idx, ref_i.numpy())
    np.testing.assert_allclose(w, ref_w.numpy(), atol=1e-5, rtol=0)
    wt, it = mem.retrieve_topk(torch.from_numpy(q[0]), 2)  # torch in, torch out
    assert isinstance(wt, torch.Tensor) and it.shape == (2,)
    assert torch.equal(it, ref_i[0, :2])


def test_topk_sparsemax_in_memory_uses_exact_weights(data):
    x, q, _ = data
    mem = ModernHopfield(beta=2.0, separation="sparsemax").store(x)
    w, idx = mem.retrieve_topk(q, 3)
    full = mem.weights(q)
    np.testing.assert_allclose(w, np.take_along_axis(full, idx, 1), atol=1e-6)
    np.testing.assert_allclose(w, -np.sort(-full, axis=1)[:, :3], atol=1e-6)


def test_add_appends_to_the_store_on_disk(data, tmp_path):
    x, q, s = data
    disk = ModernHopfield(beta=2.0, max_steps=5).store(s)
    disk.add(x[:5] * 2)
    assert disk.n_patterns_ == 3005 and len(PatternStore.open(tmp_path / "mem")) == 3005
    ref = ModernHopfield(beta=2.0, max_steps=5).store(np.concatenate([x, x[:5] * 2])).retrieve(q)
    np.testing.assert_allclose(disk.retrieve(q), ref, atol=1e-5, rtol=0)
    ro = ModernHopfield(beta=2.0).store(PatternStore.open(tmp_path / "mem"))
    with pytest.raises(ValueError, match="read-only"):
        ro.add(x[:1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_in_memory_fused_path_matches_float64_functional(data, dtype):
    x, q, _ = data
    x, q = x.astype(dtype), q.astype(dtype)
    mem = ModernHopfield(beta=2.0, max_steps=6, tol=1e-9).store(x)
    xd, qd = torch.from_numpy(x).double(), torch.from_numpy(q).double()
    ref = HF.retrieve(qd, xd, 2.0, max_steps=6, tol=1e-9)
    atol = 5e-5 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(mem.retrieve(q), ref.numpy(), atol=atol, rtol=0)
    np.testing.assert_allclose(mem.update(q), HF.update(qd, xd, 2.0).numpy(), atol=atol / 5,
                               rtol=0)
    assert mem.retrieve(q).dtype == dtype


def test_in_memory_behaviour_unchanged(data):
    x, q, _ = data
    mem = ModernHopfield(beta=2.0, max_steps=5).store(x)
    _, info = mem.retrieve(q, return_info=True)
    assert info.weights.shape == (6, 3000)  # the in-memory path still returns weights
    assert repr(mem) == "ModernHopfield(beta=2.0, separation='softmax', n_patterns_=3000)"
    assert mem.max_steps == 5 and mem.tol == 1e-5 and mem.chunk_size is None


def test_errors(data, tmp_path):
    _x, q, s = data
    with pytest.raises(ValueError, match="separation must be 'softmax' to store a PatternStore"):
        ModernHopfield(separation="sparsemax").store(s)
    with pytest.raises(ValueError, match="separation must be 'softmax' to use chunk_size"):
        ModernHopfield(separation="entmax", chunk_size=100)
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        ModernHopfield(chunk_size=0)
    empty = PatternStore.create(tmp_path / "empty", dim=16)
    with pytest.raises(ValueError, match="at least one pattern, got an empty PatternStore"):
        ModernHopfield().store(empty)
    closed = PatternStore.open(tmp_path / "mem")
    closed.close()
    with pytest.raises(ValueError, match="open PatternStore"):
        ModernHopfield().store(closed)
    disk = ModernHopfield().store(s)
    with pytest.raises(ValueError,
                       match=r"queries must have shape \(L, 16\) or \(16,\), got \(2, 3\)"):
        disk.retrieve(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="queries must be finite"):
        disk.retrieve(np.full((1, 16), np.inf))
    with pytest.raises(ValueError, match=r"k must be <= the number of stored patterns \(3000\)"):
        disk.retrieve_topk(q, 3001)
    with pytest.raises(TypeError, match="k must be an int"):
        disk.retrieve_topk(q, 2.0)
