"""Sentinel-1 units stay explicit: raw GRD digital numbers are quarantined, never 20*log10(DN)."""

from __future__ import annotations

from pathlib import Path

import yaml
from stac_items import BEN, BEN_PAIRS, ben_s1_item, ben_s2_item, save_items

from skysense.config import load_config, stac_settings
from skysense.core.sensors import get_sensor
from skysense.data.catalog import load_catalog
from skysense.data.stac.ingest import ingest_snapshot
from skysense.validation.gate import validate_catalog

from .conftest import TODAY

REAL = Path(__file__).parents[1] / "data" / "real"
S2_ID, S1_ID = BEN_PAIRS[0]


def test_uncalibrated_grd_is_quarantined_with_the_fix_and_calibrated_s1_is_accepted(
    tmp_path: Path,
) -> None:
    s2 = {b: str(BEN / S2_ID / f"{S2_ID}_{b}.tif") for b in get_sensor("sentinel2").default_bands}
    s1 = {p: str(BEN / S1_ID / f"{S1_ID}_{p}.tif") for p in ("VV", "VH")}
    grd = str(REAL / "s1_gcps" / "cog_gcps_crop.tif")  # uint16 GRD DN, units not stated
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
                                "acquisitions": [{"date": "2017-06-13", "bands": s2}],
                            },
                            "s1": {
                                "sensor": "sentinel1",
                                "acquisitions": [
                                    {"date": "2017-06-13", "bands": s1},  # sigma0 dB (float32)
                                    {
                                        "date": "2017-06-14",
                                        "bands": s1,
                                        "input_units": "dn",
                                    },  # stated uncalibrated
                                    {
                                        "date": "2017-06-15",
                                        "file": grd,
                                        "band_names": ["VV"],
                                    },  # uint16: GRD DN
                                ],
                            },
                        },
                    }
                ]
            }
        )
    )
    cfg = load_config(None, ["validation.min_dates.s2=1", "validation.min_dates.s1=1"]).validation
    report = validate_catalog(catalog, tmp_path / "out", cfg, today=TODAY)
    q = report.quarantine
    flagged = q[q["failed_expectations"].map(lambda v: "s1_calibrated" in list(v))]
    assert sorted(flagged["item_id"]) == ["ben/s1/1/data/VH", "ben/s1/1/data/VV", "ben/s1/2/data"]
    assert all("sarsen" in r and "20*log10(DN)" in r for r in flagged["reason"])
    assert '"input_units": "dn"' in flagged.set_index("item_id").loc["ben/s1/2/data", "observed"]
    accepted = load_catalog(tmp_path / "out" / "accepted_catalog.yaml")
    assert [a.date.isoformat() for a in accepted.location("ben").modalities["s1"].acquisitions] == [
        "2017-06-13"
    ]


def test_sentinel1_grd_collection_is_recorded_as_dn_and_quarantined(tmp_path: Path) -> None:
    grd = ben_s1_item(S1_ID)
    grd.collection_id = "sentinel-1-grd"
    snap = save_items([ben_s2_item(S2_ID), grd], tmp_path / "items.json")
    cfg = load_config(None, ["validation.min_dates.s2=1", "validation.min_dates.s1=1"])
    ingest_snapshot(snap, tmp_path / "stac", stac_settings(cfg))
    cat = load_catalog(tmp_path / "stac" / "catalog.yaml")
    assert cat.locations[0].modalities["s1"].acquisitions[0].input_units == "dn"
    cfg.validation.min_accepted = 0
    report = validate_catalog(
        tmp_path / "stac" / "catalog.yaml", tmp_path / "out", cfg.validation, today=TODAY
    )
    assert "s1_calibrated" in set(report.quarantine["failed_expectations"].explode())
