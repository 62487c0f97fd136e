"""Warper-free aligned reads give the warper's values: same grid, 2x/6x/4x ratios, edges, masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from skysense.core.sensors import get_sensor
from skysense.data.aligned import GridAlignment, grid_alignment
from skysense.data.catalog import Acquisition
from skysense.data.grid import Grid
from skysense.data.readers import AcquisitionReader, read_acquisition

S2, HR = get_sensor("sentinel2"), get_sensor("hr")
UTM32 = CRS.from_epsg(32632)
X0, Y0 = 464000.0, 5250000.0


def _warped(path: Path, grid: Grid, rs: Resampling) -> np.ndarray:
    with (
        rasterio.open(path) as ds,
        WarpedVRT(
            ds,
            crs=grid.crs,
            transform=grid.transform,
            width=grid.width,
            height=grid.height,
            resampling=rs,
        ) as vrt,
    ):
        return vrt.read()


def test_alignment_detection(tmp_path: Path, tif) -> None:
    grid = Grid(UTM32, X0 + 40, Y0 - 20, 10.0, 30, 30)
    cases = {
        "same": (from_origin(X0, Y0, 10, 10), GridAlignment(1, 1, 4, 2)),
        "20m": (from_origin(X0, Y0, 20, 20), GridAlignment(2, 2, 4, 2)),
        "60m_before": (from_origin(X0 + 100, Y0 - 60, 60, 60), GridAlignment(6, 6, -6, -4)),
        "shifted_5m": (from_origin(X0 + 5, Y0, 10, 10), None),
        "15m": (from_origin(X0, Y0, 15, 15), None),
        "5m_finer": (from_origin(X0, Y0, 5, 5), None),
    }
    for name, (tr, expect) in cases.items():
        p = tif(tmp_path / f"{name}.tif", np.ones((1, 8, 8), np.uint16), transform=tr)
        with rasterio.open(p) as ds:
            assert grid_alignment(ds, grid) == expect, name
    p = tif(tmp_path / "other_crs.tif", np.ones((1, 8, 8), np.uint16), crs=CRS.from_epsg(32633))
    with rasterio.open(p) as ds:
        assert grid_alignment(ds, grid) is None


@pytest.mark.parametrize("res", [10.0, 20.0, 60.0])
def test_nearest_equals_warper_including_partly_outside_windows(
    tmp_path: Path, tif, res: float
) -> None:
    rng = np.random.default_rng(int(res))
    n = int(480 // res)  # 480 m: 48 target pixels
    src = rng.integers(1, 10000, (1, n, n), dtype=np.uint16)
    path = tif(tmp_path / "b.tif", src, transform=from_origin(X0, Y0, res, res), nodata=0)
    # the grid sticks out of the source on the left and top: those pixels are invalid
    grid = Grid(UTM32, X0 - 60, Y0 + 40, 10.0, 60, 56)
    warped = _warped(path, grid, Resampling.nearest)[0].astype(np.float32) * np.float32(1e-4)
    acq = Acquisition(bands={"B05": path})
    with AcquisitionReader(
        acq, S2, tmp_path, grid, bands=["B05"], resampling=Resampling.nearest
    ) as rd:
        assert rd.layers[0].align is not None and rd.layers[0].vrt is None
        full = rd.read()
        part = rd.read(Window(3, 2, 20, 17))
    np.testing.assert_array_equal(full.data[0], np.where(full.valid, warped, 0))
    assert not full.valid[:4].any() and not full.valid[:, :6].any() and full.valid[4:52, 6:54].all()
    assert not full.valid[52:].any() and not full.valid[:, 54:].any()
    np.testing.assert_array_equal(part.data, full.data[:, 2:19, 3:23])
    np.testing.assert_array_equal(part.valid, full.valid[2:19, 3:23])


def test_bilinear_4x_hr_equals_warper_in_the_interior(tmp_path: Path, tif) -> None:
    rng = np.random.default_rng(3)
    src = rng.integers(1, 255, (3, 40, 40), dtype=np.uint8)
    path = tif(tmp_path / "hr.tif", src, transform=from_origin(X0, Y0, 1.25, 1.25))
    grid = Grid(UTM32, X0 + 10, Y0 - 10, 0.3125, 96, 96)
    warped = _warped(path, grid, Resampling.bilinear)
    with AcquisitionReader(Acquisition(file=path), HR, tmp_path, grid) as rd:
        assert rd.layers[0].align == GridAlignment(4, 4, 32, 32)
        out = rd.read()
        win = rd.read(Window(17, 40, 33, 21))
    assert out.valid.all() and out.present == [True, True, True, False]
    diff = np.abs(out.data[:3].astype(int) - warped.astype(int))
    assert diff.max() <= 1  # rounding of the interpolated DN
    np.testing.assert_array_equal(win.data, out.data[:, 40:61, 17:50])


def test_bilinear_masked_source_pixels_do_not_leak(tmp_path: Path, tif) -> None:
    src = np.full((1, 10, 10), 1000, np.uint16)
    src[0, 4, 4] = 0  # nodata
    path = tif(tmp_path / "b.tif", src, transform=from_origin(X0, Y0, 20, 20))
    grid = Grid(UTM32, X0, Y0, 10.0, 20, 20)
    out = read_acquisition(Acquisition(bands={"B05": path}), S2, grid=grid, bands=["B05"])
    expect = np.ones((20, 20), bool)
    expect[8:10, 8:10] = False
    np.testing.assert_array_equal(out.valid, expect)
    np.testing.assert_allclose(out.data[0][expect], 0.1, rtol=1e-6)  # neighbours keep 1000 DN
