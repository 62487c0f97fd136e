"""Settings of sliding-window inference on GeoTIFF scenes (``params.yaml: predict``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from skysense.core.settings import Section
from skysense.inference.output_grid import parse_crs


class PredictConfig(Section):
    """Sliding-window inference on GeoTIFF scenes."""

    window: int = Field(64, ge=8, description="window on the 10 m grid, pixels")
    overlap: int = Field(16, ge=0)
    batch_size: int = Field(4, ge=1)
    output_dtype: Literal["float32", "float16"] = "float32"
    block: int = Field(256, ge=16, multiple_of=16, description="output tile/block side, pixels")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    crs: str | None = Field(
        None,
        description="output CRS (EPSG:32632, a WKT); default: the first S2 raster's. Inputs "
        "are warped onto the first raster's footprint in this CRS",
    )
    embedding_overviews: Literal["average", "nearest", "bilinear"] = Field(
        "average", description="resampling of the COG overviews of embeddings"
    )
    class_overviews: Literal["mode", "nearest"] = Field(
        "mode", description="resampling of the COG overviews of class maps"
    )

    @field_validator("crs")
    @classmethod
    def _known_crs(cls, value: str | None) -> str | None:
        if value is not None:
            parse_crs(value)  # raises OutputCrsError (a ValueError) naming the value
        return value
