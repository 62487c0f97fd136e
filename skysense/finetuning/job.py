"""A fine-tuning job: everything one fine-tuning run reads, as plain typed values.

The edges (``skysense finetune``, the pipeline) build it from ``params.yaml`` and the command's
options; each rank of a multi-process run reads it from ``job.json`` in its checkpoints folder
(:mod:`skysense.cli.finetune_worker`), so every rank fine-tunes the same thing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from skysense.core.settings import Section
from skysense.finetuning.settings import FinetuneConfig

JOB_FILE = "job.json"


class FinetuneJob(Section):
    """One fine-tuning run.

    Attributes:
        finetune: the ``finetune`` settings.
        init: ``pretrained`` (weights of ``encoder_export``) or ``random`` (seeded random init
            of the same preset: the baseline).
        encoder_export: the encoder export folder (its config gives preset and normalisation).
        label_set: which labels (``segmentation``, ``classification``, ``eurosat``,
            ``bigearthnet``, ``catalog``); labels_root: where they are (for ``catalog``: the
            chips folder cut from ``catalog``).
        modalities: the modalities fed to the task model.
        label_version: the labels' data version (DVC md5 or content hash), recorded in the export.
    """

    finetune: FinetuneConfig = FinetuneConfig()
    init: Literal["pretrained", "random"] = "pretrained"
    encoder_export: Path
    label_set: str = "segmentation"
    labels_root: Path
    modalities: list[str] = Field(default_factory=lambda: ["hr", "s2", "s1", "dem"])
    label_version: str | None = None
    catalog: Path | None = Field(
        None, description="with label_set catalog: the catalog naming the label rasters"
    )
    extra: dict[str, Any] = Field(default_factory=dict)
