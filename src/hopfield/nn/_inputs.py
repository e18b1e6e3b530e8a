"""Validation of the Hopfield layers' inputs and masks, done once at the layer's entry.

Shape legend: B batch, L state patterns, N stored patterns, H heads, D feature sizes.
Nothing here scales with L × N or syncs with the device: tensors and masks are checked by type,
shape and dtype. Finiteness (and that the (B, N) padding mask leaves every batch element a stored
pattern) is checked once after the pass, by :func:`hopfield.nn.functional.check_result`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .._validation import check_tensor, shape_str

__all__ = ["check_bool", "check_features", "check_masks", "combine_masks", "split_input"]


def _kind(x: object) -> str:
    return str(x.dtype) if isinstance(x, torch.Tensor) else type(x).__name__


def check_bool(value: object, name: str) -> bool:
    """A flag must be a bool (or a numpy bool): ``"False"`` or ``2`` would be read as True."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


def check_features(x: torch.Tensor, name: str, size: int, dtype: torch.dtype) -> None:
    """``x`` (..., D) must have D == size and the layer's parameter dtype."""
    if x.shape[-1] != size:
        raise ValueError(f"{name} must have feature size {size}, got shape {shape_str(x.shape)}")
    if x.dtype != dtype:
        raise TypeError(f"{name} must have the layer's dtype {dtype}, got {x.dtype}")


def split_input(
    input: object, sizes: tuple[int, int, int], batch_first: bool, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate one tensor or a tuple (stored, state, projection); return batch-first (Y, R, V).

    ``sizes`` are the expected feature sizes (Dk, Dq, Dv). The same tensor object given twice is
    checked once and stays one object, so the layer can fuse its projections.
    """
    layout = "(B, T, D)" if batch_first else "(T, B, D)"
    if isinstance(input, torch.Tensor):
        check_tensor(input, "input", ndim=3, layout=layout, finite=False)
        if not sizes[0] == sizes[1] == sizes[2]:
            raise ValueError("input must be a tuple (stored, state, projection) when "
                             "stored_pattern_size or pattern_projection_size differ from "
                             f"input_size, got one tensor {shape_str(input.shape)}")
        x = input if batch_first else input.transpose(0, 1)
        check_features(x, "input", sizes[1], dtype)
        return x, x, x
    if not isinstance(input, (tuple, list)) or len(input) != 3:
        found = type(input).__name__
        if isinstance(input, (tuple, list)):
            found += f" of length {len(input)}"
        raise TypeError("input must be a tensor or a tuple (stored, state, projection) of 3 "
                        f"tensors, got {found}")
    names = ("stored", "state", "projection")
    out: list[torch.Tensor] = []
    for i, (x, name, size) in enumerate(zip(input, names, sizes)):
        first = next((j for j in range(i) if input[j] is x), None)
        if first is not None:  # the same tensor: checked once, kept as one object
            out.append(out[first])
            continue
        check_tensor(x, name, ndim=3, layout=layout.replace("D", str(size)), finite=False)
        x = x if batch_first else x.transpose(0, 1)
        check_features(x, name, size, dtype)
        out.append(x)
    y, r, v = out
    if y.shape[0] != r.shape[0] or v.shape[0] != r.shape[0]:
        raise ValueError("stored, state and projection must share the batch size, got "
                         f"{shape_str(y.shape)}, {shape_str(r.shape)}, {shape_str(v.shape)} "
                         "(batch-first)")
    if y.shape[1] != v.shape[1]:
        raise ValueError(f"projection must hold one pattern per stored pattern (N == "
                         f"{y.shape[1]}), got {v.shape[1]} (batch-first)")
    if y.shape[1] == 0 and r.shape[0] * r.shape[1] > 0:
        raise ValueError("stored must hold at least one pattern for the states to retrieve from, "
                         f"got shape {shape_str(y.shape)} (batch-first)")
    return y, r, v


def check_masks(mask: object, association_mask: object, shape: Sequence[int]) -> None:
    """Validate ``mask`` (B, N) and ``association_mask`` (L, N) or 4-D broadcastable to
    ``shape`` = (B, H, L, N): bool tensors, True = ignore."""
    B, _, L, N = shape
    if mask is not None:
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise TypeError(f"mask must be a bool tensor (True = ignore), got {_kind(mask)}"
                            + _FLOAT_HINT * _is_float(mask))
        if mask.shape != (B, N):
            raise ValueError(f"mask must have shape (B, N) = ({B}, {N}), got "
                             f"{shape_str(mask.shape)}")
    am = association_mask
    if am is not None:
        if not isinstance(am, torch.Tensor) or not (am.dtype == torch.bool
                                                     or torch.is_floating_point(am)):
            raise TypeError("association_mask must be a bool tensor (True = ignore) or an "
                            f"additive float mask, got {_kind(am)}")
        H = shape[1]
        if not (am.dim() == 2 and am.shape == (L, N)) and not (
                am.dim() == 3 and am.shape == (B * H, L, N)) and (
                am.dim() != 4 or am.shape[-1] != N
                or any(a not in (1, b) for a, b in zip(am.shape, shape))):
            raise ValueError(f"association_mask must have shape ({L}, {N}), ({B * H}, {L}, {N}) "
                             f"(B·H, L, N as in PyTorch) or 4-D broadcastable to "
                             f"{shape_str(shape)}, got {shape_str(am.shape)}")


_FLOAT_HINT = "; an additive float mask converts with `float_mask == float('-inf')`"


def _is_float(x: object) -> bool:
    return isinstance(x, torch.Tensor) and torch.is_floating_point(x)


def combine_masks(mask: torch.Tensor | None, association_mask: torch.Tensor | None,
                  num_heads: int = 1) -> torch.Tensor | None:
    """The union of validated masks as bool (B|1, H|1, L|1, N), True = ignore; None if none.
    A 3-D association mask is (B·H, L, N), batch-major like PyTorch's ``attn_mask``."""
    ignore = None if mask is None else mask[:, None, None, :]  # (B, 1, 1, N)
    am = association_mask
    if am is not None:
        if am.dim() == 3:
            am = am.unflatten(0, (-1, num_heads))  # (B, H, L, N)
        am = am[None, None] if am.dim() == 2 else am  # (1, 1, L, N)
        ignore = am if ignore is None else ignore | am
    return ignore
