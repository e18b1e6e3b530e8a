"""A small character-level language model (nanoGPT-style, CPU-sized) on Jane Austen's
*Persuasion* (public domain; the text ships with the library), trained with standard attention
blocks and with Hopfield blocks.

Run:
    python examples/char_lm.py --quick                  # all variants, about 1-2 min per variant on one core
    python examples/char_lm.py --steps 3000             # longer
    python examples/char_lm.py --quick --variants attention hopfield

Variants (every model: token + position embedding, ``--layers`` pre-norm blocks with a causal
mask, final LayerNorm, linear read-out; same width, heads, feed-forward, optimiser, data order
and the same initial weights — the Hopfield blocks are built with
``HopfieldEncoderLayer.from_transformer_layer(torch_block, **extras)``):

    attention        nn.TransformerEncoderLayer (softmax attention)
    hopfield         hopfield.nn.transformer.HopfieldEncoderLayer, one association (max_steps=0):
                     the same function as ``attention`` (a check: the curves should coincide)
    hopfield_steps3  ... with max_steps=3 (three state updates in head space before the read-out)
    hopfield_beta    ... with a learnable β per head (learnable_beta=True)
    hopfield_sparse  ... with separation="sparsemax"

Reports, per variant: validation loss (nats/char) and perplexity on the last 10 % of the text,
training tokens/s, and a generated sample; writes ``results.md``, ``results.json`` and
``loss_curves.png`` to ``--out`` (default ``char_lm_out``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from hopfield.nn.transformer import HopfieldEncoderLayer

VARIANTS = {
    "attention": None,
    "hopfield": {},
    "hopfield_steps3": {"max_steps": 3},
    "hopfield_beta": {"learnable_beta": True},
    "hopfield_sparse": {"separation": "sparsemax"},
}


def load_text() -> str:
    path = resources.files("hopfield.analysis") / "_data" / "persuasion_paragraphs.txt"
    return path.read_text(encoding="utf-8")


class CharLM(nn.Module):
    def __init__(self, vocab: int, block: int, d_model: int, nhead: int, layers: int,
                 dropout: float, hopfield_kwargs: dict | None) -> None:
        super().__init__()
        self.block = block
        self.tok = nn.Embedding(vocab, d_model)
        self.pos = nn.Embedding(block, d_model)
        common = {"dim_feedforward": 4 * d_model, "dropout": dropout, "activation": "gelu",
                  "batch_first": True, "norm_first": True}
        blocks = [nn.TransformerEncoderLayer(d_model, nhead, **common) for _ in range(layers)]
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)
        if hopfield_kwargs is not None:  # same initial weights as the attention variant
            blocks = [HopfieldEncoderLayer.from_transformer_layer(b, **hopfield_kwargs)
                      for b in blocks]
        self.blocks = nn.ModuleList(blocks)
        self.register_buffer("causal", torch.ones(block, block, dtype=torch.bool).triu(1),
                             persistent=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        T = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(T, device=idx.device))
        mask = self.causal[:T, :T]
        for blk in self.blocks:
            x = blk(x, src_mask=mask, is_causal=True)
        return self.head(self.norm(x))

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, n: int, gen: torch.Generator,
                 temperature: float = 0.8) -> torch.Tensor:
        for _ in range(n):
            logits = self(idx[:, -self.block:])[:, -1] / temperature
            nxt = torch.multinomial(logits.softmax(-1), 1, generator=gen)
            idx = torch.cat([idx, nxt], dim=1)
        return idx


def batches(data: torch.Tensor, block: int, batch: int, gen: torch.Generator):
    while True:
        ix = torch.randint(len(data) - block - 1, (batch,), generator=gen)
        x = torch.stack([data[i:i + block] for i in ix.tolist()])
        y = torch.stack([data[i + 1:i + 1 + block] for i in ix.tolist()])
        yield x, y


@torch.no_grad()
def evaluate(model: nn.Module, data: torch.Tensor, block: int, n_batches: int,
             batch: int) -> float:
    """Mean cross-entropy (nats/char) on fixed, evenly spaced windows of ``data``."""
    model.eval()
    starts = torch.linspace(0, len(data) - block - 2, n_batches * batch).long().tolist()
    total = 0.0
    for b in range(n_batches):
        ix = starts[b * batch:(b + 1) * batch]
        x = torch.stack([data[i:i + block] for i in ix])
        y = torch.stack([data[i + 1:i + 1 + block] for i in ix])
        total += F.cross_entropy(model(x).flatten(0, 1), y.flatten()).item()
    model.train()
    return total / n_batches


def run_variant(name: str, args: argparse.Namespace, train: torch.Tensor, val: torch.Tensor,
                vocab: int, itos: list[str], stoi: dict[str, int]) -> dict:
    torch.manual_seed(args.seed)
    model = CharLM(vocab, args.block, args.d_model, args.nhead, args.layers, args.dropout,
                   VARIANTS[name])
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    warm = max(1, args.steps // 10)  # linear warm-up, then cosine decay to 10 %
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) * (
        0.1 + 0.45 * (1 + math.cos(math.pi * min(s, args.steps) / args.steps))))
    gen = torch.Generator().manual_seed(args.seed)
    it = batches(train, args.block, args.batch, gen)
    curve: list[tuple[int, float, float]] = []
    train_time, recent = 0.0, []
    for step in range(1, args.steps + 1):
        x, y = next(it)
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        train_time += time.perf_counter() - t0
        recent.append(loss.item())
        if step % args.eval_every == 0 or step == args.steps:
            v = evaluate(model, val, args.block, args.eval_batches, args.batch)
            curve.append((step, sum(recent) / len(recent), v))
            recent = []
            print(f"  [{name}] step {step:5d}  train {curve[-1][1]:.3f}  val {v:.3f}  "
                  f"({train_time:.0f} s)", flush=True)
    val_loss = evaluate(model, val, args.block, args.eval_batches * 2, args.batch)
    model.eval()
    prompt = torch.tensor([[stoi[c] for c in "Anne"]])
    sample = model.generate(prompt, args.sample_chars,
                            torch.Generator().manual_seed(args.seed))
    extra = {}
    if VARIANTS[name] is not None and VARIANTS[name].get("learnable_beta"):
        extra["beta"] = [[round(float(b), 3) for b in blk.self_attn.beta.detach()]
                         for blk in model.blocks]
    return {"variant": name, "val_loss": val_loss, "perplexity": math.exp(val_loss),
            "tokens_per_s": args.steps * args.batch * args.block / train_time,
            "train_seconds": train_time, "params": sum(p.numel() for p in model.parameters()),
            "curve": curve, "sample": "".join(itos[i] for i in sample[0].tolist()), **extra}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="short run: 500 steps, smaller evaluation (about 1-2 min per variant)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default 2000; "
                   "500 with --quick)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--block", type=int, default=64, help="context length (characters)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--d-model", dest="d_model", type=int, default=64)
    p.add_argument("--nhead", type=int, default=4)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--eval-every", dest="eval_every", type=int, default=None)
    p.add_argument("--sample-chars", dest="sample_chars", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--out", type=Path, default=Path("char_lm_out"))
    args = p.parse_args(argv)
    if args.steps is None:
        args.steps = 500 if args.quick else 2000
    for name in ("steps", "block", "batch", "d_model", "nhead", "layers", "threads",
                 "sample_chars"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.eval_every is None:
        args.eval_every = max(1, args.steps // 10)
    args.eval_batches = 4 if args.quick else 16
    torch.set_num_threads(args.threads)

    text = load_text()
    itos = sorted(set(text))
    stoi = {c: i for i, c in enumerate(itos)}
    data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    n = int(0.9 * len(data))
    train, val = data[:n], data[n:]
    print(f"text: {len(text)} chars, vocab {len(itos)}; train {len(train)}, val {len(val)}; "
          f"{args.steps} steps × {args.batch} × {args.block} chars", flush=True)

    results = []
    for name in args.variants:
        print(f"variant {name}", flush=True)
        results.append(run_variant(name, args, train, val, len(itos), itos, stoi))

    lines = [(f"steps={args.steps} batch={args.batch} block={args.block} "
              f"d_model={args.d_model} nhead={args.nhead} layers={args.layers} lr={args.lr} "
              f"seed={args.seed} threads={args.threads}"), "",
             "| variant | params | val loss (nats/char) | perplexity | train tokens/s |",
             "|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['variant']} | {r['params']} | {r['val_loss']:.3f} | "
                     f"{r['perplexity']:.2f} | {r['tokens_per_s']:.0f} |")
    for r in results:
        lines += ["", f"{r['variant']} sample:", "", "    " + r["sample"].replace("\n", " ")]
        if "beta" in r:
            lines.append(f"    (learned β per head, per block: {r['beta']})")
    report = "\n".join(lines)
    print("\n" + report)

    os.makedirs(args.out, exist_ok=True)
    (args.out / "results.md").write_text(report + "\n", encoding="utf-8")
    (args.out / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no figure")
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in results:
        steps, _, v = zip(*r["curve"])
        ax.plot(steps, v, marker="o", ms=3, label=r["variant"])
    ax.set_xlabel("training step")
    ax.set_ylabel("validation loss (nats/char)")
    ax.set_title("char-level LM on Persuasion")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "loss_curves.png", dpi=120)
    print(f"wrote {args.out}/results.md, results.json, loss_curves.png")


if __name__ == "__main__":
    main()
