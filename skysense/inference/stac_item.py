"""A STAC item beside every prediction, and an ItemCollection per batch (pystac).

Catalogs and map viewers find an output through its item: the footprint (WGS84 geometry and
bbox), the acquisition dates of the inputs, the projection extension (code, shape, transform,
bbox in the output CRS), the band descriptions of the COG asset, the model that made it
(``skysense:model`` as given, e.g. ``models:/skysense-encoder@champion``, and
``skysense:model_version``, the version number it resolved to) and the input scenes (one
``derived_from`` link per raster, and ``skysense:inputs`` with modality and date). The item is
written as ``<output stem>.json`` beside ``<output>.tif``; the asset href is relative to it, so a
predictions folder moves as a whole.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path

import pystac
import rasterio
from pystac.extensions.projection import ProjectionExtension
from rasterio.warp import transform_geom

from skysense.core.atomic_files import write_text_atomic

COG_MEDIA_TYPE = pystac.MediaType.COG
PREDICTION_ASSET = "data"


@dataclass(frozen=True)
class InputRaster:
    """One input of a prediction: its modality (``s2``, ``s1``, ``hr``, ``dem``), file, date."""

    modality: str
    path: Path
    date: date | None = None


@dataclass(frozen=True)
class ModelIdentity:
    """The model behind a prediction.

    Attributes:
        uri: as given to predict (``models:/NAME@champion``, ``models:/NAME/3``, an export folder).
        source: the resolved form (``models:/NAME/3``, or the export folder).
        version: the registered version number, ``None`` for a local export.
    """

    uri: str
    source: str
    version: str | None = None


def item_path(output: str | Path) -> Path:
    """Where the STAC item of the prediction ``output`` lives: ``<stem>.json`` beside it."""
    out = Path(output)
    return out.with_suffix(".json")


def _footprint(ds: rasterio.DatasetReader) -> dict:
    """The raster's outline as a WGS84 GeoJSON polygon (edges densified: UTM lines bend)."""
    left, bottom, right, top = ds.bounds
    ring = [(left, bottom), (right, bottom), (right, top), (left, top), (left, bottom)]
    return transform_geom(
        ds.crs, "EPSG:4326", {"type": "Polygon", "coordinates": [ring]}, precision=7
    )


def _bbox(geometry: dict) -> list[float]:
    xs = [p[0] for p in geometry["coordinates"][0]]
    ys = [p[1] for p in geometry["coordinates"][0]]
    return [min(xs), min(ys), max(xs), max(ys)]


def prediction_item(
    output: str | Path,
    item_id: str,
    model: ModelIdentity,
    inputs: Sequence[InputRaster],
    *,
    kind: str = "embedding",
    classes: Sequence[str] | None = None,
    created: datetime | None = None,
) -> pystac.Item:
    """The STAC item of the prediction COG ``output`` (read for its grid and bands).

    Args:
        output: the written COG.
        item_id: the scene id (the item id).
        model: the model that made it.
        inputs: every raster read.
        kind: ``embedding`` or ``classes`` (asset role ``data`` either way).
        classes: class names of a class map (band value = index).
        created: when the prediction was made (default now, UTC).

    Returns:
        The item, with its self href and asset href set to files beside ``output``.
    """
    out = Path(output)
    created = created or datetime.now(UTC)
    with rasterio.open(out) as ds:
        geometry = _footprint(ds)
        descriptions = [d or f"band_{i + 1}" for i, d in enumerate(ds.descriptions)]
        shape = [ds.height, ds.width]
        transform = list(ds.transform)[:6]
        bounds = list(ds.bounds)
        epsg = ds.crs.to_epsg()
        wkt = ds.crs.to_wkt() if epsg is None else None
        dtype = ds.dtypes[0]
        nodata = ds.nodata
    dates = sorted({r.date for r in inputs if r.date is not None})
    properties: dict = {
        "created": created.isoformat().replace("+00:00", "Z"),
        "skysense:kind": kind,
        "skysense:model": model.uri,
        "skysense:model_source": model.source,
        "skysense:model_version": int(model.version) if model.version else None,
        "skysense:inputs": [
            {
                "modality": r.modality,
                "href": str(Path(r.path).resolve()),
                "date": r.date.isoformat() if r.date else None,
            }
            for r in inputs
        ],
    }
    if dates:
        start = datetime.combine(dates[0], time(0), tzinfo=UTC)
        end = datetime.combine(dates[-1], time(23, 59, 59), tzinfo=UTC)
        when = None if start.date() != end.date() else start
        if when is None:
            properties["start_datetime"] = start.isoformat().replace("+00:00", "Z")
            properties["end_datetime"] = end.isoformat().replace("+00:00", "Z")
    else:  # no input date known: the item is dated by the prediction itself
        when = created
        properties["skysense:dates_unknown"] = True
    item = pystac.Item(
        id=item_id,
        geometry=geometry,
        bbox=_bbox(geometry),
        datetime=when,
        properties=properties,
    )
    bands = []
    for i, name in enumerate(descriptions):
        band: dict = {"name": name, "data_type": dtype}
        if nodata is not None:
            band["nodata"] = "nan" if math.isnan(nodata) else nodata
        if kind == "classes" and classes:
            band["description"] = "class index: " + ", ".join(
                f"{k}={c}" for k, c in enumerate(classes)
            )
        elif kind == "embedding":
            band["description"] = f"SkySense fused embedding, channel {i}"
        bands.append(band)
    item.add_asset(
        PREDICTION_ASSET,
        pystac.Asset(
            href=f"./{out.name}",
            media_type=COG_MEDIA_TYPE,
            roles=["data"],
            title=f"SkySense {kind} ({model.source})",
            extra_fields={"bands": bands},
        ),
    )
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    proj.apply(
        code=f"EPSG:{epsg}" if epsg is not None else None,
        wkt2=wkt,
        shape=shape,
        transform=transform,
        bbox=bounds,
    )
    for r in inputs:
        item.add_link(
            pystac.Link(
                rel="derived_from",
                target=Path(r.path).resolve().as_uri(),
                media_type=pystac.MediaType.GEOTIFF,
                title=f"{r.modality} {r.date.isoformat() if r.date else '(undated)'}",
            )
        )
    item.set_self_href(str(item_path(out).resolve()))
    return item


def write_item(item: pystac.Item, path: str | Path) -> Path:
    """Write ``item`` as JSON to ``path`` atomically (relative asset hrefs kept)."""
    data = item.to_dict(include_self_link=False, transform_hrefs=False)
    return write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def write_item_collection(items: Iterable[pystac.Item], path: str | Path) -> Path:
    """Write a batch's items as one STAC ItemCollection (GeoJSON FeatureCollection), atomically.

    Asset hrefs are made absolute, since the collection file may live elsewhere than the items.
    """
    clones = []
    for item in items:
        clone = item.clone()
        clone.make_asset_hrefs_absolute()
        clones.append(clone)
    collection = pystac.ItemCollection(clones)
    data = collection.to_dict(transform_hrefs=False)
    return write_text_atomic(path, json.dumps(data, indent=2) + "\n")
