"""The validation gate between ``sample`` and ``chip``: profile, validate, quarantine, report.

:func:`validate_catalog` writes in the output folder:

- ``profiles.parquet``: raster profile table (one row per file), ``location_profiles.parquet``
  (one row per location) and, with chips, ``chip_profiles.parquet``;
- ``quarantine.parquet``: one row per quarantined item (see :mod:`.quarantine`);
- ``accepted_catalog.yaml``: the catalog minus quarantined acquisitions and locations, pointing at
  the original files (downstream stages read only this);
- ``validation.json``: counts per expectation, accepted and quarantined (DVC metrics);
- ``gx/`` (the great-expectations project) and ``data_docs/index.html`` (Data Docs, built once at
  the end of the run).

Profiling (rasterio, per location: :mod:`.per_location`) and judging (:func:`judge_profiles`: the
GX suites once over all locations, quarantine, gate, files) are separate, so profiling can fan
out over workers; :func:`validate_catalog` does both in this process.

``validation.json`` has ``timings_s``, the seconds of each step (see
:class:`.step_timing.StepClock`).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from skysense.core.atomic_files import replace_atomically, write_text_atomic
from skysense.core.errors import ValidationFailed
from skysense.data.catalog import Catalog, save_catalog
from skysense.data.raster_access import RasterAccessPolicy
from skysense.validation.chip_profile import profile_chips
from skysense.validation.gx_project import GxProject, TableResult
from skysense.validation.location_profile import location_row, location_table
from skysense.validation.per_location import (
    LocationProfiles,
    frame_records,
    load_catalog_for_validation,
    profile_catalog,
    raster_table,
)
from skysense.validation.quarantine import (
    QUARANTINE_COLUMNS,
    accepted_catalog,
    json_value,
    quarantine_table,
    warnings_of,
)
from skysense.validation.settings import ValidationConfig
from skysense.validation.step_timing import StepClock
from skysense.validation.suites import (
    Suite,
    chip_suite,
    location_suite,
    prepare_locations,
    prepare_rasters,
    raster_suite,
)


@dataclass
class ValidationReport:
    """What a validation run decided and where it wrote it."""

    summary: dict[str, Any]
    rasters: pd.DataFrame
    locations: pd.DataFrame
    quarantine: pd.DataFrame
    chips: pd.DataFrame | None = None
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when enough locations were accepted."""
        return bool(self.summary["passed"])


def _expectation_counts(
    result: TableResult, quarantine: pd.DataFrame | None
) -> dict[str, dict[str, Any]]:
    """Per check: severity, expectations, rows evaluated, distinct failing and quarantined items."""
    counts: dict[str, dict[str, Any]] = {}
    failing: dict[str, set[str]] = {}
    for o in result.outcomes:
        c = counts.setdefault(
            o.check,
            {
                "severity": o.severity,
                "expectations": 0,
                "evaluated": 0,
                "success": True,
            },
        )
        c["expectations"] += 1
        c["evaluated"] += o.element_count
        c["success"] = c["success"] and o.success
        failing.setdefault(o.check, set()).update(o.failing_ids)
    for check, c in counts.items():
        c["failed"] = len(failing[check])
        c["quarantined"] = (
            0
            if quarantine is None or quarantine.empty
            else int(quarantine["failed_expectations"].map(lambda v, k=check: k in list(v)).sum())
        )
    return counts


def _table_jsonable(frame: pd.DataFrame) -> pd.DataFrame:
    """Profile table ready for Parquet: dates as ISO text, counts as nullable integers."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object:
            sample = out[col].dropna()
            if len(sample) and isinstance(sample.iloc[0], (dt.date, dt.datetime)):
                out[col] = out[col].map(lambda v: v.isoformat() if v is not None else None)
    for col in ("width", "height", "band_count", "crs_epsg", "declared_bands", "acq_index"):
        if col in out.columns:
            out[col] = pd.to_numeric(out[col], errors="coerce").astype("Int64")
    return out


def _judged_locations(
    catalog: Catalog, profiles: list[LocationProfiles], rasters: pd.DataFrame, bad_acq: set[str]
) -> pd.DataFrame:
    """The location table from accepted rasters: a location none of whose acquisitions was
    quarantined keeps its profiled row, the others are recomputed without the bad ones.
    """
    hit = set(rasters.loc[rasters["acq_id"].isin(bad_acq), "location"])
    accepted = rasters[~rasters["acq_id"].isin(bad_acq)]
    data = accepted[accepted["role"] == "data"]
    rows = []
    for loc, prof in zip(catalog.locations, profiles, strict=True):
        if loc.id in hit:
            rows.append(location_row(loc, data[data["location"] == loc.id], prof.reference))
        else:
            rows.append(frame_records(prof.location_row)[0])
    return location_table(rows)


def _run_gx(
    clock: StepClock, name: str, project: GxProject, build: Callable[[], Suite], frame: pd.DataFrame
) -> TableResult:
    """Build a suite (``build()``) and run it, both timed as step ``name``."""
    with clock.step(name):
        return project.validate(build(), frame)


def validate_catalog(
    catalog_path: str | Path,
    out_dir: str | Path,
    cfg: ValidationConfig,
    chips_dir: str | Path | None = None,
    today: dt.date | None = None,
    access: RasterAccessPolicy | None = None,
) -> ValidationReport:
    """Profile and validate a scene catalog (and optionally its chips); write the gate's files.

    Profiles every location in this process (:func:`.per_location.profile_catalog`, one pool of
    ``validation.workers`` threads over all files), then :func:`judge_profiles`.

    Args:
        catalog_path: the scene catalog YAML.
        out_dir: where the reports, the GX project and the Data Docs go.
        cfg: the ``validation`` settings.
        chips_dir: a chip folder (manifest + shards) to validate as well.
        today: the date "future" is judged against (default: the local date).
        access: the raster access policy (default: the process's; ``data.max_raster_*``,
            ``data.remote``).

    Returns:
        The report; its files are written even when the gate fails.

    Raises:
        ValidationFailed: the catalog is unusable, or fewer than ``validation.min_accepted``
            locations were accepted (raised after the files are written).
    """
    catalog, date_issues = load_catalog_for_validation(catalog_path)
    w0, c0 = time.perf_counter(), time.process_time()
    profiles = profile_catalog(catalog, cfg, date_issues, access)
    spent = (time.perf_counter() - w0, time.process_time() - c0)
    return judge_profiles(catalog_path, profiles, out_dir, cfg, chips_dir, today, profiling_s=spent)


def _in_catalog_order(
    catalog: Catalog, catalog_path: str | Path, profiles: list[LocationProfiles]
) -> list[LocationProfiles]:
    """The profiles in catalog order, one per location.

    Raises:
        ValidationFailed: a location has no profile, or a profile names no catalog location.
    """
    by_id = {p.location: p for p in profiles}
    ids = [loc.id for loc in catalog.locations]
    missing, extra = [i for i in ids if i not in by_id], sorted(set(by_id) - set(ids))
    if missing or extra:
        raise ValidationFailed(
            f"profiles do not match {catalog_path}: missing for {missing or 'none'}, "
            f"not in the catalog: {extra or 'none'}; profile each of its locations with "
            "skysense.validation.per_location.profile_location on this catalog"
        )
    return [by_id[i] for i in ids]


def judge_profiles(
    catalog_path: str | Path,
    profiles: list[LocationProfiles],
    out_dir: str | Path,
    cfg: ValidationConfig,
    chips_dir: str | Path | None = None,
    today: dt.date | None = None,
    profiling_s: tuple[float, float] | None = None,
) -> ValidationReport:
    """Judge per-location profiles together: run the GX suites once, quarantine, gate, write files.

    The suites run on the concatenated tables (one checkpoint per table, whatever the number of
    locations); the files are those listed in the module doc.

    Args:
        catalog_path: the scene catalog YAML the profiles were made from.
        profiles: one :class:`.per_location.LocationProfiles` per catalog location (any order).
        out_dir: where the reports, the GX project and the Data Docs go.
        cfg: the ``validation`` settings.
        chips_dir: a chip folder (manifest + shards) to validate as well.
        today: the date "future" is judged against (default: the local date).
        profiling_s: wall and CPU seconds the profiling took (default: the sums over
            ``profiles``, i.e. worker time), reported as step ``profile_rasters``.

    Returns:
        The report; its files are written even when the gate fails.

    Raises:
        ValidationFailed: the catalog is unusable, the profiles do not match it, or fewer than
            ``validation.min_accepted`` locations were accepted (raised after the files are
            written).
    """
    today = today or dt.date.today()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    catalog, _ = load_catalog_for_validation(catalog_path)
    profiles = _in_catalog_order(catalog, catalog_path, profiles)
    clock = StepClock()

    if profiling_s is None:
        profiling_s = (sum(p.wall_s for p in profiles), sum(p.cpu_s for p in profiles))
    clock.record("profile_rasters", *profiling_s)
    with clock.step("profile_merge"):
        rasters = raster_table(profiles)
    with clock.step("profile_derived_columns"):
        rasters = prepare_rasters(rasters, cfg)

    with clock.step("gx_context"):
        project = GxProject(out, failure_webhook=cfg.failure_webhook)
    raster_result = _run_gx(clock, "gx_rasters", project, lambda: raster_suite(cfg, today), rasters)
    q_rasters = quarantine_table(rasters, raster_result, "item_id", "path")
    bad_items = set(q_rasters["item_id"])
    bad_acq = set(rasters.loc[rasters["item_id"].isin(bad_items), "acq_id"])

    with clock.step("profile_locations"):
        locations = prepare_locations(_judged_locations(catalog, profiles, rasters, bad_acq), cfg)
    location_result = _run_gx(
        clock, "gx_locations", project, lambda: location_suite(cfg), locations
    )
    q_locations = quarantine_table(locations, location_result, "location", "location")
    bad_locations = set(q_locations["item_id"])
    accepted = accepted_catalog(catalog, rasters, bad_items, bad_locations)
    accepted_ids = {loc.id for loc in accepted.locations}

    chips, chip_result, q_chips = None, None, None
    if chips_dir is not None:
        with clock.step("profile_chips"):
            chips = profile_chips(chips_dir, cfg, accepted_ids)
        chip_result = _run_gx(clock, "gx_chips", project, lambda: chip_suite(cfg), chips)
        q_chips = quarantine_table(chips, chip_result, "sample_id", "sample_id")

    with clock.step("gx_docs"):
        docs_index = project.build_docs(
            [r for r in (raster_result, location_result, chip_result) if r]
        )

    quarantine = pd.concat(
        [q for q in (q_rasters, q_locations, q_chips) if q is not None and len(q)]
        or [pd.DataFrame(columns=QUARANTINE_COLUMNS)],
        ignore_index=True,
    )
    files = _write_tables(out, docs_index, rasters, locations, quarantine, accepted, chips)
    summary = _summary(
        catalog,
        catalog_path,
        today,
        cfg.min_accepted,
        rasters,
        chips,
        quarantine,
        accepted_ids,
        bad_acq,
        bad_locations,
        [(raster_result, q_rasters), (location_result, q_locations), (chip_result, q_chips)],
        clock,
        files,
    )
    passed = summary["passed"]
    write_text_atomic(files["validation"], json.dumps(summary, indent=2, default=json_value) + "\n")
    report = ValidationReport(summary, rasters, locations, quarantine, chips, files)
    if not passed:
        top = ", ".join(f"{k} ({v})" for k, v in list(summary["quarantine_reasons"].items())[:6])
        exc = ValidationFailed(
            f"only {len(accepted_ids)} of {len(catalog.locations)} locations of "
            f"{catalog_path} passed validation; validation.min_accepted is {cfg.min_accepted}. "
            f"Quarantine reasons: {top or 'none'}. See {files['quarantine']}, "
            f"{files['validation']} and {files['data_docs']}; fix or replace the files named there."
        )
        exc.report = report  # the CLI prints its summary
        raise exc
    return report


def _write_tables(
    out: Path,
    docs_index: Path,
    rasters: pd.DataFrame,
    locations: pd.DataFrame,
    quarantine: pd.DataFrame,
    accepted: Catalog,
    chips: pd.DataFrame | None,
) -> dict[str, Path]:
    """Write the profile tables, the quarantine and the accepted catalog (each atomically);
    returns the gate's files by name (``validation.json`` is written last, by the caller).
    """
    files = {
        "validation": out / "validation.json",
        "quarantine": out / "quarantine.parquet",
        "profiles": out / "profiles.parquet",
        "location_profiles": out / "location_profiles.parquet",
        "accepted_catalog": out / "accepted_catalog.yaml",
        "data_docs": docs_index,
    }
    for table, key in (
        (_table_jsonable(rasters), "profiles"),
        (_table_jsonable(locations), "location_profiles"),
        (quarantine, "quarantine"),
    ):
        with replace_atomically(files[key]) as tmp:
            table.to_parquet(tmp, index=False)
    save_catalog(accepted, files["accepted_catalog"])
    if chips is not None:
        files["chip_profiles"] = out / "chip_profiles.parquet"
        with replace_atomically(files["chip_profiles"]) as tmp:
            chips.to_parquet(tmp, index=False)

    return files


def _summary(
    catalog: Catalog,
    catalog_path: str | Path,
    today: dt.date,
    min_accepted: int,
    rasters: pd.DataFrame,
    chips: pd.DataFrame | None,
    quarantine: pd.DataFrame,
    accepted_ids: set[str],
    bad_acq: set[str],
    bad_locations: set[str],
    results: list[tuple[TableResult | None, pd.DataFrame | None]],
    clock: StepClock,
    files: dict[str, Path],
) -> dict[str, Any]:
    """The content of ``validation.json``: counts per kind of item, per expectation and reason,
    warnings, step timings and the files.
    """
    (_, q_rasters), _, (_, q_chips) = results
    if q_rasters is None or (chips is not None and q_chips is None):
        raise RuntimeError("validate_catalog made no quarantine table for rasters or chips")
    n_acq = rasters["acq_id"].nunique()
    in_accepted = ~rasters["acq_id"].isin(bad_acq) & rasters["location"].isin(accepted_ids)
    passed = len(accepted_ids) >= min_accepted
    summary: dict[str, Any] = {
        "catalog": str(Path(catalog_path).resolve()),
        "today": today.isoformat(),
        "passed": passed,
        "min_accepted": min_accepted,
        "accepted_locations": len(accepted_ids),
        "quarantined_items": len(quarantine),
        "rasters": {
            "total": len(rasters),
            "quarantined": len(q_rasters),
            "accepted": int(in_accepted.sum()),
        },
        "acquisitions": {
            "total": int(n_acq),
            "quarantined": len(bad_acq),
            "accepted": int(rasters.loc[in_accepted, "acq_id"].nunique()),
        },
        "locations": {
            "total": len(catalog.locations),
            "quarantined": len(bad_locations),
            "accepted": len(accepted_ids),
        },
        "chips": None
        if chips is None or q_chips is None
        else {
            "total": len(chips),
            "quarantined": len(q_chips),
            "accepted": len(chips) - len(q_chips),
        },
        "expectations": {r.table: _expectation_counts(r, q) for r, q in results if r is not None},
        "warnings": {r.table: warnings_of(r) for r, _ in results if r is not None},
        "quarantine_reasons": {
            str(k): int(v)
            for k, v in quarantine["failed_expectations"].explode().value_counts().items()
        }
        if len(quarantine)
        else {},
        "timings_s": clock.summary(),
        "files": {k: str(v) for k, v in files.items()},
    }
    return summary
