"""Pre-training objectives: multi-granularity contrastive losses and cross-modal alignment.

Every loss is an InfoNCE between a query (student) and a key (teacher or another modality) set
whose positives share an index; the others in the batch are negatives. Dense losses (pixel,
object, cross-modal) take their negatives from *other samples* only (``groups``): another point of
the same chip, or the same point at another date, is often the same field, and treating it as a
negative pushes apart what should agree (measured: it lowers the linear probe). Each function
takes features already sampled at corresponding places, so each can be tested on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from skysense.models.sinkhorn import sinkhorn_knopp


def info_nce(
    query: Tensor,
    key: Tensor,
    temperature: float = 0.1,
    mask: Tensor | None = None,
    groups: Tensor | None = None,
) -> Tensor:
    """InfoNCE of ``query`` against ``key`` (N x D each; row i of both is a positive pair).

    Features are L2-normalised; ``mask`` (N bool) keeps rows taking part. ``groups`` (N ints,
    e.g. the sample index of each point): keys of the row's own group other than its positive
    are left out of its negatives. Zero (with a graph) when fewer than two rows take part or no
    row has a negative.
    """
    if mask is not None:
        query, key = query[mask], key[mask]
        groups = groups[mask] if groups is not None else None
    if query.shape[0] < 2:
        return query.sum() * 0.0
    q = F.normalize(query.float(), dim=-1)
    k = F.normalize(key.float(), dim=-1)
    logits = q @ k.t() / temperature
    target = torch.arange(q.shape[0], device=q.device)
    if groups is not None:
        same = groups[:, None] == groups[None, :]
        same.fill_diagonal_(False)
        has_negative = (~same).sum(1) > 1  # the diagonal (positive) is never masked
        if not bool(has_negative.any()):
            return query.sum() * 0.0  # a single group: no negatives at all
        logits = logits.masked_fill(same, float("-inf"))[has_negative]
        target = target[has_negative]
    return F.cross_entropy(logits, target)


def _sample_index(shape: tuple[int, ...], device: torch.device) -> Tensor:
    """The sample (first-axis) index of every element of a ``shape`` array, flattened."""
    return (
        torch.arange(shape[0], device=device)
        .view(-1, *([1] * (len(shape) - 1)))
        .expand(shape)
        .reshape(-1)
    )


def pixel_contrastive_loss(
    student: Tensor, teacher: Tensor, mask: Tensor, temperature: float = 0.1
) -> Tensor:
    """Pixel level: a student point against the teacher's feature at the same place and date.

    Args:
        student: features at corresponding points, ``B x T x K x D`` (T dates, K points).
        teacher: the other view's teacher features at the same points, same shape.
        mask: ``B x T x K`` (point in both crops, date usable in both views).
        temperature: the softmax temperature of the InfoNCE.
    """
    d = student.shape[-1]
    groups = _sample_index(tuple(mask.shape), mask.device)
    return info_nce(
        student.reshape(-1, d), teacher.reshape(-1, d), temperature, mask.reshape(-1), groups
    )


def object_contrastive_loss(
    student: Tensor,
    teacher: Tensor,
    mask: Tensor,
    n_clusters: int = 4,
    temperature: float = 0.1,
    epsilon: float = 0.05,
    iters: int = 3,
) -> Tensor:
    """Object level: Sinkhorn-Knopp clusters of the teacher's pixel features, whose centres in
    the student and in the teacher are contrasted (same cluster of the same sample = positive).

    Args:
        student: features at corresponding points, ``B x K x D``.
        teacher: teacher features at the same points, ``B x K x D``.
        mask: ``B`` samples taking part.
        n_clusters: clusters per sample (at most K).
        temperature: the softmax temperature of the InfoNCE.
        epsilon: Sinkhorn-Knopp entropy regularisation.
        iters: Sinkhorn-Knopp iterations.
    """
    b, k, _ = teacher.shape
    c = min(n_clusters, k)
    t_hat = F.normalize(teacher.detach().float(), dim=-1)
    seeds = t_hat[:, torch.linspace(0, k - 1, c, device=t_hat.device).long()]  # B x C, spread
    q = sinkhorn_knopp(t_hat @ seeds.transpose(1, 2), epsilon, iters)  # B x K x C
    q = q / q.sum(1, keepdim=True).clamp_min(1e-12)
    s_centres = q.transpose(1, 2).to(student.dtype) @ student  # B x C x D
    t_centres = q.transpose(1, 2) @ t_hat
    keep = mask[:, None].expand(b, c)
    groups = _sample_index((b, c), mask.device)
    return info_nce(
        s_centres.reshape(b * c, -1),
        t_centres.reshape(b * c, -1),
        temperature,
        keep.reshape(-1),
        groups,
    )


def image_contrastive_loss(
    student: Tensor, teacher: Tensor, mask: Tensor, temperature: float = 0.1
) -> Tensor:
    """Image level: pooled student feature against the other view's pooled teacher feature.

    ``student``, ``teacher``: ``B x D``; ``mask``: ``B``.
    """
    return info_nce(student, teacher, temperature, mask)


def cross_modal_loss(
    features: Mapping[str, Tensor], masks: Mapping[str, Tensor], temperature: float = 0.1
) -> Tensor:
    """Cross-modal alignment: features of the same place from two modalities are positives.

    Symmetric InfoNCE averaged over every pair of modalities present.

    Args:
        features: per modality (e.g. ``hr``, ``s2``, ``s1``) features ``B x K x D`` at the same
            points (or ``B x D`` pooled).
        masks: per modality ``B`` bool (modality usable for the sample).
        temperature: the softmax temperature of the InfoNCE.
    """
    names = sorted(features)
    losses = []
    for i, a in enumerate(names):
        for b_name in names[i + 1 :]:
            fa, fb = features[a], features[b_name]
            both = masks[a] & masks[b_name]
            if fa.ndim == 3:
                both = both[:, None].expand(-1, fa.shape[1])
            groups = _sample_index(tuple(both.shape), both.device)
            fa, fb, both = (
                fa.reshape(-1, fa.shape[-1]),
                fb.reshape(-1, fb.shape[-1]),
                both.reshape(-1),
            )
            if int(both.sum()) < 2:
                continue
            losses.append(
                0.5
                * (
                    info_nce(fa, fb, temperature, both, groups)
                    + info_nce(fb, fa, temperature, both, groups)
                )
            )
    if not losses:
        ref = next(iter(features.values()))
        return ref.sum() * 0.0
    return torch.stack(losses).mean()


LOSS_NAMES = ("pixel", "object", "image", "fused", "cross_modal")


def weighted_total(components: Mapping[str, Tensor], weights: Any) -> Tensor:
    """``sum(w_name * loss_name)`` over :data:`LOSS_NAMES` (weights: ``train.loss_weights``)."""
    terms = [float(getattr(weights, name)) * components[name] for name in LOSS_NAMES]
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total
