"""The ingest flow's catalog merge: new scenes join the working catalog; originals untouched."""

from __future__ import annotations

import pytest
import yaml

from flows.ingest import merge_catalogs
from skysense.core.errors import CatalogError
from skysense.data.catalog import load_catalog


def _catalog(folder, name: str, ids: list[str]) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    locations = [
        {
            "id": loc,
            "split": "pretrain",
            "modalities": {
                "s2": {
                    "sensor": "sentinel2",
                    "acquisitions": [
                        {"date": "2023-04-02", "file": f"s2/{loc}_20230402.tif", "offset": 0}
                    ],
                },
                "s1": {
                    "sensor": "sentinel1",
                    "acquisitions": [
                        {
                            "date": "2023-04-05",
                            "file": f"s1/{loc}_20230405.tif",
                            "band_names": ["VV", "VH"],
                        }
                    ],
                },
            },
        }
        for loc in ids
    ]
    path = folder / "catalog.yaml"
    path.write_text(
        yaml.safe_dump({"version": 1, "name": name, "locations": locations}, sort_keys=False)
    )
    return str(path)


def test_merge_adds_and_replaces_locations_with_paths_kept(tmp_path):
    current = _catalog(tmp_path / "sample", "sample", ["ch-zurich", "fr-camargue"])
    new = _catalog(tmp_path / "incoming", "incoming", ["fr-camargue", "it-po-valley"])
    before = (tmp_path / "sample" / "catalog.yaml").read_text()
    target = tmp_path / "data" / "ingest" / "catalog.yaml"

    result = merge_catalogs.fn(current, new, str(target))

    assert result == {
        "catalog": str(target),
        "locations": 3,
        "added": ["it-po-valley"],
        "replaced": ["fr-camargue"],
    }
    merged = load_catalog(target)
    assert [loc.id for loc in merged.locations] == ["ch-zurich", "fr-camargue", "it-po-valley"]
    # Raster paths still point at the files where they are.
    zurich = merged.resolve(
        merged.location("ch-zurich").modalities["s2"].acquisitions[0].file
    ).resolve()
    camargue = merged.resolve(
        merged.location("fr-camargue").modalities["s2"].acquisitions[0].file
    ).resolve()
    assert zurich == (tmp_path / "sample" / "s2" / "ch-zurich_20230402.tif").resolve()
    assert camargue == (tmp_path / "incoming" / "s2" / "fr-camargue_20230402.tif").resolve()
    assert (tmp_path / "sample" / "catalog.yaml").read_text() == before
    assert not list(target.parent.glob(".*.yaml"))  # no scratch files left


def test_merge_without_a_current_catalog_and_a_bad_new_one(tmp_path):
    new = _catalog(tmp_path / "incoming", "incoming", ["it-po-valley"])
    result = merge_catalogs.fn(None, new, str(tmp_path / "out" / "catalog.yaml"))
    assert result["locations"] == 1 and result["added"] == ["it-po-valley"]

    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nlocations:\n  - id: x\n")
    with pytest.raises(CatalogError, match="modalities"):
        merge_catalogs.fn(None, str(bad), str(tmp_path / "out2" / "catalog.yaml"))
