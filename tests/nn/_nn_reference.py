"""Independent float64 reference for the Hopfield layers: explicit loops over heads, plain softmax.

Written from the paper's formulas, sharing no code with hopfield.nn or hopfield.functional.
"""

import torch


def softmax64(s):
    s = s - s.max(dim=-1, keepdim=True).values
    e = s.exp()
    return e / e.sum(dim=-1, keepdim=True)


def naive_hopfield(layer, y, r, v, mask=None, association_mask=None, steps=None):
    """Float64 head-by-head computation of ``layer((y, r, v))`` (batch-first inputs).

    ``steps`` state updates ξ ← softmax(β ξ kᵀ) k are applied (default: layer.max_steps,
    without early stopping). Returns (out (B, L, O), weights (B, H, L, N)).
    """
    d = torch.float64
    y, r, v = y.to(d), r.to(d), v.to(d)
    H, Dh = layer.num_heads, layer.head_size
    steps = layer.max_steps if steps is None else steps
    beta = layer.beta.detach().to(d)
    ign = torch.zeros(r.shape[0], H, r.shape[1], y.shape[1], dtype=torch.bool)
    if mask is not None:
        ign |= mask[:, None, None, :]
    if association_mask is not None:
        am = association_mask if association_mask.dim() == 4 else association_mask[None, None]
        ign |= am

    def lin(x, mod, rows):
        w = mod.weight.detach().to(d)[rows]
        b = mod.bias.detach().to(d)[rows] if mod.bias is not None else 0.0
        return x @ w.T + b

    def ln(x, norm):
        if norm is None:
            return x
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        w, b = norm.weight.detach().to(d), norm.bias.detach().to(d)
        return (x - mu) / (var + norm.eps).sqrt() * w + b

    y, r, v = ln(y, layer.norm_stored), ln(r, layer.norm_state), ln(v, layer.norm_projection)
    heads, weights = [], []
    for h in range(H):
        rows = slice(h * Dh, (h + 1) * Dh)
        q = lin(r, layer.q_proj, rows)
        k, vv = lin(y, layer.k_proj, rows), lin(v, layer.v_proj, rows)
        xi = q
        for _ in range(steps):
            s = (beta[h] * xi @ k.transpose(-1, -2)).masked_fill(ign[:, h], float("-inf"))
            xi = softmax64(s) @ k
        s = (beta[h] * xi @ k.transpose(-1, -2)).masked_fill(ign[:, h], float("-inf"))
        p = softmax64(s)
        weights.append(p)
        heads.append(p @ vv)
    cat = torch.cat(heads, dim=-1)
    out = lin(cat, layer.out_proj, slice(None))
    return out, torch.stack(weights, dim=1)
