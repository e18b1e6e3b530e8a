"""Streaming (online-softmax) retrieval equals the in-memory float64 reference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import hopfield.functional as HF
from hopfield.storage import DATA_FILE, PatternStore
from hopfield.streaming import (
    SoftmaxPartial,
    chunk_partial,
    stream_energy,
    stream_retrieve,
    stream_topk,
    stream_update,
    stream_weights,
)

ATOL = {torch.float32: 1e-5, torch.float64: 1e-10}


def _ref_update(state, x, beta):
    """Naive float64 reference: softmax(β ξ Xᵀ) X."""
    p = torch.softmax(beta * state.double() @ x.double().mT, dim=-1)
    return p @ x.double(), p


def _close(got, ref, dtype, what):
    err = (got.double() - ref.double()).abs().max().item()
    assert err <= ATOL[dtype], f"{what}: max |diff| {err:.3g} > {ATOL[dtype]:g} ({dtype})"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("chunk_size", [1, 97, 1000, 5000])
def test_update_matches_float64_reference(dtype, chunk_size):
    x = torch.randn(2000, 32, dtype=dtype)
    q = x[:9] + 0.3 * torch.randn(9, 32, dtype=dtype)
    ref, _ = _ref_update(q, x, 0.7)
    _close(stream_update(q, x, 0.7, chunk_size=chunk_size), ref, dtype, "stream_update")
    # the in-memory fused path holds the same bound (same table)
    _close(HF.update(q, x, 0.7), ref, dtype, "functional.update")


def test_update_batched_states_and_tensor_beta():
    x = torch.randn(700, 16)
    q = torch.randn(2, 3, 5, 16)  # (B, H, L, D)
    beta = torch.tensor([0.5, 1.0, 4.0])  # per head
    ref, _ = _ref_update(q, x, beta.double().view(3, 1, 1))
    out = stream_update(q, x, beta, chunk_size=123)
    assert out.shape == q.shape
    _close(out, ref, torch.float32, "batched")


def test_large_scores_do_not_overflow():
    x = torch.randn(3000, 64)
    q = 3 * x[:4]
    ref, _ = _ref_update(q, x, 50.0)  # scores up to ~1e4: exp overflows without the running max
    out = stream_update(q, x, 50.0, chunk_size=256)
    assert torch.isfinite(out).all()
    _close(out, ref, torch.float32, "beta=50")


def test_fused_and_manual_chunk_partials_agree():
    x, q = torch.randn(500, 32), torch.randn(2, 7, 32)
    fused, _ = chunk_partial(q, x, 0.3)
    manual, _ = chunk_partial(q, x, 0.3, fused=False)
    _, (vals, idx) = chunk_partial(q, x, 0.3, k=4)
    ref = (0.3 * q @ x.mT).topk(4, dim=-1)
    torch.testing.assert_close(vals, ref.values)
    assert torch.equal(idx, ref.indices)
    torch.testing.assert_close(fused.lse(), manual.lse(), atol=1e-5, rtol=0)
    torch.testing.assert_close(fused.result(), manual.result(), atol=1e-5, rtol=0)


@given(cuts=st.lists(st.integers(1, 199), max_size=6, unique=True), seed=st.integers(0, 2**16),
       reverse=st.booleans())
def test_merge_is_exact_for_any_split_and_order(cuts, seed, reverse):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(200, 8, generator=g, dtype=torch.float64)
    q = torch.randn(3, 8, generator=g, dtype=torch.float64)
    bounds = [0, *sorted(cuts), 200]
    parts = [chunk_partial(q, x[a:b], 2.0, fused=False)[0] for a, b in itertools.pairwise(bounds)]
    acc = SoftmaxPartial.empty((3,), 8, q)
    for p in reversed(parts) if reverse else parts:
        acc = acc.merge(p)
    ref, p = _ref_update(q, x, 2.0)
    _close(acc.result(), ref, torch.float64, "merged")
    _close(acc.lse(), torch.logsumexp(2.0 * q @ x.mT, -1), torch.float64, "lse")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_retrieve_matches_in_memory_multistep(dtype):
    x = torch.randn(1500, 24, dtype=dtype)
    q = x[:6] + 0.5 * torch.randn(6, 24, dtype=dtype)
    ref, ref_info = HF.retrieve(q.double(), x.double(), 0.4, max_steps=6, tol=1e-9,
                                return_info=True)
    out, info = stream_retrieve(q, x, 0.4, max_steps=6, tol=1e-9, chunk_size=400,
                                return_info=True)
    # errors compound over steps; the in-memory float32 path has the same budget
    tol = {torch.float32: 5e-5, torch.float64: 1e-10}[dtype]
    mem = HF.retrieve(q, x, 0.4, max_steps=6, tol=1e-9)
    assert (mem.double() - ref).abs().max() <= tol
    assert (out.double() - ref).abs().max() <= tol, (out.double() - ref).abs().max()
    assert torch.equal(info.steps, ref_info.steps) and info.weights is None
    assert info.energy.shape == ref_info.energy.shape
    torch.testing.assert_close(info.energy.double(), ref_info.energy,
                               atol=1e-3 if dtype == torch.float32 else 1e-9, rtol=0)
    assert (info.energy[1:] <= info.energy[:-1] + 1e-4).all()  # CCCP: energy never increases


def test_retrieve_freezes_converged_states_like_functional():
    x = torch.randn(300, 16) * 3
    q = torch.cat([x[:2], torch.randn(2, 16) * 0.01])  # stored patterns converge at once
    ref, rinfo = HF.retrieve(q, x, 5.0, max_steps=20, tol=1e-4, return_info=True)
    out, info = stream_retrieve(q, x, 5.0, max_steps=20, tol=1e-4, chunk_size=64,
                                return_info=True)
    assert torch.equal(info.steps, rinfo.steps) and torch.equal(info.converged, rinfo.converged)
    _close(out, ref, torch.float32, "retrieve")


@pytest.mark.parametrize("k", [1, 5, 300])
def test_topk_matches_full_weights(k):
    x = torch.randn(300, 16)
    q = x[:4] + 0.2 * torch.randn(4, 16)
    _, p = _ref_update(q, x, 1.5)
    top = stream_topk(q, x, 1.5, k, chunk_size=37)
    ref_w, ref_i = p.topk(k, dim=-1)
    assert top.indices.dtype == torch.int64 and top.indices.shape == (4, k)
    assert torch.equal(top.indices, ref_i)
    _close(top.weights, ref_w, torch.float32, "top-k weights")
    if k == 300:  # exact global normalisation: all weights sum to one
        torch.testing.assert_close(top.weights.sum(-1), torch.ones(4), atol=1e-5, rtol=0)


@pytest.mark.parametrize("k", [1, 3, 40])
def test_topk_tiles_merge_exactly_with_batches_and_gradients(monkeypatch, k):
    """The top-k pass splits each chunk into score tiles (_online_softmax._TOPK_TILE_SCORES); small tiles
    force many per chunk (and tiles smaller than k): weights, indices and gradients still equal the
    float64 reference, with leading batch dims and a per-batch β."""
    import hopfield._online_softmax as HS

    monkeypatch.setattr(HS, "_TOPK_TILE_SCORES", 1)
    monkeypatch.setattr(HS, "_TOPK_MIN_TILE", 256)  # tile = 256 rows whatever L
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1100, 8, generator=g, dtype=torch.float64)
    q = torch.randn(2, 3, 8, generator=g, dtype=torch.float64, requires_grad=True)
    beta = torch.tensor([0.7, 2.0], dtype=torch.float64)  # per batch
    top = stream_topk(q, x, beta, k, chunk_size=600)  # chunks of 600 and 500 rows: 3 + 2 tiles
    p = torch.softmax(beta.reshape(2, 1, 1) * q @ x.mT, dim=-1)
    ref_w, ref_i = p.topk(k, dim=-1)
    assert torch.equal(top.indices, ref_i)
    torch.testing.assert_close(top.weights, ref_w, atol=1e-12, rtol=1e-10)
    (g_got,) = torch.autograd.grad(top.weights.sum(), q)
    (g_ref,) = torch.autograd.grad(ref_w.sum(), q)
    torch.testing.assert_close(g_got, g_ref, atol=1e-10, rtol=1e-8)


def test_energy_and_weights_match_functional():
    x = torch.randn(800, 16, dtype=torch.float64)
    q = torch.randn(2, 5, 16, dtype=torch.float64)
    _close(stream_energy(q, x, 0.9, chunk_size=99), HF.energy(q, x, 0.9), torch.float64, "energy")
    _, p = _ref_update(q, x, 0.9)
    _close(stream_weights(q, x, 0.9, chunk_size=99), p, torch.float64, "weights")


def test_pattern_store_source_equals_tensor_source(tmp_path):
    x = torch.randn(5000, 32)
    s = PatternStore.create(tmp_path / "s", dim=32)
    for a in range(0, 5000, 1500):
        s.append(x[a:a + 1500])
    q = x[:10] + 0.3 * torch.randn(10, 32)
    ref, p = _ref_update(q, x, 0.5)
    _close(stream_update(q, s, 0.5, chunk_size=777), ref, torch.float32, "store")
    top = stream_topk(q, s, 0.5, 3, chunk_size=777)
    assert torch.equal(top.indices, p.topk(3, dim=-1).indices)


def test_float16_store_is_computed_in_the_state_dtype(tmp_path):
    x = torch.randn(400, 8)
    s = PatternStore.create(tmp_path / "s", dim=8, dtype="float16").append(x)
    q = torch.randn(3, 8, dtype=torch.float64)
    ref, _ = _ref_update(q, x.half().double(), 1.0)
    out = stream_update(q, s, 1.0, chunk_size=64)
    assert out.dtype == torch.float64
    _close(out, ref, torch.float64, "float16 store")


def test_store_truncated_during_streaming_raises(tmp_path):
    s = PatternStore.create(tmp_path / "s", dim=8).append(torch.randn(1000, 8))
    with open(tmp_path / "s" / DATA_FILE, "r+b") as f:
        f.truncate(300 * 32)
    with pytest.raises(ValueError, match="truncated"):
        stream_update(torch.randn(2, 8), s, 1.0, chunk_size=100)


def test_gradients_match_in_memory_update():
    x = torch.randn(300, 8, dtype=torch.float64, requires_grad=True)
    q = torch.randn(4, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 8, dtype=torch.float64)
    gq, gx = torch.autograd.grad((stream_update(q, x, 1.3, chunk_size=64) * w).sum(), (q, x))
    rq, rx = torch.autograd.grad((HF.update(q, x, 1.3) * w).sum(), (q, x))
    _close(gq, rq, torch.float64, "grad state")
    _close(gx, rx, torch.float64, "grad patterns")


class _FailingSource:
    """A chunked source whose reader fails after the first chunk (e.g. an I/O error)."""

    dim = 8

    def __len__(self):
        return 100

    def iter_chunks(self, chunk_size):
        yield 0, torch.randn(chunk_size, 8)
        raise OSError("disk went away")


def test_reader_errors_propagate_from_the_prefetch_thread():
    with pytest.raises(OSError, match="disk went away"):
        stream_update(torch.randn(2, 8), _FailingSource(), 1.0, chunk_size=10)


def test_errors():
    x, q = torch.randn(50, 8), torch.randn(3, 8)
    with pytest.raises(ValueError, match="separation must be 'softmax' for streaming"):
        stream_update(q, x, 1.0, separation="sparsemax")
    with pytest.raises(ValueError, match=r"state must have shape \(\.\.\., L, 8\).*got \(3, 7\)"):
        stream_update(torch.randn(3, 7), x, 1.0)
    with pytest.raises(ValueError, match="chunk_size must be >= 1, got 0"):
        stream_update(q, x, 1.0, chunk_size=0)
    with pytest.raises(ValueError, match=r"k must be <= the number of stored patterns \(50\)"):
        stream_topk(q, x, 1.0, 51)
    with pytest.raises(ValueError, match="k must be >= 1"):
        stream_topk(q, x, 1.0, 0)
    with pytest.raises(TypeError, match="source must be a \\(N, D\\) tensor or a PatternStore"):
        stream_update(q, np.zeros((5, 8)), 1.0)
    # finite values whose sum overflows are not mistaken for NaN/inf ...
    out = stream_update(torch.zeros_like(q), torch.full((4, 8), 2e37), 1.0)  # sum 6.4e38
    assert bool(torch.isfinite(out).all())
    # ... but scores that overflow the dtype raise instead of returning NaN (issue 8 item 9)
    with pytest.raises(ValueError, match="overflow"):
        stream_update(q, torch.full((4, 8), 3e38), 1.0)
    with pytest.raises(ValueError, match="source must be finite, got 1 NaN"):
        stream_update(q, torch.full((4, 8), 3e38).index_put_((torch.tensor(2), torch.tensor(5)),
                                                          torch.tensor(float("inf"))), 1.0)
    with pytest.raises(ValueError, match="source must hold at least one pattern"):
        stream_update(q, torch.empty(0, 8), 1.0)
    with pytest.raises(ValueError, match="state must be finite"):
        stream_update(q.masked_fill(q > 1, float("nan")), x, 1.0)
    with pytest.raises(ValueError, match="beta must be > 0"):
        stream_update(q, x, -1.0)
    with pytest.raises(ValueError, match="tol must be a float > 0"):
        stream_retrieve(q, x, 1.0, tol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_states_stream_cpu_store(tmp_path):
    x = torch.randn(1000, 16)
    s = PatternStore.create(tmp_path / "s", dim=16).append(x)
    q = torch.randn(4, 16, device="cuda")
    out = stream_update(q, s, 1.0, chunk_size=300)
    assert out.device.type == "cuda"
    ref, _ = _ref_update(q.cpu(), x, 1.0)
    _close(out.cpu(), ref, torch.float32, "cuda")


def test_zero_queries_return_empty_results():
    # The fused CPU kernel used to abort the process (SIGFPE) on L = 0.
    x = torch.randn(20, 8)
    assert stream_update(torch.empty(0, 8), x, 1.0).shape == (0, 8)
    assert stream_retrieve(torch.empty(0, 8), x, 1.0).shape == (0, 8)
    assert stream_update(torch.empty(2, 0, 8), x, 1.0, chunk_size=7).shape == (2, 0, 8)


def test_zero_d_cpu_beta_with_states_on_another_device():
    """Issue 15 item 1: a 0-d β tensor stays 0-d (a CPU scalar), so the streaming internals accept
    states on another device; `meta` stands in for CUDA."""
    from hopfield import functional as HF
    from hopfield.streaming import _energy_with, _lme, source_pass

    beta = HF._beta_grid(torch.tensor(4.0), (2,))
    assert beta.dim() == 0
    x = torch.randn(100, 8, device="meta")
    q = torch.randn(2, 3, 8, device="meta")
    pass_fn = source_pass(x, beta, 32)
    part, _, _norm = pass_fn(q, 0, True)
    assert part.result(q.dtype).device.type == "meta"
    assert _lme(part, beta, 100, q.dtype).shape == (2, 3)
    assert _energy_with(pass_fn, q, beta, 100).shape == (2, 3)


@pytest.mark.parametrize("beta", [1e-40, 1e-6, 5e-3, 0.5])
def test_stream_energy_and_lse_exact_at_small_beta(beta):
    """Issue 8 item 9 for streaming: the partials' log-sum-exp loses ~eps·log(C)/β, so small β
    uses an exact float64 chunk pass; all β match the float64 in-memory energy."""
    from hopfield import functional as HF
    from hopfield.streaming import stream_lse

    g = torch.Generator().manual_seed(3)
    x, q = torch.randn(300, 8, generator=g), torch.randn(4, 8, generator=g)
    ref = HF.energy(q.double(), x.double(), beta)
    got = stream_energy(q, x, beta, chunk_size=64)
    torch.testing.assert_close(got.double(), ref, atol=2e-4, rtol=1e-5)
    torch.testing.assert_close(stream_lse(q, x, beta, mean=True, chunk_size=64).double(),
                               HF.lse(q.double(), x.double(), beta, mean=True), atol=2e-4,
                               rtol=1e-5)
    _, info = stream_retrieve(q, x, beta, max_steps=2, chunk_size=64, return_info=True)
    _, ref_info = HF.retrieve(q.double(), x.double(), beta, max_steps=2, return_info=True)
    torch.testing.assert_close(info.energy.double(), ref_info.energy, atol=2e-4, rtol=1e-5)


# ----------------------------------------------------------------------------- pinned ring (CUDA path)
# The ring is the host half of the CUDA streaming pipeline (issue 15 item 4); on CPU it runs with
# unpinned buffers, so its ordering, reuse and error paths are tested here.


def _ring_rows(ring):
    rows = {}
    for start, n, i in ring:
        rows[start] = ring.buffers[i][:n].clone()
        ring.release(i)
    return rows


@pytest.mark.parametrize("kind", ["tensor", "store16", "store32"])
def test_pinned_ring_reads_every_chunk_in_order(tmp_path, kind):
    from hopfield._chunk_sources import _PinnedRing

    x = torch.randn(1003, 8)
    if kind == "tensor":
        src, ref = x, x
    else:
        dtype = "float16" if kind == "store16" else "float32"
        src = PatternStore.create(tmp_path / "s", dim=8, dtype=dtype).append(x)
        ref = x.half() if kind == "store16" else x
    ring = _PinnedRing(src, 100, depth=3, pin=False)
    rows = _ring_rows(ring)
    assert sorted(rows) == list(range(0, 1003, 100))
    assert all(b.dtype == ref.dtype for b in ring.buffers)  # cast happens on the device, later
    torch.testing.assert_close(torch.cat([rows[s] for s in sorted(rows)]), ref, rtol=0, atol=0)


def test_pinned_ring_reuses_depth_buffers_and_raises_store_errors(tmp_path):
    from hopfield._chunk_sources import _PinnedRing

    s = PatternStore.create(tmp_path / "s", dim=8).append(torch.randn(1000, 8))
    ring = _PinnedRing(s, 100, depth=2, pin=False)
    used = {i for _, _, i in _released(ring)}
    assert used == {0, 1}
    with open(tmp_path / "s" / DATA_FILE, "r+b") as f:
        f.truncate(300 * 32)
    with pytest.raises(ValueError, match="truncated"):
        list(_released(_PinnedRing(s, 100, depth=2, pin=False)))


def _released(ring):
    for item in ring:
        ring.release(item[2])
        yield item


def test_pinned_ring_stops_its_reader_when_the_consumer_stops():
    from hopfield._chunk_sources import _PinnedRing

    ring = _PinnedRing(torch.randn(10_000, 4), 10, depth=2, pin=False)
    it = iter(ring)
    next(it)
    it.close()  # consumer gave up: the reader thread must not block forever
    ring._thread.join(timeout=5)
    assert not ring._thread.is_alive()


def test_cpu_states_never_take_the_cuda_path(tmp_path, monkeypatch):
    import hopfield._chunk_sources as HS

    def boom(*a, **k):
        raise AssertionError("CUDA pipeline used for CPU states")

    monkeypatch.setattr(HS, "_cuda_chunks", boom)
    x = torch.randn(500, 8)
    s = PatternStore.create(tmp_path / "s", dim=8).append(x)
    q = torch.randn(3, 8)
    torch.testing.assert_close(stream_update(q, s, 1.0, chunk_size=64),
                               stream_update(q, x, 1.0, chunk_size=64))


class _FakeCuda:
    """Stand-ins for torch.cuda streams/events so the CUDA pipeline's ordering logic runs on CPU."""

    class Stream:
        def __init__(self, device=None):
            pass

        def wait_event(self, event):
            pass

    class Event:
        def record(self, stream=None):
            pass

        def synchronize(self):
            pass


@pytest.mark.parametrize("kind", ["tensor", "store16"])
def test_cuda_chunk_pipeline_logic_with_fake_streams(tmp_path, monkeypatch, kind):
    import contextlib

    import hopfield._chunk_sources as HS

    monkeypatch.setattr(torch.cuda, "Stream", _FakeCuda.Stream)
    monkeypatch.setattr(torch.cuda, "Event", _FakeCuda.Event)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: _FakeCuda.Stream())
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.Tensor, "record_stream", lambda self, s: None, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # unpinned ring buffers
    x = torch.randn(1000, 8)
    src = x if kind == "tensor" else PatternStore.create(tmp_path / "s", dim=8,
                                                          dtype="float16").append(x)
    ref = x if kind == "tensor" else x.half()
    like = torch.empty(0, 8, dtype=torch.float64)
    chunks = list(HS._cuda_chunks(src, 64, like))
    assert [s for s, _ in chunks] == list(range(0, 1000, 64))
    assert all(c.dtype == torch.float64 for _, c in chunks)  # cast after the copy
    torch.testing.assert_close(torch.cat([c for _, c in chunks]), ref.double(), rtol=0, atol=0)
