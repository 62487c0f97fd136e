"""Readers: real Sentinel-2/1, NAIP, drone and DEM rasters, and the bad files users bring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.warp import transform as warp_transform
from rasterio.windows import Window

from skysense.core.errors import NoValidDataError, RasterReadError
from skysense.core.sensors import get_sensor
from skysense.data.catalog import Acquisition
from skysense.data.grid import Grid
from skysense.data.readers import AcquisitionReader, native_grid, open_raster, read_acquisition

S2, S1, HR, DEM = (get_sensor(n) for n in ("sentinel2", "sentinel1", "hr", "dem"))
BEN_S2 = "bigearthnet/S2A_MSIL2A_20170613T101031_87_48"
BEN_S1 = "bigearthnet/S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48"


def _source_value(path: Path, x: float, y: float, crs: CRS, band: int = 1) -> float:
    """Value of the source pixel containing map coordinate (x, y) given in ``crs``."""
    with rasterio.open(path) as ds:
        if ds.crs != crs:
            xs, ys = warp_transform(crs, ds.crs, [x], [y])
            x, y = xs[0], ys[0]
        r, c = ds.index(x, y)
        return float(ds.read(band, window=Window(c, r, 1, 1))[0, 0])


def test_18svg_20m_and_60m_bands_stack_on_a_10m_grid(real: Path) -> None:
    d = real / "s2_18SVG"
    acq = Acquisition(bands={b: d / f"s2_{b}.tif" for b in ("B01", "B05", "B09", "B11")})
    with rasterio.open(d / "s2_B05.tif") as ds:
        grid = Grid.from_bounds(ds.crs, tuple(ds.bounds), 10.0)
    assert (grid.width, grid.height) == (120, 120)
    out = read_acquisition(
        acq, S2, grid=grid, bands=["B01", "B05", "B09", "B11"], resampling=Resampling.nearest
    )
    assert out.data.shape == (4, 120, 120) and out.data.dtype == np.float32 and out.valid.all()
    for row, col in [(0, 0), (17, 93), (119, 119), (64, 5)]:
        x, y = grid.xy(row, col)
        for k, band in enumerate(["B01", "B05", "B09", "B11"]):
            expect = _source_value(d / f"s2_{band}.tif", x, y, grid.crs) * 1e-4
            assert out.data[k, row, col] == pytest.approx(expect, rel=1e-6)
    # each 20 m pixel becomes 2 x 2 pixels of 10 m; each 60 m pixel covers 6 x 6 (shifted 20 m)
    np.testing.assert_array_equal(out.data[1, 0:2, 0:2], out.data[1, 0, 0])
    bil = read_acquisition(acq, S2, grid=grid, bands=["B05"])
    with rasterio.open(d / "s2_B05.tif") as ds:
        src_mean = ds.read(1).mean() * 1e-4
    assert bil.data.mean() == pytest.approx(src_mean, rel=0.01)


def test_13_band_file_selects_the_skysense_bands(real: Path) -> None:
    path = next((real / "s2_T32UPC").glob("*.tif"))
    out = read_acquisition(Acquisition(file=path), S2)
    assert out.bands == list(S2.default_bands) and out.data.shape == (10, 10, 10)
    with rasterio.open(path) as ds:
        src = ds.read()
    order = [S2.band_names.index(b) for b in S2.default_bands]  # B02 is band 2, B11 band 12
    expect = src[order].astype(np.float32) * np.float32(1e-4)
    np.testing.assert_allclose(out.data[:, out.valid], expect[:, out.valid], rtol=1e-6)
    assert (out.valid == (src[order] != 0).all(axis=0)).all()  # DN 0 is the sensor nodata


def test_bigearthnet_per_band_patch_on_its_own_grid(real: Path) -> None:
    d = real / BEN_S2
    stem = d.name
    names = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
    acq = Acquisition(bands={n: d / f"{stem}_{n}.tif" for n in names})
    grid = native_grid(acq, d)
    assert (grid.res, grid.width, grid.height, grid.crs.to_epsg()) == (10.0, 120, 120, 32633)
    out = read_acquisition(acq, S2, grid=grid, resampling=Resampling.nearest)
    with rasterio.open(d / f"{stem}_B02.tif") as ds:
        np.testing.assert_allclose(out.data[0], ds.read(1) * np.float32(1e-4), rtol=1e-6)
    with rasterio.open(d / f"{stem}_B8A.tif") as ds:
        b8a = ds.read(1) * np.float32(1e-4)
    np.testing.assert_allclose(out.data[7], np.kron(b8a, np.ones((2, 2), np.float32)), rtol=1e-6)


def test_windowed_read_equals_slice_of_full_read(real: Path) -> None:
    d = real / BEN_S1
    acq = Acquisition(bands={p: d / f"{d.name}_{p}.tif" for p in ("VV", "VH")})
    grid = native_grid(acq, d)
    with AcquisitionReader(acq, S1, d, grid) as reader:
        full = reader.read()
        part = reader.read(Window(30, 10, 40, 20))
    np.testing.assert_array_equal(part.data, full.data[:, 10:30, 30:70])
    assert part.grid.x0 == grid.x0 + 300.0 and part.grid.y0 == grid.y0 - 100.0
    with rasterio.open(d / f"{d.name}_VV.tif") as ds:
        np.testing.assert_allclose(full.data[0], ds.read(1))  # dB in, dB out


def test_uncalibrated_sentinel1_grd_dn_is_refused_not_turned_into_db(real: Path) -> None:
    path = real / "s1_gcps" / "cog_gcps_crop.tif"  # uint16 GRD digital numbers, no calibration
    with pytest.raises(RasterReadError, match=r"cog_gcps_crop.tif: .*raw digital numbers.*sarsen"):
        read_acquisition(Acquisition(file=path, band_names=["VV"]), S1, bands=["VV"])


def test_gcp_only_sentinel1_grd_is_warped_on_read(real: Path) -> None:
    path = real / "s1_gcps" / "cog_gcps_crop.tif"
    # the units are stated (amplitude) so the warp can be checked against 20*log10 of the source
    acq = Acquisition(file=path, band_names=["VV"], input_units="amplitude")
    with rasterio.open(path) as ds:
        assert ds.crs is None and len(ds.gcps[0]) == 210
        src = ds.read(1).astype(np.float64)
        gcps, gcp_crs = ds.gcps
    grid = native_grid(acq, path.parent)
    assert grid.crs == gcp_crs
    utm = CRS.from_epsg(32643)
    lon, lat = grid.xy(grid.height // 2, grid.width // 2)
    xs, ys = warp_transform(gcp_crs, utm, [lon], [lat])
    target = Grid(utm, round(xs[0], -3) - 60000, round(ys[0], -3) + 60000, 1000.0, 120, 120)
    out = read_acquisition(acq, S1, grid=target, bands=["VV"], resampling=Resampling.nearest)
    assert out.data.shape == (1, 120, 120)
    assert 0.1 < out.valid.mean() < 0.9  # the ~56 km crop covers part of the 120 km square
    # at every GCP inside the crop, the warped value is one of the source values near that GCP
    checked = 0
    for g in gcps:
        if not (3 <= g.row < src.shape[0] - 3 and 3 <= g.col < src.shape[1] - 3):
            continue
        gx, gy = warp_transform(gcp_crs, utm, [g.x], [g.y])
        r, c = target.rowcol(gx[0], gy[0])
        if not (0 <= r < 120 and 0 <= c < 120 and out.valid[r, c]):
            continue
        near = src[int(g.row) - 3 : int(g.row) + 4, int(g.col) - 3 : int(g.col) + 4]
        near_db = 20 * np.log10(near[near > 0])  # amplitude, as stated -> dB
        assert near_db.min() - 1e-3 <= out.data[0, r, c] <= near_db.max() + 1e-3
        checked += 1
    assert checked >= 3


def test_sentinel1_db_nodata_from_file(real: Path) -> None:
    path = real / "s1_db" / "S1A_20150309_VV_db_crop.tif"
    out = read_acquisition(
        Acquisition(file=path, band_names=["VV"]), S1, bands=["VV"], root=path.parent
    )
    with rasterio.open(path) as ds:
        src = ds.read(1)
    assert (out.valid == (src != -99)).all()
    np.testing.assert_allclose(out.data[0][out.valid], src[out.valid])


def test_naip_time_series_as_hr_on_the_032m_grid(real: Path) -> None:
    files = sorted((real / "naip").glob("*.tif"))
    with rasterio.open(files[0]) as ds:
        sgrid = Grid.from_bounds(ds.crs, tuple(ds.bounds), 10.0, inward=True)
    hgrid = sgrid.scaled(32)
    assert hgrid.res == 0.3125 and hgrid.width == sgrid.width * 32
    with pytest.warns(UserWarning, match="coarser than the 2.0 m"):
        reads = [
            read_acquisition(Acquisition(file=f), HR, grid=hgrid, resampling=Resampling.nearest)
            for f in files
        ]
    for f, out in zip(files, reads):
        assert out.data.dtype == np.uint8 and out.data.shape == (4, hgrid.height, hgrid.width)
        assert out.present == [True, True, True, True]
        for row, col in [(5, 7), (300, 411), (hgrid.height - 1, 2)]:
            x, y = hgrid.xy(row, col)
            assert out.data[2, row, col] == _source_value(f, x, y, hgrid.crs, band=3)
    assert not np.array_equal(reads[0].data, reads[-1].data)  # 2009 and 2020 differ


def test_rome_dem_compound_crs_reprojected_to_utm(real: Path) -> None:
    path = real / "dem" / "Rome-30m-DEM.tif"
    with rasterio.open(path) as ds:
        assert ds.crs.to_epsg() == 9707
    utm33 = CRS.from_epsg(32633)
    xs, ys = warp_transform("EPSG:4326", utm33, [12.5], [42.0])
    grid = Grid(utm33, round(xs[0], -1) - 2000, round(ys[0], -1) + 2000, 10.0, 400, 400)
    out = read_acquisition(Acquisition(file=path), DEM, grid=grid, resampling=Resampling.nearest)
    assert out.data.shape == (1, 400, 400) and out.valid.all()
    for row, col in [(0, 0), (200, 200), (399, 13)]:
        x, y = grid.xy(row, col)
        lon, lat = warp_transform(utm33, "EPSG:4326", [x], [y])
        assert out.data[0, row, col] == _source_value(path, lon[0], lat[0], CRS.from_epsg(4326))
    assert 5.0 <= out.data.min() and out.data.max() <= 115.0  # metres, as in the source


def test_drone_orthomosaic_mask_from_alpha(real: Path) -> None:
    path = real / "pix4d" / "pix4d_alpha_crop.tif"
    out = read_acquisition(Acquisition(file=path), HR, resampling=Resampling.nearest)
    with rasterio.open(path) as ds:
        alpha = ds.read(4)
        rgb = ds.read([1, 2, 3])
    assert out.bands == ["R", "G", "B", "N"] and out.present == [True, True, True, False]
    assert 0.05 < (alpha == 0).mean() < 0.95
    np.testing.assert_array_equal(out.valid, alpha > 0)
    np.testing.assert_array_equal(out.data[:3][:, out.valid], rgb[:, out.valid])
    assert (out.data[3] == 0).all()  # no NIR band in an RGB drone image


def test_internal_mask_and_cloud_mask(tmp_path: Path, tif) -> None:
    data = np.full((10, 8, 8), 1500, np.uint16)
    path = tif(tmp_path / "s2.tif", data)
    with rasterio.open(path, "r+") as ds:
        mask = np.full((8, 8), 255, np.uint8)
        mask[:, :3] = 0
        ds.write_mask(mask)
    cloud = np.zeros((8, 8), np.uint8)
    cloud[6:, :] = 1
    cpath = tif(tmp_path / "cloud.tif", cloud)
    out = read_acquisition(Acquisition(file=path, mask=cpath), S2)
    expect = np.ones((8, 8), bool)
    expect[:, :3] = False
    expect[6:, :] = False
    np.testing.assert_array_equal(out.valid, expect)
    assert np.allclose(out.data[:, expect], 0.15) and (out.data[:, ~expect] == 0).all()


# ---------------------------------------------------------------------------- bad input
def test_truncated_geotiff(tmp_path: Path, tif) -> None:
    path = tif(
        tmp_path / "trunc.tif",
        np.random.default_rng(0).integers(1, 9999, (10, 64, 64), dtype=np.uint16),
    )
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(RasterReadError, match=r"trunc\.tif.*(truncated|corrupt)"):
        read_acquisition(Acquisition(file=path), S2)


def test_text_file_named_tif(tmp_path: Path) -> None:
    path = tmp_path / "scene.tif"
    path.write_text("this is not a GeoTIFF\n")
    with pytest.raises(
        RasterReadError, match=r"scene\.tif: is a text file, not a raster.*replace it"
    ):
        open_raster(path)


def test_missing_band_file_and_missing_band_entry(tmp_path: Path, tif) -> None:
    b02 = tif(tmp_path / "B02.tif", np.ones((1, 4, 4), np.uint16))
    acq = Acquisition(bands={"B02": b02, "B03": tmp_path / "B03.tif"})
    with pytest.raises(RasterReadError, match=r"B03\.tif: file not found"):
        read_acquisition(
            acq, S2, grid=native_grid(Acquisition(file=b02), tmp_path), bands=["B02", "B03"]
        )
    with pytest.raises(RasterReadError, match=r"band 'B04' .* has no file in the catalog"):
        read_acquisition(
            Acquisition(bands={"B02": b02}),
            S2,
            grid=native_grid(Acquisition(file=b02), tmp_path),
            bands=["B02", "B04"],
        )


def test_raster_without_crs_or_gcps(tmp_path: Path, tif) -> None:
    path = tif(tmp_path / "nocrs.tif", np.ones((2, 4, 4), np.float32), crs=None)
    with pytest.raises(RasterReadError, match=r"nocrs\.tif: has neither a CRS nor GCPs"):
        read_acquisition(Acquisition(file=path), S1)


def test_wrong_band_count(tmp_path: Path, tif) -> None:
    path = tif(tmp_path / "five.tif", np.ones((5, 4, 4), np.uint16))
    with pytest.raises(
        RasterReadError,
        match=r"five\.tif: has 5 data bands but sensor 'sentinel2' expects 10 or 13",
    ):
        read_acquisition(Acquisition(file=path), S2)
    with pytest.raises(RasterReadError, match="catalog lists 2 band_names"):
        read_acquisition(Acquisition(file=path, band_names=["B02", "B03"]), S2)


def test_wrong_dtype_for_sensor(tmp_path: Path, tif) -> None:
    path = tif(
        tmp_path / "hr64.tif", np.ones((3, 4, 4), np.float64), transform=from_origin(0, 0, 0.5, 0.5)
    )
    with pytest.raises(RasterReadError, match=r"hr64\.tif: dtype float64 .*uint8, uint16"):
        read_acquisition(Acquisition(file=path), HR)


def test_all_nodata_scene(tmp_path: Path, tif) -> None:
    path = tif(tmp_path / "empty.tif", np.zeros((10, 6, 6), np.uint16))
    with pytest.raises(NoValidDataError, match=r"empty\.tif: no valid pixel"):
        read_acquisition(Acquisition(file=path), S2)


def test_an_internal_mask_is_warped_in_blocks_with_bounded_memory(
    tmp_path: Path, monkeypatch
) -> None:
    """Warping an internal mask no longer copies the whole mask at once (issue #21, item 8)."""
    import tracemalloc

    from skysense.data import readers

    side = 4096
    path = tmp_path / "dem.tif"
    utm32 = CRS.from_epsg(32632)
    profile = dict(
        driver="GTiff",
        width=side,
        height=side,
        count=1,
        dtype="float32",
        crs=utm32,
        transform=from_origin(464000.0, 5250000.0, 10.0, 10.0),
        tiled=True,
        compress="deflate",
    )
    mask = np.full((side, side), 255, np.uint8)
    mask[:, : side // 3] = 0
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(np.full((1, side, side), 420.0, np.float32))
        ds.write_mask(mask)
    del mask
    shift = from_origin(464002.0, 5249998.0, 10.0, 10.0)  # 2 m off the file's grid: warped
    shifted = Grid.from_transform(utm32, shift, 64, 64)
    window = Window(1340, 0, 64, 64)  # straddles the mask edge at column 1365
    tracemalloc.start()
    try:
        with AcquisitionReader(Acquisition(file=path), DEM, tmp_path, shifted) as rd:
            assert rd.layers[0].align is None and rd.layers[0].internal_mask is not None  # warped
            _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, f"opening took {peak / 2**20:.1f} MB for a {side}^2 mask"
    monkeypatch.setattr(readers, "_MASK_BLOCK", 100)  # many small blocks: the same mask
    grid = Grid.from_transform(utm32, shift, side - 1, side - 1)
    with AcquisitionReader(Acquisition(file=path), DEM, tmp_path, grid) as rd:
        out = rd.read(window)
    expect = np.broadcast_to(np.arange(1340, 1404) >= side // 3, (64, 64))
    np.testing.assert_array_equal(out.valid, expect)
    assert (out.data[0][out.valid] == 420.0).all()
