"""The one GeoTIFF writer for whole arrays: tiled, compressed, georeferenced, band-described.

Used by the synthetic sample and its downstream sets; streamed, windowed outputs (predictions)
have their own writer in :mod:`skysense.inference`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio

from skysense.core.errors import RasterWriteError


def _block(n: int) -> int:
    """GeoTIFF tile side for a raster side of ``n`` px: multiple of 16, at most 256."""
    return int(min(256, max(16, int(np.ceil(n / 16)) * 16)))


def write_geotiff(
    path: Path,
    array: np.ndarray,
    epsg: int,
    transform,
    nodata: float | None = None,
    band_names: list[str] | tuple[str, ...] | None = None,
    tags: dict[str, str] | None = None,
    jpeg_quality: int | None = None,
) -> Path:
    """Write a ``bands x H x W`` (or ``H x W``) array as a tiled, DEFLATE-compressed GeoTIFF.

    Args:
        path: output file (parent folders are created).
        array: data in its stored dtype.
        epsg: CRS code (e.g. 32632 for UTM 32N).
        transform: affine transform of the pixel grid (metres).
        nodata: stored no-data value, or None.
        band_names: band descriptions (``B02``, ``VV``...).
        tags: dataset metadata items.
        jpeg_quality: JPEG-compress (uint8 only; lossy, as aerial orthophotos) at this quality.
    """
    data = array if array.ndim == 3 else array[None]
    count, height, width = data.shape
    predictor = 3 if data.dtype.kind == "f" else 2
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": count,
        "dtype": data.dtype.name,
        "crs": f"EPSG:{epsg}",
        "transform": transform,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": _block(width),
        "blockysize": _block(height),
        "compress": "deflate",
        "zlevel": 6 if data.nbytes < 4_000_000 else 1,
        "predictor": predictor,
        "interleave": "pixel" if count <= 4 else "band",
    }
    if jpeg_quality is not None and data.dtype == np.uint8:
        # jpegtablesmode=0: quantisation and Huffman tables in each tile, not in a shared
        # JPEGTables tag. Same pixels; but GDAL guesses the quality of a shared-table file at
        # every open (~15 ms unless the quality is 75), and evaluation opens thousands of chips.
        profile.update(
            compress="jpeg",
            jpeg_quality=int(jpeg_quality),
            photometric="minisblack",
            jpegtablesmode=0,
        )
        profile.pop("zlevel")
        profile.pop("predictor")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data)
            for i, name in enumerate(band_names or [], start=1):
                dst.set_band_description(i, name)
            if tags:
                dst.update_tags(**tags)
    except (OSError, rasterio.errors.RasterioIOError) as exc:
        raise RasterWriteError(
            f"{path}: cannot write GeoTIFF ({exc}); check that the folder is writable"
        ) from None
    return path
