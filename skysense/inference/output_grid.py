"""The pixel grid a prediction is written on, chosen explicitly (``predict.crs``).

By default the output takes the grid of the first Sentinel-2 raster (its CRS, transform and
size). Scenes that cross a UTM zone boundary, or batches that mix zones, need one CRS for all
outputs (a mosaic, a tile server's layer): with ``predict.crs`` set, the grid is the first
raster's footprint reprojected into that CRS (``rasterio.warp.calculate_default_transform``),
at the first raster's pixel size when both CRSs are in metres (10 m stays 10 m), and every
input, the first included, is warped onto it on read.
"""

from __future__ import annotations

from dataclasses import dataclass

import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import CRSError
from rasterio.warp import calculate_default_transform

from skysense.core.errors import SkySenseError


class OutputCrsError(SkySenseError, ValueError):
    """A ``predict.crs`` value that is not a coordinate reference system."""


@dataclass(frozen=True)
class OutputGrid:
    """A georeferenced pixel grid: CRS, affine transform (pixel -> CRS units), size."""

    crs: CRS
    transform: Affine
    width: int
    height: int

    @classmethod
    def of(cls, ds: rasterio.DatasetReader) -> OutputGrid:
        """The grid of an opened raster."""
        return cls(ds.crs, ds.transform, ds.width, ds.height)

    @classmethod
    def reprojected(cls, ds: rasterio.DatasetReader, crs: str | CRS) -> OutputGrid:
        """``ds``'s footprint on a grid in ``crs`` (north-up; same pixel size in metres).

        Raises:
            OutputCrsError: ``crs`` cannot be parsed.
        """
        target = parse_crs(crs)
        if target == ds.crs:
            return cls.of(ds)
        resolution = None
        if ds.crs.is_projected and target.is_projected:
            resolution = (abs(ds.transform.a), abs(ds.transform.e))
        transform, width, height = calculate_default_transform(
            ds.crs, target, ds.width, ds.height, *ds.bounds, resolution=resolution
        )
        return cls(target, transform, int(width), int(height))


def parse_crs(value: str | CRS) -> CRS:
    """``EPSG:32632``, ``32632``, a WKT or PROJ string -> :class:`rasterio.crs.CRS`.

    Raises:
        OutputCrsError: naming the value and the accepted forms.
    """
    if isinstance(value, CRS):
        return value
    try:
        text = str(value).strip()
        return CRS.from_epsg(int(text)) if text.isdigit() else CRS.from_user_input(text)
    except (CRSError, ValueError):
        raise OutputCrsError(
            f"predict.crs={value!r} is not a coordinate reference system; give e.g. "
            "EPSG:32632 (a UTM zone), EPSG:3035, or a WKT string"
        ) from None
