"""Settings the data layer reads: chipping (``data.chip``), remote raster reads
(``data.remote``) and STAC ingest (``data.stac``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import Field

from skysense.core.modalities import HR_RATIO, MODALITIES, SENTINEL_GSD_M, Modality
from skysense.core.sensors import SCL_CLOUD_CLASSES, InputUnits
from skysense.core.settings import Section
from skysense.data.raster_access import RasterAccessPolicy


class ChipConfig(Section):
    """Chipping of catalog scenes into aligned multi-modal chips stored in shards."""

    size: int = Field(
        8,
        ge=4,
        description="chip size on the 10 m Sentinel grid, pixels (= the preset's sentinel_px)",
    )
    hr_ratio: int = Field(
        HR_RATIO,
        ge=HR_RATIO,
        le=HR_RATIO,
        description=f"HR grid is exactly {HR_RATIO}x finer (SkySense)",
    )
    stride: int | None = Field(None, ge=1, description="pixels between chips; default = size")
    max_nodata_fraction: float = Field(0.5, ge=0.0, le=1.0)
    shard_size_mb: int = Field(256, ge=1)
    workers: int = Field(2, ge=1)
    sentinel_gsd_m: float = Field(SENTINEL_GSD_M, gt=0)
    allow_partial: bool = Field(
        False,
        description="finish with success when some locations failed (the summary lists "
        "them); default: a failed location fails the command (--allow-partial)",
    )


class RemoteReadConfig(Section):
    """Remote raster reads (off unless hosts are named; see skysense.data.raster_access)."""

    allowed_hosts: list[str] = Field(
        [],
        description="hosts (name or name:port) whose http(s) URLs "
        "catalogs and scene lists may name; empty = local files only",
    )


_CHIP = ChipConfig()  # the defaults of ``params.yaml: data.chip``


@dataclass(frozen=True)
class ChipSettings:
    """What the chipper needs, resolved from ``params.yaml: data`` (picklable for worker
    processes); defaults are those of :class:`skysense.data.settings.ChipConfig`.
    """

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
    def build(
        cls,
        chip: ChipConfig,
        modalities: Sequence[str],
        bands: dict[str, Sequence[str]],
        max_dates: dict[str, int],
        access: RasterAccessPolicy,
    ) -> ChipSettings:
        """From the ``data.chip`` section, the modalities to chip, the band names per modality,
        the most dates per series and the raster access policy.
        """
        return cls(
            size=chip.size,
            stride=chip.stride or chip.size,
            hr_ratio=chip.hr_ratio,
            gsd_m=chip.sentinel_gsd_m,
            max_nodata_fraction=chip.max_nodata_fraction,
            shard_bytes=chip.shard_size_mb * 2**20,
            workers=chip.workers,
            modalities=tuple(modalities),
            bands={k: tuple(v) for k, v in bands.items()},
            max_dates=dict(max_dates),
            access=access,
        )


class StacModalityRule(Section):
    """How the STAC items of some collections (or platforms) become acquisitions of one modality."""

    modality: Modality = Field(description="the sample modality the items feed (hr, s2, s1, dem)")
    sensor: str = Field(description="sensor spec that reads them (skysense.core.sensors)")
    collections: list[str] = Field([], description="STAC collection ids matched first")
    platforms: list[str] = Field(
        [], description="item 'platform' values matched when no collection rule does"
    )
    assets: dict[str, str] = Field(
        {},
        description="asset key, eo:bands name or common name -> the sensor's band name "
        "(e.g. red: B04); band names map to themselves",
    )
    mask_asset: str | None = Field(
        None,
        description="asset holding the cloud mask (Sentinel-2 SCL; cloud classes: "
        "validation.scl_cloud_classes)",
    )
    input_units: InputUnits | None = Field(
        None,
        description="units of the stored values, recorded per acquisition "
        "(sentinel-1-rtc: linear gamma0; sentinel-1-grd: dn, quarantined as uncalibrated)",
    )
    cloud_filter: bool = Field(
        False, description="skip items whose eo:cloud_cover is over data.stac.max_cloud_cover"
    )
    dated: bool = Field(True, description="acquisitions need a datetime (a DEM does not)")


_S2_ALIASES = {
    "coastal": "B01",
    "blue": "B02",
    "green": "B03",
    "red": "B04",
    "rededge1": "B05",
    "rededge2": "B06",
    "rededge3": "B07",
    "nir": "B08",
    "nir08": "B8A",
    "nir09": "B09",
    "cirrus": "B10",
    "swir16": "B11",
    "swir22": "B12",
}


class StacConfig(Section):
    """``skysense data stac``: a STAC snapshot (ItemCollection) into a scene catalog."""

    location_m: float = Field(
        640.0,
        gt=0,
        description="side of a location cell, metres (SkySense: 64 px x 10 m); "
        "cells are aligned to multiples of it in each UTM zone",
    )
    required_modalities: list[Modality] = Field(
        ["s2", "s1"], description="a location is a cell that an item of every one of these covers"
    )
    max_cloud_cover: float = Field(60.0, ge=0.0, le=100.0, description="most eo:cloud_cover, %")
    name: str = Field("stac", description="catalog name and location id prefix")
    download: bool = Field(
        False,
        description="download remote assets (hosts in data.remote.allowed_hosts) into "
        "OUT/assets; off: remote hrefs stay URLs, read on demand",
    )
    max_items: int | None = Field(None, ge=1, description="most items an API search returns")
    rules: dict[str, StacModalityRule] = Field(
        {
            "sentinel2": StacModalityRule(
                modality="s2",
                sensor="sentinel2",
                collections=["sentinel-2-l2a", "sentinel-2-c1-l2a", "sentinel-2-l1c"],
                platforms=["sentinel-2a", "sentinel-2b", "sentinel-2c"],
                assets=_S2_ALIASES,
                mask_asset="SCL",
                cloud_filter=True,
            ),
            "sentinel1_rtc": StacModalityRule(
                modality="s1",
                sensor="sentinel1",
                collections=["sentinel-1-rtc"],
                assets={"vv": "VV", "vh": "VH"},
                input_units="linear",
            ),
            "sentinel1_grd": StacModalityRule(
                modality="s1",
                sensor="sentinel1",
                collections=["sentinel-1-grd"],
                assets={"vv": "VV", "vh": "VH"},
                input_units="dn",
            ),
            "sentinel1": StacModalityRule(
                modality="s1",
                sensor="sentinel1",
                platforms=["sentinel-1a", "sentinel-1b", "sentinel-1c"],
                assets={"vv": "VV", "vh": "VH"},
            ),
            "hr": StacModalityRule(
                modality="hr",
                sensor="hr",
                collections=["naip", "orthophoto", "swissimage"],
                assets={"red": "R", "green": "G", "blue": "B", "nir": "N"},
                cloud_filter=True,
            ),
            "dem": StacModalityRule(
                modality="dem",
                sensor="dem",
                collections=[
                    "cop-dem-glo-30",
                    "cop-dem-glo-90",
                    "3dep-seamless",
                    "nasadem",
                    "alos-dem",
                ],
                assets={"data": "elevation", "elevation": "elevation", "dem": "elevation"},
                dated=False,
            ),
        },
        description="collection / platform -> modality rules, tried in this order",
    )


@dataclass(frozen=True)
class StacIngestSettings:
    """What :func:`skysense.data.stac.ingest.ingest_snapshot` needs, resolved from params.yaml:
    ``data.stac``, the bands per modality, the SCL cloud classes and the raster access policy.
    """

    stac: StacConfig = field(default_factory=StacConfig)
    bands: dict[str, tuple[str, ...]] = field(default_factory=dict)
    scl_cloud_classes: tuple[int, ...] = SCL_CLOUD_CLASSES
    access: RasterAccessPolicy = field(default_factory=RasterAccessPolicy)
