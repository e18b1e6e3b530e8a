"""``HopfieldLayer``: states retrieve from learned stored patterns (lookup / prototype memory).

Shape legend: B batch, L state patterns, N learned stored patterns (``quantity``), D input size.

Reference: learned stored patterns Y (N, Dk) and, with ``lookup_targets=True``, separate learned
targets T (N, Dv) (else T = Y; Dk = Dv = D by default) are the memory that every input state R
retrieves from::

    out = Hopfield((Y, R, T))        # (B, L, output_size)

The memory is projected once per forward pass, not once per batch element.
"""

from __future__ import annotations

import torch
from torch import nn

from .._validation import check_positive_int, check_tensor
from ._inputs import check_bool, check_features, check_masks
from ._options import reject_forward_kwargs
from .functional import check_result
from .hopfield import inner_hopfield
from .info import HopfieldInfo

__all__ = ["HopfieldLayer"]



class HopfieldLayer(nn.Module):
    """A layer of ``quantity`` learned stored patterns that the input states associate with.

    Args:
        input_size, head_size, output_size, num_heads: as in :class:`Hopfield`.
        quantity: N, number of learned stored patterns.
        lookup_targets: learn separate targets (pattern projections) instead of reading out the
            stored patterns themselves: a learned key → value lookup table.
        trainable: learn the stored patterns (False: they stay at their initial or loaded
            values, ``requires_grad=False``).
        trainable_targets: learn the targets (with ``lookup_targets=True``).
        **hopfield_kwargs: any keyword of :class:`Hopfield`. ``stored_pattern_size`` (default
            ``input_size``) is the size of the learned stored patterns, ``pattern_projection_size``
            that of the learned targets (hflayers' sizes).

    ``forward(input, *, mask=None, association_mask=None, return_info=False)``: input (B, L, D)
    (or (L, B, D) with ``batch_first=False``) → (B, L, output_size); ``mask`` (B, N) hides stored
    patterns per batch element; info weights are (B, H, L, N).
    """

    def __init__(self, input_size: int, head_size: int | None = None,
                 output_size: int | None = None, num_heads: int = 1, *, quantity: int = 16,
                 lookup_targets: bool = False, trainable: bool = True,
                 trainable_targets: bool = True, **hopfield_kwargs: object) -> None:
        super().__init__()
        self.quantity = check_positive_int(quantity, "quantity")
        self.hopfield = hop = inner_hopfield(type(self).__name__, input_size, head_size,
                                             output_size, num_heads, hopfield_kwargs)
        Dk, Dv = hop.stored_pattern_size, hop.pattern_projection_size
        self.patterns = nn.Parameter(torch.empty(self.quantity, Dk))  # (N, Dk)
        nn.init.normal_(self.patterns, std=Dk ** -0.5)
        if check_bool(lookup_targets, "lookup_targets"):
            self.targets = nn.Parameter(torch.empty(self.quantity, Dv))  # (N, Dv)
            nn.init.normal_(self.targets, std=Dv ** -0.5)
        else:
            if Dv != Dk:
                raise ValueError(f"pattern_projection_size ({Dv}) must equal stored_pattern_size "
                                 f"({Dk}) without lookup_targets (the stored patterns are then "
                                 "also the projections)")
            self.register_parameter("targets", None)
        self.patterns.requires_grad_(check_bool(trainable, "trainable"))
        if self.targets is not None:
            self.targets.requires_grad_(check_bool(trainable_targets, "trainable_targets"))

    def extra_repr(self) -> str:
        return f"quantity={self.quantity}, lookup_targets={self.targets is not None}"

    def get_association_matrix(self, input: torch.Tensor, *, mask: torch.Tensor | None = None,
                               association_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The association weights (B, H, L, quantity) (no grad); hflayers' method."""
        with torch.no_grad():
            return self(input, mask=mask, association_mask=association_mask,
                        return_info=True)[1].weights

    def get_projected_pattern_matrix(self, input: torch.Tensor | None = None) -> torch.Tensor:
        """The projected targets (or stored patterns) per head, (1, H, quantity, pattern_size)
        (no grad; the same for every batch element, so ``input`` is not needed)."""
        proj = (self.patterns if self.targets is None else self.targets).unsqueeze(0)
        return self.hopfield._projected_patterns(proj)  # (1, H, N, pattern_size)

    def forward(self, input: torch.Tensor, *, mask: torch.Tensor | None = None,
                association_mask: torch.Tensor | None = None,
                return_info: bool = False, **unexpected: object,
                ) -> torch.Tensor | tuple[torch.Tensor, HopfieldInfo]:
        """Retrieve from the learned stored patterns.

        Args:
            input: (B, L, D) state patterns (or (L, B, D) with ``batch_first=False``).
            mask: bool (B, N), True = ignore that stored pattern for that batch element.
            association_mask: bool (L, N), (B·H, L, N) or 4-D broadcastable to (B, H, L, N),
                True = ignore (as in :meth:`Hopfield.forward`).
            return_info: also return a :class:`HopfieldInfo` from this same pass.

        Returns:
            (B, L, output_size) (or (L, B, output_size)); with ``return_info`` ``(out, info)``
            where ``info.weights`` is (B, H, L, quantity). B = 0 or L = 0 gives an empty output
            of that shape.
        """
        if unexpected:
            reject_forward_kwargs(self, unexpected)
        check_bool(return_info, "return_info")
        hop = self.hopfield
        check_tensor(input, "input", ndim=3, finite=False,
                     layout=f"(B, L, {hop.input_size})" if hop.batch_first
                     else f"(L, B, {hop.input_size})")
        x = input if hop.batch_first else input.transpose(0, 1)  # (B, L, D)
        check_features(x, "input", hop.input_size, hop.q_proj.weight.dtype)
        stored = self.patterns.unsqueeze(0)  # (1, N, D), broadcast over the batch
        proj = stored if self.targets is None else self.targets.unsqueeze(0)
        check_masks(mask, association_mask,
                    (x.shape[0], hop.num_heads, x.shape[1], self.quantity))
        out, info = hop._associate(stored, x, proj, mask, association_mask, return_info)
        check_result(out, {"input": x}, self, mask)  # out (B, L, O)
        if not hop.batch_first:
            out = out.transpose(0, 1)
        return (out, info) if return_info else out
