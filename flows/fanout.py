"""Fan-out of chipping over locations as mapped Prefect tasks on the configured task runner.

``chip`` runs as: one ``chip_location`` task per location of the accepted catalog (mapped on
``pipeline.task_runner``: threads, processes, or a Dask cluster at ``pipeline.dask_address``),
then one task that merges the part shards into the manifest and computes ``stats.json``. With
DVC, the fan-out runs only when ``dvc status chip`` reports the stage out of date, and
``dvc commit`` records the result in ``dvc.lock`` exactly as ``dvc repro chip`` would (same
outputs; ``dvc repro`` from a fresh clone runs the stage's command instead).

Validation runs as one stage: ``skysense.validation.gate.validate_catalog`` judges locations
against each other (overlap, CRS references, the ``min_accepted`` gate), so it is not split.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task, unmapped
from prefect.cache_policies import NO_CACHE

from flows import stages
from flows.runners import describe, make_task_runner
from skysense.config import SkySenseConfig

FANOUT_STAGES = ("chip",)


def available(stage: str) -> bool:
    """Whether ``stage`` has a per-location fan-out in the installed library."""
    if stage != "chip":
        return False
    try:
        from skysense.data import chipping, stats  # noqa: F401
    except ImportError:
        return False
    return hasattr(chipping, "chip_location") and hasattr(chipping, "merge_manifests")


def runner_description(cfg: SkySenseConfig) -> str:
    """The task runner the fan-out uses, in words."""
    return describe(cfg.pipeline)


@task(name="chip-location", task_run_name="chip-{location_id}", persist_result=True, cache_policy=NO_CACHE)
def chip_location_task(location_id: str, catalog_path: str, out_dir: str, settings: Any, index: int) -> dict[str, Any]:
    """Chip one location into ``out_dir/_parts/<index>`` (part shards + rows)."""
    from dataclasses import asdict

    from skysense.data.catalog import load_catalog
    from skysense.data.chipping import chip_location

    catalog = load_catalog(catalog_path)
    result = chip_location(catalog.location(location_id), catalog.root, out_dir, settings, index)
    return asdict(result)


@task(name="chip-finalize", persist_result=True, cache_policy=NO_CACHE)
def finalize_chips_task(out_dir: str, results: list[dict[str, Any]], shard_bytes: int,
                        bands: dict[str, list[str]]) -> dict[str, Any]:
    """Merge part shards into ``manifest.parquet`` and write ``stats.json`` (pre-training split).

    Raises:
        StageFailed: no chip was written (every location failed or was empty).
    """
    from skysense.data.chipping import LocationResult, merge_manifests
    from skysense.data.stats import compute_stats, write_stats

    summary = merge_manifests(out_dir, [LocationResult(**r) for r in results], shard_bytes)
    if summary.chips == 0:
        failed = "; ".join(f"{k}: {v}" for k, v in summary.failed.items()) or "no location gave a chip"
        raise stages.StageFailed(f"stage 'chip' failed: 0 chips written to {out_dir} ({failed})")
    stats = compute_stats(out_dir, split="pretrain", bands=bands)
    write_stats(out_dir, stats)
    return {"chips": summary.chips, "locations": summary.locations, "failed": summary.failed,
            "shards": summary.shards}


@flow(name="skysense-chip-fanout", persist_result=True)
def chip_fanout(catalog_path: str, out_dir: str, cfg_json: dict[str, Any]) -> dict[str, Any]:
    """Chip every location of ``catalog_path`` in parallel, then merge and compute stats."""
    import shutil

    from skysense.config import config_from_dict
    from skysense.data.catalog import load_catalog
    from skysense.data.chipping import PARTS, ChipSettings

    cfg = config_from_dict(cfg_json)
    settings = ChipSettings.from_config(cfg)
    catalog = load_catalog(catalog_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / PARTS, ignore_errors=True)
    ids = [loc.id for loc in catalog.locations]
    futures = chip_location_task.map(ids, unmapped(catalog_path), unmapped(out_dir), unmapped(settings),
                                     list(range(len(ids))))
    results = [f.result() for f in futures]
    bands = {"s2": cfg.data.s2_bands, "s1": cfg.data.s1_bands, "hr": cfg.data.hr_bands}
    return finalize_chips_task(out_dir, results, settings.shard_bytes, bands)


def run_fanout_stage(stage: str, root: Path, cfg: SkySenseConfig, use_dvc: bool) -> dict[str, Any]:
    """Run ``stage`` as a fan-out subflow; with DVC, only when out of date, then ``dvc commit``.

    Returns:
        A stage report dict (``stage``, ``ran``, ``seconds``, ``command``, ``output_tail``, ``extra``).
    """
    if stage != "chip":
        raise KeyError(f"no fan-out for stage {stage!r}; stages with one: {', '.join(FANOUT_STAGES)}")
    logger = get_run_logger()
    start = time.perf_counter()
    if use_dvc and not stages.dvc_stage_changed(stage, root):
        seconds = time.perf_counter() - start
        logger.info("stage chip: up to date (%.1f s)", seconds)
        return {"stage": stage, "ran": False, "seconds": seconds, "command": ["dvc", "status", stage],
                "output_tail": "", "extra": {}}
    catalog = root / cfg.paths.validation / "accepted_catalog.yaml"
    out_dir = root / cfg.paths.chips
    runner = make_task_runner(cfg.pipeline)
    subflow = chip_fanout.with_options(task_runner=runner)
    result = subflow(str(catalog), str(out_dir), cfg.model_dump(mode="json"))
    if use_dvc:
        stages.dvc_commit_stage(stage, root)
    seconds = time.perf_counter() - start
    logger.info("stage chip: %d chips from %d locations on %s in %.1f s", result["chips"],
                result["locations"], describe(cfg.pipeline), seconds)
    return {"stage": stage, "ran": True, "seconds": seconds, "command": ["prefect fan-out", describe(cfg.pipeline)],
            "output_tail": "", "extra": result}
