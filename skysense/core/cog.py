"""Cloud-Optimised GeoTIFFs: the one way a finished raster becomes a COG, and the check that it is.

A COG is a tiled GeoTIFF whose overviews (reduced-resolution copies) and tile index come first in
the file, so that map viewers and tile servers read one zoom level of one area with a few HTTP
range requests. GDAL's own ``COG`` driver (bundled with rasterio's wheel) writes it from a
finished GeoTIFF: :func:`write_cog` copies ``src`` into ``dst`` with overviews down to one tile,
built with the resampling that suits the data (``average`` for continuous values such as
embeddings, ``nearest`` or ``mode`` for class maps, where an average of class ids is a class
that was never predicted). :func:`check_cog` runs ``rio_cogeo.cog_validate`` on the written file
and raises when the layout is not that of a COG, so that no output is published under a COG's
name without being one.
"""

from __future__ import annotations

from pathlib import Path

import rasterio
import rasterio.shutil
from rasterio._err import CPLE_BaseError

from skysense.core.errors import RasterWriteError

OVERVIEW_RESAMPLINGS = ("average", "nearest", "mode", "bilinear")


def write_cog(
    src: str | Path,
    dst: str | Path,
    *,
    overview_resampling: str,
    blocksize: int = 256,
    compress: str = "deflate",
) -> Path:
    """Copy the GeoTIFF ``src`` to ``dst`` as a Cloud-Optimised GeoTIFF with overviews.

    Args:
        src: a finished GeoTIFF (any layout); it is only read.
        dst: the COG to write (replaced if present).
        overview_resampling: ``average`` (continuous values: embeddings, reflectance),
            ``nearest`` or ``mode`` (class maps), ``bilinear``.
        blocksize: tile side in pixels (multiple of 16).
        compress: GDAL compression (``deflate``, ``zstd``, ``lzw``...).

    Returns:
        ``dst``.

    Raises:
        ValueError: an unknown ``overview_resampling``.
        RasterWriteError: GDAL cannot write ``dst`` (the file is named).
    """
    if overview_resampling not in OVERVIEW_RESAMPLINGS:
        raise ValueError(
            f"overview resampling {overview_resampling!r}: use one of "
            f"{', '.join(OVERVIEW_RESAMPLINGS)}"
        )
    src, dst = Path(src), Path(dst)
    options = {
        "BLOCKSIZE": str(int(blocksize)),
        "COMPRESS": compress.upper(),
        "OVERVIEWS": "IGNORE_EXISTING",
        "OVERVIEW_RESAMPLING": overview_resampling.upper(),
        "BIGTIFF": "IF_SAFER",
        "NUM_THREADS": "ALL_CPUS",
    }
    try:
        with rasterio.open(src) as ds:
            if ds.dtypes[0].startswith("float"):
                options["PREDICTOR"] = "FLOATING_POINT"
            elif compress.lower() in ("deflate", "zstd", "lzw"):
                options["PREDICTOR"] = "YES" if ds.count > 1 else "NO"
            rasterio.shutil.copy(ds, dst, driver="COG", **options)
    except (OSError, rasterio.errors.RasterioError, CPLE_BaseError) as exc:
        raise RasterWriteError(
            f"{dst}: cannot write the Cloud-Optimised GeoTIFF ({exc}); check that its folder "
            "is writable and has free space"
        ) from None
    return dst


def check_cog(path: str | Path) -> list[str]:
    """Validate ``path`` with ``rio_cogeo.cog_validate``.

    Returns:
        The validator's warnings (e.g. no overviews on a raster smaller than one tile).

    Raises:
        RasterWriteError: the file is not a valid COG; the message lists the validator's errors.
    """
    from rio_cogeo.cogeo import cog_validate

    valid, errors, warnings = cog_validate(str(path), quiet=True)
    if not valid:
        raise RasterWriteError(
            f"{path}: not a valid Cloud-Optimised GeoTIFF ({'; '.join(errors)}); "
            "write it again with skysense.core.cog.write_cog"
        )
    return list(warnings)
