"""Fan-out of validation and chipping over locations as mapped Prefect tasks.

The tasks are mapped on the task runner of ``pipeline.task_runner``: threads, processes, or a
Dask cluster at ``pipeline.dask_address`` (see :mod:`flows.runners`).

- ``validate`` runs as: one ``profile_location`` task per catalog location (rasterio profiling,
  :mod:`skysense.validation.per_location`), then one task named ``validate`` that runs the
  great-expectations suites once over all profiles and writes the gate's files
  (:func:`skysense.validation.gate.judge_profiles`; the same files ``skysense validate`` writes).
- ``chip`` runs as: one ``chip_location`` task per location of the accepted catalog, then one
  task that merges the part shards into the manifest and computes ``stats.json``.

With DVC, a fan-out runs only when ``dvc status <stage>`` reports the stage out of date, and
``dvc commit`` records the result in ``dvc.lock`` exactly as ``dvc repro <stage>`` would (same
outputs; ``dvc repro`` from a fresh clone runs the stage's command instead).
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task, unmapped
from prefect.cache_policies import NO_CACHE

from flows import stages
from flows.runners import describe, make_task_runner
from skysense.config import SkySenseConfig

FANOUT_STAGES = ("validate", "chip")


def runner_description(cfg: SkySenseConfig) -> str:
    """The task runner the fan-out uses, in words."""
    return describe(cfg.pipeline)


@task(
    name="profile-location",
    task_run_name="profile-{location_id}",
    persist_result=True,
    cache_policy=NO_CACHE,
)
def profile_location_task(
    location_id: str, catalog_path: str, settings: Any, access: Any = None
) -> Any:
    """Profile the rasters of one location (rasterio only, under the raster access policy
    ``access``); returns its ``LocationProfiles``.
    """
    from skysense.validation.per_location import load_catalog_for_validation, profile_location

    catalog, date_issues = load_catalog_for_validation(catalog_path)
    return profile_location(catalog, location_id, settings, date_issues, access)


@task(name="validate", task_run_name="validate", persist_result=True, cache_policy=NO_CACHE)
def judge_task(
    catalog_path: str, profiles: list[Any], out_dir: str, settings: Any, today: dt.date | None
) -> dict[str, Any]:
    """Run the GX suites once over all profiles, quarantine, gate; write the validation files.

    Raises:
        ValidationFailed: the catalog is unusable or too few locations were accepted (after the
            files are written).
    """
    from skysense.validation.gate import judge_profiles

    return judge_profiles(catalog_path, profiles, out_dir, settings, today=today).summary


def _location_ids(catalog_path: str) -> list[str]:
    """The catalog's location ids; none when it is unusable (the judge task then fails the stage
    with the reason, as ``skysense validate`` does).
    """
    from skysense.core.errors import ValidationFailed
    from skysense.validation.per_location import load_catalog_for_validation

    try:
        catalog, _ = load_catalog_for_validation(catalog_path)
    except ValidationFailed:
        return []
    return [loc.id for loc in catalog.locations]


@flow(name="skysense-validate-fanout", persist_result=True)
def validate_fanout(
    catalog_path: str, out_dir: str, cfg_json: dict[str, Any], today: dt.date | None = None
) -> dict[str, Any]:
    """Profile every location of ``catalog_path`` in parallel, then judge them all at once.

    Args:
        catalog_path: the scene catalog YAML.
        out_dir: the validation folder (``paths.validation``).
        cfg_json: the resolved settings as a dict (``SkySenseConfig.model_dump(mode="json")``).
        today: the date "future" is judged against (default: the local date).

    Returns:
        The ``validation.json`` summary.
    """
    from skysense.config import config_from_dict
    from skysense.data.raster_access import RasterAccessPolicy

    cfg = config_from_dict(cfg_json)
    settings, access = cfg.validation, RasterAccessPolicy.from_config(cfg.data)
    ids = _location_ids(catalog_path)
    futures = profile_location_task.map(
        ids, unmapped(catalog_path), unmapped(settings), unmapped(access)
    )
    profiles = [f.result() for f in futures]
    return judge_task(catalog_path, profiles, out_dir, settings, today)


@task(
    name="chip-location",
    task_run_name="chip-{location_id}",
    persist_result=True,
    cache_policy=NO_CACHE,
)
def chip_location_task(
    location_id: str, catalog_path: str, out_dir: str, settings: Any, index: int
) -> dict[str, Any]:
    """Chip one location into ``out_dir/_parts/<index>`` (part shards + rows)."""
    from dataclasses import asdict

    from skysense.data.catalog import load_catalog
    from skysense.data.chipping import chip_location

    catalog = load_catalog(catalog_path)
    result = chip_location(catalog.location(location_id), catalog.root, out_dir, settings, index)
    return asdict(result)


@task(name="chip-finalize", persist_result=True, cache_policy=NO_CACHE)
def finalize_chips_task(
    out_dir: str,
    results: list[dict[str, Any]],
    shard_bytes: int,
    bands: dict[str, list[str]],
    allow_partial: bool = False,
) -> dict[str, Any]:
    """Merge part shards into ``manifest.parquet`` and write ``stats.json`` (pre-training split).

    Raises:
        StageFailed: no chip was written, or some locations failed and ``allow_partial`` is
            false (``data.chip.allow_partial``); ``summary.json`` lists them.
    """
    from skysense.core.errors import SkySenseError
    from skysense.data.chip_outcome import require_complete
    from skysense.data.chipping import LocationResult, merge_manifests
    from skysense.data.stats import compute_stats, write_stats

    summary = merge_manifests(out_dir, [LocationResult(**r) for r in results], shard_bytes)
    try:
        require_complete(summary, out_dir, allow_partial=allow_partial)
    except SkySenseError as exc:
        raise stages.StageFailed(f"stage 'chip' failed: {exc}") from exc
    stats = compute_stats(out_dir, split="pretrain", bands=bands)
    write_stats(out_dir, stats)
    return {
        "chips": summary.chips,
        "locations": summary.locations,
        "failed": summary.failed,
        "shards": summary.shards,
    }


@flow(name="skysense-chip-fanout", persist_result=True)
def chip_fanout(catalog_path: str, out_dir: str, cfg_json: dict[str, Any]) -> dict[str, Any]:
    """Chip every location of ``catalog_path`` in parallel, then merge and compute stats."""
    import shutil

    from skysense.config import chip_settings, config_from_dict
    from skysense.data.catalog import load_catalog
    from skysense.data.chipping import PARTS

    cfg = config_from_dict(cfg_json)
    settings = chip_settings(cfg)
    catalog = load_catalog(catalog_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / PARTS, ignore_errors=True)
    ids = [loc.id for loc in catalog.locations]
    futures = chip_location_task.map(
        ids, unmapped(catalog_path), unmapped(out_dir), unmapped(settings), list(range(len(ids)))
    )
    results = [f.result() for f in futures]
    bands = {"s2": cfg.data.s2_bands, "s1": cfg.data.s1_bands, "hr": cfg.data.hr_bands}
    return finalize_chips_task(
        out_dir, results, settings.shard_bytes, bands, cfg.data.chip.allow_partial
    )


def _run_validate(root: Path, cfg: SkySenseConfig) -> tuple[dict[str, Any], str]:
    """The validation fan-out on the configured runner: (summary counts, log line)."""
    from skysense.core.errors import ValidationFailed

    subflow = validate_fanout.with_options(task_runner=make_task_runner(cfg.pipeline))
    try:
        summary = subflow(
            str(root / cfg.paths.catalog),
            str(root / cfg.paths.validation),
            cfg.model_dump(mode="json"),
        )
    except ValidationFailed as exc:
        raise stages.StageFailed(f"stage 'validate' failed: {exc}") from exc
    extra = {
        k: summary[k] for k in ("accepted_locations", "quarantined_items", "locations", "rasters")
    }
    line = (
        f"{summary['accepted_locations']} of {summary['locations']['total']} locations accepted, "
        f"{summary['quarantined_items']} items quarantined"
    )
    return extra, line


def _run_chip(root: Path, cfg: SkySenseConfig) -> tuple[dict[str, Any], str]:
    """The chip fan-out on the configured runner: (merge summary, log line)."""
    catalog = root / cfg.paths.validation / "accepted_catalog.yaml"
    subflow = chip_fanout.with_options(task_runner=make_task_runner(cfg.pipeline))
    result = subflow(str(catalog), str(root / cfg.paths.chips), cfg.model_dump(mode="json"))
    return result, f"{result['chips']} chips from {result['locations']} locations"


def run_fanout_stage(stage: str, root: Path, cfg: SkySenseConfig, use_dvc: bool) -> dict[str, Any]:
    """Run ``stage`` as a fan-out subflow; with DVC, only when out of date, then ``dvc commit``.

    Returns:
        A stage report dict (``stage``, ``ran``, ``seconds``, ``command``, ``output_tail``,
        ``extra``).

    Raises:
        KeyError: ``stage`` has no fan-out.
        StageFailed: the stage failed (message ``stage '<stage>' failed: ...``); nothing is
            committed to ``dvc.lock``.
    """
    runs = {"validate": _run_validate, "chip": _run_chip}
    if stage not in runs:
        raise KeyError(
            f"no fan-out for stage {stage!r}; stages with one: {', '.join(FANOUT_STAGES)}"
        )
    logger = get_run_logger()
    start = time.perf_counter()
    if use_dvc and not stages.dvc_stage_changed(stage, root):
        seconds = time.perf_counter() - start
        logger.info("stage %s: up to date (%.1f s)", stage, seconds)
        return {
            "stage": stage,
            "ran": False,
            "seconds": seconds,
            "command": ["dvc", "status", stage],
            "output_tail": "",
            "extra": {},
        }
    extra, line = runs[stage](root, cfg)
    if use_dvc:
        stages.dvc_commit_stage(stage, root)
    seconds = time.perf_counter() - start
    logger.info("stage %s: %s on %s in %.1f s", stage, line, describe(cfg.pipeline), seconds)
    return {
        "stage": stage,
        "ran": True,
        "seconds": seconds,
        "command": ["prefect fan-out", describe(cfg.pipeline)],
        "output_tail": "",
        "extra": extra,
    }
