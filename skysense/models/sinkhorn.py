"""Sinkhorn-Knopp: balanced soft assignment of samples to clusters (SwAV, DINOv2 style)."""

from __future__ import annotations

import torch
from torch import Tensor


@torch.no_grad()
def sinkhorn_knopp(scores: Tensor, epsilon: float = 0.05, iters: int = 3) -> Tensor:
    """Balanced assignment of ``N`` samples to ``K`` clusters from similarity ``scores`` (N x K).

    Alternately normalises the transport plan so that every cluster gets ``N / K`` of the
    mass and every sample a mass of 1, starting from ``exp(scores / epsilon)``.

    Args:
        scores: similarities (e.g. cosine) of samples to clusters, N x K.
        epsilon: entropic regularisation; smaller gives harder assignments.
        iters: normalisation rounds; the row sums are exact, the column sums converge.

    Returns:
        Assignment N x K, rows summing to 1 and columns to about N / K.
    """
    n, k = scores.shape
    logits = scores.float() / epsilon
    q = torch.exp(logits - logits.max()).t()  # K x N
    q = q / q.sum().clamp_min(1e-12)
    for _ in range(iters):
        q = q / q.sum(dim=1, keepdim=True).clamp_min(1e-12) / k
        q = q / q.sum(dim=0, keepdim=True).clamp_min(1e-12) / n
    return (q * n).t().to(scores.dtype)
