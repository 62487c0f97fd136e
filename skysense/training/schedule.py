"""Learning-rate and EMA-momentum schedules, and layer-wise lr-decay parameter groups.

The lr schedule is linear warm-up then cosine decay to ``min_lr``, per optimizer step. It is a
scheduler object DeepSpeed steps after every optimizer step and saves in its checkpoints, so a
resumed run continues at the same position. Each parameter group may carry an ``lr_scale``
(layer-wise decay); the group's lr is ``lr_scale * schedule(step)``.
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch

NO_DECAY_NAMES = ("cls_token", "pos_embed", "position", "prototypes", "token", "doy_embed")
EMBED_NAMES = ("patch_embed", "pos_embed", "cls_token", "tokenizer", "embed.", "doy_embed")
_LAYER_RE = re.compile(r"(?:^|\.)(?:blocks|layers|layer)\.(\d+)(?:\.|$)")
_STAGE_RE = re.compile(r"(?:^|\.)(?:stages|levels)\.(\d+)(?:\.|$)")


def lr_at(step: int, *, lr: float, min_lr: float, warmup_steps: int, total_steps: int) -> float:
    """Learning rate at an optimizer step: linear warm-up to ``lr``, then cosine to ``min_lr``.

    Args:
        step: optimizer steps already taken (0 for the first step).
        lr: peak learning rate.
        min_lr: final learning rate.
        warmup_steps: steps of linear warm-up.
        total_steps: total optimizer steps of the run.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, max(0.0, (step - warmup_steps) / decay_steps))
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def ema_momentum_at(step: int, *, start: float, end: float, total_steps: int) -> float:
    """EMA teacher momentum after an optimizer step: cosine from ``start`` to ``end`` (DINO)."""
    progress = min(1.0, max(0.0, step / max(1, total_steps)))
    return end - (end - start) * (math.cos(math.pi * progress) + 1.0) / 2.0


class WarmupCosineSchedule:
    """Warm-up + cosine lr schedule over an optimizer's groups (DeepSpeed ``lr_scheduler``).

    DeepSpeed calls :meth:`step` after each optimizer step and stores :meth:`state_dict` in
    every checkpoint; ``load_checkpoint`` restores it.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        lr: float,
        min_lr: float,
        warmup_steps: int,
        total_steps: int,
    ) -> None:
        self.optimizer = optimizer
        self.lr = lr
        self.min_lr = min_lr
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.last_step = 0
        self._apply()

    def current_lr(self) -> float:
        """Peak-scaled lr of the next optimizer step (before ``lr_scale``)."""
        return lr_at(
            self.last_step,
            lr=self.lr,
            min_lr=self.min_lr,
            warmup_steps=self.warmup_steps,
            total_steps=self.total_steps,
        )

    def _apply(self) -> None:
        base = self.current_lr()
        for group in self.optimizer.param_groups:
            group["lr"] = base * float(group.get("lr_scale", 1.0))

    def step(self, increment: int = 1) -> None:
        """Advance by ``increment`` optimizer steps and set every group's lr."""
        self.last_step += increment
        self._apply()

    def get_last_lr(self) -> list[float]:
        """Current lr of every parameter group."""
        return [float(g["lr"]) for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """Position and settings (plain numbers: safe to load with ``weights_only``)."""
        return {
            "last_step": self.last_step,
            "lr": self.lr,
            "min_lr": self.min_lr,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the position saved by :meth:`state_dict` (settings keep this run's values)."""
        self.last_step = int(state["last_step"])
        self._apply()


def layer_id(name: str, num_layers: int) -> int:
    """Depth of a parameter for layer-wise decay: 0 for embeddings, ``num_layers + 1`` for heads.

    Blocks are numbered by the first ``blocks.i``/``layers.i`` index in the name; a Swin stage
    index (``stages.s``) is added as an offset of 1 per stage so later stages are deeper.
    """
    if any(key in name for key in EMBED_NAMES):
        return 0
    match = _LAYER_RE.search(name)
    if match is None:
        return num_layers + 1
    block = int(match.group(1)) + 1
    stage = _STAGE_RE.search(name)
    if stage is not None:
        block += int(stage.group(1))
    return min(block, num_layers)


def _uses_decay(name: str, param: torch.Tensor) -> bool:
    return param.ndim > 1 and not any(key in name for key in NO_DECAY_NAMES)


def param_groups(
    model: torch.nn.Module,
    *,
    weight_decay: float,
    layer_decay: float | None = None,
) -> list[dict[str, Any]]:
    """Trainable parameters grouped by weight decay and (optionally) layer-wise lr scale.

    Biases, norms and tokens get no weight decay. With ``layer_decay`` = d, a parameter at depth
    ``l`` of ``L`` gets ``lr_scale = d ** (L + 1 - l)`` (heads 1.0, embeddings smallest).
    Frozen parameters (e.g. the EMA teacher) are left out.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("model has no trainable parameters")
    num_layers = 0
    if layer_decay is not None:
        for n, _ in named:
            m = _LAYER_RE.search(n)
            if m is not None:
                stage = _STAGE_RE.search(n)
                depth = int(m.group(1)) + 1 + (int(stage.group(1)) if stage else 0)
                num_layers = max(num_layers, depth)
    groups: dict[tuple[float, float], dict[str, Any]] = {}
    for n, p in named:
        wd = weight_decay if _uses_decay(n, p) else 0.0
        scale = 1.0
        if layer_decay is not None:
            scale = layer_decay ** (num_layers + 1 - layer_id(n, num_layers))
        key = (wd, scale)
        if key not in groups:
            groups[key] = {"params": [], "weight_decay": wd, "lr_scale": scale}
        groups[key]["params"].append(p)
    ordered = sorted(groups.values(), key=lambda g: (-g["lr_scale"], -g["weight_decay"]))
    return ordered
