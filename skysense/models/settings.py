"""Settings of the model layer: which preset (``params.yaml: model``) and the pre-training
objective (``train.objective``, ``train.paper``, ``train.loss_weights``, ``train.augment``).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from skysense.core.modalities import MODALITIES, Modality
from skysense.core.settings import Section, require_finite
from skysense.models.presets import PRESETS


class ModelConfig(Section):
    """Which preset to build, and overrides of its fields (e.g. ``{'s2_depth': 2}``)."""

    preset: str = "skysense-tiny"
    overrides: dict[str, Any] = {}
    modalities: list[Modality] = list(MODALITIES)

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str) -> str:
        """The preset must be one of :data:`skysense.models.presets.PRESETS`."""
        if value not in PRESETS:
            raise ValueError(f"unknown preset {value!r}; allowed: {', '.join(sorted(PRESETS))}")
        return value

    @field_validator("overrides")
    @classmethod
    def _finite_overrides(cls, value: dict[str, Any]) -> dict[str, Any]:
        """Preset overrides are untyped here: reject NaN/infinity in them as the typed fields do."""
        for key, item in value.items():
            require_finite(item, f"overrides.{key}")
        return value


class LossWeights(Section):
    """Weights of the pre-training loss components (weighted sum)."""

    pixel: float = 1.0
    object: float = 0.5
    image: float = 1.0
    fused: float = 1.0
    cross_modal: float = 0.5


class AugmentConfig(Section):
    """Views for teacher-student pre-training: crops, flips, jitter, dates, modality dropout;
    for the paper's objective also multi-crop local views and HR photometric augmentation.
    """

    crop_fraction: tuple[float, float] = (0.5, 1.0)
    flip: bool = True
    spectral_jitter: float = Field(0.1, ge=0.0)
    date_keep: tuple[float, float] = (0.5, 1.0)
    modality_dropout: float = Field(
        0.2, ge=0.0, le=1.0, description="not in the paper (0 turns it off): see docs/objective.md"
    )
    local_crops: int = Field(2, ge=0, description="multi-crop local views (student only)")
    local_crop_fraction: tuple[float, float] = (0.25, 0.5)
    local_px_fraction: float = Field(0.5, gt=0.0, le=1.0)
    hr_photometric: bool = True
    hr_jitter_prob: float = Field(0.8, ge=0.0, le=1.0)
    hr_brightness: float = Field(0.4, ge=0.0)
    hr_contrast: float = Field(0.4, ge=0.0)
    hr_saturation: float = Field(0.2, ge=0.0)
    hr_blur_prob: float = Field(0.5, ge=0.0, le=1.0)
    hr_blur_sigma: tuple[float, float] = (0.1, 2.0)
    hr_solarize_prob: float = Field(0.2, ge=0.0, le=1.0)


class PaperObjectiveConfig(Section):
    """The paper's objective (``train.objective: paper``): self-distillation at pixel, object
    and image level per stream, and cross-modal alignment (docs/objective.md).
    """

    teacher_temperature: float = Field(0.04, gt=0.0)
    student_temperature: float = Field(0.1, gt=0.0)
    center_momentum: float = Field(0.9, ge=0.0, le=1.0)
    head_prototypes: int = Field(1024, ge=2, description="output width K of each DINO head")
    object_clusters: int = Field(4, ge=1, description="Sinkhorn-Knopp clusters per date map")
    sinkhorn_iters: int = Field(3, ge=1)
    cross_modal_temperature: float = Field(0.1, gt=0.0)
    cross_modal_weight: float = Field(1.0, ge=0.0)
    dem_in_loss: bool = Field(False, description="not in the paper: also distil the DEM stream")
