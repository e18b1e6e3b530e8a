"""hflayers' transformer blocks (``HopfieldEncoderLayer`` / ``HopfieldDecoderLayer``) → ours.

hflayers' blocks are post-norm transformer blocks around hflayers ``Hopfield`` associations; each
association is converted by :func:`hopfield.compat.from_hflayers`, the feed-forward part and the
norms are copied into :class:`~hopfield.nn.HopfieldEncoderLayer` /
:class:`~hopfield.nn.HopfieldDecoderLayer` with ``norm_first=False``.
"""

from __future__ import annotations

import torch

#: hflayers block class → (our attention attribute ← hflayers association attribute, norms)
BLOCKS = {
    "HopfieldEncoderLayer": ((("self_attn", "hopfield_association"),),
                             (("norm1", "norm_residual"), ("norm2", "norm_output")),
                             (("dropout1", "dropout_hopfield_association"),
                              ("dropout2", "dropout_output"))),
    "HopfieldDecoderLayer": ((("self_attn", "hopfield_association_self"),
                              ("multihead_attn", "hopfield_association_cross")),
                             (("norm1", "norm_residual_self"), ("norm2", "norm_residual_cross"),
                              ("norm3", "norm_output")),
                             (("dropout1", "dropout_hopfield_association_self"),
                              ("dropout2", "dropout_hopfield_association_cross"),
                              ("dropout3", "dropout_output"))),
}


def from_block(module: torch.nn.Module, kind: str) -> torch.nn.Module:
    """hflayers HopfieldEncoderLayer / HopfieldDecoderLayer → ours (post-norm, same math)."""
    from ..nn import HopfieldDecoderLayer, HopfieldEncoderLayer
    from .hflayers import from_hflayers

    attns, norms, dropouts = BLOCKS[kind]
    converted = {ours: from_hflayers(getattr(module, theirs)) for ours, theirs in attns}
    first = converted["self_attn"]
    D = first.input_size
    for ours, layer in converted.items():
        if type(layer).__name__ != "Hopfield" or layer.output_size != D or layer.input_size != D:
            raise ValueError(f"{kind}: the association for {ours} must be an hflayers Hopfield "
                             f"with input_size == output_size == {D} (the residual needs it), "
                             f"got {type(layer).__name__} {layer.input_size} -> "
                             f"{layer.output_size}")
        if layer.batch_first != first.batch_first:
            raise ValueError(f"{kind}: the associations must share batch_first")
    act = module.activation_residual
    if not callable(act):
        raise TypeError(f"{kind}: activation_residual must be a torch function, got {act!r}")
    lin1, lin2 = module.linear_residual, module.linear_output
    norm0 = getattr(module, norms[0][1])
    cls = HopfieldEncoderLayer if kind == "HopfieldEncoderLayer" else HopfieldDecoderLayer
    new = cls(D, first.num_heads, dim_feedforward=lin1.out_features,
              dropout=float(module.dropout_residual.p), activation=act,
              layer_norm_eps=float(norm0.eps), batch_first=bool(first.batch_first),
              norm_first=False, bias=True, head_size=first.head_size,
              device=lin1.weight.device, dtype=lin1.weight.dtype)
    for ours, layer in converted.items():
        setattr(new, ours, layer)
    with torch.no_grad():
        new.linear1.load_state_dict(lin1.state_dict())
        new.linear2.load_state_dict(lin2.state_dict())
        for ours, theirs in norms:
            src = getattr(module, theirs)
            dst = getattr(new, ours)
            dst.eps = float(src.eps)
            if src.weight is None:  # hflayers' are affine; keep any variant exact
                dst.weight.fill_(1.0)
                dst.bias.zero_()
            else:
                dst.load_state_dict(src.state_dict())
    for ours, theirs in dropouts:
        getattr(new, ours).p = float(getattr(module, theirs).p)
    new.dropout.p = float(module.dropout_residual.p)
    return new.train(module.training)
