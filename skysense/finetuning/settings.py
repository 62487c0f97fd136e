"""Settings of fine-tuning task models (``params.yaml: finetune``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from skysense.core.modalities import Modality
from skysense.core.settings import Section

#: A class colour: RGB, 0..255 each.
Colour = tuple[int, int, int]


class ClassSpec(Section):
    """One class of the task: its name and map colour (RGB 0..255)."""

    name: str
    colour: Colour = (128, 128, 128)

    @field_validator("colour")
    @classmethod
    def _rgb(cls, value: Colour) -> Colour:
        if any(not 0 <= c <= 255 for c in value):
            raise ValueError(f"colour {list(value)}: each of R, G, B must be 0..255")
        return value


class FinetuneConfig(Section):
    """Fine-tuning an encoder with a task head through the DeepSpeed engine of pre-training."""

    enabled: bool = Field(
        False,
        description="run the finetune stage in the pipeline flow (after evaluate); off by "
        "default: on the bundled sample it adds about 165 s to `make run` on 2 cores (README)",
    )
    task: Literal["segmentation", "classification"] = "segmentation"
    classes: list[ClassSpec] = Field(
        default_factory=list,
        description="class names and colours, in class-id order; empty: the label set's own "
        "class list with a default palette",
    )
    modalities: list[Modality] | None = Field(
        None, description="modalities fed to the task model; default model.modalities"
    )
    freeze_backbone: bool = False
    layer_decay: float | None = Field(
        0.75, gt=0, le=1, description="layer-wise lr decay of the encoder (head: 1.0)"
    )
    lr: float = Field(1e-3, gt=0)
    min_lr: float = Field(1e-5, ge=0)
    warmup_steps: int = Field(3, ge=0)
    steps: int = Field(30, ge=1)
    micro_batch: int = Field(4, ge=1)
    grad_accum: int = Field(1, ge=1)
    weight_decay: float = Field(0.05, ge=0)
    grad_clip: float = Field(1.0, ge=0)
    class_weights: Literal["none", "balanced"] | list[float] = Field(
        "balanced",
        description="cross-entropy class weights: none, balanced (inverse frequency in the "
        "training labels) or one weight per class",
    )
    head_channels: int = Field(64, ge=0, description="UperNet width / MLP hidden width")
    head_dropout: float = Field(0.1, ge=0, lt=1)
    flip: bool = Field(True, description="random horizontal/vertical flips of the inputs")
    heldout_locations: list[str] | None = Field(
        None,
        description="places kept out of fine-tuning and scored; default: the last location "
        "of the label set (sorted by name)",
    )
    random_baseline: bool = Field(True, description="also fine-tune a random-init encoder")
    frozen_probe: bool = Field(True, description="also score a linear probe on the frozen encoder")
    probe_epochs: int = Field(60, ge=1)
    probe_lr: float = Field(1e-2, gt=0)
    zero_stage: Literal[0, 1, 2, 3] = 2
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    backend: Literal["auto", "gloo", "nccl"] = "auto"
    nproc: int = Field(1, ge=1)
    torch_adam: bool = True
    checkpoint_every: int = Field(10, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    seed: int = 0
    experiment: str = "skysense-finetune"
