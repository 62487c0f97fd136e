"""Sinkhorn-Knopp: balanced soft assignment of samples to clusters (SwAV, DINOv2 style)."""

from __future__ import annotations

import torch
from torch import Tensor


@torch.no_grad()
def sinkhorn_knopp(scores: Tensor, epsilon: float = 0.05, iters: int = 3) -> Tensor:
    """Balanced assignment of ``N`` samples to ``K`` clusters from similarity ``scores``.

    Alternately normalises the transport plan so that every cluster gets ``N / K`` of the
    mass and every sample a mass of 1, starting from ``exp(scores / epsilon)``.

    Args:
        scores: similarities (e.g. cosine) of samples to clusters, ``[...] x N x K`` (leading
            dimensions are independent problems).
        epsilon: entropic regularisation; smaller gives harder assignments.
        iters: normalisation rounds; the row sums are exact, the column sums converge.

    Returns:
        Assignment of the same shape, rows summing to 1 and columns to about N / K.
    """
    n, k = scores.shape[-2:]
    logits = scores.float() / epsilon
    logits = logits - logits.amax(dim=(-2, -1), keepdim=True)
    q = torch.exp(logits)
    q = q / q.sum(dim=(-2, -1), keepdim=True).clamp_min(1e-30)
    for _ in range(iters):
        q = q / q.sum(dim=-2, keepdim=True).clamp_min(1e-30) / k  # each cluster: 1/K
        q = q / q.sum(dim=-1, keepdim=True).clamp_min(1e-30) / n  # each sample: 1/N
    return (q * n).to(scores.dtype)
