"""Suite ``transformer``: a Hopfield encoder block next to ``nn.TransformerEncoderLayer``.

Cases (B batch, L sequence length, d_model, nhead, dim_feedforward): ``encoder L=…`` runs
``nn.TransformerEncoderLayer`` (peer ``torch``) and ``hopfield.nn.HopfieldEncoderLayer`` built from
it with :meth:`~hopfield.nn.HopfieldEncoderLayer.from_transformer_layer` (peer ``hopfield``: the
same weights, so both compute the same function), in training mode (dropout 0.1, as torch's
default), batch-first, post-norm. ``encoder causal L=…`` adds a causal ``src_mask``
(``is_causal=True``). One iteration = forward + ``out.sum().backward()`` with an input that
requires grad.

Targets (issue 12): time and peak memory of ``hopfield`` ≤ 1.1× ``torch`` at L = 128 and 1024.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ._core import Bench, Case, Ratio, Unavailable

__all__ = ["DEVICES", "build_layer", "cases", "setup"]

DEVICES = ("cpu", "cuda")


def cases(quick: bool) -> list[Case]:
    B, D, H, F = (2, 64, 4, 256) if quick else (4, 256, 8, 1024)
    sizes = (64, 256) if quick else (128, 1024)
    out = []
    for causal in (False, True):
        for n in sizes:
            name = f"encoder{' causal' if causal else ''} L={n}"
            out.append(Case(
                "transformer", name,
                {"B": B, "L": n, "d_model": D, "nhead": H, "dim_feedforward": F,
                 "causal": causal},
                ("torch", "hopfield"),
                (Ratio("hopfield", "torch", "time", 1.1),
                 Ratio("hopfield", "torch", "memory", 1.1))))
    return out


def _torch_layer(cfg: dict[str, Any]) -> nn.TransformerEncoderLayer:
    torch.manual_seed(0)  # both peers start from the same weights
    return nn.TransformerEncoderLayer(cfg["d_model"], cfg["nhead"], cfg["dim_feedforward"],
                                      batch_first=True)


def build_layer(cfg: dict[str, Any], peer: str) -> nn.Module:
    """The block of ``peer`` (``"torch"`` or ``"hopfield"``, the same weights), training mode."""
    layer: nn.Module = _torch_layer(cfg)
    if peer == "hopfield":
        try:
            from hopfield.nn import HopfieldEncoderLayer
        except (ImportError, AttributeError) as err:
            raise Unavailable(f"HopfieldEncoderLayer is not importable ({err})") from None
        layer = HopfieldEncoderLayer.from_transformer_layer(layer)
    elif peer != "torch":
        raise ValueError(f"unknown peer {peer!r} for suite transformer")
    return layer.train()


def setup(cfg: dict[str, Any], peer: str) -> Bench:
    device = cfg.get("device", "cpu")
    layer = build_layer(cfg, peer).to(device)
    L = cfg["L"]
    x = torch.randn(cfg["B"], L, cfg["d_model"]).to(device).requires_grad_()
    mask = nn.Transformer.generate_square_subsequent_mask(L, device=x.device) \
        if cfg.get("causal") else None

    def step() -> None:
        out = layer(x, src_mask=mask, is_causal=mask is not None)
        out.sum().backward()
        x.grad = None

    return Bench(step, {"params": sum(p.numel() for p in layer.parameters())})
