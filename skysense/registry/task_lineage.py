"""What a task model version needs from the encoder's registered model to be promoted.

Kept apart from :mod:`skysense.registry.task_registration`: ``skysense promote`` imports only
this (no pyfunc, no model code).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from skysense.registry.promotion import Requirement
from skysense.registry.register import find_version_by_checkpoint

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

#: version tag: sha256 of the encoder weights a task model was fine-tuned from
ENCODER_SHA_TAG = "encoder_checkpoint_sha256"


def encoder_requirement(client: MlflowClient, encoder_model_name: str) -> Requirement:
    """The promotion requirement of a task model: its encoder is a version of
    ``encoder_model_name`` (matched by ``encoder_checkpoint_sha256``), so that the encoder
    it needs can be traced, served and rolled back with it.
    """

    def check(mv: ModelVersion) -> list[str]:
        sha = mv.tags.get(ENCODER_SHA_TAG)
        if not sha:
            return [
                (
                    f"encoder: v{mv.version} records no {ENCODER_SHA_TAG}; fine-tune again with "
                    "`skysense finetune` so the encoder it started from is known"
                )
            ]
        found = find_version_by_checkpoint(client, encoder_model_name, sha)
        if found is None:
            return [
                (
                    f"encoder: the encoder v{mv.version} was fine-tuned from (sha256 "
                    f"{sha[:12]}...) is "
                    f"not a version of {encoder_model_name!r}; register it (`skysense register`) "
                    "before promoting the task model"
                )
            ]
        return []

    return check
