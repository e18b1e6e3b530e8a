"""``HopfieldPooling``: learned query patterns pool a set of instances into a fixed-size vector.

Shape legend: B batch, N instances (stored patterns), Q learned queries (``quantity``),
D input size, O output size.

Reference: the learned state patterns R (Q, D) associate with the instances Y = V = input::

    out[b] = flatten( Hopfield((input[b], R, input[b])) )      # (Q * O,)

Softmax over the instances makes the result invariant to their order, and masked (padded)
instances get weight exactly 0, so padding does not change the result either.
"""

from __future__ import annotations

import torch
from torch import nn

from .._validation import check_positive_int, check_tensor, shape_str
from ._inputs import check_bool, check_features, check_masks
from ._options import reject_forward_kwargs
from .functional import check_result
from .hopfield import inner_hopfield
from .info import HopfieldInfo

__all__ = ["HopfieldPooling"]



class HopfieldPooling(nn.Module):
    """Pool a set (B, N, D) into (B, quantity * output_size) with learned query patterns.

    Args:
        input_size, head_size, output_size, num_heads: as in :class:`Hopfield`.
        quantity: Q, number of learned query (state) patterns; each yields one pooled vector and
            the Q vectors are concatenated (flattened) like in ``hflayers``.
        trainable: learn the query patterns (False: ``requires_grad=False``).
        **hopfield_kwargs: any keyword of :class:`Hopfield` (beta, learnable_beta,
            max_steps, tol, normalize_*, separation, dropout, bias, batch_first, ...).
            ``input_size`` is the size of the learned queries; the instances have
            ``stored_pattern_size`` features (default ``input_size``), and the projections of a
            ``(stored, projection)`` pair ``pattern_projection_size`` (hflayers' sizes).

    ``forward(input, *, mask=None, return_info=False)``:
        input: (B, N, D) (or (N, B, D) with ``batch_first=False``).
        mask: bool (B, N), True = padded instance to ignore.
    Returns (B, Q * output_size), with return_info also a :class:`HopfieldInfo` whose weights are
    (B, H, Q, N): how much each instance contributes to each head's pooled vector.
    """

    def __init__(self, input_size: int, head_size: int | None = None,
                 output_size: int | None = None, num_heads: int = 1, *, quantity: int = 1,
                 trainable: bool = True, **hopfield_kwargs: object) -> None:
        super().__init__()
        self.quantity = check_positive_int(quantity, "quantity")
        self.hopfield = inner_hopfield(type(self).__name__, input_size, head_size, output_size,
                                       num_heads, hopfield_kwargs)
        self.query = nn.Parameter(torch.empty(self.quantity, input_size))  # (Q, D)
        nn.init.normal_(self.query, std=input_size ** -0.5)
        self.query.requires_grad_(check_bool(trainable, "trainable"))

    @property
    def output_size(self) -> int:
        """Size of the flattened output, ``quantity * hopfield.output_size``."""
        return self.quantity * self.hopfield.output_size

    def extra_repr(self) -> str:
        return f"quantity={self.quantity}, output=(B, {self.output_size})"

    def _pattern_inputs(self, input: object) -> tuple[torch.Tensor, torch.Tensor]:
        """input (B, N, D) or a tuple (stored, projection) → batch-first (Y, V), validated."""
        hop = self.hopfield
        Dk, Dv = hop.stored_pattern_size, hop.pattern_projection_size
        if isinstance(input, (tuple, list)):
            if len(input) != 2 or not all(isinstance(t, torch.Tensor) for t in input):
                raise TypeError("input must be a tensor or a tuple (stored, projection) of 2 "
                                f"tensors, got a {type(input).__name__} of length {len(input)}"
                                + ("" if len(input) != 2 else " that are not both tensors"))
            names = ("stored", "projection")
        else:
            if Dk != Dv:
                raise ValueError("input must be a tuple (stored, projection) when "
                                 f"stored_pattern_size ({Dk}) != pattern_projection_size ({Dv}), "
                                 f"got one tensor {shape_str(input.shape)}"
                                 if isinstance(input, torch.Tensor) else
                                 "input must be a tensor or a tuple (stored, projection), got "
                                 f"{type(input).__name__}")
            input, names = (input, input), ("input", "input")
        out = []
        for x, name, size in zip(input, names, (Dk, Dv)):
            if out and x is input[0]:
                out.append(out[0])
                continue
            layout = f"(B, N, {size})" if hop.batch_first else f"(N, B, {size})"
            check_tensor(x, name, ndim=3, finite=False, layout=layout)
            x = x if hop.batch_first else x.transpose(0, 1)  # (B, N, D)
            check_features(x, name, size, hop.q_proj.weight.dtype)
            out.append(x)
        y, v = out
        if y.shape[:2] != v.shape[:2]:
            raise ValueError("stored and projection must have the same batch size and number of "
                             f"instances, got {shape_str(y.shape)} and {shape_str(v.shape)} "
                             "(batch-first)")
        if y.shape[1] == 0 and y.shape[0] > 0:
            raise ValueError(f"{names[0]} must hold at least one instance per bag, got shape "
                             f"{shape_str(y.shape)}")
        return y, v

    def get_association_matrix(self, input: torch.Tensor | tuple[torch.Tensor, torch.Tensor], *,
                               mask: torch.Tensor | None = None,
                               association_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The pooling weights (B, H, quantity, N) (no grad); hflayers' method of that name."""
        with torch.no_grad():
            return self(input, mask=mask, association_mask=association_mask,
                        return_info=True)[1].weights

    def get_projected_pattern_matrix(
            self, input: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """The projected instances per head, (B, H, N, pattern_size) (no grad)."""
        _, v = self._pattern_inputs(input)
        return self.hopfield._projected_patterns(v)

    def forward(self, input: torch.Tensor, *, mask: torch.Tensor | None = None,
                association_mask: torch.Tensor | None = None,
                return_info: bool = False, **unexpected: object,
                ) -> torch.Tensor | tuple[torch.Tensor, HopfieldInfo]:
        """Pool each set of instances with the learned queries.

        Args:
            input: (B, N, D) instances (or (N, B, D) with ``batch_first=False``), or a tuple
                ``(stored, projection)`` of two such tensors (hflayers' pooling input): the
                weights come from ``stored``, the pooled values from ``projection``.
            mask: bool (B, N), True = padded instance to ignore; every bag must keep one.
            association_mask: which learned query may see which instance, as in
                :meth:`Hopfield.forward` with L = quantity: bool (quantity, N), (B·H,
                quantity, N) or 4-D, True = ignore; or an additive float mask.
            return_info: also return a :class:`HopfieldInfo` from this same pass.

        Returns:
            (B, quantity * output_size); with ``return_info`` ``(out, info)`` where
            ``info.weights`` is (B, H, quantity, N). B = 0 gives an empty (0, quantity *
            output_size) output; N = 0 with B > 0 is a ValueError.
        """
        if unexpected:
            reject_forward_kwargs(self, unexpected)
        check_bool(return_info, "return_info")
        hop = self.hopfield
        x, v = self._pattern_inputs(input)  # (B, N, D) each
        check_masks(mask, association_mask,
                    (x.shape[0], hop.num_heads, self.quantity, x.shape[1]))
        state = self.query.unsqueeze(0)  # (1, Q, D), broadcast over the batch
        out, info = hop._associate(x, state, v, mask, association_mask, return_info)  # (B, Q, O)
        named = {"input": x} if v is x else {"stored": x, "projection": v}
        check_result(out, named, self, mask)
        out = out.flatten(1)  # (B, Q * O)
        return (out, info) if return_info else out
