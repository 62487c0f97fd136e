"""The output grid is chosen explicitly (``predict.crs``) and inputs are warped onto it (issue #20).

Two real BigEarthNet Sentinel-2 patches in different UTM zones: 87_48 (EPSG:32633, Austria) and
4_55 (EPSG:32629, Ireland), and the real Sentinel-1 pair of 87_48 reprojected into the
neighbouring zone 32 (a scene whose modalities come in different CRSs).
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
import rasterio
from rasterio.warp import Resampling, calculate_default_transform, reproject
from rasterio.warp import transform as warp_transform
from scene_fixtures import OTHER_ZONE, OTHER_ZONE_PATCH, stack_s1, stack_s2, write_random_export
from typer.testing import CliRunner

from skysense.cli import app
from skysense.inference.output_grid import OutputCrsError, OutputGrid, parse_crs
from skysense.inference.predict import predict_scene
from skysense.inference.scene import DatedRaster, Scene
from skysense.inference.settings import PredictConfig


def first_bands(arrays):
    """A context-free embedding: the last date's 10 S2 bands (reflectance)."""
    return np.ascontiguousarray(arrays["s2"][:, -1]).astype(np.float32)


def _source_neighbourhood(src, x, y, band=1):
    """Values of the 2 x 2 source pixels around the map point (x, y) in ``src``'s CRS."""
    col, row = ~src.transform * (x, y)  # fractional; pixel centres at .5
    r0, c0 = int(np.floor(row - 0.5)), int(np.floor(col - 0.5))
    block = src.read(band, window=((r0, r0 + 2), (c0, c0 + 2))).astype(np.float64)
    return block * 1e-4  # DN -> reflectance (L2A scale of the sensor spec)


@pytest.fixture(scope="module")
def two_zones(tmp_path_factory):
    root = tmp_path_factory.mktemp("zones")
    return {
        "east": stack_s2(root / "east_32633.tif"),
        "west": stack_s2(
            root / "west_32629.tif", nodata_corner=0, folder=OTHER_ZONE, patch=OTHER_ZONE_PATCH
        ),
    }


def test_a_batch_across_zones_is_written_on_one_crs(tmp_path, two_zones):
    with rasterio.open(two_zones["west"]) as src:
        assert src.crs.to_epsg() == 32629
    outputs = {}
    for name, path in two_zones.items():
        with Scene([DatedRaster(path, date(2017, 6, 13))], crs="EPSG:32633") as scene:
            outputs[name] = predict_scene(
                scene,
                first_bands,
                tmp_path / f"{name}.tif",
                window=32,
                overlap=8,
                block=64,
                progress=False,
            ).output
    with rasterio.open(outputs["east"]) as east, rasterio.open(two_zones["east"]) as src:
        assert east.crs == src.crs and east.transform == src.transform  # already on that CRS
    with rasterio.open(outputs["west"]) as out, rasterio.open(two_zones["west"]) as src:
        assert out.crs.to_epsg() == 32633
        assert out.res == pytest.approx((10.0, 10.0))
        # the footprint grows (the zone-29 grid is rotated ~17 degrees in zone 33)
        assert out.width > src.width and out.height > src.height
        data = out.read(1)
        assert np.isnan(data[0, 0]) and np.isnan(data[-1, -1])  # outside the rotated patch
        # interior pixels: each warped value lies between the 4 source pixels around its point
        checked = 0
        for row in range(out.height // 2 - 20, out.height // 2 + 20, 7):
            for col in range(out.width // 2 - 20, out.width // 2 + 20, 7):
                x, y = out.xy(row, col)
                (sx,), (sy,) = warp_transform(out.crs, src.crs, [x], [y])
                block = _source_neighbourhood(src, sx, sy)
                assert block.min() - 1e-4 <= data[row, col] <= block.max() + 1e-4
                checked += 1
        assert checked == 36


def test_cli_predict_crs_warps_onto_the_chosen_zone(tmp_path, two_zones):
    export = write_random_export(tmp_path / "export")
    out = tmp_path / "pred.tif"
    result = CliRunner().invoke(
        app,
        [
            "predict",
            "--model", str(export),
            "--input", f"2017-06-13={two_zones['east']}",
            "--output", str(out),
            "--set", "predict.window=32",
            "--set", "predict.overlap=8",
            "--set", "predict.crs=EPSG:32632",
            "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    import pystac

    item = pystac.Item.from_file(str(tmp_path / "pred.json"))
    assert item.properties["proj:code"] == "EPSG:32632"
    assert item.properties["skysense:model_version"] is None  # a local export
    with rasterio.open(out) as dst, rasterio.open(two_zones["east"]) as src:
        assert dst.crs.to_epsg() == 32632 and dst.res == pytest.approx((10.0, 10.0))
        centre = warp_transform(src.crs, dst.crs, [src.xy(60, 60)[0]], [src.xy(60, 60)[1]])
        left, bottom, right, top = dst.bounds
        assert left < centre[0][0] < right and bottom < centre[1][0] < top
        assert np.isfinite(dst.read(1, window=((50, 70), (50, 70)))).all()


def test_an_input_in_another_crs_is_warped_onto_the_output_grid(tmp_path, two_zones):
    """S2 in zone 33, its real S1 pair reprojected into zone 32: read on the S2 grid."""
    s1 = stack_s1(tmp_path / "s1_32633.tif")
    s1_zone32 = tmp_path / "s1_32632.tif"
    with rasterio.open(s1) as src:
        transform, width, height = calculate_default_transform(
            src.crs, "EPSG:32632", src.width, src.height, *src.bounds, resolution=10
        )
        data = np.full((2, height, width), np.nan, dtype=np.float32)
        for b in range(2):
            reproject(
                src.read(b + 1), data[b], src_transform=src.transform, src_crs=src.crs,
                dst_transform=transform, dst_crs="EPSG:32632", resampling=Resampling.nearest,
                dst_nodata=np.nan,
            )  # fmt: skip
        profile = src.profile | {
            "crs": "EPSG:32632", "transform": transform, "width": width, "height": height,
            "nodata": None,
        }  # fmt: skip
    with rasterio.open(s1_zone32, "w", **profile) as dst:
        dst.write(data)
    with (
        Scene([DatedRaster(two_zones["east"], None)], [DatedRaster(s1_zone32, None)]) as scene,
        rasterio.open(s1) as original,
    ):
        assert scene.ref.crs.to_epsg() == 32633
        arrays = scene.read_window(40, 40, 32)
        vv = arrays["s1"][0, 0, 0]
        # the original zone-33 S1 at the same pixels (nearest, then bilinear: close, not equal)
        truth = original.read(1, window=((40, 72), (40, 72)))
    inner = np.isfinite(vv[2:-2, 2:-2])
    assert inner.mean() > 0.95
    diff = np.abs(vv[2:-2, 2:-2] - truth[2:-2, 2:-2])[inner]
    assert np.median(diff) < 1.5  # dB; a misplaced grid gives several dB
    assert np.corrcoef(vv[2:-2, 2:-2][inner], truth[2:-2, 2:-2][inner])[0, 1] > 0.6


def test_a_bad_crs_is_refused_with_the_accepted_forms():
    with pytest.raises(ValueError, match=r"predict.crs='EPSG:99999'.*EPSG:32632"):
        PredictConfig(crs="EPSG:99999")
    with pytest.raises(OutputCrsError, match="not a coordinate reference system"):
        parse_crs("UTM 32")
    assert parse_crs("32632").to_epsg() == 32632
    assert PredictConfig(crs="EPSG:32632").crs == "EPSG:32632"


def test_output_grid_keeps_the_first_rasters_grid_without_a_crs(two_zones):
    with rasterio.open(two_zones["west"]) as src:
        assert OutputGrid.reprojected(src, "EPSG:32629") == OutputGrid.of(src)
