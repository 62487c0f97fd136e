"""A user's own label raster over catalog locations (``labels:`` in the catalog) as a
segmentation set of the chips cut from those locations.

For every chip of the chips folder (``manifest.parquet``) whose location names a ``labels:``
raster in the catalog, the label raster is read on the chip's own grid (its CRS, bounds and
``size`` pixels, nearest neighbour through ``WarpedVRT``, under the raster access policy) as
the chip's ``mask``; the raster's nodata (and pixels outside it) become 255, unlabelled. The
modalities come from the shards in physical units, invalid pixels NaN, as
:func:`skysense.data.downstream.read_chip` gives them, so the fine-tuning reads these samples
like the downstream sets. Class ids must be 0..K-1 with K the class list's length.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.transform import from_bounds
from rasterio.vrt import WarpedVRT

from skysense.core.modalities import SERIES
from skysense.data.catalog import load_catalog
from skysense.data.dataset import day_of_year
from skysense.data.downstream import DownstreamError, SampleList
from skysense.data.raster_access import open_dataset
from skysense.data.regions import region_id
from skysense.data.shards import MANIFEST, ShardReader

UNLABELLED = 255


def _label_window(path: Path, row: dict[str, Any]) -> np.ndarray:
    """The label raster on the chip's grid: ``size x size`` int64, 255 where unlabelled."""
    size = int(row["size"])
    transform = from_bounds(row["minx"], row["miny"], row["maxx"], row["maxy"], size, size)
    with open_dataset(path) as src:
        nodata = src.nodata
        with WarpedVRT(
            src,
            crs=CRS.from_user_input(row["crs"]),
            transform=transform,
            width=size,
            height=size,
            resampling=Resampling.nearest,
            src_nodata=nodata,
            nodata=UNLABELLED if nodata is None else nodata,
        ) as vrt:
            data = vrt.read(1, masked=True)
    mask = np.asarray(data.filled(UNLABELLED), dtype=np.int64)
    if nodata is not None:
        mask[mask == int(nodata)] = UNLABELLED
    return mask


def load_catalog_labels(
    catalog: str | Path, chips_dir: str | Path, class_names: list[str], n_regions: int = 4096
) -> SampleList:
    """The chips of labelled catalog locations with their ``mask`` from the label rasters.

    Args:
        catalog: the catalog whose locations name ``labels:`` rasters.
        chips_dir: the chips folder cut from that catalog (``skysense data chip``).
        class_names: the classes by id (``finetune.classes``).
        n_regions: geo-context regions of the model (the samples' ``region`` ids).

    Raises:
        DownstreamError: no labelled location has chips, or a label raster holds a class id
            outside the class list (the file and the ids are named).
    """
    cat = load_catalog(catalog)
    rasters = {loc.id: cat.resolve(loc.labels) for loc in cat.locations if loc.labels is not None}
    manifest = Path(chips_dir) / MANIFEST
    if not manifest.is_file():
        raise DownstreamError(f"{manifest}: no chips; run `skysense data chip` on {catalog} first")
    rows = [r for r in pq.read_table(manifest).to_pylist() if r["location"] in rasters]
    if not rows:
        raise DownstreamError(
            f"{catalog}: no location with a `labels:` raster has chips in {chips_dir}; add "
            "`labels: FILE` to the locations (a class-id raster) and chip them"
        )
    reader = ShardReader(chips_dir)
    samples = []
    for row in rows:
        arrays = reader.read(row["sample_id"])
        s: dict[str, Any] = {
            "id": row["sample_id"],
            "location": row["location"],
            "lat": float(row["lat"]),
            "lon": float(row["lon"]),
            "region": int(region_id(row["lat"], row["lon"], n_regions)),
        }
        for mod in ("s2", "s1", "hr", "dem"):
            if mod not in arrays:
                continue
            x = arrays[mod].astype(np.float32)
            valid = arrays.get(f"{mod}_mask")
            if valid is not None:
                bad = ~valid.astype(bool)
                x[np.broadcast_to(bad[:, None] if mod in SERIES else bad, x.shape)] = np.nan
            s[mod] = x
            if mod in SERIES:
                s[f"{mod}_doy"] = day_of_year(row[f"{mod}_dates"])
                s[f"{mod}_valid"] = np.asarray(row[f"{mod}_valid"], dtype=bool)
        mask = _label_window(rasters[row["location"]], row)
        bad_ids = sorted(
            set(np.unique(mask[mask != UNLABELLED]).tolist()) - set(range(len(class_names)))
        )
        if bad_ids:
            raise DownstreamError(
                f"{rasters[row['location']]}: class ids {bad_ids[:10]} outside the class list "
                f"(0..{len(class_names) - 1}: {', '.join(class_names)}); list every class in "
                "finetune.classes, or set those pixels to the raster's nodata"
            )
        s["mask"] = mask
        samples.append(s)
    reader.close()
    return SampleList(samples, "segmentation", class_names)
