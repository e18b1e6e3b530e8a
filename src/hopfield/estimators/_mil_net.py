"""The MIL network and its member-batched form (used by :mod:`hopfield.estimators.mil`).

:class:`MILNet`: instance embedding -> bag pooling -> linear head, one network.
:class:`_BatchedMILNet`: M MILNets as one batched network (the stacked (M, ...) parameters of
:class:`~hopfield.estimators._ensemble.StackedEnsemble`, every op carrying the member dimension, no
loop over members); the estimators use it for ``n_members`` > 1.

Shape legend: M members, B bags in a batch, N instances (padded), D input features,
E embedding size, H heads, C classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from .._functional_core import _associate
from ._ensemble import StackedEnsemble

__all__ = ["MILNet"]


# ----------------------------------------------------------------------------- network


class MILNet(nn.Module):
    """Instance embedding -> bag pooling -> linear head. ``pooling(h, mask) -> (z (B, P), w|None)``.

    ``forward(x (B, N, D), mask (B, N), return_weights=False) -> logits (B, C)``; padded positions
    are embedded too (one vectorised call; they are masked out by the pooling).
    """

    def __init__(self, n_features: int, n_classes: int, pooling: nn.Module, pooled_size: int, *,
                 embedding_size: int, n_layers: int, dropout: float):
        super().__init__()
        layers, d = [], n_features
        for _ in range(n_layers):
            layers += [nn.Linear(d, embedding_size), nn.ReLU(), nn.Dropout(dropout)]
            d = embedding_size
        self.embed = nn.Sequential(*layers)
        self.pool = pooling
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(pooled_size, n_classes))

    def forward(self, x, mask, return_weights=False):
        h = self.embed(x)                                   # (B, N, E)
        z, w = self.pool(h, mask, return_weights)           # (B, P), (B, H, N) | None
        logits = self.head(z)                               # (B, C)
        return (logits, w) if return_weights else logits


class _HopfieldPool(nn.Module):
    def __init__(self, size, head_size, num_heads, beta, dropout, normalize):
        super().__init__()
        from hopfield.nn import HopfieldPooling
        self.hopfield = HopfieldPooling(size, head_size, size, num_heads, beta=beta,
                                        dropout=dropout,
                                        normalize_state=normalize, normalize_stored=normalize,
                                        normalize_projection=normalize)

    def forward(self, h, mask, return_weights):
        if not return_weights:
            return self.hopfield(h, mask=mask), None
        z, info = self.hopfield(h, mask=mask, return_info=True)
        return z, info.weights.mean(dim=2)                  # (B, H, quantity, N) -> (B, H, N)


# ----------------------------------------------------------------------------- batched members
#
# M MILNets as one network: every op carries the member dimension (one ``baddbmm`` per Linear, one
# LayerNorm / dropout call per layer, the Hopfield retrieval with members folded into the batch),
# no Python loop over members. The parameters are StackedEnsemble's stacked (M, ...) state under
# the same names, so saving, ``member(m)``, ``instance_weights`` and the base loop's per-member
# best-epoch copies are unchanged.


def _linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """Member-wise Linear: x (M, ..., I), w (M, O, I), b (M, O) or None -> (M, ..., O)."""
    flat = x.reshape(x.shape[0], -1, x.shape[-1])                            # (M, T, I)
    out = torch.bmm(flat, w.mT) if b is None else torch.baddbmm(b.unsqueeze(1), flat, w.mT)
    return out.reshape(*x.shape[:-1], w.shape[1])


def _layer_norm(x: torch.Tensor, ln: nn.LayerNorm, w: torch.Tensor | None,
                b: torch.Tensor | None) -> torch.Tensor:
    """Member-wise LayerNorm over the last dim: x (M, ..., E), affine w, b (M, E) or None."""
    out = F.layer_norm(x, ln.normalized_shape, None, None, ln.eps)
    view = (x.shape[0], *([1] * (x.dim() - 2)), x.shape[-1])                 # (M, 1, ..., E)
    if w is not None:
        out = out * w.reshape(view)
    return out if b is None else out + b.reshape(view)


def _sequential(seq: nn.Sequential, prefix: str, p: dict, x: torch.Tensor,
                training: bool) -> torch.Tensor:
    """Linear / ReLU / Dropout stack of a MILNet on member-batched x (M, ..., ·)."""
    for name, mod in seq.named_children():
        if isinstance(mod, nn.Linear):
            x = _linear(x, p[f"{prefix}.{name}.weight"], p.get(f"{prefix}.{name}.bias"))
        elif isinstance(mod, nn.ReLU):
            x = torch.relu(x)
        elif isinstance(mod, nn.Dropout):                  # own mask per member (own elements)
            x = F.dropout(x, mod.p, training)
        else:  # pragma: no cover - _batchable rejects other layers
            raise TypeError(f"no member-batched form of {type(mod).__name__}")
    return x


def _plain_hopfield_pool(pool: nn.Module) -> bool:
    """The _HopfieldPool this module builds: one update, softmax, one query, plain head space."""
    from hopfield.nn import HeadSpace

    if not isinstance(pool, _HopfieldPool):
        return False
    outer = pool.hopfield
    hop = outer.hopfield
    norms = (hop.norm_state, hop.norm_stored, hop.norm_projection)
    return (outer.quantity == 1 and hop.max_steps == 0 and hop.separation.is_softmax
            and hop.head_space == HeadSpace() and hop.association_activation is None
            and hop.out_proj is not None and hop.batch_first
            and all(n is None or len(n.normalized_shape) == 1 for n in norms))


def _batchable(net: nn.Module) -> bool:
    """Whether :class:`_BatchedMILNet` covers ``net``: a MILNet whose embedding and head are
    Linear / ReLU / Dropout (the pooling is batched by hand, folded or vmapped)."""
    if not isinstance(net, MILNet):
        return False
    return all(isinstance(m, (nn.Linear, nn.ReLU, nn.Dropout))
               for seq in (net.embed, net.head) for m in seq.children())


def _fold_affine(w: torch.Tensor, b: torch.Tensor | None, gamma: torch.Tensor | None,
                 beta: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A projection W (M, O, E), b (M, O) after a LayerNorm with affine γ, β (M, E), as one on
    the normalised input x̂: W (x̂ ⊙ γ + β) + b = (W diag γ) x̂ + (W β + b). Saves two passes
    over the instances, and projections of one normalised input share a ``baddbmm``."""
    if beta is not None:
        shift = torch.bmm(w, beta.unsqueeze(-1)).squeeze(-1)                  # (M, O)
        b = shift if b is None else b + shift
    if gamma is not None:
        w = w * gamma.unsqueeze(1)
    return w, b


def _hopfield_pool_members(pool: _HopfieldPool, p: dict, bufs: dict, h: torch.Tensor,
                           mask: torch.Tensor, training: bool, return_weights: bool,
                           unpack=None):
    """HopfieldPooling of M members at once -> z (M, B, O) and weights (M, B, H, N) | None.

    ``h`` is the embedded instances (M, B, N, E), or, with ``unpack``, each member's kept
    instances packed as (M, T, E) (``_BatchedMILNet._embed``) and ``unpack`` puts per-instance
    values (M, T, ·) back at their (M, B·N, ·) positions (zeros at masked ones). ``mask``
    (M, B, N), True = ignore. Per member (``baddbmm``), on the packed instances: the
    LayerNorms (their affine folded into the key / value projections, :func:`_fold_affine`)
    and the projections; the retrieval is the library's core association
    (``_functional_core._associate``: fused SDPA, or the math path for the weights) with the
    members folded into the batch, (M·B, H, 1, Dh). β is folded into the query projection as
    ``hopfield_forward`` does."""
    hop = pool.hopfield.hopfield

    def g(name):
        key = "pool.hopfield." + name
        return p[key] if key in p else bufs.get(key)

    def projection(ln, proj, ln_name):      # (W', b') of Linear(LayerNorm(·)) on x̂
        w, b = g(f"hopfield.{proj}.weight"), g(f"hopfield.{proj}.bias")
        if ln is None:
            return w, b
        return _fold_affine(w, b, g(f"hopfield.{ln_name}.weight"), g(f"hopfield.{ln_name}.bias"))

    def normalized(ln):
        return h if ln is None else F.layer_norm(h, ln.normalized_shape, None, None, ln.eps)

    M, B, N = mask.shape
    H, Dh = hop.num_heads, hop.head_size
    ns, npj = hop.norm_stored, hop.norm_projection
    wk, bk = projection(ns, "k_proj", "norm_stored")
    wv, bv = projection(npj, "v_proj", "norm_projection")
    xk = normalized(ns)
    if (ns is None) == (npj is None) and (ns is None or (
            ns.normalized_shape == npj.normalized_shape and ns.eps == npj.eps)) and (
            (bk is None) == (bv is None)):                   # one normalised input: one baddbmm
        kv = _linear(xk, torch.cat([wk, wv], 1), None if bk is None else torch.cat([bk, bv], 1))
    else:
        kv = torch.cat([_linear(xk, wk, bk), _linear(normalized(npj), wv, bv)], -1)
    if unpack is not None:
        kv = unpack(kv)                                                   # (M, B·N, 2E')
    kv = kv.reshape(M * B, N, -1)
    Ek = wk.shape[1]
    k = kv[..., :Ek].unflatten(-1, (H, Dh)).transpose(1, 2)                  # (M·B, H, N, Dh)
    v = kv[..., Ek:].unflatten(-1, (H, -1)).transpose(1, 2)                  # (M·B, H, N, Dv)
    r = g("query")                                                           # (M, 1, Dq)
    if hop.norm_state is not None:
        r = _layer_norm(r, hop.norm_state, g("hopfield.norm_state.weight"),
                        g("hopfield.norm_state.bias"))
    beta = g("hopfield.log_beta").exp() if hop.learnable_beta else g("hopfield.fixed_beta")
    scale = beta.to(r.dtype).repeat_interleave(Dh, dim=1)                   # (M, H·Dh)
    bq = g("hopfield.q_proj.bias")
    q = _linear(r, g("hopfield.q_proj.weight") * scale.unsqueeze(-1),
                None if bq is None else bq * scale)                         # (M, 1, H·Dh)
    q = q.view(M, 1, H, 1, Dh).expand(M, B, H, 1, Dh).reshape(M * B, H, 1, Dh)
    out, w = _associate(q, k, v, 1.0, mask.reshape(M * B, 1, 1, N), need_weights=return_weights,
                        dropout_p=hop.dropout if training else 0.0)         # (M·B, H, 1, Dv)
    out = out.transpose(1, 2).reshape(M, B, -1)                              # (M, B, H·Dv)
    z = _linear(out, g("hopfield.out_proj.weight"), g("hopfield.out_proj.bias"))  # (M, B, O)
    return z, (None if w is None else w.reshape(M, B, H, N))


class _BatchedMILNet(StackedEnsemble):
    """M :class:`MILNet` members evaluated as one batched network (no loop over members).

    Same stacked state, names and ``member(m)`` as :class:`StackedEnsemble`; only ``forward``
    differs. Embedding and head: one ``baddbmm`` per Linear for all members (on CPU the embedding
    runs on the members' unmasked instances only, :meth:`_embed`). Pooling: Hopfield
    pooling by hand on the core retrieval (:func:`_hopfield_pool_members`); a pooling without
    parameters (mean, max) runs as-is on the members folded into the batch (M·B); any other
    pooling (attention, gated attention) through ``torch.vmap`` over its stacked parameters
    (own randomness per member). Dropout draws its own mask per member.
    """

    def forward(self, x: torch.Tensor, mask: torch.Tensor, return_weights: bool = False):
        """x (M, B, N, D), mask (M, B, N) True = padding -> logits (M, B, C) [, weights]."""
        p, bufs = self._state()
        net = self._base
        h, unpack = self._embed(net.embed, p, x, mask)        # (M, T, E) packed, or (M, B, N, E)
        if _plain_hopfield_pool(net.pool):
            z, w = _hopfield_pool_members(net.pool, p, bufs, h, mask, self.training,
                                          return_weights, unpack)           # (M, B, P)
        else:
            if unpack is not None:
                h = unpack(h).view(*mask.shape, -1)                          # (M, B, N, E)
            z, w = self._pool(net.pool, p, bufs, h, mask, return_weights)
        logits = _sequential(net.head, "head", p, z, self.training)         # (M, B, C)
        return (logits, w) if return_weights else logits

    def _embed(self, embed: nn.Sequential, p: dict, x: torch.Tensor, mask: torch.Tensor):
        """The instance MLP on the members' unmasked instances only (CPU) -> (h, unpack).

        The members' batches are padded to the longest bag of all M·B bags (and bag dropout
        masks more), so on CPU, where reading the count back costs nothing, each member's kept
        instances are gathered into (M, T, D), T = the largest count of one member, and
        embedded: h (M, T, E); ``unpack`` scatters per-instance values (M, T, ·) back to
        (M, B·N, ·) with zeros at the masked positions (which every pooling ignores, so the
        result equals embedding everything). Elsewhere (a host read would sync the device), or
        when nothing is masked, every position is embedded as ``MILNet`` does: h (M, B, N, E),
        ``unpack`` None.
        """
        M, B, N, D = x.shape
        T = B * N
        if x.device.type == "cpu" and B * N > 0:
            keep = ~mask.reshape(M, B * N)                                   # (M, B·N)
            T = int(keep.sum(1).max())
        if T >= B * N:
            return _sequential(embed, "embed", p, x, self.training), None
        # kept positions first (stable: in order), then masked ones; the first T of them, as
        # rows of the flattened (M·B·N, ·) batch (row copies: index_select / index_copy)
        idx = torch.argsort((~keep).to(torch.uint8), dim=1, stable=True)[:, :T]   # (M, T)
        rows = (idx + torch.arange(M, device=x.device).unsqueeze(1) * (B * N)).reshape(-1)
        xp = x.reshape(M * B * N, D).index_select(0, rows).view(M, T, D)      # (M, T, D)

        # (M, T, F) -> (M, B·N, F)
        def unpack(t: torch.Tensor) -> torch.Tensor:
            out = t.new_zeros(M * B * N, t.shape[-1]).index_copy(0, rows, t.reshape(M * T, -1))
            return out.view(M, B * N, -1)

        return _sequential(embed, "embed", p, xp, self.training), unpack

    def _pool(self, pool, p, bufs, h, mask, return_weights):
        if _plain_hopfield_pool(pool):
            return _hopfield_pool_members(pool, p, bufs, h, mask, self.training, return_weights)
        pp = {k[5:]: v for k, v in p.items() if k.startswith("pool.")}
        pb = {k[5:]: v for k, v in bufs.items() if k.startswith("pool.")}
        M, B = h.shape[:2]
        if not pp and not pb:                       # no parameters: members folded into the batch
            z, w = pool(h.flatten(0, 1), mask.flatten(0, 1), return_weights)
            return z.unflatten(0, (M, B)), (None if w is None else w.unflatten(0, (M, B)))

        def one(a, b, hm, mm):
            z, w = functional_call(pool, (a, b), (hm, mm, return_weights))
            return (z, w) if return_weights else z

        out = vmap(one, randomness="different")(pp, pb, h, mask)
        return out if return_weights else (out, None)
