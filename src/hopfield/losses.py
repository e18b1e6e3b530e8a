"""Contrastive losses of the Hopfield family: InfoNCE, InfoLOOB and CLOOB.

CLOOB is "CLOOB: Modern Hopfield Networks with InfoLOOB Outperform CLIP" (Fürst et al., NeurIPS
2022). Shape legend: N pairs in a batch (x_i, y_i) of two modalities / views, D embedding dims.
Embeddings are rows; with ``normalize=True`` (default) every row is first scaled to unit length,
as CLIP and CLOOB do. τ⁻¹ is the inverse temperature, β the Hopfield inverse temperature.

InfoNCE (CLIP's loss; the paper sums the two directions, CLIP averages them)::

    L = − 1/N Σ_i log [ exp(τ⁻¹ x_iᵀy_i) / Σ_j exp(τ⁻¹ x_iᵀy_j) ]
        − 1/N Σ_i log [ exp(τ⁻¹ x_iᵀy_i) / Σ_j exp(τ⁻¹ x_jᵀy_i) ]

InfoLOOB (leave one out: the positive pair is not in the denominator, j ≠ i)::

    L = − 1/N Σ_i log [ exp(τ⁻¹ x_iᵀy_i) / Σ_{j≠i} exp(τ⁻¹ x_iᵀy_j) ]
        − 1/N Σ_i log [ exp(τ⁻¹ x_iᵀy_i) / Σ_{j≠i} exp(τ⁻¹ x_jᵀy_i) ]

Hopfield retrieval (CLOOB, paper Eq. 4; one update of a modern Hopfield network without projections
whose stored patterns are the batch's embeddings of one modality; every retrieved row is then
renormalised to unit length)::

    U_x = X softmax(β Xᵀ X)    images retrieved by images      update(state=x, patterns=x)
    U_y = X softmax(β Xᵀ Y)    images retrieved by texts       update(state=y, patterns=x)
    V_x = Y softmax(β Yᵀ X)    texts retrieved by images       update(state=x, patterns=y)
    V_y = Y softmax(β Yᵀ Y)    texts retrieved by texts        update(state=y, patterns=y)

CLOOB = InfoLOOB on the retrievals, the first term on the x-memory and the second on the y-memory::

    L = − 1/N Σ_i log [ exp(τ⁻¹ u_{x_i}ᵀu_{y_i}) / Σ_{j≠i} exp(τ⁻¹ u_{x_i}ᵀu_{y_j}) ]
        − 1/N Σ_i log [ exp(τ⁻¹ v_{x_i}ᵀv_{y_i}) / Σ_{j≠i} exp(τ⁻¹ v_{x_j}ᵀv_{y_i}) ]

"InfoNCE + Hopfield" (the paper's ablation) is InfoNCE on the same retrievals: ``info_nce(...,
beta=β)``. The paper's code additionally multiplies InfoLOOB by τ (a gradient scale); these
functions return the loss exactly as written above.

``mask`` (N, N) bool, True = do not use that pair as a negative: ``mask[i, j]`` removes
(x_i, y_j) from both denominators (e.g. j is a known duplicate of i: a false negative). The
diagonal (the positives) cannot be masked; the mask does not change the Hopfield retrieval.
A batch needs N ≥ 2 pairs (InfoLOOB has no negatives otherwise; InfoNCE would be the constant 0),
and with InfoLOOB every anchor must keep at least one negative.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import functional as HF
from ._validation import check_beta, check_tensor, shape_str

__all__ = [
    "CLOOBLoss",
    "InfoLOOB",
    "InfoNCE",
    "cloob",
    "hopfield_retrieval",
    "info_loob",
    "info_nce",
]

CLOOB_INVERSE_TEMPERATURE = 14.3
CLOOB_BETA = 14.3
MAX_INVERSE_TEMPERATURE = 100.0  # CLIP's clamp of the learnable logit scale

Scalar = float | torch.Tensor


# ----------------------------------------------------------------------------- checks


def _check_pairs(x: object, y: object, mask: object) -> torch.Tensor | None:
    check_tensor(x, "x", ndim=2, layout="(N, D)")
    check_tensor(y, "y", ndim=2, layout="(N, D)")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same embedding dim D, got x {shape_str(x.shape)} "
                         f"and y {shape_str(y.shape)}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must hold the same number of pairs N, got x "
                         f"{shape_str(x.shape)} and y {shape_str(y.shape)}")
    if x.shape[0] < 2:
        raise ValueError(f"x and y must hold at least 2 pairs (a contrastive loss needs "
                         f"negatives), got N = {x.shape[0]}")
    if x.shape[1] == 0:
        raise ValueError(f"x and y must have at least one dimension D, got {shape_str(x.shape)}")
    if x.dtype != y.dtype:
        raise TypeError(f"x and y must share a dtype, got {x.dtype} and {y.dtype}")
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a bool torch.Tensor, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError("mask must have dtype torch.bool (True = not a negative), got "
                        f"{mask.dtype}")
    n = x.shape[0]
    if tuple(mask.shape) != (n, n):
        raise ValueError(f"mask must have shape ({n}, {n}), got {shape_str(mask.shape)}")
    if bool(mask.diagonal().any()):
        raise ValueError("mask must be False on the diagonal (the positive pairs cannot be masked)")
    return mask.to(x.device)


def _check_scalar(value: object, name: str) -> Scalar:
    value = check_beta(value, name)
    if isinstance(value, torch.Tensor) and value.dim() != 0:
        raise ValueError(f"{name} must be a float or a 0-d tensor, got shape "
                         f"{shape_str(value.shape)}")
    return value


# ----------------------------------------------------------------------------- core


def _contrastive(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor,
                 inv_tau: Scalar, loo: bool, mask: torch.Tensor | None) -> torch.Tensor:
    """−mean log-ratio of anchors a_i vs candidates b_j, plus anchors d_i vs candidates c_j.

    Term 1 scores a_iᵀb_j (row i over j), term 2 scores c_jᵀd_i (column i over j).
    """
    n = a.shape[0]
    s1 = inv_tau * (a @ b.mT)  # (N, N): [i, j] = τ⁻¹ a_iᵀ b_j
    s2 = inv_tau * (c @ d.mT)  # (N, N): [j, i] = τ⁻¹ c_jᵀ d_i
    pos1, pos2 = s1.diagonal(), s2.diagonal()
    drop = torch.zeros(n, n, dtype=torch.bool, device=a.device) if mask is None else mask
    if loo:
        drop = drop | torch.eye(n, dtype=torch.bool, device=a.device)
    if loo or mask is not None:
        s1 = s1.masked_fill(drop, float("-inf"))
        s2 = s2.masked_fill(drop, float("-inf"))
    neg1 = torch.logsumexp(s1, dim=1)  # over candidates j of anchor i
    neg2 = torch.logsumexp(s2, dim=0)  # over candidates j of anchor i (column)
    return (neg1 - pos1).mean() + (neg2 - pos2).mean()


def hopfield_retrieval(x: torch.Tensor, y: torch.Tensor, beta: Scalar = CLOOB_BETA, *,
                       normalize: bool = True) -> tuple[torch.Tensor, ...]:
    """CLOOB's retrievals ``(U_x, U_y, V_x, V_y)``, each (N, D) with unit-length rows.

    One :func:`hopfield.functional.update` per memory: U from the x-memory, V from the
    y-memory; the subscript names the queries (see the module docstring).
    """
    _check_pairs(x, y, None)
    beta = _check_scalar(beta, "beta")
    if normalize:
        x, y = F.normalize(x, dim=-1), F.normalize(y, dim=-1)
    u = HF.update(torch.stack([x, y]), x, beta)  # (2, N, D): states x, y over stored x
    v = HF.update(torch.stack([x, y]), y, beta)  # states x, y over stored y
    u, v = F.normalize(u, dim=-1), F.normalize(v, dim=-1)
    return u[0], u[1], v[0], v[1]


def _loss(x, y, inverse_temperature, beta, mask, normalize, loo):
    mask = _check_pairs(x, y, mask)
    inv_tau = _check_scalar(inverse_temperature, "inverse_temperature")
    if loo and mask is not None:
        left = (~mask).sum(dim=1) - 1, (~mask).sum(dim=0) - 1  # negatives per anchor
        if bool((left[0] < 1).any()) or bool((left[1] < 1).any()):
            raise ValueError("mask leaves an anchor without any negative; InfoLOOB needs at least "
                             "one unmasked j != i in every row and column")
    if beta is None:
        if normalize:
            x, y = F.normalize(x, dim=-1), F.normalize(y, dim=-1)
        return _contrastive(x, y, x, y, inv_tau, loo, mask)
    ux, uy, vx, vy = hopfield_retrieval(x, y, beta, normalize=normalize)
    return _contrastive(ux, uy, vx, vy, inv_tau, loo, mask)


def info_nce(x: torch.Tensor, y: torch.Tensor,
             inverse_temperature: Scalar = CLOOB_INVERSE_TEMPERATURE, *,
             beta: Scalar | None = None, mask: torch.Tensor | None = None,
             normalize: bool = True) -> torch.Tensor:
    """InfoNCE of paired embeddings x (N, D), y (N, D); a 0-d tensor.

    With ``beta`` the embeddings are first replaced by CLOOB's Hopfield retrievals
    ("InfoNCE + Hopfield"). Reference (plain math, float64 in the tests)::

        x, y = x / |x|, y / |y|;  s = τ⁻¹ x @ y.T
        loss = mean_i(lse_j s[i, j] − s[i, i]) + mean_i(lse_j s[j, i] − s[i, i])
    """
    return _loss(x, y, inverse_temperature, beta, mask, normalize, loo=False)


def info_loob(x: torch.Tensor, y: torch.Tensor,
              inverse_temperature: Scalar = CLOOB_INVERSE_TEMPERATURE, *,
              beta: Scalar | None = None, mask: torch.Tensor | None = None,
              normalize: bool = True) -> torch.Tensor:
    """InfoLOOB (leave-one-out bound) of paired embeddings; a 0-d tensor.

    Reference::

        s = τ⁻¹ x @ y.T
        loss = mean_i(lse_{j≠i} s[i, j] − s[i, i]) + mean_i(lse_{j≠i} s[j, i] − s[i, i])
    """
    return _loss(x, y, inverse_temperature, beta, mask, normalize, loo=True)


def cloob(x: torch.Tensor, y: torch.Tensor,
          inverse_temperature: Scalar = CLOOB_INVERSE_TEMPERATURE, beta: Scalar = CLOOB_BETA, *,
          mask: torch.Tensor | None = None, normalize: bool = True) -> torch.Tensor:
    """CLOOB: InfoLOOB on the Hopfield retrievals (U_x, U_y) and (V_x, V_y); a 0-d tensor.

    Reference::

        U_x, U_y, V_x, V_y = hopfield_retrieval(x, y, beta)   # one update each, renormalised
        su = τ⁻¹ U_x @ U_y.T;  sv = τ⁻¹ V_x @ V_y.T
        loss = mean_i(lse_{j≠i} su[i, j] − su[i, i]) + mean_i(lse_{j≠i} sv[j, i] − sv[i, i])
    """
    if beta is None:
        raise TypeError("beta must be a float > 0 or a 0-d tensor for CLOOB, got None "
                        "(use info_loob for InfoLOOB without retrieval)")
    return _loss(x, y, inverse_temperature, beta, mask, normalize, loo=True)


# ----------------------------------------------------------------------------- modules


class _ContrastiveLoss(nn.Module):
    """Owns τ⁻¹ (learnable by default, stored as log τ⁻¹ and clamped to ≤ 100 as in CLIP) and
    the Hopfield β (fixed by default, learnable with ``learn_beta=True``, stored as log β)."""

    loo = False
    hopfield_default: float | None = None

    def __init__(self, inverse_temperature: float = CLOOB_INVERSE_TEMPERATURE, *,
                 learn_temperature: bool = True, beta: float | None = None,
                 learn_beta: bool = False, normalize: bool = True) -> None:
        super().__init__()
        inv_tau = float(_check_scalar(inverse_temperature, "inverse_temperature"))
        if inv_tau > MAX_INVERSE_TEMPERATURE:
            raise ValueError(f"inverse_temperature must be <= {MAX_INVERSE_TEMPERATURE}, got "
                             f"{inv_tau}")
        log_t = torch.tensor(math.log(inv_tau))
        if learn_temperature:
            self.log_inverse_temperature = nn.Parameter(log_t)
        else:
            self.register_buffer("log_inverse_temperature", log_t)
        if beta is None:
            if learn_beta:
                raise ValueError("learn_beta=True needs a beta (the Hopfield retrieval is off "
                                 "with beta=None)")
            self.log_beta = None
        else:
            log_b = torch.tensor(math.log(float(_check_scalar(beta, "beta"))))
            if learn_beta:
                self.log_beta = nn.Parameter(log_b)
            else:
                self.register_buffer("log_beta", log_b)
        self.normalize = bool(normalize)

    @property
    def inverse_temperature(self) -> torch.Tensor:
        return self.log_inverse_temperature.exp().clamp(max=MAX_INVERSE_TEMPERATURE)

    @property
    def beta(self) -> torch.Tensor | None:
        return None if self.log_beta is None else self.log_beta.exp()

    def forward(self, x: torch.Tensor, y: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        dt = x.dtype if isinstance(x, torch.Tensor) and x.is_floating_point() else torch.float32
        inv_tau = self.inverse_temperature.to(dt)
        beta = None if self.beta is None else self.beta.to(dt)
        return _loss(x, y, inv_tau, beta, mask, self.normalize, loo=self.loo)

    def extra_repr(self) -> str:
        b = "None" if self.beta is None else f"{float(self.beta.detach()):.4g}"
        return (f"inverse_temperature={float(self.inverse_temperature.detach()):.4g}, beta={b}, "
                f"normalize={self.normalize}")


class InfoNCE(_ContrastiveLoss):
    """:func:`info_nce` as a module; ``beta`` given → InfoNCE + Hopfield retrieval."""


class InfoLOOB(_ContrastiveLoss):
    """:func:`info_loob` as a module; ``beta`` given → InfoLOOB on Hopfield retrievals (CLOOB)."""

    loo = True


class CLOOBLoss(_ContrastiveLoss):
    """:func:`cloob` as a module: τ⁻¹ = 14.3 (learnable), β = 14.3 (fixed unless ``learn_beta``)."""

    loo = True

    def __init__(self, inverse_temperature: float = CLOOB_INVERSE_TEMPERATURE, *,
                 learn_temperature: bool = True, beta: float = CLOOB_BETA,
                 learn_beta: bool = False, normalize: bool = True) -> None:
        if beta is None:
            raise TypeError("beta must be a float > 0 for CLOOBLoss, got None (use InfoLOOB)")
        super().__init__(inverse_temperature, learn_temperature=learn_temperature, beta=beta,
                         learn_beta=learn_beta, normalize=normalize)
