"""Settings of DeepSpeed pre-training (``params.yaml: train``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from skysense.core.settings import Section
from skysense.models.settings import AugmentConfig, LossWeights, PaperObjectiveConfig


class TrainConfig(Section):
    """DeepSpeed pre-training."""

    zero_stage: Literal[0, 1, 2, 3] = 2
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    backend: Literal["auto", "gloo", "nccl"] = "auto"
    nproc: int = Field(2, ge=1)
    micro_batch: int = Field(4, ge=1)
    grad_accum: int = Field(1, ge=1)
    steps: int = Field(24, ge=1)
    lr: float = Field(5e-4, gt=0)
    min_lr: float = Field(1e-5, ge=0)
    warmup_steps: int = Field(5, ge=0)
    weight_decay: float = Field(0.05, ge=0)
    grad_clip: float = Field(1.0, ge=0)
    layer_decay: float | None = Field(None, gt=0, le=1)
    activation_checkpointing: bool | None = None
    offload_optimizer: bool = False
    torch_adam: bool = True
    zero3_persistence_threshold: int = Field(
        100_000, ge=0, description="ZeRO-3: parameters with fewer elements stay whole on every rank"
    )
    ema_momentum: tuple[float, float] = (0.99, 1.0)
    export_encoder: Literal["teacher", "student"] = Field(
        "teacher",
        description="encoder written to the export: the EMA teacher (DINO practice, "
        "measured at or above the student on the sample) or the student",
    )
    checkpoint_every: int = Field(20, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    seed: int = 0
    num_workers: int = Field(0, ge=0)
    objective: Literal["paper", "legacy"] = Field(
        "paper",
        description="pre-training objective: the paper's self-distillation (paper, the "
        "default) or the platform's earlier InfoNCE recipe (legacy, a named alternative: it "
        "measured better in short CPU runs and costs about 0.6x a paper step); "
        "docs/objective.md",
    )
    paper: PaperObjectiveConfig = PaperObjectiveConfig()
    loss_weights: LossWeights = LossWeights()
    augment: AugmentConfig = AugmentConfig()
    experiment: str = "skysense-pretrain"
    dvclive: bool = Field(
        True,
        description="write per-step curves (loss terms, lr, EMA momentum) with DVCLive to "
        "<checkpoints>/../dvclive for dvc exp show / dvc plots",
    )
