"""Hopfield Boosting (Hofmann et al. 2024): the training side of :mod:`hopfield.ood`.

Shape legend: N in-distribution embeddings, K auxiliary outliers, L queries, D features.

:func:`hopfield_boosting_loss` is the paper's OOD loss on a batch of
in-distribution embeddings X and auxiliary-outlier embeddings O (unit-normalised), and
:func:`boundary_energy` its energy, maximal on the boundary between the two memories::

    E_b(ξ; X, O) = −2 lse_β((X ∥ O)ᵀξ) + lse_β(Xᵀξ) + lse_β(Oᵀξ),   lse_β(z) = β⁻¹ log Σ exp(β z)
    L_OOD = mean_{ξ ∈ X ∪ O} E_b(ξ; X \\ ξ, O \\ ξ)

Minimising L_OOD pushes every sample away from the boundary towards its own memory. The paper's
boosting step samples the auxiliary outliers for the next epoch with probabilities
``softmax(β_s E_b(o; X, O))`` (:func:`hopfield_boosting_weights`): outliers near the boundary are
drawn most often.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._validation import check_beta, check_tensor, shape_str, skip_data_checks

__all__ = ["boundary_energy", "hopfield_boosting_loss", "hopfield_boosting_weights"]


# ----------------------------------------------------------------------------- Hopfield Boosting


def _lse_beta(scores: torch.Tensor, beta: float | torch.Tensor) -> torch.Tensor:
    return torch.logsumexp(beta * scores, dim=-1) / beta


def boundary_energy(queries: torch.Tensor, in_patterns: torch.Tensor,
                    aux_patterns: torch.Tensor, beta: float | torch.Tensor = 4.0, *,
                    exclude_self: bool = False, normalize: bool = True) -> torch.Tensor:
    """Hopfield Boosting's E_b(ξ; X, O) of every query (L,); maximal (−2 β⁻¹ log 2) on the
    boundary where lse_β(Xᵀξ) = lse_β(Oᵀξ).

    ``exclude_self``: the queries are the rows of ``in_patterns`` followed by those of
    ``aux_patterns`` (L = N + K) and each leaves itself out of its memory.
    """
    check_tensor(queries, "queries", ndim=2, layout="(L, D)")
    check_tensor(in_patterns, "in_patterns", ndim=2, layout="(N, D)")
    check_tensor(aux_patterns, "aux_patterns", ndim=2, layout="(K, D)")
    d = in_patterns.shape[1]
    if queries.shape[1] != d or aux_patterns.shape[1] != d:
        raise ValueError(f"queries, in_patterns and aux_patterns must share the feature dim, got "
                         f"{shape_str(queries.shape)}, {shape_str(in_patterns.shape)} and "
                         f"{shape_str(aux_patterns.shape)}")
    n, k = in_patterns.shape[0], aux_patterns.shape[0]
    if n == 0 or k == 0:
        raise ValueError(f"in_patterns and aux_patterns must each hold at least one pattern, got "
                         f"{n} and {k}")
    beta = check_beta(beta)
    if normalize:
        queries = F.normalize(queries, dim=-1)
        in_patterns = F.normalize(in_patterns, dim=-1)
        aux_patterns = F.normalize(aux_patterns, dim=-1)
    s = queries @ torch.cat([in_patterns, aux_patterns]).mT  # (L, N + K)
    if exclude_self:
        if queries.shape[0] != n + k:
            raise ValueError(f"exclude_self=True needs the queries to be in_patterns followed by "
                             f"aux_patterns (L = {n + k}), got L = {queries.shape[0]}")
        if n < 2 or k < 2:
            raise ValueError(f"exclude_self=True needs at least 2 in-distribution and 2 auxiliary "
                             f"samples, got {n} and {k}")
        s = s.masked_fill(torch.eye(n + k, dtype=torch.bool, device=s.device), float("-inf"))
    return -2 * _lse_beta(s, beta) + _lse_beta(s[:, :n], beta) + _lse_beta(s[:, n:], beta)


def hopfield_boosting_loss(in_embeddings: torch.Tensor, aux_embeddings: torch.Tensor,
                           beta: float | torch.Tensor = 4.0, *,
                           normalize: bool = True) -> torch.Tensor:
    """The OOD loss of Hopfield Boosting (Hofmann et al. 2024) on one batch; a 0-d tensor.

    ``in_embeddings`` (N, D) of in-distribution samples and ``aux_embeddings`` (K, D) of
    auxiliary outliers are both memories and queries; each query leaves itself out. Add it,
    weighted, to the classification loss of the encoder. Reference::

        X, O = normalize(in), normalize(aux);  Q = cat(X, O)
        s = Q @ cat(X, O).T with the diagonal set to −inf
        E_b = −2 lse_β(s) + lse_β(s[:, :N]) + lse_β(s[:, N:]);   loss = E_b.mean()
    """
    check_tensor(in_embeddings, "in_embeddings", ndim=2, layout="(N, D)")
    check_tensor(aux_embeddings, "aux_embeddings", ndim=2, layout="(K, D)")
    if in_embeddings.shape[1] != aux_embeddings.shape[1]:
        raise ValueError(f"in_embeddings and aux_embeddings must have the same dim D, got "
                         f"{shape_str(in_embeddings.shape)} and {shape_str(aux_embeddings.shape)}")
    for name, x in (("in_embeddings", in_embeddings), ("aux_embeddings", aux_embeddings)):
        if x.shape[0] < 2:
            raise ValueError(f"{name} must hold at least 2 samples (each query leaves itself "
                             f"out), got shape {shape_str(x.shape)}")
    q = torch.cat([in_embeddings, aux_embeddings])  # (N + K, D)
    loss = boundary_energy(q, in_embeddings, aux_embeddings, beta, exclude_self=True,
                           normalize=normalize).mean()
    if not skip_data_checks() and not bool(torch.isfinite(loss)):
        raise ValueError(f"beta={float(beta) if not isinstance(beta, torch.Tensor) else beta} "
                         "makes the boundary energy overflow (it scales like 1/beta): use a "
                         "larger beta or float64 embeddings")
    return loss


@torch.no_grad()
def hopfield_boosting_weights(aux_embeddings: torch.Tensor, in_embeddings: torch.Tensor,
                              beta: float = 4.0, sampling_beta: float = 1.0, *,
                              normalize: bool = True) -> torch.Tensor:
    """Sampling probabilities (K,) of the auxiliary outliers for the next round of boosting:
    ``softmax(sampling_beta · E_b(o_k; X, O \\ o_k))``, largest for outliers near the boundary."""
    check_tensor(aux_embeddings, "aux_embeddings", ndim=2, layout="(K, D)")
    check_tensor(in_embeddings, "in_embeddings", ndim=2, layout="(N, D)")
    sampling_beta = check_beta(sampling_beta, "sampling_beta")
    k = aux_embeddings.shape[0]
    if k < 2:
        raise ValueError(f"aux_embeddings must hold at least 2 samples, got {k}")
    eb = _aux_boundary(aux_embeddings, in_embeddings, beta, normalize)  # (K,)
    return torch.softmax(sampling_beta * eb, dim=0)


def _aux_boundary(aux, inn, beta, normalize):
    beta = check_beta(beta)
    if aux.shape[1] != inn.shape[1]:
        raise ValueError(f"aux_embeddings and in_embeddings must have the same dim D, got "
                         f"{shape_str(aux.shape)} and {shape_str(inn.shape)}")
    if normalize:
        aux, inn = F.normalize(aux, dim=-1), F.normalize(inn, dim=-1)
    s_in = aux @ inn.mT  # (K, N)
    s_aux = (aux @ aux.mT).masked_fill(torch.eye(aux.shape[0], dtype=torch.bool,
                                                 device=aux.device), float("-inf"))  # (K, K)
    both = torch.cat([s_in, s_aux], dim=1)
    return -2 * _lse_beta(both, beta) + _lse_beta(s_in, beta) + _lse_beta(s_aux, beta)
