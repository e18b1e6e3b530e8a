"""Separation (normalisation) functions: the map from similarity scores to association weights.

A registry in the style of timm's ``get_act_layer``: ``get_separation("entmax", alpha=1.3)``.
Each entry maps scores ``(..., N)`` to a probability vector along the last dimension.

- ``softmax``: the modern Hopfield network of Ramsauer et al. (2020); dense weights.
- ``sparsemax``: Euclidean projection onto the simplex (Martins & Astudillo, 2016); the sparse
  modern Hopfield network of Hu et al. (2023).
- ``entmax``: α-entmax (Peters et al., 2019), interpolating softmax (α → 1) and sparsemax (α = 2);
  generalised sparse Hopfield networks (Wu et al., 2023).

The sparse maps come from the ``entmax`` package (deep-spin), which provides exact gradients.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = [
    "Entmax",
    "Separation",
    "Softmax",
    "Sparsemax",
    "available_separations",
    "get_separation",
    "register_separation",
]

_REGISTRY: dict[str, type[Separation]] = {}


def register_separation(name: str) -> Callable[[type[Separation]], type[Separation]]:
    """Class decorator adding a separation function to the registry under ``name``."""

    def wrap(cls: type[Separation]) -> type[Separation]:
        if name in _REGISTRY:
            raise ValueError(f"separation {name!r} is already registered")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def available_separations() -> list[str]:
    return sorted(_REGISTRY)


class Separation:
    """Base class: ``__call__(scores)`` returns weights summing to one along the last dim."""

    name: str = "separation"
    #: True when the weights are exactly a softmax, so the fused SDPA path applies.
    is_softmax: bool = False

    def __call__(self, scores: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(vars(self).items()))))


@register_separation("softmax")
class Softmax(Separation):
    is_softmax = True

    def __call__(self, scores: torch.Tensor) -> torch.Tensor:
        return torch.softmax(scores, dim=-1)


@register_separation("sparsemax")
class Sparsemax(Separation):
    def __call__(self, scores: torch.Tensor) -> torch.Tensor:
        from entmax import sparsemax

        return sparsemax(scores, dim=-1)


@register_separation("entmax")
class Entmax(Separation):
    """α-entmax with ``alpha`` in (1, 2]; ``alpha=1.5`` uses the exact sort-based algorithm."""

    def __init__(self, alpha: float = 1.5) -> None:
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
            raise TypeError(f"alpha must be a float, got {type(alpha).__name__}")
        if not 1.0 < float(alpha) <= 2.0:
            raise ValueError(f"alpha must be in (1, 2], got {alpha}")
        self.alpha = float(alpha)

    def __call__(self, scores: torch.Tensor) -> torch.Tensor:
        from entmax import entmax15, entmax_bisect, sparsemax

        if self.alpha == 1.5:
            return entmax15(scores, dim=-1)
        if self.alpha == 2.0:
            return sparsemax(scores, dim=-1)
        return entmax_bisect(scores, alpha=self.alpha, dim=-1)

    def __repr__(self) -> str:
        return f"Entmax(alpha={self.alpha})"


def get_separation(separation: str | Separation = "softmax", **kwargs: float) -> Separation:
    """Return a separation function by name (or pass an instance through).

    >>> get_separation("entmax", alpha=1.3)
    Entmax(alpha=1.3)
    """
    if isinstance(separation, Separation):
        if kwargs:
            raise TypeError("keyword arguments are only accepted with a separation name")
        return separation
    if not isinstance(separation, str):
        raise TypeError(
            f"separation must be a name or a Separation instance, got {type(separation).__name__}"
        )
    try:
        cls = _REGISTRY[separation]
    except KeyError:
        raise ValueError(
            f"separation must be one of {available_separations()}, got {separation!r}"
        ) from None
    return cls(**kwargs)
