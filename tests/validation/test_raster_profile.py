"""Validation of an untrusted catalog: hostile files are quarantined with the reason, not read.

One catalog, validated once: a good location whose extra Sentinel-2 acquisitions are a VRT with a
raw band on a secrets file, a VRT with a ``/vsicurl/`` source, a ``/vsicurl/`` URL, a text file
holding a password, a sparse GeoTIFF claiming 10^6 x 10^6 pixels, a 1025-band raster and a GeoTIFF
naming a VRT as its overview file. The HTTP server on 127.0.0.1 must see no request; no output of
the gate may hold the password.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from untrusted_rasters import (
    SECRET,
    RequestLog,
    curl_vrt,
    huge_sparse_tif,
    raw_band_vrt,
    secret_file,
    tif_with_overview_file,
)

from skysense.data.raster_access import RasterAccessPolicy
from skysense.validation.gate import ValidationReport, validate_catalog
from skysense.validation.settings import ValidationConfig

from .conftest import TODAY
from .corpus import s1_data, s2_data, write_tif

HOSTILE = {  # acquisition index in s2 -> (what, the check that must quarantine it)
    3: ("raw-band VRT", "raster_access"),
    4: ("vsicurl VRT", "raster_access"),
    5: ("vsicurl URL", "raster_access"),
    6: ("text file with a password", "readable"),
    7: ("10^12-pixel sparse GeoTIFF", "raster_size"),
    8: ("1025 bands", "raster_size"),
    9: ("external OVERVIEW_FILE", "raster_access"),
}


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory) -> tuple[ValidationReport, Path, RequestLog]:
    root = tmp_path_factory.mktemp("hostile")
    r = root / "rasters"
    rng = np.random.default_rng(3)
    secrets = secret_file(root / "private" / "secrets.txt")
    with RequestLog() as server:
        s2 = []
        for i in range(3):
            write_tif(r / f"s2_{i}.tif", s2_data(rng), nodata=0)
            s2.append({"date": f"2023-06-0{i + 1}", "file": f"rasters/s2_{i}.tif", "offset": 0})
        s1 = []
        for i in range(2):
            write_tif(r / f"s1_{i}.tif", s1_data(rng))
            s1.append(
                {"date": f"2023-06-1{i}", "file": f"rasters/s1_{i}.tif", "band_names": ["VV", "VH"]}
            )
        raw_band_vrt(r / "raw.vrt", secrets)
        curl_vrt(r / "curl.vrt", f"{server.url}/x.tif")
        secret_file(r / "notes.tif", repeat=3)
        huge_sparse_tif(r / "huge.tif", count=10)
        write_tif(r / "many.tif", np.ones((1025, 2, 2), "uint16"), nodata=0)
        tif_with_overview_file(
            r / "ovr.tif", raw_band_vrt(root / "private" / "evil.vrt", secrets, size=32)
        )
        files = [
            "rasters/raw.vrt",
            "rasters/curl.vrt",
            f"/vsicurl/{server.url}/y.tif",
            "rasters/notes.tif",
            "rasters/huge.tif",
            "rasters/many.tif",
            "rasters/ovr.tif",
        ]
        for i, f in enumerate(files):
            s2.append({"date": f"2023-07-0{i + 1}", "file": f, "offset": 0})
        catalog = root / "catalog.yaml"
        catalog.write_text(
            yaml.safe_dump(
                {
                    "version": 1,
                    "name": "hostile",
                    "locations": [
                        {
                            "id": "alpha",
                            "modalities": {
                                "s2": {"sensor": "sentinel2", "acquisitions": s2},
                                "s1": {"sensor": "sentinel1", "acquisitions": s1},
                            },
                        }
                    ],
                },
                sort_keys=False,
            )
        )
        out = root / "out"
        report = validate_catalog(
            catalog, out, ValidationConfig(), today=TODAY, access=RasterAccessPolicy()
        )
    return report, out, server


def test_hostile_items_are_quarantined_with_the_reason(hostile_run):
    report, _, _ = hostile_run
    q = report.quarantine.set_index("item_id")
    for i, (what, check) in HOSTILE.items():
        item = f"alpha/s2/{i}/data"
        assert item in q.index, f"{what} ({item}) should be quarantined by {check}"
        assert check in list(q.loc[item, "failed_expectations"]), (what, q.loc[item, "reason"])
    assert set(q.index) == {f"alpha/s2/{i}/data" for i in HOSTILE}  # the GeoTIFFs still pass
    assert report.summary["passed"] and report.summary["accepted_locations"] == 1
    assert report.summary["rasters"]["accepted"] == 5
    obs = {i: json.loads(q.loc[i, "observed"]) for i in q.index}
    assert "VRT" in obs["alpha/s2/3/data"]["raster_access"]["access_error"]
    assert "allowed_hosts" in obs["alpha/s2/5/data"]["raster_access"]["access_error"]
    assert "OVERVIEW_FILE" in obs["alpha/s2/9/data"]["raster_access"]["access_error"]
    assert obs["alpha/s2/7/data"]["raster_size"]["pixel_count"] == 10**12
    assert obs["alpha/s2/7/data"]["raster_size"]["max_pixels"] == 2**31
    assert obs["alpha/s2/8/data"]["raster_size"] == {"band_count": 1025, "max_bands": 1024}
    assert "data.max_raster_pixels" in q.loc["alpha/s2/7/data", "reason"]


def test_no_request_reached_the_server(hostile_run):
    _, _, server = hostile_run
    assert server.requests == []


def test_no_output_quotes_the_password(hostile_run):
    report, out, _ = hostile_run
    rows = report.rasters.set_index("item_id")
    assert "is a text file" in rows.loc["alpha/s2/6/data", "read_error"]
    for f in out.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert b"hunter2" not in data and SECRET.encode() not in data, f


def test_the_huge_raster_is_profiled_for_its_size_only(hostile_run):
    report, _, _ = hostile_run
    huge = report.rasters.set_index("item_id").loc["alpha/s2/7/data"]
    assert (huge["width"], huge["height"], huge["band_count"]) == (10**6, 10**6, 10)
    assert (
        pd.isna(huge["read_error"])
        and pd.isna(huge["valid_fraction"])
        and pd.isna(huge["read_shape"])
    )
