"""Sharded retrieval over 2 gloo processes equals single-process retrieval on all patterns."""

from __future__ import annotations

import os
import socket
import traceback

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import hopfield.functional as HF
from hopfield.distributed import ShardedModernHopfield, distributed_lse, distributed_update
from hopfield.memory import NotStoredError

WORLD = 2
N, D, L = 1500, 24, 7
SHARDS = {"uneven": [600, 900], "empty_rank": [0, 1500]}
ATOL = 1e-5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data():
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(N, D, generator=g)
    q = x[:L] + 0.4 * torch.randn(L, D, generator=g)
    return x, q


def _check(name, got, ref, atol=ATOL):
    err = (torch.as_tensor(got).double() - torch.as_tensor(ref).double()).abs().max().item()
    if err > atol:
        raise AssertionError(f"{name}: max |diff| {err:.3g} > {atol:g}")


def _worker(rank: int, port: int, tmp: str, errors) -> None:
    try:
        torch.set_num_threads(1)
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                world_size=WORLD)
        x, q = _data()
        xd, qd = x.double(), q.double()
        beta = 0.6
        ref_p = torch.softmax(beta * qd @ xd.T, -1)  # float64 single-process reference
        for case, sizes in SHARDS.items():
            a = sum(sizes[:rank])
            shard = x[a:a + sizes[rank]]
            _check(f"{case} update", distributed_update(q, shard, beta, chunk_size=256),
                   ref_p @ xd)
            mem = ShardedModernHopfield(beta=beta, max_steps=5, tol=1e-9, chunk_size=256)
            mem.store(shard)
            if (mem.n_patterns_, mem.local_n_, mem.offset_) != (N, sizes[rank], a):
                raise AssertionError(f"{case}: bad bookkeeping {mem!r} offset {mem.offset_}")
            ref_xi = HF.retrieve(qd, xd, beta, max_steps=5, tol=1e-9)
            _check(f"{case} retrieve", mem.retrieve(q), ref_xi, 5e-5)
            w, idx = mem.retrieve_topk(q, 5)
            ref_w, ref_i = ref_p.topk(5, dim=-1)
            if not torch.equal(idx, ref_i):
                raise AssertionError(f"{case} topk indices {idx} != {ref_i}")
            _check(f"{case} topk weights", w, ref_w)
            _check(f"{case} energy", mem.energy(q), HF.energy(qd, xd, beta), 1e-4)
            # lse (issue 14 item 4): sharded == in-memory float64, plain and mean
            _check(f"{case} lse", distributed_lse(q, shard, beta, chunk_size=256),
                   HF.lse(qd, xd, beta), 1e-4)
            _check(f"{case} lse mean", mem.lse(q, mean=True), HF.lse(qd, xd, beta, mean=True),
                   1e-4)
            tiny = ShardedModernHopfield(beta=1e-30, chunk_size=256).store(shard)
            _check(f"{case} energy at beta=1e-30", tiny.energy(q), HF.energy(qd, xd, 1e-30), 1e-4)
            # the same driver: steps/converged mean what they mean in memory
            _, info = mem.retrieve(q, return_info=True)
            _, ref_info = HF.retrieve(qd, xd, beta, max_steps=5, tol=1e-9, return_info=True)
            if not torch.equal(info.steps, ref_info.steps) or info.iterations != 5:
                raise AssertionError(f"{case} info {info.steps} vs {ref_info.steps}")
            _check(f"{case} energy trace", info.energy, ref_info.energy, 1e-4)
        # a PatternStore shard on rank 1, a tensor on rank 0; numpy in -> numpy out
        from hopfield.storage import PatternStore
        if rank == 1:
            local = PatternStore.create(os.path.join(tmp, "shard1"), dim=D).append(x[700:])
        else:
            local = x[:700].numpy()
        mem = ShardedModernHopfield(beta=beta, chunk_size=300).store(local)
        out = mem.update(q.numpy())
        if not isinstance(out, np.ndarray):
            raise AssertionError("numpy in must give numpy out")  # noqa: TRY004 - a check
        _check("store shard update", out, ref_p @ xd)
        w, idx = mem.retrieve_topk(q[0], 3)
        if not torch.equal(torch.as_tensor(idx), ref_p[0].topk(3).indices):
            raise AssertionError("store shard topk")
        dist.barrier()
    except BaseException:
        errors.put(f"rank {rank}:\n{traceback.format_exc()}")
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_two_gloo_processes_match_single_process(tmp_path):
    ctx = mp.get_context("spawn")
    errors = ctx.SimpleQueue()
    try:
        mp.spawn(_worker, args=(_free_port(), str(tmp_path), errors), nprocs=WORLD, join=True)
    except Exception as e:  # noqa: BLE001 - show the child's error, not "process 0 terminated"
        msgs = []
        while not errors.empty():
            msgs.append(errors.get())
        pytest.fail("\n".join(msgs) or str(e))


def test_requires_initialized_process_group():
    if dist.is_initialized():
        pytest.skip("a process group is already initialized in this process")
    with pytest.raises(RuntimeError, match="torch.distributed is not initialized"):
        distributed_update(torch.randn(2, 4), torch.randn(3, 4), 1.0)
    with pytest.raises(RuntimeError, match="init_process_group"):
        ShardedModernHopfield().store(torch.randn(3, 4))


def test_constructor_validates_arguments():
    with pytest.raises(ValueError, match="beta must be > 0"):
        ShardedModernHopfield(beta=0.0)
    with pytest.raises(ValueError, match="tol must be a float > 0"):
        ShardedModernHopfield(tol=-1)
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        ShardedModernHopfield(chunk_size=0)
    with pytest.raises(NotStoredError, match="call store"):
        ShardedModernHopfield().retrieve(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="max_steps must be >= 1, got 0"):  # not the default
        ShardedModernHopfield().retrieve(np.zeros((1, 4)), max_steps=0)
