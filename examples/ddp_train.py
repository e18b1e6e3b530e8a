"""Train a multiple-instance classifier built on ``hopfield.HopfieldPooling`` with
DistributedDataParallel (gloo on CPU, nccl on GPU).

Run:
    torchrun --nproc-per-node 2 examples/ddp_train.py                 # musk1 (real MIL data)
    torchrun --nproc-per-node 2 examples/ddp_train.py --dataset synthetic
    python examples/ddp_train.py                                      # single process, world 1

Each rank trains on its own slice of the training bags (DistributedSampler); DDP all-reduces the
gradients, so the replicas stay identical (checked at the end). Evaluation is also sharded: each
rank scores its slice of the held-out bags and the counts are summed with all_reduce.

Model: bag (N, D) → Linear(D, E) → ReLU → HopfieldPooling (learned query attends over the
instances; padded instances are masked) → Linear → logit.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler

import hopfield


class BagClassifier(nn.Module):
    def __init__(self, dim: int, emb: int = 64, heads: int = 4) -> None:
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(dim, emb), nn.ReLU())
        self.pool = hopfield.HopfieldPooling(emb, hidden_size=emb // heads, num_heads=heads)
        self.head = nn.Linear(self.pool.output_size, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # x (B, N, D), mask (B, N) True = padding
        return self.head(self.pool(self.embed(x), mask=mask)).squeeze(-1)  # (B,)


def load_bags(name: str, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    if name == "synthetic":  # positive bag = contains at least one instance near a key pattern
        rng = np.random.default_rng(seed)
        key = rng.standard_normal(16)
        bags, y = [], rng.integers(0, 2, 300)
        for label in y:
            bag = rng.standard_normal((int(rng.integers(5, 30)), 16))
            if label:
                bag[rng.integers(len(bag))] = key + 0.3 * rng.standard_normal(16)
            bags.append(bag)
        return bags, y
    from hopfield.datasets import load_mil
    ds = load_mil(name)
    return [np.asarray(b, dtype=np.float64) for b in ds.bags], np.asarray(ds.y)


def collate(batch: list[tuple[np.ndarray, int]]) -> tuple[torch.Tensor, ...]:
    n = max(len(b) for b, _ in batch)
    x = torch.zeros(len(batch), n, batch[0][0].shape[1])
    mask = torch.ones(len(batch), n, dtype=torch.bool)  # True = padding
    for i, (b, _) in enumerate(batch):
        x[i, :len(b)] = torch.from_numpy(b).float()
        mask[i, :len(b)] = False
    return x, mask, torch.tensor([float(y) for _, y in batch])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="musk1", help="a hopfield.datasets MIL name or 'synthetic'")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=8, help="bags per rank per step")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    if "RANK" not in os.environ:  # plain `python ddp_train.py`: a world of one
        os.environ.update(RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT="29517")
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if backend == "nccl"
                          else "cpu")
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)  # same initial weights on every rank (DDP also broadcasts them)

    bags, y = load_bags(args.dataset, args.seed)
    order = np.random.default_rng(args.seed).permutation(len(bags))  # same split on every rank
    n_test = len(bags) // 5
    test_idx, train_idx = order[:n_test], order[n_test:]
    inst = np.concatenate([bags[i] for i in train_idx])
    mu, sd = inst.mean(0), inst.std(0)  # standardise with training statistics only
    sd = np.where(sd < 1e-3, 1.0, sd)  # (near-)constant training features: centre only
    data = [((b - mu) / sd, int(label)) for b, label in zip(bags, y)]
    train = [data[i] for i in train_idx]
    test = [data[i] for i in test_idx]

    sampler = DistributedSampler(train, num_replicas=world, rank=rank, shuffle=True,
                                 seed=args.seed)
    loader = DataLoader(train, batch_size=args.batch_size, sampler=sampler, collate_fn=collate)
    model = BagClassifier(bags[0].shape[1]).to(device)
    ddp = DDP(model, device_ids=[device.index] if backend == "nccl" else None)
    opt = torch.optim.AdamW(ddp.parameters(), lr=args.lr, weight_decay=1e-4)
    loss_fn = nn.BCEWithLogitsLoss()
    if rank == 0:
        print(f"{args.dataset}: {len(train)} train / {len(test)} test bags, "
              f"{bags[0].shape[1]} features; world {world} ({backend})")

    def evaluate(split: list) -> tuple[float, float]:
        model.eval()
        mine = split[rank::world]  # each rank scores its slice; counts are summed
        stats = torch.zeros(3)  # correct, count, summed loss
        with torch.no_grad():
            for i in range(0, len(mine), 32):
                x, mask, t = collate(mine[i:i + 32])
                logit = model(x.to(device), mask.to(device)).cpu()
                stats += torch.tensor([((logit > 0).float() == t).sum().item(), len(t),
                                       nn.functional.binary_cross_entropy_with_logits(
                                           logit, t, reduction="sum").item()])
        dist.all_reduce(stats)
        model.train()
        return float(stats[0] / stats[1]), float(stats[2] / stats[1])

    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        sampler.set_epoch(epoch)
        total = torch.zeros(2)
        for x, mask, t in loader:
            logit = ddp(x.to(device), mask.to(device))
            loss = loss_fn(logit, t.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()  # DDP all-reduces the gradients here
            opt.step()
            total += torch.tensor([loss.item() * len(t), len(t)])
        dist.all_reduce(total)
        if epoch % 10 == 0 or epoch == 1:
            test_acc, test_loss = evaluate(test)
            if rank == 0:
                print(f"epoch {epoch:3d}  train loss {float(total[0] / total[1]):.4f}  "
                      f"test loss {test_loss:.4f}  test acc {test_acc:.3f}  "
                      f"({time.perf_counter() - start:.1f} s)", flush=True)

    # the replicas must be identical after training (same init + all-reduced gradients)
    flat = torch.cat([p.detach().flatten().cpu() for p in model.parameters()])
    spread = flat.clone()
    dist.all_reduce(spread, op=dist.ReduceOp.MAX)
    lo = flat.clone()
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    if rank == 0:
        print(f"max parameter difference between ranks: {float((spread - lo).abs().max()):.3g}")
    del ddp  # release DDP's reducer before the process group goes away
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
