"""Settings of MLflow tracking, the model registry and the promotion policy
(``params.yaml: registry``).
"""

from __future__ import annotations

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


class RegistryConfig(TrackingConfig):
    """MLflow tracking (``tracking_uri``, ``artifact_location``) and the model registry."""

    lock_url: str | None = Field(
        None, description="database of the promotion lock for a server store (the MLflow "
        "server's PostgreSQL backend); default SKYSENSE_REGISTRY_LOCK_URL; keep passwords out "
        "of this file (PGPASSWORD, ~/.pgpass)")
    model_name: str = "skysense-encoder"
    policy: PromotionPolicy = PromotionPolicy()
