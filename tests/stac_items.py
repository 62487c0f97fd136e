"""STAC items made with pystac from the real rasters in ``tests/data/real`` (see PROVENANCE.tsv).

Geometries are the rasters' footprints in degrees (corners and edge points transformed from the
file's CRS); band assets carry ``eo:bands``; dates and processing baselines come from the files'
names and BigEarthNet metadata (``tile_source``: ``..._N0205_...`` = baseline 02.05).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pystac
import rasterio
from rasterio.warp import transform as warp_transform

from skysense.core.sensors import S2_PRODUCT_BANDS

REAL = Path(__file__).parent / "data" / "real"
BEN = REAL / "bigearthnet"
BEN_PAIRS = [  # (S2 patch, S1 patch): the same 1.2 km square, Austria (33U) and Ireland (29U)
    ("S2A_MSIL2A_20170613T101031_87_48", "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48"),
    ("S2A_MSIL2A_20170617T113321_4_55", "S1A_IW_GRDH_1SDV_20170617T064724_29UPU_4_55"),
]
S2_COMMON = {
    "B02": "blue",
    "B03": "green",
    "B04": "red",
    "B08": "nir",
    "B11": "swir16",
    "B12": "swir22",
    "B01": "coastal",
    "B8A": "nir08",
    "B09": "nir09",
}


def footprint(path: Path, n: int = 8) -> tuple[dict, list[float]]:
    """GeoJSON polygon (degrees) of a raster's footprint, and its bbox."""
    with rasterio.open(path) as ds:
        left, bottom, right, top = ds.bounds
        crs = ds.crs
    t = np.linspace(0.0, 1.0, n, endpoint=False)
    xs = np.concatenate(
        [left + (right - left) * t, np.full(n, right), right - (right - left) * t, np.full(n, left)]
    )
    ys = np.concatenate(
        [np.full(n, bottom), bottom + (top - bottom) * t, np.full(n, top), top - (top - bottom) * t]
    )
    lon, lat = warp_transform(crs, "EPSG:4326", xs.tolist(), ys.tolist())
    ring = [[float(a), float(b)] for a, b in zip(lon, lat)]
    ring.append(ring[0])
    return {"type": "Polygon", "coordinates": [ring]}, [min(lon), min(lat), max(lon), max(lat)]


def _item(
    item_id: str, collection: str | None, geom_path: Path, when: dt.datetime, **props
) -> pystac.Item:
    geom, bbox = footprint(geom_path)
    item = pystac.Item(
        id=item_id,
        geometry=geom,
        bbox=bbox,
        datetime=when,
        properties=dict(props),
        collection=collection,
    )
    return item


def _band_asset(href: Path | str, name: str, common: str | None = None, **extra) -> pystac.Asset:
    band = {"name": name}
    if common:
        band["common_name"] = common
    return pystac.Asset(
        href=str(href),
        media_type=pystac.MediaType.GEOTIFF,
        roles=["data"],
        extra_fields={"eo:bands": [band], **extra},
    )


def ben_s2_item(patch: str, collection: str = "sentinel-2-l2a") -> pystac.Item:
    """A BigEarthNet Sentinel-2 patch (12 band files) as an L2A item."""
    folder = BEN / patch
    meta = json.loads((folder / f"{patch}_labels_metadata.json").read_text())
    when = dt.datetime.strptime(patch.split("_")[2], "%Y%m%dT%H%M%S").replace(tzinfo=dt.UTC)
    baseline = meta["tile_source"].split("_N")[1][:4]
    item = _item(
        patch,
        collection,
        folder / f"{patch}_B02.tif",
        when,
        platform="sentinel-2a",
        **{"eo:cloud_cover": 0.0, "s2:processing_baseline": f"{baseline[:2]}.{baseline[2:]}"},
    )
    for f in sorted(folder.glob(f"{patch}_B*.tif")):
        band = f.stem.rsplit("_", 1)[1]
        item.add_asset(band, _band_asset(f, band, S2_COMMON.get(band)))
    item.add_asset(
        "metadata",
        pystac.Asset(
            href=str(folder / f"{patch}_labels_metadata.json"),
            media_type=pystac.MediaType.JSON,
            roles=["metadata"],
        ),
    )
    return item


def ben_s1_item(patch: str) -> pystac.Item:
    """A BigEarthNet Sentinel-1 patch (VV, VH sigma0 in dB, float32), found by its platform."""
    folder = BEN / patch
    meta = json.loads((folder / f"{patch}_labels_metadata.json").read_text())
    when = dt.datetime.fromisoformat(meta["acquisition_time"]).replace(tzinfo=dt.UTC)
    item = _item(
        patch,
        "bigearthnet-s1",
        folder / f"{patch}_VV.tif",
        when,
        platform="sentinel-1a",
        **{"sar:polarizations": ["VV", "VH"]},
    )
    for pol in ("VV", "VH"):
        item.add_asset(
            pol.lower(),
            pystac.Asset(
                href=str(folder / f"{patch}_{pol}.tif"),
                media_type=pystac.MediaType.GEOTIFF,
                roles=["data"],
            ),
        )
    return item


def t32upc_item() -> pystac.Item:
    """The T32UPC L1C 13-band stack (60 m) as one multi-band asset."""
    f = next((REAL / "s2_T32UPC").glob("*.tif"))
    names = list(S2_PRODUCT_BANDS)
    item = _item(
        f.stem,
        "sentinel-2-l1c",
        f,
        dt.datetime(2020, 4, 6, 10, 15, 59, tzinfo=dt.UTC),
        platform="sentinel-2b",
        **{"eo:cloud_cover": 1.0},
    )
    item.add_asset(
        "stack",
        pystac.Asset(
            href=str(f),
            media_type=pystac.MediaType.GEOTIFF,
            roles=["data"],
            extra_fields={"eo:bands": [{"name": n} for n in names]},
        ),
    )
    return item


def naip_items() -> list[pystac.Item]:
    """The three NAIP crops (R, G, B, N) as HR items."""
    out = []
    for f in sorted((REAL / "naip").glob("*.tif")):
        day = dt.datetime.strptime(f.stem.split("_")[5], "%Y%m%d").replace(tzinfo=dt.UTC)
        item = _item(f.stem, "naip", f, day)
        item.add_asset(
            "image",
            pystac.Asset(
                href=str(f),
                media_type=pystac.MediaType.GEOTIFF,
                roles=["data"],
                extra_fields={
                    "eo:bands": [
                        {"name": n, "common_name": c}
                        for n, c in (
                            ("Red", "red"),
                            ("Green", "green"),
                            ("Blue", "blue"),
                            ("NIR", "nir"),
                        )
                    ]
                },
            ),
        )
        out.append(item)
    return out


def dem_item(name: str = "Rome-30m-DEM.tif", collection: str = "cop-dem-glo-30") -> pystac.Item:
    """A real DEM as a DEM item (asset ``data``)."""
    f = REAL / "dem" / name
    item = _item(Path(name).stem, collection, f, dt.datetime(2021, 4, 22, tzinfo=dt.UTC))
    item.add_asset(
        "data", pystac.Asset(href=str(f), media_type=pystac.MediaType.GEOTIFF, roles=["data"])
    )
    return item


def real_items() -> list[pystac.Item]:
    """Every real item: both BigEarthNet S2/S1 pairs, T32UPC, the NAIP crops and the Rome DEM."""
    items = []
    for s2, s1 in BEN_PAIRS:
        items += [ben_s2_item(s2), ben_s1_item(s1)]
    return items + [t32upc_item(), *naip_items(), dem_item()]


def save_items(items: list[pystac.Item], path: Path) -> Path:
    """Save items as an ItemCollection (what pystac-client's ``save_object`` writes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pystac.ItemCollection(items).save_object(str(path))
    return path
