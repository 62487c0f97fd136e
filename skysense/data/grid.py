"""Pixel grids: a CRS, an affine transform and a size, and the UTM zone of a place.

A :class:`Grid` is what every modality of a location is warped onto (see
:mod:`skysense.data.coregistration`). Grids are north-up with square pixels in metres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window


def utm_crs(lon: float, lat: float) -> CRS:
    """WGS84 / UTM zone CRS containing a position in degrees (EPSG:326xx north, 327xx south)."""
    zone = int(math.floor((lon + 180.0) / 6.0)) % 60 + 1
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


@dataclass(frozen=True)
class Grid:
    """A north-up raster grid: ``crs``, top-left corner ``(x0, y0)`` in CRS units, pixel ``res``."""

    crs: CRS
    x0: float
    y0: float
    res: float
    width: int
    height: int

    def __repr__(self) -> str:
        crs = self.crs.to_string() if self.crs is not None else None
        return (
            f"Grid(crs={crs}, x0={self.x0}, y0={self.y0}, res={self.res}, "
            f"width={self.width}, height={self.height})"
        )

    @property
    def transform(self) -> Affine:
        """Affine transform of the grid (pixel -> map)."""
        return Affine(self.res, 0.0, self.x0, 0.0, -self.res, self.y0)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(minx, miny, maxx, maxy)`` in CRS units."""
        return (self.x0, self.y0 - self.height * self.res, self.x0 + self.width * self.res, self.y0)

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` in pixels."""
        return (self.height, self.width)

    @classmethod
    def from_bounds(
        cls,
        crs: CRS,
        bounds: tuple[float, float, float, float],
        res: float,
        snap: float | None = None,
        inward: bool = False,
    ) -> Grid:
        """Grid of pixel size ``res`` over ``bounds``, corners snapped to multiples of ``snap``.

        ``inward=False`` gives the smallest grid covering the bounds, ``inward=True`` the largest
        grid inside them.
        """
        minx, miny, maxx, maxy = bounds
        s = snap or res
        out, inn = (math.floor, math.ceil) if not inward else (math.ceil, math.floor)
        x0 = out(minx / s + (1e-9 if not inward else -1e-9)) * s
        y0 = inn(maxy / s + (-1e-9 if not inward else 1e-9)) * s
        x1 = inn(maxx / s + (-1e-9 if not inward else 1e-9)) * s
        y1 = out(miny / s + (1e-9 if not inward else -1e-9)) * s
        width = max(1, int(round((x1 - x0) / res)))
        height = max(1, int(round((y0 - y1) / res)))
        return cls(crs=crs, x0=float(x0), y0=float(y0), res=float(res), width=width, height=height)

    @classmethod
    def from_transform(cls, crs: CRS, transform: Affine, width: int, height: int) -> Grid:
        """Grid of a north-up raster (square pixels) from its transform and size."""
        return cls(
            crs=crs,
            x0=transform.c,
            y0=transform.f,
            res=abs(transform.a),
            width=width,
            height=height,
        )

    def scaled(self, factor: int) -> Grid:
        """The same footprint with pixels ``factor`` times finer (e.g. 32 for the HR grid)."""
        return Grid(
            self.crs, self.x0, self.y0, self.res / factor, self.width * factor, self.height * factor
        )

    def window_grid(self, window: Window) -> Grid:
        """The sub-grid covered by a pixel window of this grid."""
        return Grid(
            self.crs,
            self.x0 + window.col_off * self.res,
            self.y0 - window.row_off * self.res,
            self.res,
            int(window.width),
            int(window.height),
        )

    def xy(self, row: float, col: float) -> tuple[float, float]:
        """Map coordinate of a pixel centre."""
        return (self.x0 + (col + 0.5) * self.res, self.y0 - (row + 0.5) * self.res)

    def rowcol(self, x: float, y: float) -> tuple[int, int]:
        """Pixel containing a map coordinate."""
        return (
            int(math.floor((self.y0 - y) / self.res)),
            int(math.floor((x - self.x0) / self.res)),
        )
