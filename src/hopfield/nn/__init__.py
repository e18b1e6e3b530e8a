"""PyTorch layers of modern Hopfield networks: ``Hopfield``, ``HopfieldPooling``, ``HopfieldLayer``.

Thin ``torch.nn`` modules that own the projections and β and call one public functional core,
:func:`hopfield.nn.functional.hopfield_forward` (as ``nn.MultiheadAttention`` calls
``F.multi_head_attention_forward``). See docs/layers.md for examples.
"""

from . import functional
from .functional import hopfield_forward
from .hopfield import HeadSpace, Hopfield, Norm
from .info import HopfieldInfo
from .lookup import HopfieldLayer
from .pooling import HopfieldPooling
from .transformer import HopfieldDecoderLayer, HopfieldEncoderLayer

__all__ = [
           "HeadSpace",
           "Hopfield",
           "HopfieldDecoderLayer",
           "HopfieldEncoderLayer",
           "HopfieldInfo",
           "HopfieldLayer",
           "HopfieldPooling",
           "Norm",
           "functional",
           "hopfield_forward",
]
