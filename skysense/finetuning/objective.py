"""The module DeepSpeed trains when fine-tuning: a task model, its loss and flip augmentation.

``FineTuner(batch)`` returns ``{"loss", "acc"}`` like the pre-trainer returns its components,
so the engine, the checkpoints and the exact resume of pre-training carry over. Losses:
cross-entropy with class weights (pixels labelled 255 ignored) for segmentation and scene
classification, binary cross-entropy for multi-label scenes. Flips (horizontal and vertical, the
same for every modality and the mask) are drawn from torch's global RNG, whose state every
checkpoint saves, so a resumed run draws the same flips.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from skysense.models.task_model import TaskModel

IGNORE = 255


def _flip(batch: dict[str, Any], dim_from_end: int, segmentation: bool) -> dict[str, Any]:
    out = dict(batch)
    for key in ("hr", "s2", "s1", "dem"):
        if key in out:
            out[key] = out[key].flip(dim_from_end)
    if segmentation:
        out["target"] = out["target"].flip(dim_from_end)
    return out


class FineTuner(nn.Module):
    """Task model + loss.

    Args:
        model: the task model.
        class_weights: cross-entropy weight per class, or None.
        flip: random flips while training.
        freeze_backbone: keep the encoder's weights (only the head learns).
    """

    class_weights: Tensor  # a buffer (empty: unweighted)

    def __init__(
        self,
        model: TaskModel,
        class_weights: list[float] | None = None,
        flip: bool = True,
        freeze_backbone: bool = False,
    ) -> None:
        super().__init__()
        self.model = model
        self.flip = flip
        self.register_buffer(
            "class_weights",
            torch.tensor(class_weights, dtype=torch.float32) if class_weights else torch.empty(0),
            persistent=False,
        )
        if freeze_backbone:
            for p in self.model.encoder.parameters():
                p.requires_grad_(False)

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """The task's loss of ``logits`` against ``target``."""
        weight = self.class_weights.to(logits.dtype) if self.class_weights.numel() else None
        if self.model.task == "multilabel":
            return F.binary_cross_entropy_with_logits(logits.float(), target.float())
        return F.cross_entropy(logits.float(), target, weight=weight, ignore_index=IGNORE)

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """``{"loss", "acc"}`` of a batch with its ``target``."""
        seg = self.model.task == "segmentation"
        if self.training and self.flip:
            draws = torch.rand(2)
            if draws[0] < 0.5:
                batch = _flip(batch, -1, seg)
            if draws[1] < 0.5:
                batch = _flip(batch, -2, seg)
        target = batch["target"]
        logits = self.model({k: v for k, v in batch.items() if k != "target"})
        loss = self.loss(logits, target)
        with torch.no_grad():
            if self.model.task == "multilabel":
                acc = ((logits > 0) == (target > 0.5)).float().mean()
            else:
                pred = logits.argmax(dim=1)
                labelled = target != IGNORE
                acc = (pred[labelled] == target[labelled]).float().mean()
        return {"loss": loss, "acc": acc.detach()}
