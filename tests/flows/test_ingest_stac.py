"""The ingest flow starting from STAC items: the ``stac-catalog`` task writes the catalog from a
snapshot, and a later run with new items replaces the cells it saw and adds the new ones.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from stac_items import BEN_PAIRS, ben_s1_item, ben_s2_item, save_items

from flows.ingest import merge_catalogs, stac_catalog
from skysense.data.catalog import load_catalog
from skysense.data.stac.ingest import StacIngestError


def test_snapshot_to_catalog_then_new_items_are_picked_up(tmp_path: Path) -> None:
    (s2a, s1a), (s2b, s1b) = BEN_PAIRS
    first = save_items([ben_s2_item(s2a), ben_s1_item(s1a)], tmp_path / "week1.json")
    out = tmp_path / "data" / "stac"
    target = tmp_path / "data" / "ingest" / "catalog.yaml"
    result = stac_catalog.fn(str(first), str(out))
    assert result["locations"] == 1 and Path(result["catalog"]) == out / "catalog.yaml"
    merged = merge_catalogs.fn(None, result["catalog"], str(target))
    assert merged["added"] == ["stac-32633-404480-5341440"]

    # next week's snapshot: the same cell again and a new one
    second = save_items(
        [ben_s2_item(s2a), ben_s1_item(s1a), ben_s2_item(s2b), ben_s1_item(s1b)],
        tmp_path / "week2.json",
    )
    result = stac_catalog.fn(str(second), str(out))
    merged = merge_catalogs.fn(str(target), result["catalog"], str(target))
    assert merged["replaced"] == ["stac-32633-404480-5341440"]
    assert merged["added"] == ["stac-32629-604800-5832960"] and merged["locations"] == 2
    cat = load_catalog(target)
    b02 = cat.resolve(
        cat.location("stac-32629-604800-5832960").modalities["s2"].acquisitions[0].bands["B02"]
    )
    assert b02.resolve().is_file()

    lonely = save_items([ben_s2_item(s2a)], tmp_path / "no_s1.json")
    with pytest.raises(StacIngestError, match="no location"):
        stac_catalog.fn(str(lonely), str(tmp_path / "none"))
