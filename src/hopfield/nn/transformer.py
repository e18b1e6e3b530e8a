"""Transformer blocks with Hopfield association: drop-ins for ``nn.TransformerEncoderLayer`` and
``nn.TransformerDecoderLayer``.

:class:`HopfieldEncoderLayer` and :class:`HopfieldDecoderLayer` take the constructor arguments and
the forward arguments of their torch counterparts and keep the same submodule names
(``self_attn``, ``multihead_attn``, ``linear1``, ``linear2``, ``norm1``…``norm3``, ``dropout*``),
so they work inside ``nn.TransformerEncoder`` / ``nn.TransformerDecoder``. The attention blocks are
:class:`hopfield.Hopfield` layers; Hopfield extras (``beta``, ``learnable_beta``, ``max_steps``,
``tol``, ``separation``, ``head_size``) are keyword arguments passed to both of them.

Masks follow torch: a bool mask is True = NOT allowed, a float mask is additive. Additive float
masks may only hold ``0`` (allowed) and ``-inf`` (not allowed) — ``nn.TransformerEncoder`` turns
bool masks into exactly such float masks before calling its layers; any other value (a soft bias)
raises a ``ValueError``. See docs/transformer.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._validation import skip_data_checks
from .hopfield import Hopfield

__all__ = ["HopfieldDecoderLayer", "HopfieldEncoderLayer"]

# Hopfield arguments the blocks set themselves (from the torch-style arguments)
_RESERVED = ("input_size", "output_size", "num_heads", "dropout", "bias", "batch_first",
             "stored_pattern_size", "pattern_projection_size")


def _activation(activation: object) -> Callable[[torch.Tensor], torch.Tensor]:
    if isinstance(activation, str):
        if activation == "relu":
            return F.relu
        if activation == "gelu":
            return F.gelu
        raise ValueError(f"activation must be 'relu', 'gelu' or a callable, got {activation!r}")
    if not callable(activation):
        raise TypeError("activation must be 'relu', 'gelu' or a callable, got "
                        f"{type(activation).__name__}")
    return activation  # type: ignore[return-value]


def _hopfield(d_model: int, nhead: int, dropout: float, bias: bool, batch_first: bool,
              extras: dict[str, Any], factory: dict[str, Any]) -> Hopfield:
    bad = sorted(k for k in extras if k in _RESERVED)
    if bad:
        raise TypeError(f"{bad[0]} is set from the torch-style arguments (d_model, nhead, dropout, "
                        f"bias, batch_first); do not pass it as a Hopfield keyword")
    if not isinstance(d_model, int) or isinstance(d_model, bool) or d_model <= 0:
        raise ValueError(f"d_model must be a positive int, got {d_model!r}")
    if not isinstance(nhead, int) or isinstance(nhead, bool) or nhead <= 0:
        raise ValueError(f"nhead must be a positive int, got {nhead!r}")
    if "head_size" not in extras and d_model % nhead:
        raise ValueError(f"d_model ({d_model}) must be divisible by nhead ({nhead})")
    layer = Hopfield(d_model, output_size=d_model, num_heads=nhead, dropout=dropout, bias=bias,
                     batch_first=batch_first, **extras)
    return layer.to(**{k: v for k, v in factory.items() if v is not None})


def _to_ignore(mask: torch.Tensor | None, name: str) -> torch.Tensor | None:
    """A torch-convention mask (bool True = not allowed, or additive float 0/-inf) as a bool
    mask with True = ignore (the Hopfield convention)."""
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (bool, True = not allowed, or an additive "
                        f"float mask of 0 and -inf), got {type(mask).__name__}")
    if mask.dtype == torch.bool:
        return mask
    if not torch.is_floating_point(mask):
        raise TypeError(f"{name} must be a bool tensor (True = not allowed) or an additive float "
                        f"mask of 0 and -inf, got dtype {mask.dtype}")
    ignore = mask == float("-inf")
    # a data check (one host sync): skipped under hopfield.validation(False), where any value
    # other than -inf counts as allowed
    if mask.numel() and not skip_data_checks() and not bool(((mask == 0) | ignore).all()):
        raise ValueError(f"{name}: additive float masks may only hold 0 (allowed) and -inf (not "
                         "allowed); soft biases are not supported by the Hopfield blocks, got "
                         "other values (pass a bool mask, True = not allowed)")
    return ignore


def _causal(L: int, S: int, device: torch.device) -> torch.Tensor:
    return torch.ones(L, S, dtype=torch.bool, device=device).triu(1)


def _shape(t: torch.Tensor) -> str:
    return "(" + ", ".join(str(s) for s in t.shape) + ")"


class _Block(nn.Module):
    """Shared plumbing: batch layout, mask conversion, one attention call."""

    batch_first: bool
    norm_first: bool

    def _batched(self, x: object, name: str) -> tuple[torch.Tensor, bool]:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.is_nested:
            raise TypeError(f"{name} must be a dense tensor; nested tensors are not supported")
        if x.dim() == 2:  # unbatched (S, E), as torch allows
            return x.unsqueeze(0 if self.batch_first else 1), True
        if x.dim() != 3:
            layout = "(B, S, E)" if self.batch_first else "(S, B, E)"
            raise ValueError(f"{name} must have shape {layout} or (S, E), got {_shape(x)}")
        return x, False

    def _attend(self, attn: Hopfield, x: torch.Tensor, mem: torch.Tensor,
                attn_mask: torch.Tensor | None, key_padding_mask: torch.Tensor | None,
                is_causal: bool, names: tuple[str, str], unbatched: bool) -> torch.Tensor:
        bdim = 0 if self.batch_first else 1
        B, L, S = x.shape[bdim], x.shape[1 - bdim], mem.shape[1 - bdim]
        am = _to_ignore(attn_mask, names[0])
        kpm = _to_ignore(key_padding_mask, names[1])
        if kpm is not None:
            if unbatched and kpm.dim() == 1:
                kpm = kpm.unsqueeze(0)
            if kpm.shape != (B, S):
                raise ValueError(f"{names[1]} must have shape (batch, source length) = ({B}, {S}),"
                                 f" got {_shape(kpm)}")
            if kpm.numel() and not skip_data_checks() and bool(kpm.all(dim=-1).any()):
                raise ValueError(f"{names[1]} must leave at least one key per batch element, got "
                                 "a row with every key masked")
        if am is None and is_causal:
            am = _causal(L, S, x.device)
        if am is not None:
            H = attn.num_heads
            if am.dim() == 3 and am.shape == (B * H, L, S):
                am = am.unflatten(0, (B, H))  # PyTorch's (B·H, L, S) layout, batch-major
            elif am.shape != (L, S):
                raise ValueError(f"{names[0]} must have shape (target length, source length) = "
                                 f"({L}, {S}) or (batch·nhead, L, S) = ({B * H}, {L}, {S}), "
                                 f"got {_shape(am)}")
        return attn((mem, x, mem), mask=kpm, association_mask=am)

    def _ff_block(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        return self.last_dropout(x)


class HopfieldEncoderLayer(_Block):
    """Drop-in for ``nn.TransformerEncoderLayer`` whose self-attention is a :class:`Hopfield`
    layer (self-association).

    Args: as ``nn.TransformerEncoderLayer`` (``d_model``, ``nhead``, ``dim_feedforward``,
    ``dropout``, ``activation``, ``layer_norm_eps``, ``batch_first``, ``norm_first``, ``bias``,
    ``device``, ``dtype``); further keyword arguments go to :class:`Hopfield` (``beta``,
    ``learnable_beta``, ``max_steps``, ``tol``, ``separation``, ``head_size``, …).

    With the defaults (one update, β = 1/sqrt(d_model/nhead), softmax) it computes what the torch
    layer computes; :meth:`from_transformer_layer` copies a torch layer exactly.
    """

    def __init__(
        self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
        activation: str | Callable[[torch.Tensor], torch.Tensor] = F.relu,
        layer_norm_eps: float = 1e-5, batch_first: bool = False, norm_first: bool = False,
        bias: bool = True, device: Any = None, dtype: Any = None, **hopfield_kwargs: Any,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.self_attn = _hopfield(d_model, nhead, dropout, bias, batch_first, hopfield_kwargs,
                                   factory)
        self.linear1 = nn.Linear(d_model, dim_feedforward, bias=bias, **factory)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model, bias=bias, **factory)
        self.norm_first = bool(norm_first)
        self.batch_first = bool(batch_first)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.activation = _activation(activation)

    @property
    def last_dropout(self) -> nn.Dropout:
        return self.dropout2

    @classmethod
    def from_transformer_layer(cls, layer: nn.TransformerEncoderLayer,
                               **hopfield_kwargs: Any) -> HopfieldEncoderLayer:
        """A ``HopfieldEncoderLayer`` computing exactly what ``layer`` computes (weights copied,
        not shared; same train/eval mode). Hopfield keyword arguments (``max_steps``, ``beta``,
        ``separation``, …) start a Hopfield variant from ``layer``'s weights instead; it is
        exact only without them."""
        if not isinstance(layer, nn.TransformerEncoderLayer):
            raise TypeError("layer must be a torch.nn.TransformerEncoderLayer, got "
                            f"{type(layer).__name__}")
        new = _copy_common(cls, layer, hopfield_kwargs)
        _copy_attention(new, layer, ("self_attn",), hopfield_kwargs)
        return new.train(layer.training)

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor | None = None,
                src_key_padding_mask: torch.Tensor | None = None,
                is_causal: bool = False) -> torch.Tensor:
        """As ``nn.TransformerEncoderLayer.forward``. ``is_causal=True`` without ``src_mask``
        applies a causal mask (torch requires the mask too); with a mask, the mask is used."""
        x, unbatched = self._batched(src, "src")

        def sa(h: torch.Tensor) -> torch.Tensor:
            return self.dropout1(self._attend(
                self.self_attn, h, h, src_mask, src_key_padding_mask, bool(is_causal),
                ("src_mask", "src_key_padding_mask"), unbatched))

        if self.norm_first:
            x = x + sa(self.norm1(x))
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + sa(x))
            x = self.norm2(x + self._ff_block(x))
        return x.squeeze(0 if self.batch_first else 1) if unbatched else x


class HopfieldDecoderLayer(_Block):
    """Drop-in for ``nn.TransformerDecoderLayer``: self-association of the target
    (``self_attn``) and association of the target with the memory (``multihead_attn``), both
    :class:`Hopfield` layers.

    Args: as ``nn.TransformerDecoderLayer``; further keyword arguments go to both Hopfield layers
    (``beta``, ``learnable_beta``, ``max_steps``, ``tol``, ``separation``, ``head_size``, …).
    """

    def __init__(
        self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
        activation: str | Callable[[torch.Tensor], torch.Tensor] = F.relu,
        layer_norm_eps: float = 1e-5, batch_first: bool = False, norm_first: bool = False,
        bias: bool = True, device: Any = None, dtype: Any = None, **hopfield_kwargs: Any,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.self_attn = _hopfield(d_model, nhead, dropout, bias, batch_first, hopfield_kwargs,
                                   factory)
        self.multihead_attn = _hopfield(d_model, nhead, dropout, bias, batch_first,
                                        hopfield_kwargs, factory)
        self.linear1 = nn.Linear(d_model, dim_feedforward, bias=bias, **factory)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model, bias=bias, **factory)
        self.norm_first = bool(norm_first)
        self.batch_first = bool(batch_first)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.norm3 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.activation = _activation(activation)

    @property
    def last_dropout(self) -> nn.Dropout:
        return self.dropout3

    @classmethod
    def from_transformer_layer(cls, layer: nn.TransformerDecoderLayer,
                               **hopfield_kwargs: Any) -> HopfieldDecoderLayer:
        """A ``HopfieldDecoderLayer`` computing exactly what ``layer`` computes (weights copied,
        not shared; same train/eval mode). Hopfield keyword arguments start a Hopfield variant
        from ``layer``'s weights instead; it is exact only without them."""
        if not isinstance(layer, nn.TransformerDecoderLayer):
            raise TypeError("layer must be a torch.nn.TransformerDecoderLayer, got "
                            f"{type(layer).__name__}")
        new = _copy_common(cls, layer, hopfield_kwargs)
        _copy_attention(new, layer, ("self_attn", "multihead_attn"), hopfield_kwargs)
        with torch.no_grad():
            new.norm3.load_state_dict(layer.norm3.state_dict())
        return new.train(layer.training)

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor,
                tgt_mask: torch.Tensor | None = None, memory_mask: torch.Tensor | None = None,
                tgt_key_padding_mask: torch.Tensor | None = None,
                memory_key_padding_mask: torch.Tensor | None = None,
                tgt_is_causal: bool = False, memory_is_causal: bool = False) -> torch.Tensor:
        """As ``nn.TransformerDecoderLayer.forward``. ``*_is_causal=True`` without the matching
        mask applies a causal mask; with a mask, the mask is used."""
        x, unbatched = self._batched(tgt, "tgt")
        mem, mem_unbatched = self._batched(memory, "memory")
        if mem_unbatched != unbatched:
            raise ValueError(f"tgt and memory must both be batched (3-D) or both unbatched (2-D), "
                             f"got {_shape(tgt)} and {_shape(memory)}")

        def sa(h: torch.Tensor) -> torch.Tensor:
            return self.dropout1(self._attend(
                self.self_attn, h, h, tgt_mask, tgt_key_padding_mask, bool(tgt_is_causal),
                ("tgt_mask", "tgt_key_padding_mask"), unbatched))

        def mha(h: torch.Tensor) -> torch.Tensor:
            return self.dropout2(self._attend(
                self.multihead_attn, h, mem, memory_mask, memory_key_padding_mask,
                bool(memory_is_causal), ("memory_mask", "memory_key_padding_mask"), unbatched))

        if self.norm_first:
            x = x + sa(self.norm1(x))
            x = x + mha(self.norm2(x))
            x = x + self._ff_block(self.norm3(x))
        else:
            x = self.norm1(x + sa(x))
            x = self.norm2(x + mha(x))
            x = self.norm3(x + self._ff_block(x))
        return x.squeeze(0 if self.batch_first else 1) if unbatched else x


def _copy_attention(new: nn.Module, layer: nn.Module, names: tuple[str, ...],
                    hopfield_kwargs: dict[str, Any]) -> None:
    for name in names:
        exact = Hopfield.from_attention(getattr(layer, name))
        if not hopfield_kwargs:
            setattr(new, name, exact)
            continue
        target = getattr(new, name)
        with torch.no_grad():
            for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
                getattr(target, proj).load_state_dict(getattr(exact, proj).state_dict())


def _copy_common(cls: type, layer: nn.Module, hopfield_kwargs: dict[str, Any]) -> Any:
    """A new block of ``cls`` with ``layer``'s sizes, options, feed-forward and norms copied."""
    w = layer.linear1.weight
    new = cls(layer.linear1.in_features, layer.self_attn.num_heads,
              dim_feedforward=layer.linear1.out_features, dropout=layer.dropout.p,
              activation=layer.activation, layer_norm_eps=layer.norm1.eps,
              batch_first=layer.self_attn.batch_first, norm_first=layer.norm_first,
              bias=layer.linear1.bias is not None, device=w.device, dtype=w.dtype,
              **hopfield_kwargs)
    with torch.no_grad():
        for name in ("linear1", "linear2", "norm1", "norm2"):
            getattr(new, name).load_state_dict(getattr(layer, name).state_dict())
    for name in ("dropout", "dropout1", "dropout2", "dropout3"):
        if hasattr(layer, name):
            getattr(new, name).p = getattr(layer, name).p
    return new
