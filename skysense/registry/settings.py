"""Settings of MLflow tracking, the model registry and the promotion policy
(``params.yaml: registry``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from skysense.core.settings import Section
from skysense.tracking.settings import TrackingConfig


class MetricRule(Section):
    """One metric of the promotion policy."""

    min_improvement: float = 0.0
    higher_is_better: bool = True


class PromotionPolicy(Section):
    """When a challenger may replace the champion."""

    decide: dict[str, MetricRule] = {"linear_acc": MetricRule(min_improvement=0.0)}
    no_regress: dict[str, float] = {"miou": 0.02}
    no_regress_each: dict[str, float] = Field(
        default_factory=dict,
        description="metric-name prefix: tolerance for every metric of that prefix the champion "
        "has (e.g. iou.: 0.05, no class's IoU may drop by more than 5 points)",
    )


def task_model_policy() -> PromotionPolicy:
    """The default policy of task models: mIoU decides, no class's IoU drops by over 0.05."""
    return PromotionPolicy(
        decide={"miou": MetricRule(min_improvement=0.0)},
        no_regress={},
        no_regress_each={"iou.": 0.05},
    )


class RegistryConfig(TrackingConfig):
    """MLflow tracking (``tracking_uri``, ``artifact_location``) and the model registry."""

    lock_url: str | None = Field(
        None,
        description="database of the promotion lock for a server store (the MLflow "
        "server's PostgreSQL backend); default SKYSENSE_REGISTRY_LOCK_URL; keep passwords out "
        "of this file (PGPASSWORD, ~/.pgpass)",
    )
    model_name: str = "skysense-encoder"
    policy: PromotionPolicy = PromotionPolicy()
    task_model_name: str = Field(
        "skysense-landcover", description="the registered task model (skysense finetune)"
    )
    task_policy: PromotionPolicy = Field(
        default_factory=task_model_policy,
        description="promotion policy of the task model (keys of the finetune metrics.json)",
    )
    onnx: bool = Field(
        False,
        description="also log the encoder as ONNX (artifact onnx/encoder.onnx; ~1 min export)",
    )


@dataclass(frozen=True)
class RegistrationSettings:
    """What a registration needs from ``params.yaml``.

    Attributes:
        model_name: the registered model (``registry.model_name``).
        modalities: the modalities the encoder is served with (``model.modalities``): the
            pyfunc's signature inputs.
        params: the settings that shaped the model (``data``, ``model``, ``train`` as plain
            JSON), recorded as the ``params_hash`` tag.
    """

    model_name: str
    modalities: tuple[str, ...]
    params: dict[str, Any] = field(default_factory=dict)
    onnx: bool = False
