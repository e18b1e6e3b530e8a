"""Migration helpers from other Hopfield-layer packages (see docs/hflayers.md).

:mod:`hopfield.compat.hflayers` converts ``hflayers`` (ml-jku/hopfield-layers) modules and
state dicts into :mod:`hopfield.nn` layers that compute the same function.
"""

from . import hflayers

__all__ = ["hflayers"]
