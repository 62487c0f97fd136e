"""The input scene of ``skysense predict``: dated rasters of each modality on one 10 m grid.

Option format: ``--input 2023-05-01=s2_a.tif`` (repeat for a time series; ``--input s2.tif`` alone
is one date, its day of year taken from the file's ``TIFFTAG_DATETIME`` or mid-year). ``--s1``
likewise; ``--hr`` and ``--dem`` take one path. The first ``--input`` defines the output grid
(CRS, transform, size), unless an output CRS is given (``predict.crs``,
:mod:`skysense.inference.output_grid`); every raster not already on that grid is warped onto it on
read (HR onto the 32x finer grid).
Reads are windowed: nothing holds the whole scene. Every raster is opened under the raster access
policy (:mod:`skysense.data.raster_access`: GeoTIFF/JPEG 2000 only, no URLs unless allowed, pixel
and band limits).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Self

import numpy as np
import rasterio
from affine import Affine
from rasterio.vrt import WarpedVRT
from rasterio.warp import Resampling
from rasterio.warp import transform as warp_transform
from rasterio.windows import Window

from skysense.core.errors import RasterReadError, SkySenseError
from skysense.core.modalities import HR_RATIO
from skysense.core.sensors import S2_PRODUCT_BANDS, get_sensor
from skysense.data.raster_access import RasterAccessPolicy, is_remote, open_dataset
from skysense.inference.output_grid import OutputGrid

_S2_FULL = S2_PRODUCT_BANDS
_S2_NO_B10 = tuple(b for b in _S2_FULL if b != "B10")


class PredictInputError(SkySenseError, ValueError):
    """A ``--input``/``--s1``/``--hr``/``--dem`` value that cannot be used."""


@dataclass(frozen=True)
class DatedRaster:
    """One raster and its acquisition date (``None``: unknown)."""

    path: Path
    date: date | None


def parse_dated(value: str) -> DatedRaster:
    """``YYYY-MM-DD=path`` or ``path`` -> :class:`DatedRaster`.

    Raises:
        PredictInputError: malformed date or missing file.
    """
    m = re.match(r"^(\d{4}-\d{2}-\d{2})=(.+)$", value)
    when: date | None = None
    path = value
    if m:
        try:
            when = date.fromisoformat(m.group(1))
        except ValueError:
            raise PredictInputError(
                f"{value!r}: {m.group(1)} is not a date; use YYYY-MM-DD=path"
            ) from None
        path = m.group(2)
    p = Path(path)
    if not p.is_file() and not is_remote(path):  # a URL is judged by the access policy on open
        raise PredictInputError(
            f"{p}: no such raster; pass an existing GeoTIFF (DATE=path or path)"
        )
    return DatedRaster(p, when)


def day_of_year(raster: DatedRaster, ds: rasterio.DatasetReader) -> int:
    """Day of year of ``raster``: its given date, its TIFF date tag, else 183 (mid-year)."""
    if raster.date is not None:
        return raster.date.timetuple().tm_yday
    stamp = ds.tags().get("TIFFTAG_DATETIME") or ds.tags().get("ACQUISITION_DATE") or ""
    for fmt in ("%Y:%m:%d %H:%M:%S", "%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"):
        try:
            return (
                datetime.strptime(stamp[: len(datetime.now().strftime(fmt))], fmt)
                .timetuple()
                .tm_yday
            )
        except ValueError:
            continue
    return 183


class ModalityLayer:
    """One raster of one modality, read window by window onto the reference grid."""

    def __init__(
        self,
        raster: DatedRaster,
        modality: str,
        ref: OutputGrid,
        scale: int = 1,
        access: RasterAccessPolicy | None = None,
    ) -> None:

        self.raster = raster
        self.modality = modality
        self.sensor = get_sensor(
            {"s2": "sentinel2", "s1": "sentinel1", "hr": "hr", "dem": "dem"}[modality]
        )
        self.ds = open_dataset(raster.path, access)
        try:
            self.doy = day_of_year(raster, self.ds)
            self.dtype = self.ds.dtypes[0]
            self.nodata = self.ds.nodata if self.ds.nodata is not None else self.sensor.nodata
            self.bands = self._band_indexes()
            transform = ref.transform @ Affine.scale(1.0 / scale) if scale != 1 else ref.transform
            width, height = ref.width * scale, ref.height * scale
            same = (
                self.ds.crs == ref.crs
                and self.ds.transform.almost_equals(transform)
                and (self.ds.width, self.ds.height) == (width, height)
            )
            if self.ds.crs is None and not same:
                raise RasterReadError(
                    f"{raster.path}: has no CRS; georeference it (gdal_edit.py -a_srs)"
                )
            self.src = (
                self.ds
                if same
                else WarpedVRT(
                    self.ds,
                    crs=ref.crs,
                    transform=transform,
                    width=width,
                    height=height,
                    resampling=Resampling.bilinear
                    if self.sensor.continuous
                    else Resampling.nearest,
                    src_nodata=self.nodata,
                    nodata=self.nodata,
                )
            )
        except BaseException:
            self.ds.close()
            raise
        self.scale = scale

    def _band_indexes(self) -> list[int]:
        count = self.ds.count
        want = list(self.sensor.default_bands)
        described = [d for d in self.ds.descriptions]
        if all(described) and set(want) <= set(described):
            return [described.index(b) + 1 for b in want]
        if self.modality == "s2":
            for order in (tuple(want), _S2_NO_B10, _S2_FULL):
                if count == len(order):
                    return [order.index(b) + 1 for b in want]
        elif count >= len(want):
            return list(range(1, len(want) + 1))
        raise PredictInputError(
            f"{self.raster.path}: {count} bands; a {self.modality} input needs "
            f"{len(want)} bands in the order {', '.join(want)} (or band descriptions naming them)"
        )

    def read(self, row: int, col: int, size: int) -> np.ndarray:
        """Bands ``C x size*scale x size*scale`` in physical units; NaN where nodata/outside."""
        s = self.scale
        win = Window(col * s, row * s, size * s, size * s)
        fill = self.nodata if self.nodata is not None else 0
        if self.src is self.ds:
            raw = self.src.read(self.bands, window=win, boundless=True, fill_value=fill)
        else:  # a WarpedVRT reads no window past its edges: read the inside part, pad the rest
            raw = np.full((len(self.bands), size * s, size * s), fill, dtype=self.dtype)
            r0, c0 = max(row * s, 0), max(col * s, 0)
            r1 = min((row + size) * s, self.src.height)
            c1 = min((col + size) * s, self.src.width)
            if r1 > r0 and c1 > c0:
                raw[:, r0 - row * s : r1 - row * s, c0 - col * s : c1 - col * s] = self.src.read(
                    self.bands, window=Window(c0, r0, c1 - c0, r1 - r0)
                )
        invalid = np.zeros(raw.shape[1:], dtype=bool)
        if self.nodata is not None:
            invalid |= np.all(raw == self.nodata, axis=0)
        units = self.sensor.units_for(self.dtype)
        phys = self.sensor.to_physical(raw, units).astype(np.float32, copy=False)
        invalid |= ~np.isfinite(phys).all(axis=0)
        phys[:, invalid] = np.nan
        return phys

    def close(self) -> None:
        """Close the warped view and the file."""
        if self.src is not self.ds:
            self.src.close()
        self.ds.close()


class Scene:
    """All inputs of one prediction, on the grid of the first S2 raster (or of ``crs``)."""

    def __init__(
        self,
        s2: list[DatedRaster],
        s1: list[DatedRaster] | None = None,
        hr: Path | None = None,
        dem: Path | None = None,
        access: RasterAccessPolicy | None = None,
        crs: str | None = None,
    ) -> None:
        if not s2:
            raise PredictInputError("give at least one Sentinel-2 raster with --input [DATE=]PATH")
        self._first = open_dataset(s2[0].path, access)
        self.layers: dict[str, list[ModalityLayer]] = {"s2": [], "s1": [], "hr": [], "dem": []}
        try:
            if self._first.crs is None:
                raise RasterReadError(f"{s2[0].path}: has no CRS; the output grid needs one")
            self.ref = (
                OutputGrid.reprojected(self._first, crs) if crs else OutputGrid.of(self._first)
            )
            for r in s2:
                self.layers["s2"].append(ModalityLayer(r, "s2", self.ref, access=access))
            for r in s1 or []:
                self.layers["s1"].append(ModalityLayer(r, "s1", self.ref, access=access))
            if hr:
                self.layers["hr"].append(
                    ModalityLayer(DatedRaster(hr, None), "hr", self.ref, HR_RATIO, access)
                )
            if dem:
                self.layers["dem"].append(
                    ModalityLayer(DatedRaster(dem, None), "dem", self.ref, access=access)
                )
        except BaseException:
            self.close()
            raise

    @property
    def height(self) -> int:
        """Rows of the 10 m grid."""
        return self.ref.height

    @property
    def width(self) -> int:
        """Columns of the 10 m grid."""
        return self.ref.width

    def input_paths(self) -> list[Path]:
        """Every raster file this scene reads (S2, S1, HR, DEM)."""
        return [lay.raster.path for layers in self.layers.values() for lay in layers]

    def lonlat(self, row: float, col: float) -> tuple[float, float]:
        """Longitude, latitude (degrees) of a grid position."""
        x, y = self.ref.transform @ (col, row)
        lon, lat = warp_transform(self.ref.crs, "EPSG:4326", [x], [y])
        return float(lon[0]), float(lat[0])

    def read_window(self, row: int, col: int, size: int) -> dict[str, np.ndarray]:
        """The pyfunc arrays of one window (batch of 1), physical units, NaN = nodata."""
        out: dict[str, np.ndarray] = {}
        for key in ("s2", "s1"):
            layers = self.layers[key]
            if layers:
                out[key] = np.stack([lay.read(row, col, size) for lay in layers])[None]
                out[f"{key}_doy"] = np.array([[lay.doy for lay in layers]], dtype=np.int64)
        for key in ("hr", "dem"):
            if self.layers[key]:
                out[key] = self.layers[key][0].read(row, col, size)[None]
        lon, lat = self.lonlat(row + size / 2, col + size / 2)
        out["lat"], out["lon"] = np.array([lat]), np.array([lon])
        return out

    def close(self) -> None:
        """Close every raster."""
        for layers in self.layers.values():
            for lay in layers:
                lay.close()
        self._first.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
