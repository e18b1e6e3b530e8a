"""GPU readiness (issue 15). On a machine with a GPU, run this module FIRST:

    python -m pytest -q -p no:randomly tests/test_gpu_cuda.py

The tests marked ``cuda`` are skipped cleanly without CUDA (nothing here was run on a GPU when
they were written: no GPU was reachable). TF32 is switched off for the module so CPU↔CUDA
parity tolerances mean what they say. The tests at the end run on every machine: the ``meta``
device (no data, any host read raises) stands in for CUDA to catch device-mismatch and
host-sync bugs of the same classes.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

import hopfield
import hopfield.functional as HF
import hopfield.streaming as HS
from hopfield import ModernHopfield
from hopfield.nn import Hopfield
from hopfield.storage import PatternStore

HAS_CUDA = torch.cuda.is_available()
cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA (run this module first on a GPU machine)")
DEV = "cuda"


@pytest.fixture(autouse=True, scope="module")
def _no_tf32():
    if not HAS_CUDA:
        yield
        return
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


TOL = {torch.float64: {"rtol": 1e-10, "atol": 1e-10}, torch.float32: {"rtol": 1e-4, "atol": 1e-5},
       torch.bfloat16: {"rtol": 3e-2, "atol": 3e-2}, torch.float16: {"rtol": 5e-3, "atol": 5e-3}}


def _close(a, b, dtype=torch.float32):
    torch.testing.assert_close(a.detach().cpu().double(), b.detach().cpu().double(), **TOL[dtype])


def _data(dtype=torch.float32, n=64, d=16, l=5, b=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    lead = () if b is None else (b,)
    x = torch.randn(*lead, n, d, generator=g, dtype=torch.float64).to(dtype)
    s = torch.randn(*lead, l, d, generator=g, dtype=torch.float64).to(dtype)
    return s, x


def _betas(lead, device):
    """Every kind of β: float, numpy scalar, 0-d CPU tensor (a scalar for device checks), 0-d
    tensor on the device, per-batch tensor on the device."""
    yield "float", 2.0
    yield "numpy", np.float32(2.0)
    yield "0d-cpu", torch.tensor(2.0)
    yield "0d-dev", torch.tensor(2.0, device=device)
    if lead:
        yield "per-batch", torch.linspace(1.0, 3.0, lead[0], device=device)


def _masks(lead, l, n, device):
    yield "none", None
    m = torch.zeros(n, dtype=torch.bool)
    m[::3] = True
    yield "(N,)", m.to(device)
    full = torch.rand(*lead, l, n, generator=torch.Generator().manual_seed(1)) < 0.3
    full[..., 0] = False  # every state sees at least one pattern
    yield "(..., L, N)", full.to(device)


# ----------------------------------------------------------------------------- core parity


@cuda
@pytest.mark.parametrize("lead", [None, 3])
@pytest.mark.parametrize("op", ["update", "retrieve", "energy", "lse"])
def test_core_cpu_cuda_parity_every_beta_and_mask(op, lead):
    s, x = _data(torch.float64, b=lead)
    lead_t = () if lead is None else (lead,)
    for bname, beta in _betas(lead_t, DEV):
        beta_cpu = beta.cpu() if isinstance(beta, torch.Tensor) else beta
        for mname, mask in _masks(lead_t, s.shape[-2], x.shape[-2], DEV):
            mask_cpu = None if mask is None else mask.cpu()
            fn = {"update": lambda *a, **k: HF.update(*a, **k),
                  "retrieve": lambda st, p, b, mask=None: HF.retrieve(st, p, b, max_steps=5, mask=mask),
                  "energy": HF.energy, "lse": HF.lse}[op]
            out = fn(s.to(DEV), x.to(DEV), beta, mask=mask)
            ref = fn(s, x, beta_cpu, mask=mask_cpu)
            assert out.device.type == "cuda", (bname, mname)
            _close(out, ref, torch.float64)


@cuda
def test_modern_hopfield_and_streaming_on_cuda_with_tensor_beta(tmp_path):
    s, x = _data()
    for beta in (2.0, torch.tensor(2.0), torch.tensor(2.0, device=DEV)):
        m = ModernHopfield(beta=beta).store(x.to(DEV))
        out = m.retrieve(s.to(DEV))
        assert out.device.type == "cuda"
        _close(out, ModernHopfield(beta=2.0).store(x).retrieve(s))
        _close(HS.stream_update(s.to(DEV), x, beta, chunk_size=10), HF.update(s, x, 2.0))


# ----------------------------------------------------------------------------- layers


@cuda
@pytest.mark.parametrize("return_info", [False, True])
def test_layer_forward_backward_parity(return_info):
    torch.manual_seed(0)
    cpu = Hopfield(input_size=16, num_heads=2).double()
    dev = Hopfield(input_size=16, num_heads=2).double()
    dev.load_state_dict(cpu.state_dict())
    dev = dev.to(DEV)
    x = torch.randn(3, 7, 16, dtype=torch.float64, requires_grad=True)
    xd = x.detach().to(DEV).requires_grad_()
    mask = torch.zeros(3, 7, dtype=torch.bool)
    mask[:, -2:] = True
    out_c = cpu(x, mask=mask, return_info=return_info)
    out_d = dev(xd, mask=mask.to(DEV), return_info=return_info)
    if return_info:
        (out_c, info_c), (out_d, info_d) = out_c, out_d
        _close(info_d.weights, info_c.weights, torch.float64)
    _close(out_d, out_c, torch.float64)
    out_c.square().sum().backward()
    out_d.square().sum().backward()
    _close(xd.grad, x.grad, torch.float64)
    for (name, p), q in zip(cpu.named_parameters(), dev.parameters()):
        _close(q.grad, p.grad, torch.float64)


@cuda
def test_layer_from_attention_on_cuda():
    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(16, 2, batch_first=True).to(DEV)
    layer = Hopfield.from_attention(mha).to(DEV)
    x = torch.randn(2, 5, 16, device=DEV)
    _close(layer(x), mha(x, x, x, need_weights=False)[0])


@cuda
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_layer_flash_kernel_and_math_path_agree(dtype):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    torch.manual_seed(0)
    layer = Hopfield(input_size=64, num_heads=2).to(DEV, dtype)
    x = torch.randn(2, 9, 64, device=DEV, dtype=dtype)
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):  # main path, no mask: flash must accept it
        fused = layer(x)
    out_info, _ = layer(x, return_info=True)  # math path (scores in float32)
    _close(out_info, fused, dtype)
    ref = Hopfield(input_size=64, num_heads=2).double().to(DEV)
    ref.load_state_dict({k: v.double() for k, v in layer.state_dict().items()})
    _close(fused, ref(x.double()), dtype)


@cuda
def test_masked_and_fp32_layers_run_on_the_efficient_kernel():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    torch.manual_seed(0)
    layer = Hopfield(input_size=32, num_heads=2).to(DEV)
    x = torch.randn(2, 9, 32, device=DEV)
    mask = torch.zeros(2, 9, dtype=torch.bool, device=DEV)
    mask[:, -3:] = True
    ref_masked, ref = layer(x, mask=mask), layer(x)
    with sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION]):  # raises if the call needs another kernel
        _close(layer(x, mask=mask), ref_masked)
        _close(layer(x), ref)


@cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_overflow_case(dtype):
    """|q·x| > 65504: float16 scores would be inf; the core computes them in float32."""
    g = torch.Generator().manual_seed(0)
    x = (300 * torch.randn(32, 64, generator=g)).to(DEV, dtype)
    s = (300 * torch.randn(4, 64, generator=g)).to(DEV, dtype)
    out = HF.update(s, x, 1.0)
    assert bool(torch.isfinite(out).all())
    _close(out, HF.update(s.double(), x.double(), 1.0), dtype)
    e = HF.energy(s, x, 1.0)
    assert e.dtype == torch.float32 and bool(torch.isfinite(e).all())


# ----------------------------------------------------------------------------- host syncs


@contextlib.contextmanager
def _sync_debug_error():
    old = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(old)


@cuda
def test_no_sync_in_a_training_step_and_a_retrieve_with_validation_off():
    torch.manual_seed(0)
    layer = Hopfield(input_size=32, num_heads=2).to(DEV)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    x = torch.randn(4, 9, 32, device=DEV)
    mem = ModernHopfield(beta=2.0).store(torch.randn(100, 32, device=DEV))
    q = torch.randn(8, 32, device=DEV)
    with hopfield.validation(False):
        layer(x).sum().backward()  # warm-up (lazy init, caches)
        mem.retrieve(q, max_steps=1)
        torch.cuda.synchronize()
        with _sync_debug_error():
            opt.zero_grad()
            layer(x).square().mean().backward()
            opt.step()
            mem.retrieve(q, max_steps=1)
            HF.update(q, mem.patterns_, 2.0)


# ----------------------------------------------------------------------------- streaming


@cuda
@pytest.mark.parametrize("source", ["cuda-tensor", "cpu-tensor", "store16", "store32"])
def test_streaming_sources_to_cuda_states_with_a_peak_memory_bound(tmp_path, source):
    g = torch.Generator().manual_seed(0)
    n, d, chunk = 100_000, 64, 2_048
    x = torch.randn(n, d, generator=g)
    q = torch.randn(16, d, generator=g)
    if source == "cuda-tensor":
        src, ref_x = x.to(DEV), x
    elif source == "cpu-tensor":
        src, ref_x = x, x
    else:
        dtype = "float16" if source == "store16" else "float32"
        src = PatternStore.create(tmp_path / "s", dim=d, dtype=dtype).append(x)
        ref_x = x.half().float() if source == "store16" else x
    qd = q.to(DEV)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    out = HS.stream_update(qd, src, 1.0, chunk_size=chunk)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    _close(out, HF.update(q.double(), ref_x.double(), 1.0))
    # a few chunks in flight (ring depth 3 + one ahead) plus the scores; never all N rows copied
    bound = 8 * chunk * d * 4 + 8 * 16 * chunk * 4
    if source != "cuda-tensor":
        assert peak < bound < n * d * 4, (peak, bound)


@cuda
def test_streaming_gradients_reach_cpu_patterns_from_cuda_states():
    """A CPU source that requires grad keeps the differentiable copy path (not the pinned ring)."""
    s, x = _data(torch.float64)
    x.requires_grad_()
    HS.stream_update(s.to(DEV), x, 1.3, chunk_size=10).sum().backward()
    x2 = x.detach().clone().requires_grad_()
    HF.update(s, x2, 1.3).sum().backward()
    _close(x.grad, x2.grad, torch.float64)


# ----------------------------------------------------------------------------- estimators


@cuda
def test_estimator_fit_on_cuda_save_and_load_on_cpu(tmp_path):
    from sklearn.datasets import make_classification

    from hopfield.estimators import HopfieldClassifier

    X, y = make_classification(200, 8, random_state=0)
    clf = HopfieldClassifier(device="cuda", max_iter=3, random_state=0).fit(X, y)
    clf.save(tmp_path / "m")
    loaded = HopfieldClassifier.load(tmp_path / "m", device="cpu")
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- NCCL


@cuda
@pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_nccl_available()),
                    reason="needs NCCL")
def test_nccl_sharded_modern_hopfield_world_size_one(tmp_path):
    import torch.distributed as dist

    from hopfield.distributed import ShardedModernHopfield

    torch.cuda.set_device(0)
    dist.init_process_group("nccl", init_method=f"file://{tmp_path / 'rdv'}", rank=0, world_size=1)
    try:
        s, x = _data()
        mem = ShardedModernHopfield(beta=2.0).store(x)  # CPU shard: queries moved to CUDA
        out = mem.retrieve(s.numpy())  # numpy queries come back as numpy
        assert isinstance(out, np.ndarray)
        _close(torch.from_numpy(out), HF.retrieve(s, x, 2.0))
        _close(mem.update(s.to(DEV)), HF.update(s, x, 2.0))
    finally:
        dist.destroy_process_group()


# ----------------------------------------------------------------------------- CPU stand-ins (run everywhere)
# The meta device has no data: any host read (bool/item/tolist) raises, and mixing it with a
# non-scalar CPU tensor raises a device mismatch, as CUDA would.

M = "meta"


_META_OPS = {
    "update": lambda s, x, b, m: HF.update(s, x, b, mask=m),
    "update info": lambda s, x, b, m: HF.update(s, x, b, mask=m, return_info=True)[0],
    "retrieve(1)": lambda s, x, b, m: HF.retrieve(s, x, b, max_steps=1, mask=m),
    "energy": lambda s, x, b, m: HF.energy(s, x, b, mask=m),
    "lse": lambda s, x, b, m: HF.lse(s, x, b, mask=m),
    "sparsemax": lambda s, x, b, m: HF.update(s, x, b, mask=m, separation="sparsemax"),
}


@pytest.mark.parametrize("lead", [(), (3,)])
def test_core_on_meta_with_every_beta_and_mask_when_validation_is_off(lead):
    x = torch.randn(*lead, 40, 8, device=M)
    s = torch.randn(*lead, 5, 8, device=M)
    with hopfield.validation(False):
        for bname, beta in _betas(lead, M):
            for mname, mask in _masks(lead, 5, 40, M):
                for name, fn in _META_OPS.items():
                    assert fn(s, x, beta, mask).device.type == "meta", (name, bname, mname)


def test_memory_and_streaming_on_meta_when_validation_is_off():
    x = torch.randn(100, 8, device=M)
    q = torch.randn(4, 8, device=M)
    with hopfield.validation(False):
        for beta in (2.0, torch.tensor(2.0)):
            mem = ModernHopfield(beta=beta).store(x)
            assert mem.retrieve(q, max_steps=1).device.type == "meta"
            assert mem.update(q).device.type == "meta"
            assert mem.add(x).energy(q).device.type == "meta"
            assert ModernHopfield(beta=beta, chunk_size=16).store(x).update(q).device.type == "meta"
            assert HS.stream_update(q, x, beta, chunk_size=16).device.type == "meta"


def test_layer_on_meta_when_validation_is_off():
    layer = Hopfield(input_size=8, num_heads=2).to(M)
    x = torch.randn(2, 5, 8, device=M)
    with hopfield.validation(False):
        assert layer(x).device.type == "meta"
        out, info = layer(x, return_info=True)
        assert out.device.type == "meta" and info.weights.device.type == "meta"


def test_cpu_streaming_never_builds_the_cuda_pipeline(monkeypatch, tmp_path):
    """The pinned/side-stream path is for CUDA states only."""
    monkeypatch.setattr(hopfield._chunk_sources, "_PinnedRing", None)  # any use: TypeError
    x = torch.randn(300, 8)
    store = PatternStore.create(tmp_path / "s", dim=8).append(x)
    q = torch.randn(2, 8)
    HS.stream_update(q, store, 1.0, chunk_size=64)
    HS.stream_update(q, x, 1.0, chunk_size=64)
