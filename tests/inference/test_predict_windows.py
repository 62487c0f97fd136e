"""Sliding windows, blending, nodata and the GeoTIFF written by predict_scene."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from scene_fixtures import NODATA_CORNER

from skysense.inference.predict import ProbeHead, predict_scene
from skysense.inference.scene import DatedRaster, PredictInputError, Scene, parse_dated
from skysense.inference.windows import WindowGrid, blend_weights


def pixelwise(arrays):
    """A context-free embedding: the last date's 10 bands and their mean -> 11 channels."""
    s2 = np.nan_to_num(arrays["s2"][:, -1])
    return np.concatenate([s2, s2.mean(axis=1, keepdims=True)], axis=1).astype(np.float32)


def test_window_grid_covers_scene_and_ends_at_edges():
    grid = WindowGrid(120, 100, 32, 8)
    assert grid.row_starts == [0, 24, 48, 72, 88] and grid.col_starts == [0, 24, 48, 68]
    cover = np.zeros((120, 100), dtype=int)
    for r in grid.row_starts:
        for c in grid.col_starts:
            cover[r : r + 32, c : c + 32] += 1
    assert cover.min() >= 1
    assert WindowGrid(20, 20, 32, 8).row_starts == [0]
    w = blend_weights(32, 8)
    assert w.min() > 0 and w[16, 16] == 1.0 and w[0, 0] < w[4, 4] < w[8, 8]


def test_parse_dated(tmp_path, scene_files):
    r = parse_dated(f"2023-05-01={scene_files['s2']}")
    assert r.date.isoformat() == "2023-05-01" and r.path == scene_files["s2"]
    assert parse_dated(str(scene_files["s2"])).date is None
    with pytest.raises(PredictInputError, match="not a date"):
        parse_dated(f"2023-13-45={scene_files['s2']}")
    with pytest.raises(PredictInputError, match="no such raster"):
        parse_dated(str(tmp_path / "missing.tif"))


def test_blended_output_equals_pixelwise_function(tmp_path, scene_files):
    out = tmp_path / "emb.tif"
    with Scene([DatedRaster(scene_files["s2"], None)]) as scene:
        summary = predict_scene(
            scene, pixelwise, out, window=32, overlap=8, batch_size=3, block=64, progress=False
        )
    assert summary.windows == 25 and summary.bands == 11
    with rasterio.open(scene_files["s2"]) as src, rasterio.open(out) as dst:
        assert dst.crs == src.crs and dst.transform == src.transform
        assert (dst.width, dst.height, dst.count) == (src.width, src.height, 11)
        assert dst.profile["tiled"] and dst.profile["blockxsize"] == 64
        assert dst.compression.value.lower() == "deflate"
        assert np.isnan(dst.nodata)
        got = dst.read()
        expected = src.read().astype(np.float32) * 1e-4  # DN -> reflectance
    corner = np.s_[:NODATA_CORNER, :NODATA_CORNER]
    assert np.isnan(got[:, corner[0], corner[1]]).all()
    valid = np.isfinite(got[0])
    assert valid.sum() == 120 * 120 - NODATA_CORNER**2
    np.testing.assert_allclose(got[:10][:, valid], expected[:, valid], rtol=1e-5, atol=1e-6)


def test_class_map_with_probe_head(tmp_path, scene_files):
    head = ProbeHead(
        weight=np.array([[0.0] * 10 + [1.0], [0.0] * 10 + [-1.0]], dtype=np.float32),
        bias=np.array([-0.1, 0.1], dtype=np.float32),
        classes=["bright", "dark"],
    )
    out = tmp_path / "classes.tif"
    with Scene([DatedRaster(scene_files["s2"], None)]) as scene:
        predict_scene(
            scene, pixelwise, out, window=32, overlap=8, head=head, block=64, progress=False
        )
    with rasterio.open(out) as dst, rasterio.open(scene_files["s2"]) as src:
        classes = dst.read(1)
        assert dst.dtypes[0] == "uint8" and dst.nodata == 255
        assert dst.tags(1)["classes"] == "bright,dark"
        mean = src.read().astype(np.float32).mean(axis=0) * 1e-4
    assert (classes[:NODATA_CORNER, :NODATA_CORNER] == 255).all()
    ok = classes != 255
    np.testing.assert_array_equal(classes[ok], np.where(mean[ok] > 0.1, 0, 1))


def test_float16_output_is_refused_with_a_fix(tmp_path, scene_files):
    with (
        Scene([DatedRaster(scene_files["s2"], None)]) as scene,
        pytest.raises(PredictInputError, match="output_dtype=float32"),
    ):
        predict_scene(scene, pixelwise, tmp_path / "x.tif", output_dtype="float16", progress=False)
