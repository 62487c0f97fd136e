"""Settings of sliding-window inference on GeoTIFF scenes (``params.yaml: predict``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from skysense.core.settings import Section


class PredictConfig(Section):
    """Sliding-window inference on GeoTIFF scenes."""

    window: int = Field(64, ge=8, description="window on the 10 m grid, pixels")
    overlap: int = Field(16, ge=0)
    batch_size: int = Field(4, ge=1)
    output_dtype: Literal["float32", "float16"] = "float32"
    block: int = Field(256, ge=16, multiple_of=16, description="output tile/block side, pixels")
    device: Literal["auto", "cpu", "cuda"] = "auto"
