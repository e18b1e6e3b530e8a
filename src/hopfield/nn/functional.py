"""The layers' functional core: :func:`hopfield_forward`, with every weight passed explicitly.

``Hopfield``, ``HopfieldPooling`` and ``HopfieldLayer`` own their parameters and call this function,
as ``torch.nn.MultiheadAttention`` calls ``torch.nn.functional.multi_head_attention_forward``.

Shape legend:
    B  batch (an input with batch size 1 is shared by the whole batch)
    L  state patterns (queries)   N  stored patterns (keys)   H  heads
    Dh per-head size (``head_size``), E = H * Dh
    Dq, Dk, Dv  feature sizes of the state / stored / projection inputs;  O  output size

Plain-math reference for one head h (Ramsauer et al. 2020, eq. 10; one transformer attention head)::

    q = R W_qᵀ + b_q        (L, Dh)   state patterns R projected
    k = Y W_kᵀ + b_k        (N, Dh)   stored patterns Y projected
    v = V W_vᵀ + b_v        (N, Dh)   pattern projections V projected
    ξ = q;  repeat max_steps times (stop once every ‖Δξ‖ < tol):  ξ ← sep(β_h ξ kᵀ) k
    head_h = sep(β_h ξ kᵀ) v            (L, Dh)
    out = concat_h(head_h) W_oᵀ + b_o   (L, O)

Masked stored patterns get weight exactly 0; a state that a mask blocks from every stored pattern
gets zero weights and a zero ``head_h`` (so ``out`` is ``b_o`` there), on every path.

Paths. With softmax and ``return_info=False`` every association runs through
:func:`torch.nn.functional.scaled_dot_product_attention` (no B×H×L×N matrix): β is folded into the
query projection (one step) or into the projected keys (several steps), so SDPA runs with
``scale=1``. Otherwise the math path materialises the association weights. Both paths fold β into
the state before the dot product, and half-precision inputs (float16, bfloat16) are associated and
iterated in float32 (then cast back), so both paths give the same output.

Argument checks (weights, inputs, masks, per-head β / steps, results) are in
:mod:`hopfield.nn._checks`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .. import functional as HF
from .._driver import iterate
from .._validation import (
    check_positive_int,
    check_probability,
    is_compiling,
)
from ..separations import Separation, get_separation
from ._checks import (
    _WEIGHT_NAMES,
    _check_beta,
    _check_head_norm,
    _check_inputs,
    _check_weights,
    _split_float_mask,
    _Weights,
    batch_size,
    check_result,
    check_steps,
)
from ._inputs import check_bool, check_masks, combine_masks
from .info import HopfieldInfo

__all__ = ["hopfield_forward"]


def hopfield_forward(
    stored: torch.Tensor,
    state: torch.Tensor,
    projection: torch.Tensor,
    *,
    num_heads: int,
    beta: float | torch.Tensor,
    q_proj_weight: torch.Tensor,
    k_proj_weight: torch.Tensor,
    v_proj_weight: torch.Tensor,
    out_proj_weight: torch.Tensor | None,
    q_proj_bias: torch.Tensor | None = None,
    k_proj_bias: torch.Tensor | None = None,
    v_proj_bias: torch.Tensor | None = None,
    out_proj_bias: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    association_mask: torch.Tensor | None = None,
    separation: str | Separation = "softmax",
    dropout_p: float = 0.0,
    training: bool = True,
    max_steps: int | None | Sequence[int] = 0,
    tol: float | Sequence[float] = 1e-4,
    return_info: bool = False,
    check_input: bool = True,
    head_norm: tuple[torch.Tensor | None, torch.Tensor | None, float] | None = None,
    add_zero: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, HopfieldInfo]:
    """Multi-head Hopfield association of state patterns with stored patterns (batch-first).

    Args:
        stored: Y (B, N, Dk), the stored patterns (keys).
        state: R (B, L, Dq), the state patterns (queries).
        projection: V (B, N, Dv), the pattern projections (values). Any of the three may have
            batch size 1 (shared by the batch). Pass the same tensor object twice (or three
            times) to get one fused projection matmul, as for self-association.
        num_heads: H; the q/k projections have E = H * Dh rows, the v projection H * Dv' rows
            (Dv' = value size per head, ``pattern_size``; Dh by default).
        beta: inverse temperature β > 0: a float, a 0-d tensor or an (H,) tensor (one per head;
            it may require grad).
        q_proj_weight, k_proj_weight, v_proj_weight: (E, Dq), (E, Dk), (E, Dv).
        out_proj_weight: (O, H * Dv'), or None for no output projection (out = the heads
            concatenated, (B, L, H * Dv')).
        q_proj_bias, k_proj_bias, v_proj_bias, out_proj_bias: (E,), (E,), (E,), (O,) or None.
        mask: bool (B, N), True = ignore that stored pattern (``key_padding_mask`` convention).
            Every batch element must keep at least one stored pattern.
        association_mask: bool (L, N), (B·H, L, N) (PyTorch's 3-D ``attn_mask`` layout) or
            4-D broadcastable to (B, H, L, N), True = ignore; or a float mask of those shapes,
            added to the β-scaled scores (-inf = ignore; math path, no energy in the info).
            A state it blocks from every stored pattern gets zero weights and a zero retrieval.
        separation: ``"softmax"`` (default), ``"sparsemax"``, ``"entmax"`` or a Separation.
        dropout_p: dropout probability on the association weights, applied when ``training``.
        training: apply dropout (as in ``multi_head_attention_forward``).
        max_steps: head-space state updates ξ ← sep(β ξ kᵀ) k before the read-out (0 = one
            association, i.e. attention); ``None`` = until every state moved less than ``tol``
            (at most ``MAX_STEPS_UNTIL_CONVERGED`` steps; not under torch.compile / vmap); or
            one int (or None) per head (a sequence or tensor of length H): head h stops after
            its own count (the others go on).
        tol: stop updating once every state moved less than ``tol`` (L2 norm); or one float
            per head: a head stops (for that batch element) once all its states moved less
            than its ``tol``.
        return_info: also return a :class:`~hopfield.nn.HopfieldInfo` from this same pass.
        head_norm: ``(weight, bias, eps)``: LayerNorm over each head's Dh features applied to
            the projected states and stored patterns before the association (hflayers'
            ``normalize_hopfield_space``); weight/bias (Dh,) or None. None = no LayerNorm.
        add_zero: append one all-zero stored pattern (key and value) per head after the
            projection, never masked (hflayers' ``add_zero_association``); info weights then
            have N + 1 columns.
        check_input: validate every argument and, after the pass, that inputs and output are
            finite (one host sync). Set False only when the caller has validated (the layers
            do, with their own argument names).

    Returns:
        out (B, L, O); with ``return_info=True`` the pair ``(out, info)``.

    Raises:
        TypeError / ValueError naming the argument, the expectation and what was found; a
        ``ValueError`` also when an input is NaN/inf or so large that the association overflows.
    """
    if check_input:
        H = check_positive_int(num_heads, "num_heads")
        w = _check_weights(H, q_proj_weight, k_proj_weight, v_proj_weight, out_proj_weight,
                           q_proj_bias, k_proj_bias, v_proj_bias, out_proj_bias)
        y, r, v = _check_inputs(stored, state, projection, w)
        beta = _check_beta(beta, H)
        sep = get_separation(separation)
        dropout_p = check_probability(dropout_p, "dropout_p")
        training = check_bool(training, "training")
        max_steps, tol = check_steps(max_steps, tol, H)
        return_info = check_bool(return_info, "return_info")
        B = batch_size(y, r, v)
        check_masks(mask, association_mask, (B, H, r.shape[1], y.shape[1]))
        add_zero = check_bool(add_zero, "add_zero")
        if head_norm is not None:
            _check_head_norm(head_norm, w.wq.shape[0] // H, w.wq.dtype)
    else:
        H, y, r, v = num_heads, stored, state, projection
        w = _Weights(q_proj_weight, q_proj_bias, k_proj_weight, k_proj_bias, v_proj_weight,
                     v_proj_bias, out_proj_weight, out_proj_bias)
        sep = get_separation(separation)
    if not isinstance(beta, torch.Tensor):
        beta = torch.full((H,), float(beta), dtype=r.dtype, device=r.device)
    elif beta.dim() == 0:
        beta = beta.expand(H)
    bias = None
    if association_mask is not None and association_mask.is_floating_point():
        association_mask, bias = _split_float_mask(association_mask, H)
    ignore = combine_masks(mask, association_mask, H)
    out, info = _forward(y, r, v, w, H, beta, ignore, sep, dropout_p if training else 0.0,
                         max_steps, tol, return_info, head_norm, add_zero, bias)
    if check_input:
        named = {"stored": y, "state": r, "projection": v}
        weights = {n: t for n, t in zip(_WEIGHT_NAMES, w) if t is not None}
        check_result(out, named, {**weights, "beta": beta}, mask)
    return (out, info) if return_info else out


# ----------------------------------------------------------------------------- the computation


def _forward(
    y: torch.Tensor, r: torch.Tensor, v: torch.Tensor, w: _Weights, H: int, beta: torch.Tensor,
    ignore: torch.Tensor | None, sep: Separation, p: float, max_steps: int, tol: float,
    return_info: bool, head_norm: tuple | None = None, add_zero: bool = False,
    bias: torch.Tensor | None = None,
) -> tuple[torch.Tensor, HopfieldInfo | None]:
    """Unchecked core on batch-first inputs; ``beta`` (H,), ``ignore`` bool (B|1, H|1, L|1, N)."""
    B, L, N = batch_size(y, r, v), r.shape[1], y.shape[1]
    E = w.wq.shape[0]
    Dh = E // H
    cdt = torch.promote_types(r.dtype, torch.float32)  # float32 for float16 / bfloat16
    if B == 0 or L == 0:  # nothing to associate: empty output (and info) of the right shapes
        return _empty(r, w, B, H, L, N, cdt, sep, max_steps, beta, return_info)
    fused = sep.is_softmax and not return_info and bias is None  # float masks: math path
    allow = None if ignore is None else ~ignore
    if fused and max_steps == 0 and head_norm is None and not add_zero:
        # the hot path: β folded into W_q, one SDPA call
        q, k, v = _project(y, r, v, w, H, Dh, beta.to(r.dtype).repeat_interleave(Dh))
        q, k, v = (t.expand(B, *t.shape[1:]) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allow, dropout_p=p, scale=1.0)
        return _out(out, w), None  # (B, L, O)

    q, k, v = _project(y, r, v, w, H, Dh, None)
    q, k, v = (t.expand(B, *t.shape[1:]).to(cdt) for t in (q, k, v))  # (B, H, ·, Dh)
    if head_norm is not None:  # LayerNorm in head space (shared by the heads), before β
        hw, hb, heps = head_norm
        hw, hb = (None if t is None else t.to(cdt) for t in (hw, hb))
        q = F.layer_norm(q, (Dh,), hw, hb, heps)
        k = F.layer_norm(k, (Dh,), hw, hb, heps)
    if add_zero:  # one all-zero stored pattern per head, visible to every state
        k = torch.cat([k, k.new_zeros(B, H, 1, Dh)], dim=2)
        v = torch.cat([v, v.new_zeros(B, H, 1, v.shape[-1])], dim=2)
        if ignore is not None:
            ignore = torch.cat([ignore, ignore.new_zeros(*ignore.shape[:-1], 1)], dim=-1)
            allow = ~ignore
        if bias is not None:
            bias = torch.cat([bias, bias.new_zeros(*bias.shape[:-1], 1)], dim=-1)
    if bias is not None:
        bias = bias.to(cdt)
    bgrid = beta.to(cdt).view(-1, 1, 1)  # (H, 1, 1)
    dead = None if ignore is None or fused else ignore.all(dim=-1, keepdim=True)
    # β·K: the updates stay fused (SDPA, scale=1)
    kb = k * bgrid if sep.is_softmax and bias is None else None

    def step(xi: torch.Tensor, need_energy: bool) -> tuple[torch.Tensor, None]:
        if kb is not None:  # ξ ← softmax(β ξ Kᵀ) K in head space
            return F.scaled_dot_product_attention(xi, kb, k, attn_mask=allow, scale=1.0), None
        return _math(xi, k, k, bgrid, ignore, dead, sep, bias=bias)[0], None

    cap, tol_all = max_steps, tol
    if max_steps is None or not isinstance(max_steps, int) or not isinstance(tol, float):
        step, cap, tol_all = _per_head(step, max_steps, tol, H, r, B)
    track = return_info and sep.is_softmax and bias is None  # no energy with additive masks
    # the one retrieval driver, in the layers' mode: all states step together, the early exit
    # (all converged) is skipped under torch.compile / vmap, gradients flow through every step
    xi, rinfo = iterate(step, q, max_steps=cap, tol=tol_all, freeze=False,
                        energy=(lambda s: _energy(s, k, bgrid, ignore, dead)) if track else None,
                        need_energy=track)
    if fused:
        out = F.scaled_dot_product_attention(xi, kb, v, attn_mask=allow, dropout_p=p, scale=1.0)
        weights = None
    else:
        out, weights = _math(xi, k, v, bgrid, ignore, dead, sep, bias=bias,
                             need_weights=return_info,
                             dropout_p=p)
    out = _out(out.to(r.dtype), w)  # (B, L, O)
    if not return_info:
        return out, None
    info = HopfieldInfo(weights=weights, steps=rinfo.iterations,
                        converged=rinfo.converged if max_steps != 0 else None,
                        energy=rinfo.energy,
                        beta=beta.detach())
    return out, info


#: ``max_steps=None`` iterates until every state moved less than ``tol``, at most this many steps.
MAX_STEPS_UNTIL_CONVERGED = 10_000


def _per_head(step, max_steps, tol, H: int, r: torch.Tensor, B: int):
    """Wrap ``step`` for ``max_steps=None`` and per-head ``max_steps`` / ``tol`` (no host sync):
    each (batch element, head) keeps its state once it used up its steps or once all its states
    moved less than its tol (that last update is kept). Returns (step, driver max_steps, tol)."""
    if max_steps is None or (not isinstance(max_steps, int) and None in max_steps):
        if is_compiling() or torch._C._functorch.is_batchedtensor(r):
            raise ValueError("max_steps=None (iterate until converged) needs a data-dependent "
                             "stop and cannot run under torch.compile or vmap; give an int")
        cap, limit = MAX_STEPS_UNTIL_CONVERGED, None
        if max_steps is not None:
            limit = torch.tensor([MAX_STEPS_UNTIL_CONVERGED if t is None else t
                                  for t in max_steps], device=r.device).view(H, 1, 1)
    elif isinstance(max_steps, int):
        cap, limit = max_steps, None
    else:
        cap = max(max_steps)
        limit = torch.tensor(max_steps, device=r.device).view(H, 1, 1)  # (H, 1, 1)
    tols = (tol,) * H if isinstance(tol, float) else tol
    tol_all = min(tols)
    tol_h = torch.tensor(tols, device=r.device, dtype=torch.float64).view(1, H, 1)  # (1, H, 1)
    count, frozen = [0], [None]  # (B, H, 1, 1) heads that met their own tol

    def wrapped(xi: torch.Tensor, need_energy: bool) -> tuple[torch.Tensor, None]:
        new, _ = step(xi, need_energy)
        count[0] += 1
        keep = None if limit is None else (count[0] > limit)  # (H, 1, 1)
        if frozen[0] is not None:
            keep = frozen[0] if keep is None else keep | frozen[0]
        moved = (new.detach() - xi.detach()).norm(dim=-1)  # (B, H, L)
        done = (moved < tol_h.to(moved.dtype)).all(dim=-1)[..., None, None]  # (B, H, 1, 1)
        frozen[0] = done if frozen[0] is None else frozen[0] | done
        return (new if keep is None else torch.where(keep, xi, new)), None

    return wrapped, cap, tol_all


def _project(y: torch.Tensor, r: torch.Tensor, v: torch.Tensor, w: _Weights, H: int, Dh: int,
             q_scale: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Project (Y, R, V) into heads (B, H, ·, Dh); one fused matmul when the inputs coincide."""
    wq, bq = w.wq, w.bq
    if q_scale is not None:  # fold β into the query projection (per head rows)
        wq = wq * q_scale[:, None]
        bq = bq * q_scale if bq is not None else None
    biased = bq is not None and w.bk is not None and w.bv is not None
    if w.wv.shape[0] != w.wk.shape[0]:  # value size per head != head size: no fused matmul
        return (_heads(F.linear(r, wq, bq), H, Dh), _heads(F.linear(y, w.wk, w.bk), H, Dh),
                _heads(F.linear(v, w.wv, w.bv), H, -1))
    if r is y and y is v:  # self-association: one (B, L, 3E) matmul like nn.MultiheadAttention
        b = torch.cat([bq, w.bk, w.bv]) if biased else None
        if b is not None or (bq is None and w.bk is None and w.bv is None):
            qkv = F.linear(r, torch.cat([wq, w.wk, w.wv]), b)  # (B, L, 3E)
            q, k, v = qkv.unflatten(-1, (3, H, Dh)).permute(2, 0, 3, 1, 4).unbind(0)
            return q, k, v  # 3 × (B, H, L, Dh)
    q = _heads(F.linear(r, wq, bq), H, Dh)  # (B, H, L, Dh)
    if y is v and (w.bk is None) == (w.bv is None):  # stored patterns are their own projections
        b = torch.cat([w.bk, w.bv]) if w.bk is not None else None
        kv = F.linear(y, torch.cat([w.wk, w.wv]), b)
        k, v = kv.unflatten(-1, (2, H, Dh)).permute(2, 0, 3, 1, 4).unbind(0)
        return q, k, v  # + 2 × (B, H, N, Dh)
    return q, _heads(F.linear(y, w.wk, w.bk), H, Dh), _heads(F.linear(v, w.wv, w.bv), H, Dh)


def _out(heads: torch.Tensor, w: _Weights) -> torch.Tensor:
    """(B, H, L, Dv') → concatenated heads (B, L, H·Dv'), then the output projection if any."""
    out = heads.transpose(1, 2).flatten(2)
    return out if w.wo is None else F.linear(out, w.wo, w.bo)


def _heads(x: torch.Tensor, H: int, Dh: int) -> torch.Tensor:
    """(B, T, E) → (B, H, T, Dh) view."""
    return x.unflatten(-1, (H, Dh)).transpose(1, 2)


def _math(xi: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bgrid: torch.Tensor,
          ignore: torch.Tensor | None, dead: torch.Tensor | None, sep: Separation,
          need_weights: bool = False, dropout_p: float = 0.0, bias: torch.Tensor | None = None,
          ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``sep(β ξ kᵀ) v`` with the weights materialised; rows in ``dead`` get zero weights."""
    scores = (xi * bgrid) @ k.mT  # (B, H, L, N); β folded into ξ as on the fused path
    if bias is not None:  # additive float association mask, added after β (as in PyTorch)
        scores = scores + bias
    if ignore is not None:
        scores = scores.masked_fill(ignore, float("-inf"))
    if dead is not None:  # a state that sees no stored pattern: zero weights, not NaN
        weights = sep(scores.masked_fill(dead, 0.0)).masked_fill(dead, 0.0)
    else:
        weights = sep(scores)
    attn = F.dropout(weights, p=dropout_p) if dropout_p > 0 else weights
    return attn @ v, (weights if need_weights else None)


def _energy(xi: torch.Tensor, k: torch.Tensor, bgrid: torch.Tensor,
            ignore: torch.Tensor | None, dead: torch.Tensor | None) -> torch.Tensor:
    """(B, H, L) modern Hopfield energy of the head-space states; ½‖ξ‖² for a state that sees no
    stored pattern (the terms over patterns vanish)."""
    e = HF._energy(xi, k, bgrid, ignore)
    if dead is not None:
        e = torch.where(dead.squeeze(-1), 0.5 * (xi * xi).sum(-1), e)
    return e


def _empty(r: torch.Tensor, w: _Weights, B: int, H: int, L: int, N: int, cdt: torch.dtype,
           sep: Separation, max_steps: int, beta: torch.Tensor, return_info: bool,
           ) -> tuple[torch.Tensor, HopfieldInfo | None]:
    out = _out(r.new_zeros(B, H, L, w.wv.shape[0] // H), w)  # (B, L, O), empty
    if not return_info:
        return out, None
    info = HopfieldInfo(
        weights=r.new_zeros(B, H, L, N, dtype=cdt), steps=0,
        converged=r.new_zeros(B, H, L, dtype=torch.bool) if max_steps != 0 else None,
        energy=r.new_zeros(1, B, H, L, dtype=cdt) if sep.is_softmax else None,
        beta=beta.detach())
    return out, info
