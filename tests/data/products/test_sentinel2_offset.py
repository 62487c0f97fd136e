"""The Sentinel-2 DN offset of baseline 04.00: per acquisition, recorded, never guessed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import yaml
from stac_items import BEN, BEN_PAIRS, ben_s1_item, ben_s2_item, save_items

from skysense.config import chip_settings, load_config, stac_settings
from skysense.core.errors import RasterReadError
from skysense.core.sensors import get_sensor
from skysense.data.catalog import Acquisition, load_catalog
from skysense.data.chipping import chip_catalog
from skysense.data.products.sentinel2 import (
    baseline_from_product_id,
    offset_for_baseline,
    offset_problem,
)
from skysense.data.readers import read_acquisition
from skysense.data.shards import ShardReader
from skysense.data.stac.ingest import ingest_snapshot
from skysense.validation.gate import validate_catalog

S2_ID, S1_ID = BEN_PAIRS[0]


def test_offset_rules_of_the_baselines() -> None:
    assert offset_for_baseline("03.01") == 0.0 and offset_for_baseline("04.00") == -1000.0
    assert offset_for_baseline("N0509") == -1000.0 and offset_for_baseline(None) is None
    assert (
        baseline_from_product_id("S2B_MSIL2A_20230402T101559_N0509_R065_T32TMT_20230402T130159")
        == "05.09"
    )
    assert offset_problem(dt.date(2022, 1, 24), None, "x") is None
    assert "offset: -1000" in offset_problem(dt.date(2022, 1, 25), None, "x")
    assert offset_problem(dt.date(2023, 1, 1), 0.0, "x") is None


def test_baselines_03_01_and_04_00_give_reflectances_exactly_0_1_apart_in_the_chips(
    tmp_path: Path,
) -> None:
    """Identical DNs (one real BigEarthNet patch): two acquisitions, baselines 03.01 and 04.00."""
    old = ben_s2_item(S2_ID)
    old.id, old.datetime = "baseline-03.01", dt.datetime(2021, 6, 13, 10, 10, tzinfo=dt.UTC)
    old.properties["s2:processing_baseline"] = "03.01"
    new = ben_s2_item(S2_ID)
    new.id, new.datetime = "baseline-04.00", dt.datetime(2022, 6, 13, 10, 10, tzinfo=dt.UTC)
    new.properties["s2:processing_baseline"] = "04.00"
    snap = save_items([old, new, ben_s1_item(S1_ID)], tmp_path / "items.json")
    cfg = load_config(None, [])
    ingest_snapshot(snap, tmp_path / "stac", stac_settings(cfg))
    cat = load_catalog(tmp_path / "stac" / "catalog.yaml")
    acqs = cat.locations[0].modalities["s2"].acquisitions
    assert [(a.processing_baseline, a.offset) for a in acqs] == [("03.01", 0.0), ("04.00", -1000.0)]
    summary = chip_catalog(cat, tmp_path / "chips", chip_settings(cfg))
    assert summary.chips == 64
    manifest = pd.read_parquet(tmp_path / "chips" / "manifest.parquet")
    reader = ShardReader(tmp_path / "chips")
    with rasterio.open(BEN / S2_ID / f"{S2_ID}_B02.tif") as ds:
        dn, src = ds.read(1).astype(np.float32), ds
    worst = 0.0
    for row in manifest.itertuples():
        chip = reader.read(row.sample_id)
        assert list(row.s2_dates) == ["2021-06-13", "2022-06-13"]
        r, c = src.index(row.minx + 5.0, row.maxy - 5.0)
        pixels = dn[r : r + 8, c : c + 8]
        np.testing.assert_array_equal(chip["s2"][0, 0], pixels * np.float32(1e-4))
        np.testing.assert_array_equal(
            chip["s2"][1, 0], (pixels + np.float32(-1000)) * np.float32(1e-4)
        )
        diff = chip["s2"][0] - chip["s2"][1]  # every band, every pixel
        worst = max(worst, float(np.abs(diff - 0.1).max()))
    assert (
        worst < 1e-6
    )  # 0.1 apart to float32 rounding of the products (1e-4 is not exact in binary)


def test_hand_written_offset_is_applied_and_an_unknown_one_after_2022_is_refused(
    tmp_path: Path,
) -> None:
    bands = {b: BEN / S2_ID / f"{S2_ID}_{b}.tif" for b in get_sensor("sentinel2").default_bands}
    s2 = get_sensor("sentinel2")
    stated = read_acquisition(Acquisition(date=dt.date(2023, 6, 1), bands=bands, offset=-1000), s2)
    legacy = read_acquisition(
        Acquisition(date=dt.date(2021, 6, 1), bands=bands), s2
    )  # before 04.00: 0
    np.testing.assert_allclose(legacy.data - stated.data, 0.1, atol=1e-6)
    with pytest.raises(
        RasterReadError,
        match=r"_B02.tif: Sentinel-2 digital numbers acquired on 2023-06-01.*offset: -1000",
    ):
        read_acquisition(Acquisition(date=dt.date(2023, 6, 1), bands=bands), s2)


def test_validation_quarantines_an_unknown_offset_after_2022_naming_the_fix(tmp_path: Path) -> None:
    bands = {
        b: str(BEN / S2_ID / f"{S2_ID}_{b}.tif") for b in get_sensor("sentinel2").default_bands
    }
    s1 = {p: str(BEN / S1_ID / f"{S1_ID}_{p}.tif") for p in ("VV", "VH")}
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(
        yaml.safe_dump(
            {
                "locations": [
                    {
                        "id": "ben",
                        "modalities": {
                            "s2": {
                                "sensor": "sentinel2",
                                "acquisitions": [
                                    {
                                        "date": "2023-06-13",
                                        "bands": bands,
                                    },  # offset unknown: quarantined
                                    {
                                        "date": "2023-06-14",
                                        "bands": bands,
                                        "offset": -1000,
                                    },  # stated
                                    {"date": "2021-06-13", "bands": bands},
                                ],
                            },  # before baseline 04.00
                            "s1": {
                                "sensor": "sentinel1",
                                "acquisitions": [{"date": "2023-06-13", "bands": s1}],
                            },
                        },
                    }
                ]
            }
        )
    )
    cfg = load_config(None, ["validation.min_dates.s2=1", "validation.min_dates.s1=1"]).validation
    report = validate_catalog(catalog, tmp_path / "out", cfg, today=dt.date(2026, 1, 1))
    q = report.quarantine
    bad = q[q["failed_expectations"].map(lambda v: "s2_offset_known" in list(v))]
    assert sorted(set(bad["item_id"].str.rsplit("/", n=2).str[0])) == ["ben/s2/0"]
    assert "offset" in bad["reason"].iloc[0] and "-1000" in bad["reason"].iloc[0]
    accepted = load_catalog(tmp_path / "out" / "accepted_catalog.yaml")
    assert [a.date.isoformat() for a in accepted.location("ben").modalities["s2"].acquisitions] == [
        "2023-06-14",
        "2021-06-13",
    ]
