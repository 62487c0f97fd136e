"""Co-registration: modalities in different CRSs and resolutions on one aligned grid."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin
from rasterio.warp import transform as warp_transform

from skysense.core.errors import NoValidDataError
from skysense.data.catalog import Acquisition, Location, ModalityEntry
from skysense.data.coregistration import LocationReader, location_grid, read_location
from skysense.data.grid import Grid, utm_crs

BEN_S2 = "bigearthnet/S2A_MSIL2A_20170613T101031_87_48"
BEN_S1 = "bigearthnet/S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48"


def test_utm_zone_from_position() -> None:
    assert utm_crs(8.5, 47.4).to_epsg() == 32632  # Zurich
    assert utm_crs(12.5, 41.9).to_epsg() == 32633  # Rome
    assert utm_crs(-74.0, -33.0).to_epsg() == 32718
    assert utm_crs(179.9, 10.0).to_epsg() == 32660 and utm_crs(-180.0, 10.0).to_epsg() == 32601


def test_bigearthnet_s2_and_s1_patches_coregistered_into_one_sample(real: Path) -> None:
    s2d, s1d = real / BEN_S2, real / BEN_S1
    names = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
    loc = Location(
        id="ben-87-48",
        modalities={
            "s2": ModalityEntry(
                sensor="sentinel2",
                acquisitions=[
                    Acquisition(
                        date=dt.date(2017, 6, 13),
                        bands={n: Path(f"{BEN_S2}/{s2d.name}_{n}.tif") for n in names},
                    )
                ],
            ),
            "s1": ModalityEntry(
                sensor="sentinel1",
                acquisitions=[
                    Acquisition(
                        date=dt.date(2017, 6, 13),
                        bands={p: Path(f"{BEN_S1}/{s1d.name}_{p}.tif") for p in ("VV", "VH")},
                    )
                ],
            ),
        },
    )
    grid, stacks = read_location(loc, real)
    assert grid == Grid(CRS.from_epsg(32633), 404400.0, 5342400.0, 10.0, 120, 120)
    s2, s1 = stacks["s2"], stacks["s1"]
    assert s2.data.shape == (1, 10, 120, 120) and s1.data.shape == (1, 2, 120, 120)
    assert s2.dates == ["2017-06-13"] and s2.valid.all() and s1.valid.all()
    with rasterio.open(s2d / f"{s2d.name}_B04.tif") as ds:
        b04 = ds.read(1)
    with rasterio.open(s1d / f"{s1d.name}_VH.tif") as ds:
        vh = ds.read(1)
    for row, col in [(0, 0), (60, 61), (119, 7)]:
        x, y = grid.xy(row, col)
        with rasterio.open(s2d / f"{s2d.name}_B04.tif") as ds:
            r, c = ds.index(x, y)
        assert s2.data[0, 2, row, col] == pytest.approx(b04[r, c] * 1e-4, rel=1e-6)
        assert s1.data[0, 1, row, col] == pytest.approx(vh[r, c], rel=1e-6)


def test_neighbouring_utm_zone_reprojected_value_exact_on_a_linear_ramp(
    tmp_path: Path, tif
) -> None:
    """An S2 scene in UTM 32 over Rome (zone 33) lands on the zone-33 grid; a linear ramp is
    reproduced exactly by bilinear resampling, so every pixel can be checked.
    """
    utm32 = CRS.from_epsg(32632)
    xs, ys = warp_transform("EPSG:4326", utm32, [12.5], [41.9])
    x0, y0 = round(xs[0], -1) - 1500, round(ys[0], -1) + 1500
    rows, cols = np.mgrid[0:300, 0:300]
    ramp = (1000 + 3 * cols + 2 * rows).astype(np.uint16)
    tif(
        tmp_path / "s2.tif",
        np.repeat(ramp[None], 10, axis=0),
        utm32,
        from_origin(x0, y0, 10.0, 10.0),
    )
    loc = Location(
        id="rome",
        modalities={
            "s2": ModalityEntry(
                sensor="sentinel2",
                acquisitions=[
                    Acquisition(date=dt.date(2023, 5, 1), file=Path("s2.tif"), offset=0.0)
                ],
            )
        },
    )
    grid, stacks = read_location(loc, tmp_path)
    assert grid.crs.to_epsg() == 32633 and grid.res == 10.0
    data = stacks["s2"].data[0, 0]
    for row, col in [(40, 40), (100, 150), (200, 60)]:
        x, y = grid.xy(row, col)
        sx, sy = warp_transform(grid.crs, utm32, [x], [y])
        fc, fr = (sx[0] - x0) / 10.0 - 0.5, (y0 - sy[0]) / 10.0 - 0.5
        # the warped DN stays uint16: within half a DN of the exact ramp value
        assert data[row, col] == pytest.approx((1000 + 3 * fc + 2 * fr) * 1e-4, abs=0.51e-4)


def test_hr_grid_is_exactly_32x_finer_and_dem_in_compound_crs(
    real: Path, tmp_path: Path, tif
) -> None:
    """Rome: a synthetic S2 in UTM 33, the real Copernicus DEM (EPSG:9707) and HR at 1 m."""
    utm33 = CRS.from_epsg(32633)
    xs, ys = warp_transform("EPSG:4326", utm33, [12.5], [42.0])
    x0, y0 = round(xs[0], -1) - 320, round(ys[0], -1) + 320
    tif(
        tmp_path / "s2.tif",
        np.full((10, 64, 64), 1234, np.uint16),
        utm33,
        from_origin(x0, y0, 10.0, 10.0),
    )
    hr = np.random.default_rng(0).integers(1, 255, (3, 640, 640), dtype=np.uint8)
    tif(tmp_path / "hr.tif", hr, utm33, from_origin(x0, y0, 1.0, 1.0))
    loc = Location(
        id="rome",
        modalities={
            "s2": ModalityEntry(
                sensor="sentinel2",
                acquisitions=[
                    Acquisition(date=dt.date(2023, 5, 1), file=Path("s2.tif"), offset=0.0)
                ],
            ),
            "hr": ModalityEntry(
                sensor="hr",
                acquisitions=[Acquisition(date=dt.date(2023, 6, 1), file=Path("hr.tif"))],
            ),
            "dem": ModalityEntry(
                sensor="dem", acquisitions=[Acquisition(file=real / "dem" / "Rome-30m-DEM.tif")]
            ),
        },
    )
    grid = location_grid(loc, tmp_path)
    assert grid == Grid(utm33, x0, y0, 10.0, 64, 64)
    with LocationReader(loc, tmp_path, grid) as reader:
        assert reader.hr_grid.res == 0.3125 and reader.hr_grid.shape == (2048, 2048)
        assert reader.hr_grid.bounds == grid.bounds
        stacks = reader.read()
    h = stacks["hr"]
    assert h.data.shape == (1, 4, 2048, 2048) and h.data.dtype == np.uint8
    # 1 m pixel (r, c) covers HR pixels 3.2r..3.2(r+1): pixel centres well inside keep the value
    assert h.data[0, 0, 1, 1] == hr[0, 0, 0] and h.data[0, 1, 2047, 2046] == hr[1, 639, 639]
    dem = stacks["dem"]
    assert dem.data.shape == (1, 1, 64, 64) and dem.valid.all()
    with rasterio.open(real / "dem" / "Rome-30m-DEM.tif") as ds:
        src = ds.read(1)
        lon, lat = warp_transform(utm33, "EPSG:4326", [grid.xy(32, 32)[0]], [grid.xy(32, 32)[1]])
        r, c = ds.index(lon[0], lat[0])
    near = src[r - 1 : r + 2, c - 1 : c + 2]
    assert near.min() <= dem.data[0, 0, 32, 32] <= near.max()


def test_modalities_that_do_not_overlap(tmp_path: Path, tif) -> None:
    tif(
        tmp_path / "a.tif",
        np.ones((10, 8, 8), np.uint16),
        transform=from_origin(464000, 5250000, 10, 10),
    )
    tif(
        tmp_path / "b.tif",
        np.ones((2, 8, 8), np.float32),
        transform=from_origin(564000, 5250000, 10, 10),
    )
    loc = Location(
        id="apart",
        modalities={
            "s2": ModalityEntry(sensor="sentinel2", acquisitions=[Acquisition(file=Path("a.tif"))]),
            "s1": ModalityEntry(sensor="sentinel1", acquisitions=[Acquisition(file=Path("b.tif"))]),
        },
    )
    with pytest.raises(NoValidDataError, match="'apart': the footprints of s2, s1 do not overlap"):
        location_grid(loc, tmp_path)
