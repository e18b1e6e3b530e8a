"""PyTorch layers of modern Hopfield networks: ``Hopfield``, ``HopfieldPooling``, ``HopfieldLayer``.

Thin ``torch.nn`` modules that own the projections and β and call the functional core
(:mod:`hopfield.functional`). See docs/layers.md for examples.
"""

from .hopfield import Hopfield
from .info import HopfieldInfo
from .lookup import HopfieldLayer
from .pooling import HopfieldPooling

__all__ = ["Hopfield", "HopfieldInfo", "HopfieldLayer", "HopfieldPooling"]
