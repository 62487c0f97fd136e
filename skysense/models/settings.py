"""Settings of the model layer: which preset (``params.yaml: model``) and the pre-training
objective (``train.loss_weights``, ``train.augment``).
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
    """Two-view augmentation for teacher-student pre-training."""

    crop_fraction: tuple[float, float] = (0.5, 1.0)
    flip: bool = True
    spectral_jitter: float = Field(0.1, ge=0.0)
    date_keep: tuple[float, float] = (0.5, 1.0)
    modality_dropout: float = Field(0.2, ge=0.0, le=1.0)
