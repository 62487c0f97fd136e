"""Settings of the bundled synthetic sample (``params.yaml: data.sample``)."""

from __future__ import annotations

from pydantic import Field

from skysense.core.settings import Section


class SampleConfig(Section):
    """The bundled synthetic sample: deterministic multi-modal scenes written as GeoTIFFs."""

    locations: int = Field(6, ge=1, description="pre-training locations")
    heldout_locations: int = Field(
        4,
        ge=1,
        description="locations kept for downstream sets (probes "
        "are cross-validated leave-location-out)",
    )
    size_px: int = Field(64, ge=16, description="scene size on the 10 m grid, pixels")
    s2_dates: int = Field(8, ge=1)
    s1_dates: int = Field(6, ge=1)
    year: int = 2023
    cloud_probability: float = Field(0.25, ge=0.0, le=1.0)
    nuisance: float = Field(
        1.0,
        ge=0.0,
        le=3.0,
        description="scale of what changes a class's look between places and dates (soil, "
        "varieties, calendars, atmosphere, calibration, PSF, misregistration); 0 = none",
    )
    downstream_chip_px: int = Field(8, ge=4, description="downstream chip size, 10 m pixels")
    block_px: int = Field(
        16, ge=4, description="side of a landscape unit (block of 1-4 fields), 10 m pixels"
    )
    workers: int = Field(
        2, ge=1, description="processes writing places in parallel (1: in this process)"
    )
    hr_jpeg_quality: int | None = Field(
        90,
        ge=1,
        le=100,
        description="JPEG quality of HR GeoTIFFs (lossy, as orthophotos); null = lossless",
    )
