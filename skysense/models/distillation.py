"""Self-distillation pieces of the paper's objective (DINO style, which SkySense builds on).

* :class:`DistillationHead`: MLP -> L2-normalised bottleneck -> weight-normalised linear layer
  to ``K`` prototype logits; the student's heads are trained, the teacher's are its EMA.
* :class:`Centering`: the teacher's running centre ``c`` of its logits (``c = m c + (1 - m)
  mean``, averaged over ranks), subtracted before sharpening; without it the teacher collapses
  onto one prototype.
* :func:`distillation_loss`: ``H(P_t, P_s) = -sum_k P_t[k] log P_s[k]`` with
  ``P_t = softmax((t - c) / tau_t)`` (no gradient) and ``P_s = softmax(s / tau_s)``, averaged over
  the rows that take part.
* :class:`TeacherHealth`: the two entropies that tell the two collapses of self-distillation
  apart (DINO's monitor): the mean entropy of the teacher's rows and the entropy of their mean.

Each is small and tested on its own (tests/models/test_distillation.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn


class DistillationHead(nn.Module):
    """``D -> hidden -> hidden -> bottleneck`` MLP (GELU), L2 norm, then ``bottleneck -> K``
    weight-normalised linear (norm fixed at 1, as DINO).
    """

    def __init__(self, dim: int, hidden: int, bottleneck: int, prototypes: int) -> None:
        super().__init__()
        self.in_dim = dim
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Linear(hidden, bottleneck),
        )
        self.last = nn.Linear(bottleneck, prototypes, bias=False)
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.last.weight, std=0.02)

    def embed(self, x: Tensor) -> Tensor:
        """The L2-normalised bottleneck ``... x bottleneck`` (used by cross-modal alignment)."""
        return F.normalize(self.mlp(x), dim=-1)

    def logits_of(self, z: Tensor) -> Tensor:
        """Prototype logits of a normalised bottleneck ``z``."""
        return z @ F.normalize(self.last.weight, dim=-1).t()

    def forward(self, x: Tensor) -> Tensor:
        """Prototype logits ``... x K``."""
        return self.logits_of(self.embed(x))


class Centering(nn.Module):
    """Running centre of the teacher's logits, ``K`` wide (a buffer: saved, never trained)."""

    center: Tensor

    def __init__(self, prototypes: int, momentum: float = 0.9) -> None:
        super().__init__()
        self.momentum = momentum
        self.register_buffer("center", torch.zeros(prototypes))

    @torch.no_grad()
    def update(self, teacher_logits: Tensor) -> None:
        """``c = m c + (1 - m) mean(teacher_logits)`` over the rows given (and over ranks)."""
        update_centres([(self, teacher_logits)])


@torch.no_grad()
def update_centres(items: Sequence[tuple[Centering, Tensor | None]]) -> None:
    """Move each centre towards the mean of its teacher logits, pooled over ranks.

    One ``all_reduce`` carries every centre's row sum and row count, in the order given, so
    that every rank must pass the same centres in the same order; a centre with no rows here
    (``None`` or an empty tensor) contributes zeros, and a centre with no rows on any rank does
    not move.
    """
    if not items:
        return
    sums, counts = [], []
    for centre, logits in items:
        k = centre.center.shape[0]
        if logits is None or logits.numel() == 0:
            sums.append(centre.center.new_zeros(k, dtype=torch.float32))
            counts.append(0.0)
            continue
        rows = logits.reshape(-1, logits.shape[-1]).float()
        sums.append(rows.sum(0))
        counts.append(float(rows.shape[0]))
    flat = torch.cat([*sums, torch.tensor(counts, device=sums[0].device)])
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(flat)
    total = flat[: -len(items)]
    count = flat[-len(items) :].tolist()
    offset = 0
    for (centre, _), n in zip(items, count, strict=True):
        k = centre.center.shape[0]
        if n > 0:
            mean = total[offset : offset + k] / n
            centre.center.mul_(centre.momentum).add_(
                mean.to(centre.center.dtype), alpha=1 - centre.momentum
            )
        offset += k


def teacher_probabilities(logits: Tensor, center: Tensor, temperature: float) -> Tensor:
    """Centred, sharpened teacher distribution ``softmax((t - c) / tau_t)`` (no gradient)."""
    return torch.softmax((logits.detach().float() - center.float()) / temperature, dim=-1)


def distillation_loss(
    student_logits: Tensor,
    teacher_probs: Tensor,
    student_temperature: float,
    mask: Tensor | None = None,
) -> Tensor:
    """Cross-entropy ``-sum_k P_t log softmax(s / tau_s)`` averaged over rows in ``mask``.

    Args:
        student_logits: ``... x K``.
        teacher_probs: ``... x K`` from :func:`teacher_probabilities` (same leading shape).
        student_temperature: ``tau_s``.
        mask: leading-shape bool (rows taking part); all when None.

    Returns:
        A scalar; zero with a graph when no row takes part.
    """
    log_p = F.log_softmax(student_logits.float() / student_temperature, dim=-1)
    ce = -(teacher_probs.detach() * log_p).sum(-1)
    if mask is None:
        return ce.mean()
    m = mask.to(ce.dtype)
    n = m.sum()
    if float(n) == 0:
        return student_logits.sum() * 0.0
    return (ce * m).sum() / n


def entropy(probs: Tensor) -> Tensor:
    """``-sum p log p`` over the last dimension, in nats (a zero probability adds nothing)."""
    return -(probs * probs.clamp_min(1e-12).log()).sum(-1)


class TeacherHealth:
    """Running entropies (nats) of the teacher's distributions over the rows seen.

    * ``row_entropy``: mean of ``H(P_t)`` over rows. ``ln K`` (uniform) is the collapse where
      centring wins: the teacher says the same nothing for every input and the loss sits at
      ``ln K``.
    * ``mean_entropy``: ``H(mean P_t)``, how many prototypes the batch uses. Near 0 is the
      collapse where sharpening wins: every input on one prototype.

    A healthy teacher has ``row_entropy`` well below ``mean_entropy``, and ``mean_entropy`` well
    above 0.
    """

    def __init__(self) -> None:
        self.entropy_sum: Tensor | None = None
        self.rows = 0
        self.prob_sum: Tensor | None = None

    @torch.no_grad()
    def add(self, probs: Tensor) -> None:
        """Take rows ``N x K`` of teacher probabilities (no row: nothing changes). Sums stay on
        the rows' device (no synchronisation with the host).
        """
        rows = probs.detach().float().reshape(-1, probs.shape[-1])
        if rows.shape[0] == 0:
            return
        ent = entropy(rows).sum()
        total = rows.sum(0)
        self.rows += rows.shape[0]
        if self.entropy_sum is None or self.prob_sum is None:
            self.entropy_sum, self.prob_sum = ent, total
        else:
            self.entropy_sum, self.prob_sum = self.entropy_sum + ent, self.prob_sum + total

    def values(self) -> tuple[Tensor, Tensor] | None:
        """``(row_entropy, mean_entropy)`` as scalar tensors, or None before any row."""
        if self.prob_sum is None or self.entropy_sum is None:
            return None
        return self.entropy_sum / self.rows, entropy(self.prob_sum / self.rows)
