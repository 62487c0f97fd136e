"""Settings the data layer reads: chipping (``data.chip``) and remote raster reads
(``data.remote``).
"""

from __future__ import annotations

from pydantic import Field

from skysense.core.modalities import HR_RATIO, SENTINEL_GSD_M
from skysense.core.settings import Section


class ChipConfig(Section):
    """Chipping of catalog scenes into aligned multi-modal chips stored in shards."""

    size: int = Field(8, ge=4, description="chip size on the 10 m Sentinel grid, pixels (= the preset's sentinel_px)")
    hr_ratio: int = Field(HR_RATIO, ge=HR_RATIO, le=HR_RATIO,
                          description=f"HR grid is exactly {HR_RATIO}x finer (SkySense)")
    stride: int | None = Field(None, ge=1, description="pixels between chips; default = size")
    max_nodata_fraction: float = Field(0.5, ge=0.0, le=1.0)
    shard_size_mb: int = Field(256, ge=1)
    workers: int = Field(2, ge=1)
    sentinel_gsd_m: float = Field(SENTINEL_GSD_M, gt=0)
    allow_partial: bool = Field(
        False, description="finish with success when some locations failed (the summary lists "
        "them); default: a failed location fails the command (--allow-partial)")


class RemoteReadConfig(Section):
    """Remote raster reads (off unless hosts are named; see skysense.data.raster_access)."""

    allowed_hosts: list[str] = Field([], description="hosts (name or name:port) whose http(s) URLs "
                                     "catalogs and scene lists may name; empty = local files only")
