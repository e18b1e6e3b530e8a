"""Suite ``steps``: cost of multi-step updates, forward + backward.

``hopfield.Hopfield(max_steps=3)`` vs the same layer with one update (target ≤ 4× time:
three extra head-space updates ξ ← softmax(β ξ Kᵀ) K plus the final association should cost about
4 fused attention calls). The convergence tolerance is set to 1e-12 so that all three steps really
run (the steps taken are reported). The materialised peer (hflayers-style) is shown with 1 and 3
steps for comparison.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ._core import Bench, Case, Ratio, Unavailable
from .layers import MATERIALISE_BUDGET, build_hopfield
from .peers import MaterializedAttention, weights_bytes

__all__ = ["DEVICES", "cases", "setup"]

DEVICES = ("cpu", "cuda")

EPS = 1e-12


def cases(quick: bool) -> list[Case]:
    B, n = (4, 128) if quick else (32, 1024)
    cfg = {"B": B, "L": n, "N": n, "D": 64, "H": 4}
    return [Case("steps", f"L=N={n}", cfg,
                 ("hopfield_1", "hopfield_3", "materialised_1", "materialised_3"),
                 (Ratio("hopfield_3", "hopfield_1", "time", 4.0),
                  Ratio("hopfield_3", "hopfield_1", "memory"),
                  Ratio("materialised_3", "materialised_1", "time"),
                  Ratio("hopfield_3", "materialised_3", "time")))]


def _hopfield(cfg: dict[str, Any], steps: int) -> nn.Module:
    return build_hopfield(cfg["D"], cfg["H"], max_steps=steps, tol=EPS)


def _steps_taken(model: nn.Module, x: torch.Tensor) -> Any:
    """Steps the layer actually ran (from ``return_info``; not part of the timing)."""
    try:
        with torch.no_grad():
            _, info = model(x[:1], return_info=True)
    except Exception:  # noqa: BLE001 - informational only
        return None
    steps = getattr(info, "steps", None)
    if isinstance(steps, torch.Tensor):
        return float(steps.float().mean())
    return steps


def setup(cfg: dict[str, Any], peer: str) -> Bench:
    kind, steps = peer.rsplit("_", 1)
    n_extra = 0 if steps == "1" else int(steps)  # max_steps: extra head-space updates
    device = cfg.get("device", "cpu")
    x = torch.randn(cfg["B"], cfg["L"], cfg["D"]).to(device).requires_grad_()
    info: dict[str, Any] = {}
    if kind == "hopfield":
        model = _hopfield(cfg, n_extra).to(device)
        taken = _steps_taken(model, x)
        if taken is not None:
            info["steps_taken"] = taken
    else:
        need = 3 * weights_bytes(cfg["B"], cfg["H"], cfg["L"], cfg["N"])
        if need > MATERIALISE_BUDGET:
            raise Unavailable(f"would hold ~{need / 1024**3:.0f} GiB of association matrices")
        model = MaterializedAttention(cfg["D"], cfg["H"], n_extra, EPS).to(device)

    def step() -> None:
        out = model(x)
        (out[0] if isinstance(out, tuple) else out).sum().backward()
        x.grad = None

    return Bench(step, info)
