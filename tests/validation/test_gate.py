"""End to end: the bad-input corpus is quarantined with the right reasons, good items pass."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from skysense.core.errors import ValidationFailed
from skysense.data.catalog import load_catalog
from skysense.validation.gate import validate_catalog
from skysense.validation.settings import ValidationConfig

from .conftest import TODAY, checksums


def test_every_bad_item_is_quarantined_for_its_reason(corpus_run):
    report, expected, _, _ = corpus_run
    q = report.quarantine.set_index("item_id")
    assert len(expected) >= 14
    for item_id, check in expected.items():
        assert item_id in q.index, f"{item_id} should be quarantined by {check}"
        assert check in list(q.loc[item_id, "failed_expectations"]), (
            item_id,
            q.loc[item_id, "reason"],
        )
    # nothing else is quarantined: the good items pass
    assert set(q.index) == set(expected)


def test_observed_values_explain_the_failures(corpus_run):
    report, _, _, _ = corpus_run
    q = report.quarantine.set_index("item_id")
    obs = {i: json.loads(q.loc[i, "observed"]) for i in q.index}
    assert obs["alpha/s2/6/data"]["band_count"]["band_count"] == 9
    assert obs["alpha/s2/5/data"]["gsd"] == {"gsd_m": 20, "expected_gsd_m": 10}
    assert obs["alpha/s2/10/data"]["value_range"]["phys_max"] == pytest.approx(3.0)
    assert obs["alpha/s1/4/data"]["value_range"]["phys_max"] > 35.0
    assert obs["alpha/s2/7/data"]["dtype"]["dtype"] == "float32"
    assert obs["alpha/s2/8/data"]["valid_fraction"]["valid_fraction"] == 0
    assert obs["alpha/s2/9/data"]["cloud_fraction"] == {"cloud_fraction": 1, "cloud_source": "mask"}
    assert obs["alpha/s1/5/data"]["finite_values"]["nan_fraction"] == pytest.approx(3 / 16)
    assert obs["alpha/s2/12/data"]["date_parses"]["date_raw"] == "2023-13-45"
    assert obs["alpha/s1/3/data"]["location_overlap"]["crs"] == "EPSG:32633"
    assert obs["gamma"]["modalities_overlap"]["min_modality_iou"] == pytest.approx(0.25)
    assert "readable" in q.loc["alpha/s2/4/data", "reason"]
    assert q.loc["alpha/s2/4/data", "kind"] == "raster"
    assert q.loc["beta", "kind"] == "location"
    assert q.loc["alpha/s2/3/data", "item"].endswith("truncated.tif")


def test_unreadable_files_are_profile_rows_with_the_error(corpus_run):
    report, _, _, _ = corpus_run
    rows = report.rasters.set_index("item_id")
    assert "not recognized" in rows.loc["alpha/s2/4/data", "read_error"]
    assert rows.loc["alpha/s2/3/data", "read_error"]  # truncated
    good = rows.loc["alpha/s2/0/data"]
    assert pd.isna(good["read_error"])
    assert good["crs"] == "EPSG:32632" and bool(good["crs_projected"])
    assert good["gsd_m"] == pytest.approx(10.0)
    assert (good["width"], good["height"], good["band_count"], good["dtype"]) == (
        16,
        16,
        10,
        "uint16",
    )
    assert good["cloud_fraction"] == pytest.approx(2 / 16)
    assert len(good["band_min"]) == 10 and 0.03 <= good["phys_min"] <= good["phys_max"] <= 0.4
    assert good["footprint_wgs84"].startswith("POLYGON((")


def test_accepted_catalog_keeps_only_good_items_and_points_at_originals(corpus_run, corpus):
    _report, _, _, out = corpus_run
    catalog, _ = corpus
    accepted = load_catalog(out / "accepted_catalog.yaml")
    assert [loc.id for loc in accepted.locations] == ["alpha"]
    alpha = accepted.location("alpha")
    assert [str(a.date) for a in alpha.modalities["s2"].acquisitions] == [
        "2023-06-01",
        "2023-06-02",
        "2023-06-03",
    ]
    assert len(alpha.modalities["s1"].acquisitions) == 2
    assert set(alpha.modalities) == {"s2", "s1", "dem", "hr"}
    for acq in alpha.modalities["s2"].acquisitions:
        path = accepted.resolve(acq.file).resolve()
        assert path.parent == (catalog.parent / "rasters").resolve() and path.is_file()
    mask = accepted.resolve(alpha.modalities["s2"].acquisitions[0].mask).resolve()
    assert mask.name == "alpha_s2_20230601_cloud.tif"


def test_outputs_and_summary(corpus_run):
    _report, expected, _before, out = corpus_run
    for name in (
        "validation.json",
        "quarantine.parquet",
        "profiles.parquet",
        "location_profiles.parquet",
        "accepted_catalog.yaml",
    ):
        assert (out / name).is_file(), name
    summary = json.loads((out / "validation.json").read_text())
    assert summary["passed"] is True and summary["accepted_locations"] == 1
    assert summary["locations"] == {"total": 3, "quarantined": 2, "accepted": 1}
    assert summary["rasters"]["quarantined"] == 16 and summary["rasters"]["accepted"] == 8
    assert summary["expectations"]["rasters"]["gsd"]["failed"] == 1
    assert summary["expectations"]["rasters"]["unique_acquisition"]["quarantined"] == 1
    assert summary["warnings"]["rasters"]["crs_matches_location"] == ["alpha/s1/3/data"]
    q = pd.read_parquet(out / "quarantine.parquet")
    assert len(q) == len(expected) and set(q["kind"]) == {"raster", "location"}
    profiles = pd.read_parquet(out / "profiles.parquet")
    assert len(profiles) == summary["rasters"]["total"]
    locations = pd.read_parquet(out / "location_profiles.parquet").set_index("location")
    assert locations.loc["alpha", "n_dates_s2"] == 3 and locations.loc["beta", "n_acq_s1"] == 0


def test_originals_are_unchanged(corpus_run, corpus):
    _, _, before, _ = corpus_run
    catalog, _ = corpus
    assert checksums(catalog.parent / "rasters") == before


def test_data_docs_name_the_failing_expectations(corpus_run):
    _, _, _, out = corpus_run
    index = out / "data_docs" / "index.html"
    assert index.is_file()
    pages = list((out / "data_docs" / "validations").rglob("*.html"))
    html = "\n".join(p.read_text() for p in pages)
    for check in (
        "[readable, critical]",
        "[gsd, critical]",
        "[modalities_overlap, critical]",
        "[unique_acquisition, critical]",
        "[crs_matches_location, warning]",
    ):
        assert check in html, check
    assert "skysense-rasters" in index.read_text()
    assert (out / "gx" / "great_expectations.yml").is_file()


def test_too_few_accepted_locations_fails_after_writing(corpus, tmp_path):
    catalog, _ = corpus
    cfg = ValidationConfig(min_accepted=2)
    with pytest.raises(ValidationFailed, match="only 1 of 3 locations") as info:
        validate_catalog(catalog, tmp_path, cfg, today=TODAY)
    assert "quarantine.parquet" in str(info.value)
    assert (tmp_path / "quarantine.parquet").is_file()
    assert info.value.report.summary["passed"] is False


def test_unusable_catalog_raises_validation_failed(tmp_path):
    bad = tmp_path / "catalog.yaml"
    bad.write_text(yaml.safe_dump({"locations": [{"id": "x", "modalities": {"s9": {}}}]}))
    with pytest.raises(ValidationFailed, match="catalog unusable"):
        validate_catalog(bad, tmp_path / "out", ValidationConfig())
    with pytest.raises(ValidationFailed, match="not found"):
        validate_catalog(tmp_path / "missing.yaml", tmp_path / "out", ValidationConfig())


def test_unknown_severity_key_is_named(corpus, tmp_path):
    catalog, _ = corpus
    with pytest.raises(ValidationFailed, match="unknown checks.*gsdd"):
        validate_catalog(catalog, tmp_path, ValidationConfig(severity={"gsdd": "warning"}))
