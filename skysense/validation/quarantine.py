"""Quarantine: items that fail a critical expectation, and the accepted catalog without them.

Originals are never moved, modified or deleted. The quarantine is a manifest (one row per item:
``item``, ``item_id``, ``kind`` raster|location|chip, ``location``, ``modality``,
``failed_expectations``, ``observed`` (JSON: check -> column -> value), ``reason``) and the
accepted catalog is a new catalog file whose paths point at the original rasters. An acquisition
is dropped when any of its files (a band file, its mask, its SCL layer) is quarantined; a
location is dropped when it fails a location expectation.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import numpy as np
import pandas as pd

from skysense.data.catalog import Catalog
from skysense.validation.gx_project import TableResult

QUARANTINE_COLUMNS = [
    "item",
    "item_id",
    "kind",
    "location",
    "modality",
    "failed_expectations",
    "observed",
    "reason",
]
_KIND = {"rasters": "raster", "locations": "location", "chips": "chip"}
_DUPLICATE_KEY = ["location", "modality", "role", "band_key", "date_key"]


def json_value(value: Any) -> Any:
    """A profile cell as a JSON-friendly value (NaN -> None, numpy -> Python, dates -> ISO)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_value(v) for v in value]
    if isinstance(value, (np.generic,)):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if value is pd.NaT or value is pd.NA:
        return None
    return value


def _failing_ids(table: pd.DataFrame, outcome: Any, id_col: str) -> list[str]:
    """Failing ids of a critical outcome; duplicates keep their first row in catalog order."""
    if outcome.check != "unique_acquisition":
        return outcome.failing_ids
    dup = table[table[id_col].isin(outcome.failing_ids)]
    return dup[dup.duplicated(_DUPLICATE_KEY, keep="first")][id_col].tolist()


def quarantine_table(
    table: pd.DataFrame, result: TableResult, id_col: str, item_col: str
) -> pd.DataFrame:
    """Rows of the quarantine manifest for one table (items failing critical expectations).

    Args:
        table: the profile table that was validated.
        result: its great-expectations outcomes.
        id_col: the id column GX reported failing rows by.
        item_col: the column that names the item for people (a path, a location id, a sample id).
    """
    failures: dict[str, dict[str, Any]] = {}
    indexed = table.drop_duplicates(id_col).set_index(id_col, drop=False)
    for outcome in result.outcomes:
        if outcome.success or outcome.severity != "critical":
            continue
        for item_id in _failing_ids(table, outcome, id_col):
            row = indexed.loc[item_id]
            entry = failures.setdefault(item_id, {"checks": [], "observed": {}, "reasons": []})
            if outcome.check not in entry["checks"]:
                entry["checks"].append(outcome.check)
                entry["reasons"].append(f"{outcome.check}: {outcome.reason}")
            entry["observed"][outcome.check] = {
                c: json_value(row[c]) for c in outcome.observed if c in row.index
            }
    rows = []
    for item_id, entry in failures.items():
        row = indexed.loc[item_id]
        rows.append(
            {
                "item": str(row[item_col]),
                "item_id": item_id,
                "kind": _KIND[result.table],
                "location": str(row["location"]),
                "modality": str(row["modality"])
                if "modality" in row.index and row["modality"]
                else None,
                "failed_expectations": entry["checks"],
                "observed": json.dumps(entry["observed"], default=str),
                "reason": "; ".join(entry["reasons"]),
            }
        )
    return pd.DataFrame(rows, columns=QUARANTINE_COLUMNS)


def warnings_of(result: TableResult) -> dict[str, list[str]]:
    """Ids failing each warning-level check (reported, not quarantined)."""
    out: dict[str, list[str]] = {}
    for o in result.outcomes:
        if not o.success and o.severity == "warning":
            out.setdefault(o.check, []).extend(o.failing_ids)
    return out


def accepted_catalog(
    catalog: Catalog, rasters: pd.DataFrame, bad_items: set[str], bad_locations: set[str]
) -> Catalog:
    """The catalog minus quarantined acquisitions and locations; paths still name the originals.

    A modality left without acquisitions is removed; so is a location left without modalities.
    Labels that fail are dropped from their location.
    """
    bad_acq = set(rasters.loc[rasters["item_id"].isin(bad_items), "acq_id"])
    locations = []
    for loc in catalog.locations:
        if loc.id in bad_locations:
            continue
        modalities = {}
        for mod, entry in loc.modalities.items():
            keep = [
                a for i, a in enumerate(entry.acquisitions) if f"{loc.id}/{mod}/{i}" not in bad_acq
            ]
            if keep:
                modalities[mod] = entry.model_copy(update={"acquisitions": keep})
        if not modalities:
            continue
        labels = None if f"{loc.id}/labels" in bad_acq else loc.labels
        locations.append(loc.model_copy(update={"modalities": modalities, "labels": labels}))
    return catalog.model_copy(update={"locations": locations, "name": f"{catalog.name}-accepted"})
