"""Settings the data layer reads: chipping (``data.chip``) and remote raster reads
(``data.remote``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import Field

from skysense.core.modalities import HR_RATIO, MODALITIES, SENTINEL_GSD_M
from skysense.core.settings import Section
from skysense.data.raster_access import RasterAccessPolicy


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


_CHIP = ChipConfig()  # the defaults of ``params.yaml: data.chip``


@dataclass(frozen=True)
class ChipSettings:
    """What the chipper needs, resolved from ``params.yaml: data`` (picklable for worker
    processes); defaults are those of :class:`skysense.data.settings.ChipConfig`."""

    size: int = _CHIP.size
    stride: int = _CHIP.stride or _CHIP.size
    hr_ratio: int = HR_RATIO
    gsd_m: float = _CHIP.sentinel_gsd_m
    max_nodata_fraction: float = _CHIP.max_nodata_fraction
    shard_bytes: int = _CHIP.shard_size_mb * 2**20
    workers: int = _CHIP.workers
    modalities: tuple[str, ...] = MODALITIES
    bands: dict[str, tuple[str, ...]] = field(default_factory=dict)
    max_dates: dict[str, int] = field(default_factory=dict)
    access: RasterAccessPolicy = field(default_factory=RasterAccessPolicy)

    @classmethod
    def build(cls, chip: ChipConfig, modalities: Sequence[str], bands: dict[str, Sequence[str]],
              max_dates: dict[str, int], access: RasterAccessPolicy) -> ChipSettings:
        """From the ``data.chip`` section, the modalities to chip, the band names per modality,
        the most dates per series and the raster access policy."""
        return cls(
            size=chip.size, stride=chip.stride or chip.size, hr_ratio=chip.hr_ratio,
            gsd_m=chip.sentinel_gsd_m, max_nodata_fraction=chip.max_nodata_fraction,
            shard_bytes=chip.shard_size_mb * 2**20, workers=chip.workers,
            modalities=tuple(modalities), bands={k: tuple(v) for k, v in bands.items()},
            max_dates=dict(max_dates), access=access,
        )
