"""One repertoire's sequences sharded over 2 gloo processes: the pooled decision is exact."""

from __future__ import annotations

import socket
import traceback

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from hopfield.repertoire import DeepRCClassifier, Repertoire, simulate_repertoires

WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _slice(rep: Repertoire, a: int, b: int):
    return Repertoire.from_sequences(rep.sequences(a, b), np.asarray(rep.counts[a:b]))


def _worker(rank: int, port: int, model: str, errors) -> None:
    try:
        torch.set_num_threads(1)
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                world_size=WORLD)
        clf = DeepRCClassifier.load(model)
        rep = simulate_repertoires(2, 900, 0.05, seed=7).repertoires[1]
        ref = float(clf.decision_function([rep])[0])
        for bounds in ([0, 350, 900], [0, 0, 900]):  # uneven, and an empty rank
            a, b = bounds[rank], bounds[rank + 1]
            local = _slice(rep, a, b) if b > a else []
            got = float(clf.set_params(chunk_size=128).decision_function_sharded(local))
            if abs(got - ref) > 1e-4 * max(1.0, abs(ref)):
                raise AssertionError(f"shards {bounds}: {got} != {ref}")
        dist.barrier()
    except BaseException:
        errors.put(f"rank {rank}:\n{traceback.format_exc()}")
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.mark.slow  # two spawned processes importing torch: ~15-30 s on a loaded machine
def test_sharded_inference_matches_single_process(tmp_path):
    ds = simulate_repertoires(8, 100, 0.05, seed=0)
    clf = DeepRCClassifier(max_iter=1, pretrain_steps=2, random_state=0, early_stopping=False)
    clf.fit(ds.repertoires, ds.y).save(tmp_path / "model")
    ctx = mp.get_context("spawn")
    errors = ctx.SimpleQueue()
    try:
        mp.spawn(_worker, args=(_free_port(), str(tmp_path / "model"), errors), nprocs=WORLD,
                 join=True)
    except Exception as e:  # noqa: BLE001 - show the child's error, not "process 0 terminated"
        msgs = []
        while not errors.empty():
            msgs.append(errors.get())
        pytest.fail("\n".join(msgs) or str(e))


def test_sharded_requires_process_group(tmp_path):
    if dist.is_initialized():
        pytest.skip("a process group is already initialized in this process")
    ds = simulate_repertoires(4, 30, 0.1, seed=0)
    clf = DeepRCClassifier(max_iter=1, pretrain_steps=1, random_state=0,
                           early_stopping=False).fit(ds.repertoires, ds.y)
    with pytest.raises(RuntimeError, match="not initialized"):
        clf.decision_function_sharded(ds.repertoires[0])
