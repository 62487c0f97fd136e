"""Predictions are Cloud-Optimised GeoTIFFs with overviews, each with a STAC item (issue #20).

The scene is the real BigEarthNet patch stacked by ``scene_fixtures`` (120 x 120 px at 10 m,
EPSG:32633); a 64 px block gives one overview level (60 px).
"""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pystac
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate

from skysense.core.cog import check_cog, write_cog
from skysense.core.errors import RasterWriteError
from skysense.inference.predict import CLASS_NODATA, ProbeHead, predict_scene
from skysense.inference.scene import DatedRaster, Scene
from skysense.inference.stac_item import ModelIdentity, write_item_collection

MODEL = ModelIdentity("models:/skysense-encoder@champion", "models:/skysense-encoder/3", "3")


def pixelwise(arrays):
    """A context-free embedding: the last date's 10 bands and their mean -> 11 channels."""
    s2 = np.nan_to_num(arrays["s2"][:, -1], nan=np.nan)
    return np.concatenate([s2, s2.mean(axis=1, keepdims=True)], axis=1).astype(np.float32)


def _predict(scene_files, out, **kwargs):
    s2 = DatedRaster(scene_files["s2"], date(2017, 6, 13))
    s1 = DatedRaster(scene_files["s1"], date(2017, 6, 13))
    with Scene([s2], [s1]) as scene:
        return predict_scene(
            scene, pixelwise, out, window=32, overlap=8, block=64, progress=False, **kwargs
        )


def test_embeddings_are_a_valid_cog_with_average_overviews(tmp_path, scene_files):
    out = tmp_path / "emb.tif"
    summary = _predict(scene_files, out, model=MODEL, item_id="bigearthnet-87-48")
    valid, errors, _warnings = cog_validate(str(out), quiet=True)
    assert valid, errors
    assert summary.cog_seconds > 0
    with rasterio.open(out) as dst, rasterio.open(scene_files["s2"]) as src:
        assert dst.driver == "GTiff" and dst.overviews(1) == [2]
        assert dst.block_shapes[0] == (64, 64)
        assert dst.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert dst.crs == src.crs and dst.transform == src.transform
        full = dst.read(1)
        over = dst.read(1, out_shape=(60, 60))  # served from the overview
    # average of 2 x 2 blocks (nodata excluded): the overview of the valid part matches
    blocks = full.reshape(60, 2, 60, 2)
    expected = np.nanmean(blocks, axis=(1, 3))
    inner = np.isfinite(expected) & np.isfinite(blocks).all(axis=(1, 3))
    np.testing.assert_allclose(over[inner], expected[inner], rtol=1e-5)
    assert np.isnan(full[:10, :10]).all()  # the nodata corner stays nodata


def test_stac_item_beside_the_output(tmp_path, scene_files):
    out = tmp_path / "emb.tif"
    summary = _predict(scene_files, out, model=MODEL, item_id="bigearthnet-87-48")
    assert summary.item == tmp_path / "emb.json"
    item = pystac.Item.from_file(str(summary.item))
    assert item.id == "bigearthnet-87-48"
    assert item.properties["skysense:model"] == "models:/skysense-encoder@champion"
    assert item.properties["skysense:model_version"] == 3
    assert item.datetime.date() == date(2017, 6, 13)
    inputs = item.properties["skysense:inputs"]
    assert [i["modality"] for i in inputs] == ["s2", "s1"]
    derived = [link for link in item.links if link.rel == "derived_from"]
    assert {link.href for link in derived} == {
        scene_files["s2"].resolve().as_uri(),
        scene_files["s1"].resolve().as_uri(),
    }
    asset = item.assets["data"]
    assert asset.media_type == pystac.MediaType.COG and asset.roles == ["data"]
    assert asset.get_absolute_href() == str(out)
    bands = asset.extra_fields["bands"]
    assert [b["name"] for b in bands] == [f"embedding_{i:03d}" for i in range(11)]
    proj = pystac.extensions.projection.ProjectionExtension.ext(item)
    with rasterio.open(out) as dst:
        assert proj.code == f"EPSG:{dst.crs.to_epsg()}" == "EPSG:32633"
        assert proj.shape == [dst.height, dst.width]
        assert proj.transform == list(dst.transform)[:6]
        # the WGS84 footprint holds the raster's centre
        lon, lat = rasterio.warp.transform(
            dst.crs, "EPSG:4326", [dst.xy(60, 60)[0]], [dst.xy(60, 60)[1]]
        )
    west, south, east, north = item.bbox
    assert west < lon[0] < east and south < lat[0] < north


def test_class_map_cog_uses_mode_overviews(tmp_path, scene_files):
    rng = np.random.default_rng(0)
    head = ProbeHead(
        weight=rng.normal(size=(3, 11)).astype(np.float32),
        bias=np.zeros(3, np.float32),
        classes=["water", "forest", "urban"],
    )
    out = tmp_path / "classes.tif"
    _predict(scene_files, out, head=head, model=MODEL)
    check_cog(out)
    with rasterio.open(out) as dst:
        assert dst.overviews(1) == [2] and dst.nodata == CLASS_NODATA
        over = dst.read(1, out_shape=(60, 60))
    assert set(np.unique(over)) <= {0, 1, 2, CLASS_NODATA}  # no averaged class ids
    item = json.loads((tmp_path / "classes.json").read_text())
    band = item["assets"]["data"]["bands"][0]
    assert band["name"] == "class" and "1=forest" in band["description"]


def test_item_collection_of_a_batch(tmp_path, scene_files):
    items = []
    for name in ("a", "b"):
        summary = _predict(scene_files, tmp_path / f"{name}.tif", model=MODEL, item_id=name)
        items.append(pystac.Item.from_file(str(summary.item)))
    path = write_item_collection(items, tmp_path / "items.json")
    collection = pystac.ItemCollection.from_file(str(path))
    assert [i.id for i in collection] == ["a", "b"]
    assert collection.items[1].assets["data"].href == str(tmp_path / "b.tif")


def test_a_plain_geotiff_is_not_a_cog_and_write_cog_fixes_it(tmp_path, scene_files):
    with pytest.raises(RasterWriteError, match="not a valid Cloud-Optimised GeoTIFF"):
        check_cog(scene_files["s2"])  # striped, no overviews
    cog = write_cog(
        scene_files["s2"], tmp_path / "s2_cog.tif", overview_resampling="average", blocksize=64
    )
    assert check_cog(cog) == []
    with rasterio.open(cog) as a, rasterio.open(scene_files["s2"]) as b:
        assert (a.read() == b.read()).all()
    with pytest.raises(ValueError, match="overview resampling 'cubic'"):
        write_cog(scene_files["s2"], tmp_path / "x.tif", overview_resampling="cubic")
