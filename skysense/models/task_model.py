"""A task model: the SkySense encoder plus a task head, and its export format.

``TaskModel(batch)`` returns logits: ``B x K x s x s`` on the Sentinel grid for
``segmentation`` (UperNet head over the HR Swin stages and the fused S2/S1 map), ``B x K`` for
``classification`` and ``multilabel`` (pooled MLP head). Any subset of modalities works: the
head is built for the modalities the model is fed (``modalities``), and a modality configured
but absent from a batch is read as zeros by the head (the encoder leaves it out of the fusion).

The export is a folder like the encoder's (:mod:`skysense.models.export_format`):
``model.safetensors`` (encoder under ``encoder.``, head under ``head.``) and ``config.json``
with ``format`` (``skysense-task-model/1``), ``task``, ``classes`` (names), ``colours`` (RGB per
class), ``modalities``, ``head`` (its sizes), ``encoder`` (the encoder's own export config:
preset, overrides, spec, stats), and lineage. :func:`load_task_model` rebuilds it without
DeepSpeed and without unpickling.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from skysense.models.export_format import CONFIG, WEIGHTS, ExportError, write_export
from skysense.models.skysense import SkySense, create_model
from skysense.models.task_heads import PooledClassificationHead, UperNetHead

TASK_FORMAT = "skysense-task-model/1"
Task = Literal["segmentation", "classification", "multilabel"]
TASKS: tuple[str, ...] = ("segmentation", "classification", "multilabel")


@dataclass(frozen=True)
class HeadSpec:
    """Sizes of a task head.

    Attributes:
        task: ``segmentation``, ``classification`` (one class per scene) or ``multilabel``.
        n_classes: classes (labels for multi-label).
        channels: UperNet width (segmentation) or MLP hidden width (classification; 0: linear).
        dropout: dropout before the classifier.
        use_hr: the head reads the HR Swin stages (``hr`` among the modalities).
    """

    task: str
    n_classes: int
    channels: int = 64
    dropout: float = 0.1
    use_hr: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        return asdict(self)


class TaskModel(nn.Module):
    """Encoder + head.

    Args:
        encoder: the SkySense encoder (pre-trained or random).
        head: the head's sizes.
    """

    def __init__(self, encoder: SkySense, head: HeadSpec) -> None:
        super().__init__()
        if head.task not in TASKS:
            raise ValueError(f"unknown task {head.task!r}; use one of {', '.join(TASKS)}")
        self.encoder = encoder
        self.head_spec = head
        spec = encoder.spec
        hr_dims = [spec.hr_embed_dim * 2**i for i in range(len(spec.hr_depths))]
        if head.task == "segmentation":
            fine = hr_dims[:-1] if head.use_hr else []
            top = spec.embed_dim + (hr_dims[-1] if head.use_hr else 0)
            self.head: nn.Module = UperNetHead(
                fine, top, head.n_classes, channels=head.channels, dropout=head.dropout
            )
        else:
            width = spec.embed_dim + (hr_dims[-1] if head.use_hr else 0)
            self.head = PooledClassificationHead(
                width, head.n_classes, hidden=head.channels, dropout=head.dropout
            )
        self._hr_dims = hr_dims

    @property
    def task(self) -> str:
        """The head's task."""
        return self.head_spec.task

    def _hr_maps(self, feats: dict[str, Any], emb: Tensor, levels: str = "all") -> list[Tensor]:
        """The HR stage maps; zeros when HR is configured but absent from this batch (only the
        last stage's for ``levels="top"``: a scene head reads no other).
        """
        pyramid = feats.get("hr_pyramid")
        if pyramid is not None:
            return list(pyramid)
        b, _, s, _ = emb.shape
        n = len(self._hr_dims)
        wanted = range(n) if levels == "all" else [n - 1]
        return [
            emb.new_zeros(b, self._hr_dims[i], s * 2 ** (n - 1 - i), s * 2 ** (n - 1 - i))
            for i in wanted
        ]

    def forward(self, batch: dict[str, Any]) -> Tensor:
        """Logits: ``B x K x s x s`` (segmentation) or ``B x K`` (scene tasks)."""
        feats = self.encoder(batch)
        emb = feats["embedding"]
        s = emb.shape[-1]
        if self.head_spec.use_hr:
            hr = self._hr_maps(feats, emb, levels="all" if self.task == "segmentation" else "top")
            top = torch.cat([hr[-1], emb], dim=1)
            fine = hr[:-1]
        else:
            top, fine = emb, []
        if self.task == "segmentation":
            return self.head(fine, top, s)
        return self.head(top)

    @torch.no_grad()
    def predict_proba(self, batch: dict[str, Any]) -> Tensor:
        """Class probabilities (softmax; sigmoid for ``multilabel``), same shape as the logits."""
        logits = self.forward(batch).float()
        return torch.sigmoid(logits) if self.task == "multilabel" else logits.softmax(dim=1)


def build_task_model(
    encoder: SkySense, task: str, n_classes: int, modalities: Sequence[str], **head: Any
) -> TaskModel:
    """A :class:`TaskModel` for ``task`` over ``modalities`` (the head reads HR when present)."""
    return TaskModel(
        encoder, HeadSpec(task=task, n_classes=n_classes, use_hr="hr" in modalities, **head)
    )


def write_task_export(
    model: TaskModel,
    config: dict[str, Any],
    export_dir: Path,
    state: dict[str, Tensor] | None = None,
) -> Path:
    """Write a task model (``state`` or ``model.state_dict()``) and its config as an export folder.

    ``config`` must hold ``task``, ``classes``, ``modalities`` and ``encoder`` (the encoder's
    export config); ``format`` and ``head`` are added here.
    """
    for key in ("classes", "modalities", "encoder"):
        if key not in config:
            raise ExportError(f"task model config lacks {key!r}; it cannot be served without it")
    weights = {
        k: v.detach().float().contiguous().clone() if v.is_floating_point() else v.clone()
        for k, v in (state if state is not None else model.state_dict()).items()
    }
    full = {**config, "format": TASK_FORMAT, "task": model.task, "head": model.head_spec.to_dict()}
    return write_export(weights, full, export_dir)


def is_task_export(export_dir: str | Path) -> bool:
    """True when ``export_dir/config.json`` is a task model's (not a bare encoder's)."""
    path = Path(export_dir) / CONFIG
    try:
        return json.loads(path.read_text()).get("format") == TASK_FORMAT
    except (OSError, ValueError):
        return False


def load_task_model(
    export_dir: str | Path, device: str = "cpu"
) -> tuple[TaskModel, dict[str, Any]]:
    """Load a task model export: ``(TaskModel in eval mode, config)``; safetensors only.

    Raises:
        ExportError: files missing, not a task model export, or weights that do not fit.
    """
    export_dir = Path(export_dir)
    weights, config_file = export_dir / WEIGHTS, export_dir / CONFIG
    for path in (weights, config_file):
        if not path.is_file():
            raise ExportError(f"{path} is missing; export a task model with `skysense finetune`")
    config = json.loads(config_file.read_text())
    if config.get("format") != TASK_FORMAT:
        raise ExportError(
            f"{config_file}: format {config.get('format')!r} is not a task model "
            f"({TASK_FORMAT}); an encoder export is served as embeddings, not class maps"
        )
    enc = config["encoder"]
    encoder = create_model(enc["preset"], **(enc.get("overrides") or {}))
    model = TaskModel(encoder, HeadSpec(**config["head"]))
    try:
        model.load_state_dict(load_file(str(weights), device=device), strict=True)
    except RuntimeError as exc:
        raise ExportError(f"{weights} does not fit the task model of {config_file}: {exc}") from exc
    return model.to(device).eval(), config
