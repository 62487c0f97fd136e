"""A training job: every setting a pre-training run reads, as plain typed values.

The edges (``skysense train``, the pipeline, the worker entry point
:mod:`skysense.cli.train_worker`) build it from ``params.yaml``
(:func:`skysense.config.training_job`); the training package reads nothing else.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from skysense.core.settings import Section
from skysense.models.settings import ModelConfig
from skysense.tracking.settings import TrackingConfig
from skysense.training.settings import TrainConfig


class TrainingJob(Section):
    """What one pre-training run needs.

    Attributes:
        model: the preset, its overrides and the modalities read from the chips.
        train: the DeepSpeed pre-training settings.
        tracking: the MLflow store the run logs to.
        params: the whole resolved configuration as plain JSON: logged as the run's params and
            handed to worker processes (``params.resolved.yaml``), so every rank reads the same.
    """

    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    tracking: TrackingConfig = TrackingConfig()
    params: dict[str, Any] = Field(default_factory=dict)
