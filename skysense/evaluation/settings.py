"""Settings of the frozen-encoder downstream evaluation (``params.yaml: eval``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from skysense.core.settings import Section


class EvalConfig(Section):
    """Frozen-encoder downstream evaluation."""

    linear_epochs: int = Field(100, ge=1)
    linear_lr: float = Field(1e-2, gt=0)
    knn_k: int = Field(5, ge=1)
    seg_epochs: int = Field(60, ge=1)
    seg_lr: float = Field(1e-2, gt=0)
    batch_size: int = Field(16, ge=1)
    random_baseline: bool = True
    seed: int = 0
    folds: int = Field(
        5,
        ge=2,
        description="cross-validation folds by sample (stratified), used "
        "when split is 'sample' or the set has a single location",
    )
    split: Literal["location", "sample"] = Field(
        "location",
        description="'location': leave-one-location-out folds (the probe never sees the "
        "tested place); 'sample': stratified folds by sample",
    )
    pooling: Literal["mean", "mean_std"] = Field(
        "mean", description="scene feature: mean of the per-pixel embedding, or mean and std"
    )
    shots: list[Annotated[int, Field(ge=1)]] = Field(
        [1, 5, 20],
        description="labelled samples per class of the label-scarce probes (k-shot; 'all' is "
        "the full-label probe); metrics k<k>_<metric> with _std, _random, _gain, _gain_std",
    )
    draws: int = Field(5, ge=1, description="random draws of the k labelled samples per k")
    seg_shots: list[Annotated[int, Field(ge=1)]] | None = Field(
        [1, 5],
        description="labelled chips per dominant class of the label-scarce segmentation probes "
        "(null: the same as shots); k = 20 costs about 4 x the full-label probe, so the default "
        "leaves it to bench/pretrain_gain.py (make run stays under 5 minutes)",
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    bigearthnet: Path | None = None
    eurosat: Path | None = None
