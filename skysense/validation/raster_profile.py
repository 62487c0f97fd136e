"""Raster profiling: one row of facts per file, read with rasterio from a decimated window.

A profile row holds what the expectations judge: georeferencing (CRS, projected or not, GSD in
metres, footprint), layout (size, bands, dtype, nodata), content (valid-pixel fraction, NaN
fraction, per-band min/max/mean in physical units, cloud fraction of masks and SCL layers) and
the acquisition date. Reads use ``out_shape`` so GDAL serves them from (internal) overviews when
a file has them; a file of at most ``max_px`` pixels a side is read whole (one of more than 32
bands is read coarser: a read holds at most 32 x ``max_px``^2 samples). A file that cannot be
read becomes a row with ``read_error`` set instead of an exception: one bad file never stops a run.

Files are opened under the raster access policy (:mod:`skysense.data.raster_access`): a file the
policy refuses (a VRT, a ``/vsi`` path or URL, a sidecar redirect) is not opened and gets
``access_error``; a raster over ``data.max_raster_pixels``/``max_raster_bands`` is opened for
its size only (``pixel_count``, with the limits in ``max_pixels``/``max_bands``) and its pixels
are not read. Messages name the file and the fault, never its content.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rasterio.enums import MaskFlags, Resampling
from rasterio.transform import array_bounds, from_gcps
from rasterio.warp import transform_bounds

from skysense.core.errors import RasterReadError
from skysense.core.sensors import SENSORS
from skysense.data.raster_access import (
    RasterAccessError,
    RasterAccessPolicy,
    current_policy,
    gdal_message,
    open_dataset,
    size_problem,
)
from skysense.validation.inventory import RasterItem
from skysense.validation.settings import SensorRule, ValidationConfig

_M_PER_DEG_LAT = 110_574.0
_M_PER_DEG_LON_EQUATOR = 111_320.0
_PROFILE_BANDS = 32  # a file of more bands is read coarser than max_profile_px (same sample count)


def _empty_row(item: RasterItem) -> dict[str, Any]:
    return {
        "item_id": item.item_id,
        "acq_id": item.acq_id,
        "path": str(item.path),
        "location": item.location,
        "split": item.split,
        "modality": item.modality,
        "sensor": item.sensor,
        "acq_index": item.acq_index,
        "role": item.role,
        "layout": item.layout,
        "band_name": item.band_name,
        "declared_bands": len(item.band_names) if item.band_names else None,
        "date": item.date,
        "date_raw": item.date_raw,
        "date_error": item.date_error,
        "read_error": item.source_error,
        "access_error": None,
        "input_units": item.input_units,
        "offset": item.offset,
        "driver": None,
        "georeferencing": None,
        "crs": None,
        "crs_epsg": None,
        "has_crs": None,
        "crs_projected": None,
        "gsd_m": None,
        "width": None,
        "height": None,
        "band_count": None,
        "pixel_count": None,
        "max_pixels": None,
        "max_bands": None,
        "dtype": None,
        "nodata": None,
        "valid_fraction": None,
        "nan_fraction": None,
        "cloud_fraction": None,
        "band_min": None,
        "band_max": None,
        "band_mean": None,
        "phys_min": None,
        "phys_max": None,
        "minx": None,
        "miny": None,
        "maxx": None,
        "maxy": None,
        "footprint_wgs84": None,
        "read_shape": None,
        "overview_used": None,
    }


def _gsd_metres(transform: Any, crs: Any, bounds: tuple[float, float, float, float]) -> float:
    """Mean pixel size in metres; degrees are converted at the footprint's centre latitude."""
    res_x = math.hypot(transform.a, transform.d)
    res_y = math.hypot(transform.b, transform.e)
    if crs.is_geographic:
        lat = math.radians((bounds[1] + bounds[3]) / 2.0)
        return 0.5 * (res_x * _M_PER_DEG_LON_EQUATOR * math.cos(lat) + res_y * _M_PER_DEG_LAT)
    factor = crs.linear_units_factor[1] if crs.linear_units_factor else 1.0
    return 0.5 * (res_x + res_y) * factor


def _footprint_wkt(crs: Any, bounds: tuple[float, float, float, float]) -> str | None:
    try:
        w, s, e, n = transform_bounds(crs, "EPSG:4326", *bounds, densify_pts=21)
    except Exception:  # noqa: BLE001 - an odd CRS leaves the footprint unknown, not the run dead
        return None
    return f"POLYGON(({w} {s}, {e} {s}, {e} {n}, {w} {n}, {w} {s}))"


def effective_units(item: RasterItem, dtype: str) -> str | None:
    """The input units a data file is read in: the catalog's, else its sensor's rule for the
    stored dtype (e.g. uint16 Sentinel-1: ``dn``); None for an unknown sensor.
    """
    if item.input_units:
        return item.input_units
    spec = SENSORS.get(item.sensor)
    if spec is None or "," in dtype:
        return None
    return spec.units_for(dtype)


def _to_physical(
    values: np.ndarray,
    dtype: str,
    rule: SensorRule | None,
    units: str | None,
    offset: float | None = None,
    sensor: str | None = None,
) -> np.ndarray | None:
    """Stored values to the modality's physical unit (reflectance, dB, metres); None if complex
    or uncalibrated (Sentinel-1 DN, judged by ``s1_calibrated``). DN: ``(v + offset) * scale``.
    """
    if np.dtype(dtype).kind == "c" or units == "complex":
        return None
    spec = SENSORS.get(sensor or "")
    if spec is not None and units is not None and spec.calibration_problem(units) is not None:
        return None
    v = values.astype(np.float64, copy=False)
    if units == "linear":
        with np.errstate(divide="ignore", invalid="ignore"):
            return 10.0 * np.log10(np.where(v > 0, v, np.nan))
    if units == "amplitude":
        with np.errstate(divide="ignore", invalid="ignore"):
            return 20.0 * np.log10(np.where(v > 0, v, np.nan))
    if rule is not None and (units == "dn" or (units is None and np.dtype(dtype).kind in "ui")):
        return (v + (offset or 0.0)) * rule.scale + rule.offset
    return v


def _read_stats(src: Any, row: dict[str, Any], item: RasterItem, cfg: ValidationConfig) -> None:
    """Read a decimated window and fill the content columns of ``row``."""
    rule = cfg.sensors.get(item.modality) if item.role == "data" else None
    side = max(src.width, src.height)
    # beyond _PROFILE_BANDS bands the read gets coarser, so its samples (memory) stay bounded
    spread = math.sqrt(max(1.0, src.count / _PROFILE_BANDS))
    factor = max(1, math.ceil(side * spread / cfg.max_profile_px))
    shape = (src.count, math.ceil(src.height / factor), math.ceil(src.width / factor))
    data = src.read(out_shape=shape, resampling=Resampling.nearest)
    row["read_shape"] = f"{shape[1]}x{shape[2]}"
    row["overview_used"] = bool(factor > 1 and src.overviews(1))

    nodata = item.nodata_override if item.nodata_override is not None else src.nodata
    if nodata is None and rule is not None:
        nodata = rule.nodata
    nan = np.isnan(data) if data.dtype.kind == "f" else np.zeros(shape, bool)
    if nodata is None:
        declared = np.zeros(shape, bool)
    elif math.isnan(nodata):
        declared = nan
    else:
        declared = data == nodata
    invalid_px = declared.all(axis=0) | nan.any(axis=0)
    if any(MaskFlags.per_dataset in f or MaskFlags.alpha in f for f in src.mask_flag_enums):
        invalid_px |= src.dataset_mask(out_shape=shape[1:], resampling=Resampling.nearest) == 0
    valid_px = ~invalid_px
    row["valid_fraction"] = float(valid_px.mean())
    row["nan_fraction"] = float((nan & ~declared).mean())

    if item.role == "mask":
        vals = data[0][valid_px]
        cloud = np.isin(vals, item.mask_classes) if item.mask_classes is not None else vals > 0
        row["cloud_fraction"] = float(cloud.mean()) if vals.size else None
        return
    if item.role == "scl":
        vals = data[0][valid_px & (data[0] != 0)]
        hits = np.isin(vals, cfg.scl_cloud_classes)
        row["cloud_fraction"] = float(hits.mean()) if vals.size else None
        return
    if item.role != "data":
        return
    phys = _to_physical(data, row["dtype"], rule, row["input_units"], item.offset, item.sensor)
    if phys is None or not valid_px.any():
        return
    mins: list[float | None] = []
    maxs: list[float | None] = []
    means: list[float | None] = []
    for band in phys:
        v = band[valid_px]
        v = v[np.isfinite(v)]
        if v.size == 0:
            mins.append(None)
            maxs.append(None)
            means.append(None)
            continue
        mins.append(float(v.min()))
        maxs.append(float(v.max()))
        means.append(float(v.mean()))
    row["band_min"], row["band_max"], row["band_mean"] = mins, maxs, means
    finite_min = [m for m in mins if m is not None]
    finite_max = [m for m in maxs if m is not None]
    row["phys_min"] = min(finite_min) if finite_min else None
    row["phys_max"] = max(finite_max) if finite_max else None


def profile_raster(
    item: RasterItem, cfg: ValidationConfig, access: RasterAccessPolicy | None = None
) -> dict[str, Any]:
    """Profile one raster; never raises for a bad file (``read_error``/``access_error`` say why).

    Args:
        item: the catalog entry of the file.
        cfg: validation settings (sensor rules, ``max_profile_px``, SCL cloud classes).
        access: the raster access policy (default: the process's).

    Returns:
        One profile row (see the module doc), GSD in metres, values in physical units.
    """
    row = _empty_row(item)
    if item.source_error is not None:  # a safe: folder that is not a product: nothing to open
        return row
    policy = current_policy(access)
    row["max_pixels"], row["max_bands"] = policy.max_pixels, policy.max_bands
    try:
        src = open_dataset(item.path, policy, check_size=False)
    except RasterAccessError as exc:
        row["access_error"] = str(exc)
        return row
    except RasterReadError as exc:
        row["read_error"] = f"RasterReadError: {exc}"
        return row
    try:
        with src:
            row["driver"] = src.driver
            row["width"], row["height"], row["band_count"] = src.width, src.height, src.count
            row["pixel_count"] = src.width * src.height
            dtypes = sorted(set(src.dtypes))
            row["dtype"] = dtypes[0] if len(dtypes) == 1 else ",".join(dtypes)
            if item.role == "data":
                row["input_units"] = effective_units(item, row["dtype"])
            row["nodata"] = src.nodata
            crs, transform = src.crs, src.transform
            row["georeferencing"] = "transform"
            gcps, gcp_crs = src.gcps
            if crs is None and gcps:
                crs, transform = gcp_crs, from_gcps(gcps)
                row["georeferencing"] = "gcps"
            row["has_crs"] = crs is not None
            if crs is None:
                row["georeferencing"] = "none"
            else:
                bounds = array_bounds(src.height, src.width, transform)
                bounds = (
                    min(bounds[0], bounds[2]),
                    min(bounds[1], bounds[3]),
                    max(bounds[0], bounds[2]),
                    max(bounds[1], bounds[3]),
                )
                row["crs"] = crs.to_string()
                row["crs_epsg"] = crs.to_epsg()
                row["crs_projected"] = bool(crs.is_projected)
                row["gsd_m"] = _gsd_metres(transform, crs, bounds)
                row["minx"], row["miny"], row["maxx"], row["maxy"] = bounds
                row["footprint_wgs84"] = _footprint_wkt(crs, bounds)
            if size_problem(src.width, src.height, src.count, policy) is None:
                _read_stats(src, row, item, cfg)  # over the limits: judged by raster_size, not read
    except Exception as exc:  # noqa: BLE001 - any failure to read is data about the file
        row["read_error"] = f"{type(exc).__name__}: {gdal_message(exc)}".strip()
    return row


# Stands in for a real item to name the columns of an empty profile table.
_NO_ITEM = RasterItem(
    item_id="",
    acq_id="",
    path=Path(),
    location="",
    split="",
    modality="",
    sensor="",
    acq_index=0,
    role="data",
    layout="file",
)


def profile_rasters(
    items: list[RasterItem], cfg: ValidationConfig, access: RasterAccessPolicy | None = None
) -> pd.DataFrame:
    """Profile many rasters in parallel (``cfg.workers`` threads; GDAL reads release the GIL).

    ``access`` is the raster access policy (default: the process's).

    The cloud fraction of a mask or SCL row is copied onto the data rows of its acquisition
    (``cloud_source`` says which); data rows without either keep it empty.
    """
    if cfg.workers > 1 and len(items) > 1:
        with ThreadPoolExecutor(max_workers=cfg.workers) as pool:
            rows = list(pool.map(lambda it: profile_raster(it, cfg, access), items))
    else:
        rows = [profile_raster(it, cfg, access) for it in items]
    table = pd.DataFrame(rows, columns=list(_empty_row(items[0] if items else _NO_ITEM).keys()))
    if table.empty:
        return table.assign(cloud_source=pd.Series(dtype=object))
    cloud_rows = table[table["role"].isin(["mask", "scl"])]
    cloud = cloud_rows.drop_duplicates("acq_id").set_index("acq_id")
    is_data = table["role"] == "data"
    table["cloud_source"] = None
    table.loc[is_data, "cloud_fraction"] = table.loc[is_data, "acq_id"].map(cloud["cloud_fraction"])
    table.loc[is_data, "cloud_source"] = table.loc[is_data, "acq_id"].map(cloud["role"])
    table["cloud_fraction"] = pd.to_numeric(table["cloud_fraction"], errors="coerce")
    return table
