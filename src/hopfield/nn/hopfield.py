"""The ``Hopfield`` layer: multi-head association of state patterns with stored patterns.

Shape legend:
    B  batch                      H   heads (``num_heads``)
    L  state patterns (queries)   Dh  per-head size (``head_size``), E = H * Dh
    N  stored patterns (keys)     Dq, Dk, Dv  feature sizes of state / stored / projection inputs

The module owns the projections, the LayerNorms and β; the association itself is
:func:`hopfield.nn.functional.hopfield_forward`, which holds the plain-math reference and the
fused / math paths (as ``nn.MultiheadAttention`` over ``F.multi_head_attention_forward``). The
option groups (``Norm``, ``HeadSpace``), renamed keywords and β initialisation are in
:mod:`hopfield.nn._options`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from .._validation import check_positive_int, check_probability
from ..separations import Separation, get_separation
from ._inputs import check_bool, check_masks, split_input
from ._options import (
    _DEFAULTS,
    RENAMED,
    HeadSpace,
    Norm,
    _activation,
    _deprecated_attribute,
    _init_beta,
    _layer_norm,
    reject_forward_kwargs,
    renamed_kwargs,
)
from .functional import batch_size, check_result, check_steps, hopfield_forward
from .info import HopfieldInfo

__all__ = ["HeadSpace", "Hopfield", "Norm"]


class Hopfield(nn.Module):
    """Multi-head modern Hopfield layer (heteroassociation; self-association with one tensor).

    Args:
        input_size: Dq, feature size of the state patterns R (and of Y, V unless given).
        head_size: Dh, per-head size of the association space (default input_size // num_heads).
        output_size: size of the output (default input_size).
        num_heads: H.
        stored_pattern_size: Dk of the stored patterns Y (default input_size).
        pattern_projection_size: Dv of the pattern projections V (default input_size).
        pattern_size: per-head size of the projected values (default head_size); the heads
            concatenated have num_heads * pattern_size features.
        out_projection: False = no output projection: the output is the concatenated heads
            (num_heads * pattern_size features; ``output_size`` must then be None or that).
        beta: inverse temperature. ``None`` → 1/sqrt(Dh) (transformer scaling); a float; or a
            tensor of shape (H,), one β per head.
        learnable_beta: learn β per head (stored as ``log_beta`` so it stays positive).
        max_steps: number of state updates in head space before the read-out
            (0 = one association, like attention); ``None`` = until every state moved less
            than ``tol``; or one int per head (head h stops after ``max_steps[h]`` updates).
        tol: stop updating once every state moved less than this (L2 norm); or one float per
            head (a head stops once all its states moved less than its ``tol``).
        normalize_state, normalize_stored, normalize_projection: LayerNorm on the R, Y, V
            inputs: ``True`` (affine, eps 1e-5) or a :class:`Norm` (``Norm(affine=False,
            eps=1e-3)``; hflayers' ``normalize_*_affine`` / ``normalize_*_eps``).
        separation: ``"softmax"`` (default), ``"sparsemax"``, ``"entmax"`` or a Separation.
        dropout: dropout probability on the association weights (training only).
        bias: biases in the four projections.
        batch_first: inputs and output are (B, T, D); otherwise (T, B, D).
        association_activation: applied to the output: a ``torch`` function name (``"tanh"``,
            as in hflayers) or a callable; ``None`` = none.
        head_space: a :class:`HeadSpace` of rare head-space options (LayerNorm in head space,
            an extra zero pattern, unprojected inputs, pattern projections through ``k_proj``);
            ``None`` = none of them.

    Deprecated aliases (FutureWarning, removed in the next release): ``hidden_size`` →
    ``head_size``, ``update_steps_max`` → ``max_steps``, ``update_steps_eps`` → ``tol``.

    The math is :func:`hopfield.nn.functional.hopfield_forward`; see :meth:`forward`.
    """

    hidden_size = _deprecated_attribute("hidden_size")
    update_steps_max = _deprecated_attribute("update_steps_max")
    update_steps_eps = _deprecated_attribute("update_steps_eps")

    def __init__(
        self,
        input_size: int,
        head_size: int | None = None,
        output_size: int | None = None,
        num_heads: int = 1,
        *,
        stored_pattern_size: int | None = None,
        pattern_projection_size: int | None = None,
        pattern_size: int | None = None,
        out_projection: bool = True,
        beta: float | torch.Tensor | None = None,
        learnable_beta: bool = False,
        max_steps: int | None | Sequence[int] = 0,
        tol: float | Sequence[float] = 1e-4,
        normalize_state: bool | Norm = False,
        normalize_stored: bool | Norm = False,
        normalize_projection: bool | Norm = False,
        separation: str | Separation = "softmax",
        dropout: float = 0.0,
        bias: bool = True,
        batch_first: bool = True,
        association_activation: str | Callable[[torch.Tensor], torch.Tensor] | None = None,
        head_space: HeadSpace | None = None,
        **deprecated: object,
    ) -> None:
        super().__init__()
        if deprecated:
            new = renamed_kwargs(type(self).__name__, deprecated,
                                 {"head_size": head_size, "max_steps": max_steps, "tol": tol},
                                 _DEFAULTS)
            head_size, max_steps, tol = new["head_size"], new["max_steps"], new["tol"]
        input_size = check_positive_int(input_size, "input_size")
        num_heads = check_positive_int(num_heads, "num_heads")
        if head_size is None:
            if input_size % num_heads:
                raise ValueError(f"head_size must be given when input_size ({input_size}) is not "
                                 f"divisible by num_heads ({num_heads})")
            head_size = input_size // num_heads
        self.input_size = input_size
        self.num_heads = num_heads
        self.head_size = check_positive_int(head_size, "head_size")

        def size(value: int | None, name: str) -> int:  # None → input_size; 0 is an error
            return check_positive_int(input_size if value is None else value, name)

        self.pattern_size = check_positive_int(
            self.head_size if pattern_size is None else pattern_size, "pattern_size")
        Ev = num_heads * self.pattern_size
        if not check_bool(out_projection, "out_projection"):
            if output_size not in (None, Ev):
                raise ValueError(f"output_size must be None or num_heads * pattern_size = {Ev} "
                                 f"with out_projection=False, got {output_size}")
            output_size = Ev
        self.output_size = size(output_size, "output_size")
        self.stored_pattern_size = size(stored_pattern_size, "stored_pattern_size")
        self.pattern_projection_size = size(pattern_projection_size, "pattern_projection_size")
        self.max_steps, self.tol = check_steps(max_steps, tol, num_heads)
        self.separation = get_separation(separation)
        self.dropout = check_probability(dropout, "dropout")
        self.batch_first = check_bool(batch_first, "batch_first")
        self.association_activation = _activation(association_activation)
        if head_space is not None and not isinstance(head_space, HeadSpace):
            raise TypeError("head_space must be None or a hopfield.nn.HeadSpace, got "
                            f"{type(head_space).__name__}")
        self.head_space = head_space or HeadSpace()
        for flag, name in ((learnable_beta, "learnable_beta"), (bias, "bias")):
            check_bool(flag, name)

        E = num_heads * self.head_size
        if self.head_space.connected and self.pattern_projection_size != self.stored_pattern_size:
            raise ValueError("head_space connected=True passes the pattern projections through "
                             "k_proj, so pattern_projection_size must equal stored_pattern_size "
                             f"({self.stored_pattern_size}), got {self.pattern_projection_size}")
        self.q_proj = nn.Linear(input_size, E, bias=bias)
        self.k_proj = nn.Linear(self.stored_pattern_size, E, bias=bias)
        self.v_proj = nn.Linear(E if self.head_space.connected else self.pattern_projection_size,
                                Ev, bias=bias)
        self.out_proj = nn.Linear(Ev, self.output_size, bias=bias) if out_projection else None
        for lin in (self.q_proj, self.k_proj, self.v_proj, self.out_proj):
            if lin is None:
                continue
            nn.init.xavier_uniform_(lin.weight)
            if lin.bias is not None:
                nn.init.zeros_(lin.bias)
        for name, attr, size, rows, what in (
                ("state", "q_proj", input_size, self.head_size, "input_size == head_size"),
                ("stored", "k_proj", self.stored_pattern_size, self.head_size,
                 "stored_pattern_size == head_size"),
                ("projection", "v_proj", self.pattern_projection_size, self.pattern_size,
                 "pattern_projection_size == pattern_size")):
            if name not in self.head_space.unprojected:
                continue
            if size != rows:
                raise ValueError(f"head_space unprojected {name!r} needs {what} ({rows}), got "
                                 f"{size}")
            fixed = nn.Linear(size, num_heads * rows, bias=False)
            with torch.no_grad():
                fixed.weight.copy_(torch.eye(rows).repeat(num_heads, 1))  # every head: identity
            fixed.weight.requires_grad_(False)
            setattr(self, attr, fixed)
        self.norm_state = _layer_norm(normalize_state, "normalize_state", input_size)
        self.norm_stored = _layer_norm(normalize_stored, "normalize_stored",
                                       self.stored_pattern_size)
        self.norm_projection = _layer_norm(normalize_projection, "normalize_projection",
                                           self.pattern_projection_size)
        hs = self.head_space
        self.head_norm = (nn.LayerNorm(self.head_size, eps=hs.eps, elementwise_affine=hs.affine)
                          if hs.normalize else None)
        _init_beta(self, beta, num_heads, self.head_size, bool(learnable_beta))

    # ------------------------------------------------------------------ properties

    @property
    def beta(self) -> torch.Tensor:
        """(H,) inverse temperature per head (differentiable when learnable)."""
        log_beta = getattr(self, "log_beta", None)
        return log_beta.exp() if log_beta is not None else self.fixed_beta

    @property
    def learnable_beta(self) -> bool:
        return getattr(self, "log_beta", None) is not None

    def extra_repr(self) -> str:
        b = self.beta.detach()
        beta = f"{float(b[0]):.4g}" if bool((b == b[0]).all()) else \
            "[" + ", ".join(f"{float(x):.4g}" for x in b) + "]"
        parts = [f"input_size={self.input_size}", f"head_size={self.head_size}",
                 f"output_size={self.output_size}", f"num_heads={self.num_heads}"]
        if self.stored_pattern_size != self.input_size:
            parts.append(f"stored_pattern_size={self.stored_pattern_size}")
        if self.pattern_projection_size != self.input_size:
            parts.append(f"pattern_projection_size={self.pattern_projection_size}")
        if self.pattern_size != self.head_size:
            parts.append(f"pattern_size={self.pattern_size}")
        if self.out_proj is None:
            parts.append("out_projection=False")
        if self.head_space != HeadSpace():
            parts.append(repr(self.head_space))
        parts += [f"beta={beta}" + (" (learnable)" if self.learnable_beta else ""),
                  f"max_steps={self.max_steps}", f"separation={self.separation.name}"]
        if self.max_steps != 0:
            parts.append(f"tol={self.tol:g}" if isinstance(self.tol, float) else
                         f"tol={list(self.tol)}")
        if self.dropout:
            parts.append(f"dropout={self.dropout}")
        parts.append(f"batch_first={self.batch_first}")
        return ", ".join(parts)

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_attention(cls, mha: nn.MultiheadAttention) -> Hopfield:
        """A ``Hopfield`` layer computing what ``mha`` computes (one update, β = 1/sqrt(Dh)).

        Weights are copied (not shared). ``key_padding_mask`` becomes ``mask`` and a bool
        ``attn_mask`` (L, S) becomes ``association_mask``; inputs go in the order
        ``(key, query, value)``.
        """
        if not isinstance(mha, nn.MultiheadAttention):
            raise TypeError(f"mha must be a torch.nn.MultiheadAttention, got {type(mha).__name__}")
        if mha.bias_k is not None or mha.bias_v is not None:
            raise ValueError("mha must not use add_bias_kv=True (learned extra key/value "
                             "patterns are not supported), got add_bias_kv=True")
        if mha.add_zero_attn:
            raise ValueError("mha must not use add_zero_attn=True, got add_zero_attn=True")
        E, H = mha.embed_dim, mha.num_heads
        weight = mha.in_proj_weight if mha._qkv_same_embed_dim else mha.q_proj_weight
        layer = cls(E, E // H, E, H, stored_pattern_size=mha.kdim, pattern_projection_size=mha.vdim,
                    dropout=mha.dropout, bias=mha.in_proj_bias is not None,
                    batch_first=mha.batch_first)
        layer = layer.to(device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            if mha._qkv_same_embed_dim:
                wq, wk, wv = mha.in_proj_weight.chunk(3)
            else:
                wq, wk, wv = mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight
            for lin, w in zip((layer.q_proj, layer.k_proj, layer.v_proj), (wq, wk, wv)):
                lin.weight.copy_(w)
            if mha.in_proj_bias is not None:
                for lin, b in zip((layer.q_proj, layer.k_proj, layer.v_proj),
                                  mha.in_proj_bias.chunk(3)):
                    lin.bias.copy_(b)
            layer.out_proj.weight.copy_(mha.out_proj.weight)
            if mha.out_proj.bias is not None and layer.out_proj.bias is not None:
                layer.out_proj.bias.copy_(mha.out_proj.bias)
        return layer.train(mha.training)

    # ------------------------------------------------------------------ forward

    def forward(
        self,
        input: torch.Tensor | Sequence[torch.Tensor],
        *,
        mask: torch.Tensor | None = None,
        association_mask: torch.Tensor | None = None,
        return_info: bool = False,
        **unexpected: object,
    ) -> torch.Tensor | tuple[torch.Tensor, HopfieldInfo]:
        """Associate the state patterns with the stored patterns.

        Args:
            input: one tensor (self-association: R = Y = V) or a tuple ``(stored, state,
                projection)`` = (Y, R, V) with shapes (B, N, Dk), (B, L, Dq), (B, N, Dv)
                (time-major (T, B, D) with ``batch_first=False``).
            mask: bool (B, N), True = ignore that stored pattern (``key_padding_mask``
                convention). Every batch element must keep at least one stored pattern.
            association_mask: bool (L, N), (B·H, L, N) (PyTorch's 3-D ``attn_mask``) or 4-D
                broadcastable to (B, H, L, N), True = ignore
                (PyTorch's bool ``attn_mask``); or an additive float mask of those shapes
                (added to the β-scaled scores, -inf = ignore). A state it blocks from every stored
                pattern gets zero association weights and a zero retrieval, so its output is the
                output bias (``nn.MultiheadAttention`` gives NaN there).
            return_info: also return a :class:`HopfieldInfo` (weights, steps, convergence,
                energy, β) computed in this same pass; the output is the same either way.

        Returns:
            (B, L, output_size) (or (L, B, output_size)); with ``return_info`` ``(out, info)``.
            An empty batch (B = 0) or no states (L = 0) gives an empty output of that shape.

        Raises:
            TypeError / ValueError naming the argument: wrong type, shape or dtype, a mask that
            hides every stored pattern of a batch element, NaN/inf in an input, or an input so
            large that the association overflows.
        """
        if unexpected:
            reject_forward_kwargs(self, unexpected)
        check_bool(return_info, "return_info")
        sizes = (self.stored_pattern_size, self.input_size, self.pattern_projection_size)
        stored, state, proj = split_input(input, sizes, self.batch_first, self.q_proj.weight.dtype)
        B = batch_size(stored, state)
        check_masks(mask, association_mask, (B, self.num_heads, state.shape[1], stored.shape[1]))
        out, info = self._associate(stored, state, proj, mask, association_mask, return_info)
        named = ({"input": state} if isinstance(input, torch.Tensor)
                 else {"stored": stored, "state": state, "projection": proj})
        check_result(out, named, self, mask)
        if not self.batch_first:
            out = out.transpose(0, 1)  # (L, B, output_size)
        return (out, info) if return_info else out

    def get_association_matrix(
        self, input: torch.Tensor | Sequence[torch.Tensor], *, mask: torch.Tensor | None = None,
        association_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The association weights (B, H, L, N) of a forward pass (no grad); hflayers' method of
        the same name. Inside training code use ``forward(..., return_info=True)`` instead, which
        gives the same weights from the same pass."""
        with torch.no_grad():
            return self(input, mask=mask, association_mask=association_mask,
                        return_info=True)[1].weights

    def get_projected_pattern_matrix(
        self, input: torch.Tensor | Sequence[torch.Tensor],
    ) -> torch.Tensor:
        """The projected pattern projections per head, (B, H, N, pattern_size) (no grad):
        ``norm_projection`` (if any), ``k_proj`` (with ``HeadSpace(connected=True)``), then
        ``v_proj``; hflayers' method of the same name."""
        sizes = (self.stored_pattern_size, self.input_size, self.pattern_projection_size)
        _, _, v = split_input(input, sizes, self.batch_first, self.q_proj.weight.dtype)
        return self._projected_patterns(v)

    def _projected_patterns(self, v: torch.Tensor) -> torch.Tensor:
        """Validated batch-first V (B, N, Dv) → per-head projections (B, H, N, pattern_size)."""
        with torch.no_grad():
            if self.norm_projection is not None:
                v = self.norm_projection(v)
            if self.head_space.connected:
                v = self.k_proj(v)
            return self.v_proj(v).unflatten(-1, (self.num_heads, -1)).transpose(1, 2)

    def _value_projection(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Weight (Ev, Dv) and bias of the pattern projection as applied to V. With
        ``HeadSpace(connected=True)``: W_v W_k and W_v b_k + b_v (V through k_proj, then v_proj),
        one (Ev × E × Dk) product per forward."""
        vp = self.v_proj
        if not self.head_space.connected:
            return vp.weight, vp.bias
        k = self.k_proj
        wv = vp.weight @ k.weight  # (Ev, E) @ (E, Dk)
        if k.bias is None:
            return wv, vp.bias
        bv = vp.weight @ k.bias
        return wv, (bv if vp.bias is None else bv + vp.bias)

    def _associate(
        self, y: torch.Tensor, r: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
        association_mask: torch.Tensor | None, return_info: bool,
    ) -> tuple[torch.Tensor, HopfieldInfo | None]:
        """LayerNorms, then :func:`hopfield_forward` on validated batch-first tensors (the
        layers call this after their own checks; Y and V, or R, may have batch size 1)."""
        if self.norm_stored is not None:
            y = self.norm_stored(y)
        if self.norm_state is not None:
            r = self.norm_state(r)
        if self.norm_projection is not None:
            v = self.norm_projection(v)
        q, k, o = self.q_proj, self.k_proj, self.out_proj
        wv, bv = self._value_projection()
        result = hopfield_forward(
            y, r, v, num_heads=self.num_heads, beta=self.beta,
            q_proj_weight=q.weight, k_proj_weight=k.weight, v_proj_weight=wv,
            out_proj_weight=None if o is None else o.weight, q_proj_bias=q.bias,
            k_proj_bias=k.bias, v_proj_bias=bv, out_proj_bias=None if o is None else o.bias,
            mask=mask,
            association_mask=association_mask, separation=self.separation,
            dropout_p=self.dropout, training=self.training, max_steps=self.max_steps,
            tol=self.tol, return_info=return_info, check_input=False,
            head_norm=None if self.head_norm is None else (
                self.head_norm.weight, self.head_norm.bias, self.head_norm.eps),
            add_zero=self.head_space.add_zero)
        out, info = result if return_info else (result, None)
        act = self.association_activation
        if act is not None:
            out = (getattr(torch, act) if isinstance(act, str) else act)(out)
        return out, info


def inner_hopfield(owner: str, input_size: int, head_size: int | None, output_size: int | None,
                   num_heads: int, hopfield_kwargs: dict[str, object]) -> Hopfield:
    """The :class:`Hopfield` inside :class:`HopfieldPooling` / :class:`HopfieldLayer`;
    deprecated names are resolved with a FutureWarning that points at the caller's line."""
    aliases = {k: hopfield_kwargs.pop(k) for k in RENAMED if k in hopfield_kwargs}
    if aliases:
        new = renamed_kwargs(owner, aliases, {
            "head_size": head_size, "max_steps": hopfield_kwargs.get("max_steps", 0),
            "tol": hopfield_kwargs.get("tol", 1e-4)}, _DEFAULTS, stacklevel=4)
        head_size = new.pop("head_size")
        hopfield_kwargs.update(new)
    return Hopfield(input_size, head_size, output_size, num_heads, **hopfield_kwargs)

