"""Settings of the validation gate (``params.yaml: validation``): thresholds, severities and the
rules per sensor, whose facts (nodata, scale, offset, native band GSDs) come from
:data:`skysense.core.sensors.SENSORS`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from skysense.core.modalities import HR_GSD_M, SENTINEL_GSD_M
from skysense.core.sensors import HR_BANDS, S1_BANDS, S2_BANDS, SENSORS
from skysense.core.settings import Section

Severity = Literal["critical", "warning"]


class SensorRule(Section):
    """What one modality's rasters must look like: band count, dtype, nodata, physical units."""

    band_counts: list[int] = Field(description="allowed band counts of a multi-band file")
    dtypes: list[str] = Field([], description="allowed stored dtypes; empty = any")
    nodata: float | None = Field(
        None,
        allow_inf_nan=True,
        description="nodata value assumed when a file declares none (NaN allowed)",
    )
    scale: float = Field(1.0, description="integer DN x scale + offset = physical value")
    offset: float = 0.0
    value_range: str | None = Field(None, description="key of validation.ranges, None = no check")
    band_gsd_m: dict[str, float] = Field({}, description="native GSD of named band files, metres")


def sensor_rule(name: str, **policy: Any) -> SensorRule:
    """The validation rule of sensor ``name`` with its facts (nodata, scale, offset, native band
    GSDs) from :data:`skysense.core.sensors.SENSORS`; ``policy`` adds the accepted band counts,
    dtypes and value range.
    """
    spec = SENSORS[name]
    return SensorRule(
        nodata=spec.nodata,
        scale=spec.scale,
        offset=spec.offset,
        band_gsd_m=spec.native_gsd_m(),
        **policy,
    )


class ValidationConfig(Section):
    """Thresholds and severities of the great-expectations suites in front of training."""

    required_modalities: list[str] = ["s2", "s1"]
    min_dates: dict[str, int] = {"s2": 3, "s1": 2}
    gsd_m: dict[str, float] = {
        "s2": SENTINEL_GSD_M,
        "s1": SENTINEL_GSD_M,
        "hr": HR_GSD_M,
        "dem": SENTINEL_GSD_M,
    }
    gsd_tolerance: float = Field(0.25, ge=0.0, description="relative tolerance on GSD")
    min_valid_fraction: float = Field(0.5, ge=0.0, le=1.0)
    failure_webhook: str | None = Field(
        None,
        description="URL the GX checkpoints post failed validations to "
        "(SKYSENSE_ALERT_WEBHOOK_URL overrides it in `skysense validate`)",
    )
    max_cloud_fraction: float = Field(0.6, ge=0.0, le=1.0)
    min_overlap_iou: float = Field(0.5, ge=0.0, le=1.0)
    date_window: tuple[str, str] = ("2015-06-23", "2100-01-01")
    ranges: dict[str, tuple[float, float]] = {
        # from -0.1: from baseline 04.00, (DN + offset) / 10000 is negative where DN < 1000
        "s2_reflectance": (-0.1, 1.6),
        "s1_db": (-50.0, 10.0),
        "dem_m": (-450.0, 9000.0),
    }
    severity: dict[str, Severity] = {}
    min_accepted: int = Field(1, ge=0, description="fewest accepted locations to go on")
    max_profile_px: int = Field(512, ge=16, description="decimated read size for profiling")
    workers: int = Field(2, ge=1)
    sensors: dict[str, SensorRule] = {
        "s2": sensor_rule(
            "sentinel2",
            band_counts=[len(S2_BANDS)],
            dtypes=["uint16"],
            value_range="s2_reflectance",
        ),
        "s1": sensor_rule(
            "sentinel1", band_counts=[len(S1_BANDS)], dtypes=["float32"], value_range="s1_db"
        ),
        "hr": sensor_rule("hr", band_counts=[3, len(HR_BANDS)], dtypes=["uint8", "uint16"]),
        "dem": sensor_rule("dem", band_counts=[1], value_range="dem_m"),
    }
    dated_modalities: list[str] = Field(
        ["s2", "s1"], description="modalities whose acquisitions need a date"
    )
    min_location_overlap: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="a raster's footprint share inside its location must exceed this",
    )
    max_nan_fraction: float = Field(
        0.0, ge=0.0, le=1.0, description="NaN pixels not declared nodata"
    )
    scl_cloud_classes: list[int] = Field(
        [3, 8, 9, 10], description="Sentinel-2 SCL classes counted as cloud"
    )
