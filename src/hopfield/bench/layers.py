"""Suite ``layers``: forward + backward of the Hopfield layers next to PyTorch's attention.

Cases (B batch, L states, N stored, D embedding, H heads; self-association has L = N):

- ``self L=N=…``: ``hopfield.Hopfield`` (one update, softmax) vs ``nn.MultiheadAttention``
  (``need_weights=False``, the fused SDPA path) vs
  :class:`~hopfield.bench.peers.MaterializedAttention` (the reference package's explicit
  (B, H, L, N) association matrix). Targets: time and peak memory ≤ 1.1× MultiheadAttention.
- ``pooling N=…``: ``HopfieldPooling`` (one learned query) vs MultiheadAttention with a learned
  query.
- ``lookup L=…``: ``HopfieldLayer`` (learned stored patterns) vs MultiheadAttention whose keys and
  values are the same number of learned patterns.

One iteration = forward, ``out.sum().backward()`` (the input requires grad; parameter gradients
accumulate, so the measured peak is activations + temporaries). With ``--device cuda`` the models
and inputs live on the GPU.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ._core import Bench, Case, Ratio, Unavailable
from .peers import MaterializedAttention, weights_bytes

__all__ = ["DEVICES", "build_hopfield", "cases", "setup"]

DEVICES = ("cpu", "cuda")

#: the materialised peer is skipped when its association matrices (weights, softmax output and
#: their gradients, ~3 live copies) would exceed this many bytes on the shared machine.
MATERIALISE_BUDGET = 6 * 1024**3


def cases(quick: bool) -> list[Case]:
    B, D, H = (4, 64, 4) if quick else (32, 64, 4)
    sizes = (64, 256) if quick else (128, 1024, 4096)
    out = []
    for n in sizes:
        out.append(Case(
            "layers", f"self L=N={n}", {"kind": "self", "B": B, "L": n, "N": n, "D": D, "H": H},
            ("mha", "hopfield", "materialised"),
            (Ratio("hopfield", "mha", "time", 1.1), Ratio("hopfield", "mha", "memory", 1.1),
             Ratio("materialised", "mha", "time"), Ratio("materialised", "mha", "memory")),
            max_repeats=3 if n >= 4096 else None))
    n = 256 if quick else 1024
    out.append(Case("layers", f"pooling N={n}", {"kind": "pooling", "B": B, "L": 1, "N": n, "D": D,
                                                 "H": H},
                    ("mha_pooling", "hopfield_pooling"),
                    (Ratio("hopfield_pooling", "mha_pooling", "time"),
                     Ratio("hopfield_pooling", "mha_pooling", "memory"))))
    q = 64 if quick else 256
    out.append(Case("layers", f"lookup L={n} quantity={q}",
                    {"kind": "lookup", "B": B, "L": n, "N": q, "D": D, "H": H},
                    ("mha_lookup", "hopfield_layer"),
                    (Ratio("hopfield_layer", "mha_lookup", "time"),
                     Ratio("hopfield_layer", "mha_lookup", "memory"))))
    return out


def build_hopfield(dim: int, heads: int, **kwargs: Any) -> nn.Module:
    """``hopfield.Hopfield(dim, num_heads=heads)``: the same projections and β as
    ``nn.MultiheadAttention(dim, heads)`` (head size dim // heads, β = 1/√(dim // heads))."""
    try:
        from hopfield import Hopfield
    except (ImportError, AttributeError) as err:
        raise Unavailable(f"hopfield.Hopfield is not importable ({err})") from None
    return Hopfield(dim, num_heads=heads, **kwargs)


class _LearnedQueryAttention(nn.Module):
    """MultiheadAttention peer of pooling (learned queries) and lookup (learned keys = values)."""

    def __init__(self, dim: int, heads: int, n_learned: int, learned_is_query: bool) -> None:
        super().__init__()
        self.mha = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.learned = nn.Parameter(torch.randn(1, n_learned, dim) * dim**-0.5)
        self.learned_is_query = learned_is_query

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.learned.expand(x.shape[0], -1, -1)
        if self.learned_is_query:
            return self.mha(p, x, x, need_weights=False)[0]
        return self.mha(x, p, p, need_weights=False)[0]


def _model(cfg: dict[str, Any], peer: str) -> nn.Module:
    D, H = cfg["D"], cfg["H"]
    if peer == "mha":
        return nn.MultiheadAttention(D, H, batch_first=True)
    if peer == "hopfield":
        return build_hopfield(D, H)
    if peer == "materialised":
        need = 3 * weights_bytes(cfg["B"], H, cfg["L"], cfg["N"])
        if need > MATERIALISE_BUDGET:
            raise Unavailable(f"would hold ~{need / 1024**3:.0f} GiB of (B, H, L, N) association "
                              f"matrices (> {MATERIALISE_BUDGET / 1024**3:.0f} GiB budget)")
        return MaterializedAttention(D, H, cfg.get("steps", 0))
    if peer in ("mha_pooling", "mha_lookup"):
        return _LearnedQueryAttention(D, H, cfg["L"] if peer == "mha_pooling" else cfg["N"],
                                      learned_is_query=peer == "mha_pooling")
    try:
        import hopfield

        if peer == "hopfield_pooling":
            return hopfield.HopfieldPooling(D, num_heads=H, quantity=cfg["L"])
        if peer == "hopfield_layer":
            return hopfield.HopfieldLayer(D, num_heads=H, quantity=cfg["N"])
    except (ImportError, AttributeError) as err:
        raise Unavailable(f"{peer} is not importable ({err})") from None
    raise ValueError(f"unknown peer {peer!r} for suite layers")


def _forward(model: nn.Module, x: torch.Tensor, peer: str) -> torch.Tensor:
    if peer == "mha":
        return model(x, x, x, need_weights=False)[0]
    out = model(x)
    return out[0] if isinstance(out, tuple) else out


def setup(cfg: dict[str, Any], peer: str) -> Bench:
    device = cfg.get("device", "cpu")
    model = _model(cfg, peer).to(device)
    n_in = cfg["N"] if cfg["kind"] == "pooling" else cfg["L"]
    x = torch.randn(cfg["B"], n_in, cfg["D"]).to(device).requires_grad_()

    def step() -> None:
        _forward(model, x, peer).sum().backward()
        x.grad = None

    return Bench(step, {"params": sum(p.numel() for p in model.parameters())})
