"""Per-location profiling: the rasterio half of validation, one location at a time.

Profiling reads files and needs nothing from other locations (a location's reference CRS and
extent come from its own rasters), so it can fan out over locations on any worker: a thread, a
process or a Dask worker. :func:`profile_location` profiles one location; :func:`profile_catalog`
profiles all of them with one thread pool over every file (``validation.workers``). Judging (the
great-expectations suites, the quarantine, the gate) needs all locations together and runs once,
in :func:`skysense.validation.gate.judge_profiles`.

A :class:`LocationProfiles` is plain data (pandas frames, strings, floats): it pickles, so Prefect
can hand it between processes and Dask workers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from skysense.core.errors import CatalogError, ValidationFailed
from skysense.data.catalog import Catalog, Location
from skysense.data.raster_access import RasterAccessPolicy
from skysense.validation.inventory import DateIssue, list_raster_items, load_catalog_leniently
from skysense.validation.location_profile import (
    LocationReference,
    add_location_fit,
    location_references,
    location_row,
)
from skysense.validation.raster_profile import profile_rasters
from skysense.validation.settings import ValidationConfig

# Raster columns made numeric after the per-row profile (None -> NaN).
_NUMERIC = ("cloud_fraction", "location_overlap")


@dataclass
class LocationProfiles:
    """The profiles of one location, before any great-expectations judgement.

    Attributes:
        location: the location id.
        rasters: one profile row per file of the location (see :mod:`.raster_profile`), with the
            cloud fraction of masks/SCL copied onto data rows and the location-fit columns
            (``location_crs``, ``crs_matches_location``, ``location_overlap``).
        location_row: the one-row location profile (see :func:`.location_profile.location_row`)
            from *all* its data rasters; the judge recomputes it when it quarantines one of the
            location's acquisitions.
        reference: the CRS and extent the location's rasters were placed against (None when no
            data raster is readable and georeferenced).
        wall_s: wall seconds the profiling took.
        cpu_s: process CPU seconds during the profiling (includes other threads of the process).
    """

    location: str
    rasters: pd.DataFrame
    location_row: pd.DataFrame
    reference: LocationReference | None
    wall_s: float = 0.0
    cpu_s: float = 0.0


def load_catalog_for_validation(catalog_path: str | Path) -> tuple[Catalog, dict[str, DateIssue]]:
    """Read a catalog leniently (bad dates become failing items, see :mod:`.inventory`).

    Raises:
        ValidationFailed: the catalog is missing, not YAML or off-schema ("catalog unusable").
    """
    try:
        return load_catalog_leniently(catalog_path)
    except CatalogError as exc:
        raise ValidationFailed(f"catalog unusable: {exc}") from None


def _finish(
    loc: Location, table: pd.DataFrame, cfg: ValidationConfig, wall_s: float, cpu_s: float
) -> LocationProfiles:
    """Place a location's raster rows against its reference and build its location row."""
    refs = location_references(table, cfg) if len(table) else {}
    ref = refs.get(loc.id)
    rasters = add_location_fit(table, refs)
    row = location_row(loc, rasters[rasters["role"] == "data"], ref)
    return LocationProfiles(
        loc.id, rasters.reset_index(drop=True), pd.DataFrame([row]), ref, wall_s, cpu_s
    )


def profile_location(
    catalog: Catalog,
    location_id: str,
    cfg: ValidationConfig,
    date_issues: dict[str, DateIssue] | None = None,
    access: RasterAccessPolicy | None = None,
) -> LocationProfiles:
    """Profile every raster of one location with rasterio (no great-expectations).

    Args:
        catalog: the scene catalog (read with :func:`.inventory.load_catalog_leniently`).
        location_id: the location to profile.
        cfg: the ``validation`` settings (``validation.workers`` threads read its files).
        date_issues: unparseable dates by ``acq_id``, as the lenient loader returns them.
        access: the raster access policy (default: the process's).

    Returns:
        The location's raster rows and location row; a file that cannot be read is a row with
        ``read_error`` set, never an exception.

    Raises:
        KeyError: the catalog has no such location.
    """
    w0, c0 = time.perf_counter(), time.process_time()
    loc = catalog.location(location_id)
    single = catalog.model_copy(update={"locations": [loc]})
    table = profile_rasters(list_raster_items(single, date_issues), cfg, access)
    return _finish(loc, table, cfg, time.perf_counter() - w0, time.process_time() - c0)


def profile_catalog(
    catalog: Catalog,
    cfg: ValidationConfig,
    date_issues: dict[str, DateIssue] | None = None,
    access: RasterAccessPolicy | None = None,
) -> list[LocationProfiles]:
    """Profile every location of a catalog in one process: one thread pool over all its files.

    Same rows as :func:`profile_location` on each location; ``wall_s``/``cpu_s`` of each are the
    whole run's shared by file count.
    """
    w0, c0 = time.perf_counter(), time.process_time()
    table = profile_rasters(list_raster_items(catalog, date_issues), cfg, access)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    out = []
    for loc in catalog.locations:
        rows = table[table["location"] == loc.id] if len(table) else table
        share = len(rows) / len(table) if len(table) else 1.0 / max(1, len(catalog.locations))
        out.append(_finish(loc, rows, cfg, wall * share, cpu * share))
    return out


def frame_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts of Python values, missing values as None (as the profilers build them)."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def raster_table(profiles: list[LocationProfiles]) -> pd.DataFrame:
    """All locations' raster rows in one table, typed as if profiled in one call.

    Rows are rebuilt from Python values, so a column that is all-None for one location and
    numeric for another gets one dtype however the locations were split.
    """
    frames = [p.rasters for p in profiles if len(p.rasters)]
    if not frames:
        return profiles[0].rasters.iloc[0:0].copy() if profiles else pd.DataFrame()
    columns = list(frames[0].columns)
    table = pd.DataFrame([r for f in frames for r in frame_records(f)], columns=columns)
    for col in _NUMERIC:
        if col in table.columns:
            table[col] = pd.to_numeric(table[col], errors="coerce")
    return table
