"""``skysense data stac``: a static STAC catalog built with pystac from the real files in
``tests/data/real``, ingested, validated and chipped (chips hold the source pixels); bad items
skipped with their reasons; a rerun writes identical files; remote hrefs only when allowed.
"""

from __future__ import annotations

import datetime as dt
import functools
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pystac
import pytest
import rasterio
from stac_items import (
    BEN,
    BEN_PAIRS,
    ben_s1_item,
    ben_s2_item,
    dem_item,
    naip_items,
    real_items,
    save_items,
    t32upc_item,
)
from typer.testing import CliRunner

from skysense.cli import app
from skysense.config import chip_settings, load_config, stac_settings
from skysense.data.catalog import load_catalog
from skysense.data.chipping import chip_catalog
from skysense.data.coregistration import read_location
from skysense.data.shards import ShardReader
from skysense.data.stac.ingest import ingest_snapshot
from skysense.validation.gate import validate_catalog

TODAY = dt.date(2026, 1, 1)
runner = CliRunner()


def _settings(*overrides: str):
    cfg = load_config(None, list(overrides))
    return cfg, stac_settings(cfg)


def _source(path: Path, minx: float, maxy: float, px: int) -> np.ndarray:
    """The ``px`` x ``px`` source pixels of a 10 m file whose top-left corner is (minx, maxy)."""
    with rasterio.open(path) as ds:
        row, col = ds.index(minx + 5.0, maxy - 5.0)
        return ds.read(1)[row : row + px, col : col + px]


def test_real_items_ingest_validate_and_chip_to_the_source_pixels(tmp_path: Path) -> None:
    snap = save_items(real_items(), tmp_path / "snapshot" / "items.json")
    out = tmp_path / "stac"
    result = runner.invoke(app, ["data", "stac", "--items", str(snap), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["items"] == 9 and summary["skipped"] == {}
    assert summary["locations"] == 2 and summary["acquisitions"] == {"s2": 2, "s1": 2}
    assert summary["unused_items"] == 5  # T32UPC, three NAIP crops, the DEM: no S2+S1 cell there
    assert (out / "items.json").is_file() and (out / "skipped.parquet").is_file()
    cat = load_catalog(out / "catalog.yaml")
    # 640 m cells aligned to multiples of 640 m in each UTM zone, inside each 1.2 km patch
    assert [loc.id for loc in cat.locations] == [
        "stac-32629-604800-5832960",
        "stac-32633-404480-5341440",
    ]
    loc = cat.location("stac-32633-404480-5341440")
    assert loc.crs == "EPSG:32633" and loc.bounds == (404480.0, 5341440.0, 405120.0, 5342080.0)
    s2 = loc.modalities["s2"].acquisitions[0]
    assert (
        s2.date == dt.date(2017, 6, 13) and s2.offset == 0.0 and s2.processing_baseline == "02.05"
    )
    assert list(s2.bands) == ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]

    cfg = load_config(None, ["validation.min_dates.s2=1", "validation.min_dates.s1=1"])
    report = validate_catalog(
        out / "catalog.yaml", tmp_path / "validation", cfg.validation, today=TODAY
    )
    assert report.quarantine.empty, report.quarantine[["item_id", "reason"]].to_string()
    accepted = load_catalog(tmp_path / "validation" / "accepted_catalog.yaml")
    assert len(accepted.locations) == 2
    summary = chip_catalog(accepted, tmp_path / "chips", chip_settings(cfg))
    assert summary.chips == 2 * 64 and not summary.failed  # 640 m = 64 px = 8 x 8 chips of 8 px
    manifest = pd.read_parquet(tmp_path / "chips" / "manifest.parquet")
    reader = ShardReader(tmp_path / "chips")
    pairs = dict(BEN_PAIRS)
    checked = 0
    for row in manifest.itertuples():
        s2_patch = next(
            p
            for p in pairs
            if accepted.location(row.location)
            .modalities["s2"]
            .acquisitions[0]
            .bands["B02"]
            .name.startswith(p)
        )
        s1_patch = pairs[s2_patch]
        arrays = reader.read(row.sample_id)
        for i, band in enumerate(["B02", "B03", "B04", "B08"]):  # the 10 m bands: exact pixels
            src = _source(BEN / s2_patch / f"{s2_patch}_{band}.tif", row.minx, row.maxy, 8)
            np.testing.assert_array_equal(
                arrays["s2"][0, [0, 1, 2, 6][i]], (src.astype(np.float32) * np.float32(1e-4))
            )
        for i, pol in enumerate(["VV", "VH"]):
            src = _source(BEN / s1_patch / f"{s1_patch}_{pol}.tif", row.minx, row.maxy, 8)
            np.testing.assert_array_equal(arrays["s1"][0, i], src)
        checked += 1
    assert checked == 128


def _clone(item: pystac.Item, new_id: str, **props) -> pystac.Item:
    out = item.clone()
    out.id = new_id
    out.properties.update(props)
    return out


def _shifted(item: pystac.Item, new_id: str, dlon: float) -> pystac.Item:
    out = _clone(item, new_id)
    ring = [[x + dlon, y] for x, y in out.geometry["coordinates"][0]]
    out.geometry = {"type": "Polygon", "coordinates": [ring]}
    out.bbox = [min(p[0] for p in ring), out.bbox[1], max(p[0] for p in ring), out.bbox[3]]
    return out


def _bad_snapshot(path: Path) -> dict[str, str]:
    """The real pairs and one item per reason an item is skipped; returns id -> expected check."""
    s2_id, s1_id = BEN_PAIRS[0]
    good = ben_s2_item(s2_id)
    items = [good, ben_s1_item(s1_id), ben_s2_item(BEN_PAIRS[1][0]), ben_s1_item(BEN_PAIRS[1][1])]
    expected = {}
    no_b05 = _clone(good, "no-b05")
    del no_b05.assets["B05"]
    expected["no-b05"] = "missing_band_asset"
    gone = _clone(good, "missing-file")
    gone.assets["B03"].href = str(path.parent / "nowhere" / "B03.tif")
    expected["missing-file"] = "href_missing"
    odd = _clone(good, "unknown-band")
    odd.assets["B13"] = pystac.Asset(
        href=good.assets["B02"].href, roles=["data"], extra_fields={"eo:bands": [{"name": "B13"}]}
    )
    expected["unknown-band"] = "unknown_band"
    expected["far-away"] = "outside_area"
    cloudy = _clone(good, "cloudy", **{"eo:cloud_cover": 95.0})
    expected["cloudy"] = "cloud_cover"
    remote = _clone(good, "remote")
    remote.assets["B04"].href = "https://user:secret@stac.example.invalid/B04.tif"
    expected["remote"] = "remote_not_allowed"
    landsat = _clone(good, "landsat", platform="landsat-9")
    landsat.collection_id = "landsat-c2-l2"
    expected["landsat"] = "unknown_collection"
    late = _clone(good, "baseline-unknown")
    late.datetime = dt.datetime(2023, 6, 1, tzinfo=dt.UTC)
    del late.properties["s2:processing_baseline"]
    expected["baseline-unknown"] = "offset_unknown"
    items += [no_b05, gone, odd, _shifted(good, "far-away", 100.0), cloudy, remote, landsat, late]
    save_items(items, path)
    data = json.loads(path.read_text())
    undated = json.loads(json.dumps(data["features"][0]))
    undated["id"], undated["properties"]["datetime"] = "undated", None
    data["features"].append(undated)
    expected["undated"] = "no_datetime"
    path.write_text(json.dumps(data))
    return expected


def test_bad_items_are_skipped_with_their_reason_and_a_rerun_is_identical(tmp_path: Path) -> None:
    snap = tmp_path / "snap" / "items.json"
    expected = _bad_snapshot(snap)
    _, settings = _settings()
    area = (-12.0, 45.0, 20.0, 56.0)  # Ireland to Austria
    first = ingest_snapshot(snap, tmp_path / "a", settings, area=area)
    skipped = pd.read_parquet(tmp_path / "a" / "skipped.parquet").set_index("item_id")
    assert skipped["check"].to_dict() == expected
    assert (
        "B05" in skipped.loc["no-b05", "reason"]
        and "nowhere" in skipped.loc["missing-file", "reason"]
    )
    assert "B13" in skipped.loc["unknown-band", "reason"]
    assert "data.remote.allowed_hosts" in skipped.loc["remote", "reason"]
    assert "secret" not in skipped.loc["remote", "reason"]
    assert (
        "offset" in skipped.loc["baseline-unknown", "reason"]
        and "2023-06-01" in skipped.loc["baseline-unknown", "reason"]
    )
    assert first.locations == 2 and first.used_items == 4  # the others still ingest
    again = ingest_snapshot(snap, tmp_path / "a", settings, area=area)
    ingest_snapshot(snap, tmp_path / "b", settings, area=area)
    for name in ("catalog.yaml", "items.json", "skipped.parquet"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert again.to_dict() | {"seconds": 0} == first.to_dict() | {"seconds": 0}


def test_scl_asset_is_the_cloud_mask_with_the_configured_classes(tmp_path: Path) -> None:
    s2_id, s1_id = BEN_PAIRS[0]
    item = ben_s2_item(s2_id)
    with rasterio.open(item.assets["B05"].href) as ds:  # a 20 m grid like the SCL layer
        profile = {**ds.profile, "dtype": "uint8", "nodata": None}
        scl = np.full((ds.height, ds.width), 4, np.uint8)  # vegetation
    scl[:, : scl.shape[1] // 2] = 9  # cloud, high probability, on the western half
    scl[0, -1] = 7  # unclassified: not cloud
    with rasterio.open(tmp_path / "SCL.tif", "w", **profile) as dst:
        dst.write(scl, 1)
    item.add_asset("SCL", pystac.Asset(href=str(tmp_path / "SCL.tif"), roles=["data"]))
    snap = save_items([item, ben_s1_item(s1_id)], tmp_path / "items.json")
    _, settings = _settings("validation.scl_cloud_classes=[8,9]")
    ingest_snapshot(snap, tmp_path / "out", settings)
    cat = load_catalog(tmp_path / "out" / "catalog.yaml")
    acq = cat.locations[0].modalities["s2"].acquisitions[0]
    assert acq.mask == tmp_path / "SCL.tif" and acq.mask_classes == [8, 9]
    _, stacks = read_location(cat.locations[0], cat.root)
    valid = stacks["s2"].valid[0]
    with rasterio.open(tmp_path / "SCL.tif") as ds:  # the cell's pixels: cloud where SCL is 9
        west = ds.bounds.left
    x0 = cat.locations[0].bounds[0]
    cols = x0 + 5.0 + 10.0 * np.arange(valid.shape[1])
    cloudy_col = cols < west + 20.0 * (scl.shape[1] // 2)
    assert not valid[:, cloudy_col].any() and valid[:, ~cloudy_col].all()


def test_multiband_hr_and_dem_items_and_own_collection_rules(tmp_path: Path) -> None:
    snap = save_items([t32upc_item(), *naip_items(), dem_item()], tmp_path / "items.json")
    # T32UPC alone: a 13-band multi-band asset becomes file + band_names; 320 m cells
    _, settings = _settings("data.stac.required_modalities=[s2]", "data.stac.location_m=320")
    res = ingest_snapshot(snap, tmp_path / "s2", settings)
    cat = load_catalog(tmp_path / "s2" / "catalog.yaml")
    assert res.locations == 1 and cat.locations[0].id == "stac-32632-690560-5721600"
    acq = cat.locations[0].modalities["s2"].acquisitions[0]
    assert acq.file is not None and len(acq.band_names) == 13 and acq.offset == 0.0
    assert acq.processing_baseline == "02.09"  # from the product id (..._N0209_...)
    _, stacks = read_location(cat.locations[0], cat.root)
    assert stacks["s2"].data.shape == (1, 10, 32, 32) and stacks["s2"].valid.mean() > 0.9
    # NAIP as HR: 4 bands R, G, B, N named by their common names; three dates
    _, settings = _settings("data.stac.required_modalities=[hr]", "data.stac.location_m=160")
    ingest_snapshot(snap, tmp_path / "hr", settings)
    hr = load_catalog(tmp_path / "hr" / "catalog.yaml").locations[0].modalities["hr"]
    assert [a.band_names for a in hr.acquisitions] == [["R", "G", "B", "N"]] * 3
    assert [a.date.year for a in hr.acquisitions] == [2009, 2015, 2020]
    # a team's own DEM collection through a rule in params; undated, one per cell
    _, settings = _settings(
        "data.stac.required_modalities=[dem]", "data.stac.rules.dem.collections=[rome-dem]"
    )
    dem = dem_item(collection="rome-dem")
    snap2 = save_items([dem], tmp_path / "dem_items.json")
    res = ingest_snapshot(snap2, tmp_path / "dem", settings, area=(12.47, 41.97, 12.50, 41.99))
    cat = load_catalog(tmp_path / "dem" / "catalog.yaml")
    assert res.locations >= 4 and all(
        loc.modalities["dem"].acquisitions[0].date is None for loc in cat.locations
    )
    _, stacks = read_location(cat.locations[0], cat.root)
    assert (
        stacks["dem"].valid.mean() > 0.9
        and 0 < float(stacks["dem"].data[0, 0][stacks["dem"].valid[0]].mean()) < 200
    )


class _Files(http.server.SimpleHTTPRequestHandler):
    requests: ClassVar[list[str]] = []

    def log_message(self, *args: object) -> None:
        _Files.requests.append(self.path)


@pytest.fixture()
def file_server() -> Iterator[str]:
    """``http://127.0.0.1:PORT/`` serving tests/data/real/bigearthnet (real HTTP, this machine)."""
    handler = functools.partial(_Files, directory=str(BEN))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Files.requests = []
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_remote_hrefs_stay_urls_or_download_only_when_asked(
    tmp_path: Path, file_server: str
) -> None:
    s2_id, s1_id = BEN_PAIRS[0]
    items = [ben_s2_item(s2_id), ben_s1_item(s1_id)]
    for item in items:
        for asset in item.assets.values():
            asset.href = f"http://{file_server}/" + str(Path(asset.href).relative_to(BEN))
    snap = save_items(items, tmp_path / "items.json")
    _, closed = _settings()
    res = ingest_snapshot(snap, tmp_path / "closed", closed)
    assert res.locations == 0 and res.skipped == {"remote_not_allowed": 2} and _Files.requests == []
    _, open_ = _settings(f"data.remote.allowed_hosts=['{file_server}']")
    ingest_snapshot(snap, tmp_path / "urls", open_)
    acq = (
        load_catalog(tmp_path / "urls" / "catalog.yaml")
        .locations[0]
        .modalities["s2"]
        .acquisitions[0]
    )
    assert "http:" in str(acq.bands["B02"]) and _Files.requests == []  # nothing downloaded
    _, fetch = _settings(f"data.remote.allowed_hosts=['{file_server}']", "data.stac.download=true")
    res = ingest_snapshot(snap, tmp_path / "local", fetch)
    assert res.downloaded == 12 and len(_Files.requests) == 12
    cat = load_catalog(tmp_path / "local" / "catalog.yaml")
    b02 = cat.resolve(cat.locations[0].modalities["s2"].acquisitions[0].bands["B02"])
    assert b02.is_relative_to((tmp_path / "local" / "assets").resolve())
    assert b02.read_bytes() == (BEN / s2_id / f"{s2_id}_B02.tif").read_bytes()
