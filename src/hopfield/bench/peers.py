"""Reference peers the benchmarks compare against, and suite ``hflayers`` (the real package).

``MaterializedAttention`` is an **in-house stand-in**, not the reference package: a minimal
re-implementation of how ``hflayers`` (ml-jku/hopfield-layers) computes a Hopfield association:
sequence-first projections as in torch 1.6's ``multi_head_attention_forward``, then an explicit
(B·H, L, N) association matrix built with ``bmm``, softmax, and ``bmm`` with the values — repeated
for every update step, with the per-head convergence test on ``‖ξ_new − ξ_old‖``. It shows what
materialising the weights costs next to the fused path. It is cheaper than the real package with
update steps (measured by a user: its 3-step cost 3.9× one step vs hflayers' 17×), so its numbers
must not be read as hflayers'.

Suite ``hflayers`` (``hopfield bench --peers hflayers``) runs the **real** ``hflayers.Hopfield``
when it is importable, side by side with ``hopfield.Hopfield`` and the stand-in, with 0 and 3
update steps. Every peer name says which one it is. hflayers is not on PyPI; without it the real
peer is reported as skipped with the install command (:data:`INSTALL`), and
``hopfield bench --peers hflayers`` stops before running anything (exit code 3).

Shape legend: B batch, L state patterns, N stored patterns, D embedding, H heads, Dh = D / H.
"""

from __future__ import annotations

import importlib
import math
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._core import Bench, Case, Ratio, Unavailable

__all__ = ["INSTALL", "KNOWN_PEERS", "MaterializedAttention", "cases", "missing_peer", "setup",
           "weights_bytes"]

#: external peers ``hopfield bench --peers`` knows → how to install each (none is on PyPI).
KNOWN_PEERS: dict[str, str] = {
    "hflayers": "pip install git+https://github.com/ml-jku/hopfield-layers",
}
INSTALL = KNOWN_PEERS["hflayers"]


def weights_bytes(batch: int, heads: int, length: int, stored: int, itemsize: int = 4) -> int:
    """Bytes of one (B, H, L, N) association matrix."""
    return batch * heads * length * stored * itemsize


class MaterializedAttention(nn.Module):
    """Self-association with the association matrix materialised, hflayers-style.

    Args:
        embed_dim: D, split over ``num_heads`` heads.
        num_heads: H.
        max_steps: extra update steps ξ ← softmax(β ξ Kᵀ) K before the final association
            with the values (0 = one step, the attention case).
        tol: a head stops updating once ‖ξ_new − ξ_old‖ < tol.

    The old names ``update_steps_max`` / ``update_steps_eps`` are accepted with a
    ``FutureWarning`` for one release.
    """

    def __init__(self, embed_dim: int, num_heads: int, max_steps: int = 0, tol: float = 1e-4,
                 **deprecated: Any) -> None:
        super().__init__()
        for old, new in (("update_steps_max", "max_steps"), ("update_steps_eps", "tol")):
            if old in deprecated:
                warnings.warn(f"MaterializedAttention: {old} is deprecated, use {new}",
                              FutureWarning, stacklevel=2)
                if new == "max_steps":
                    max_steps = deprecated.pop(old)
                else:
                    tol = deprecated.pop(old)
        if deprecated:
            raise TypeError("MaterializedAttention got unexpected keyword arguments "
                            f"{sorted(deprecated)}")
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim must be divisible by num_heads ({num_heads}), got "
                             f"{embed_dim}")
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.max_steps = max_steps
        self.tol = tol
        self.in_proj = nn.Linear(embed_dim, 3 * embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, L, D) → (output (B, L, D), association weights (B, H, L, N))."""
        x = x.transpose(0, 1)  # (L, B, D): the reference works sequence-first
        length, batch, dim = x.shape
        h, dh = self.num_heads, self.head_dim
        beta = 1.0 / math.sqrt(dh)
        q, k, v = self.in_proj(x).chunk(3, dim=-1)  # (L, B, D) each
        q = q.contiguous().view(length, batch * h, dh).transpose(0, 1)  # (B·H, L, Dh)
        k = k.contiguous().view(-1, batch * h, dh).transpose(0, 1)  # (B·H, N, Dh)
        v = v.contiguous().view(-1, batch * h, dh).transpose(0, 1)  # (B·H, N, Dh)
        xi = q
        active = torch.ones(batch * h, 1, 1, dtype=torch.bool, device=x.device)
        for step in range(self.max_steps + 1):
            weights = F.softmax(torch.bmm(xi * beta, k.transpose(1, 2)), dim=-1)  # (B·H, L, N)
            if step == self.max_steps:
                break
            xi_new = torch.bmm(weights, k)  # (B·H, L, Dh)
            delta = (xi_new - xi).norm(dim=(1, 2), keepdim=True)  # (B·H, 1, 1)
            xi = torch.where(active, xi_new, xi)
            active = active & (delta >= self.tol)
            if not bool(active.any()):
                weights = F.softmax(torch.bmm(xi * beta, k.transpose(1, 2)), dim=-1)
                break
        out = torch.bmm(weights, v)  # (B·H, L, Dh)
        out = out.transpose(0, 1).contiguous().view(length, batch, dim)  # (L, B, D)
        out = self.out_proj(out).transpose(0, 1)  # (B, L, D)
        return out, weights.view(batch, h, length, -1)


# ----------------------------------------------------------------------------- suite ``hflayers``

DEVICES = ("cpu", "cuda")

#: the update steps compared (``max_steps`` / hflayers' ``update_steps_max``)
STEPS = (0, 3)
#: tolerance small enough that every step runs in all three implementations
EPS = 1e-12
#: peers are skipped when ~this many bytes of (B, H, L, N) matrices would be live
BUDGET = 6 * 1024**3

REAL, OURS, STAND_IN = "hflayers (real package)", "hopfield", "stand-in (in-house, not hflayers)"


def peer_name(kind: str, steps: int) -> str:
    """The peer label of ``kind`` (:data:`REAL`, :data:`OURS`, :data:`STAND_IN`) at ``steps``."""
    return f"{kind}, steps={steps}"


def missing_peer(name: str) -> str | None:
    """None if external peer ``name`` is importable, else a message: what is missing and how to
    install it. ``ValueError`` for a name not in :data:`KNOWN_PEERS`."""
    if name not in KNOWN_PEERS:
        raise ValueError(f"peer must be one of {', '.join(KNOWN_PEERS)}, got {name!r}")
    try:
        importlib.import_module(name)
    except ImportError as err:
        return (f"the reference package {name!r} is not importable ({err}). It is not on PyPI; "
                f"install it into this environment with:\n    {KNOWN_PEERS[name]}\nthen run the "
                f"command again")
    return None


def cases(quick: bool) -> list[Case]:
    B, sizes = (4, (64, 256)) if quick else (8, (256, 1024))
    peers = tuple(peer_name(k, s) for s in STEPS for k in (REAL, OURS, STAND_IN))
    out = []
    for n in sizes:
        ratios = []
        for s in STEPS:
            ratios += [Ratio(peer_name(OURS, s), peer_name(REAL, s), "time"),
                       Ratio(peer_name(OURS, s), peer_name(REAL, s), "memory"),
                       Ratio(peer_name(STAND_IN, s), peer_name(REAL, s), "time"),
                       Ratio(peer_name(STAND_IN, s), peer_name(REAL, s), "memory")]
        for k in (REAL, OURS, STAND_IN):
            ratios.append(Ratio(peer_name(k, STEPS[1]), peer_name(k, STEPS[0]), "time"))
        out.append(Case("hflayers", f"self L=N={n}",
                        {"B": B, "L": n, "N": n, "D": 64, "H": 4}, peers, tuple(ratios)))
    return out


def build_hflayers(dim: int, heads: int, steps: int) -> nn.Module:
    """The real ``hflayers.Hopfield`` configured as plain multi-head self-association (no input
    LayerNorms, as ``hopfield.Hopfield``'s default), batch-first, ``steps`` update steps."""
    try:
        hflayers = importlib.import_module("hflayers")
    except ImportError as err:
        raise Unavailable(f"hflayers is not importable ({err}); install: {INSTALL}") from None
    return hflayers.Hopfield(
        input_size=dim, num_heads=heads, update_steps_max=steps, update_steps_eps=EPS,
        normalize_stored_pattern=False, normalize_stored_pattern_affine=False,
        normalize_state_pattern=False, normalize_state_pattern_affine=False,
        normalize_pattern_projection=False, normalize_pattern_projection_affine=False,
        batch_first=True)


def setup(cfg: dict[str, Any], peer: str) -> Bench:
    kind, _, steps_s = peer.rpartition(", steps=")
    if kind not in (REAL, OURS, STAND_IN) or not steps_s.isdigit():
        raise ValueError(f"unknown peer {peer!r} for suite hflayers")
    steps = int(steps_s)
    B, L, N, D, H = (cfg[k] for k in ("B", "L", "N", "D", "H"))
    device = cfg.get("device", "cpu")
    if kind != OURS:
        need = 3 * (steps + 1) * weights_bytes(B, H, L, N)
        if need > BUDGET:
            raise Unavailable(f"would hold ~{need / 1024**3:.1f} GiB of (B, H, L, N) association "
                              f"matrices (> {BUDGET / 1024**3:.0f} GiB budget)")
    if kind == REAL:
        model = build_hflayers(D, H, steps)
    elif kind == OURS:
        from .layers import build_hopfield

        model = build_hopfield(D, H, max_steps=steps, tol=EPS)
    else:
        model = MaterializedAttention(D, H, steps, EPS)
    model = model.to(device)
    x = torch.randn(B, L, D).to(device).requires_grad_()

    def step() -> None:
        out = model(x)
        (out[0] if isinstance(out, tuple) else out).sum().backward()
        x.grad = None

    info = {"implementation": "in-house stand-in" if kind == STAND_IN else
            ("hflayers " + str(getattr(importlib.import_module("hflayers"), "__version__", "?"))
             if kind == REAL else "hopfield")}
    return Bench(step, info)
