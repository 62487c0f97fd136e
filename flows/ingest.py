"""The ``ingest`` flow: new scenes into the working catalog, then the pipeline on it.

The new scenes come as a catalog file (``skysense/data/catalog.py`` schema). They are merged
with the current catalog (``paths.catalog``) into ``<data>/ingest/catalog.yaml`` (a location id
already present is replaced by the new one; raster paths stay where they are), and the pipeline
runs with ``paths.catalog`` pointing there and without writing the synthetic sample. The
original catalogs are never modified.

The new scenes can also come as STAC items: a saved snapshot (an ItemCollection ``.json`` or
``.ndjson`` given as ``scenes_catalog``, or ``stac_items``) or a search of a STAC API
(``stac_api`` with ``stac_collections``, ``stac_bbox``, ``stac_datetime``), whose result is saved
as ``<paths.stac>/items.json`` first. The ``stac-catalog`` task writes ``<paths.stac>/catalog.yaml``
and ``skipped.parquet`` from it (:func:`skysense.data.stac.ingest.ingest_snapshot`), and that
catalog is merged as above: a scheduled run with ``stac_api`` picks up new items (a location's id
is its grid cell, so a cell seen before is replaced with its new acquisitions).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flows import environment

if __name__ == "__main__":  # run as a script, this file is the entry point: the process
    environment.configure(".")  # environment (Prefect's home first) before Prefect is imported

import yaml
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.pipeline import pipeline, project_lock
from skysense.config import load_config, stac_settings
from skysense.core.atomic_files import replace_atomically
from skysense.data.catalog import load_catalog, save_catalog
from skysense.data.stac.ingest import SNAPSHOT, StacIngestError, ingest_snapshot
from skysense.data.stac.snapshot import search_snapshot

SNAPSHOT_SUFFIXES = (".json", ".ndjson", ".jsonl")


def _as_dict(catalog_path: Path, target: Path) -> dict[str, Any]:
    """A catalog as a dict whose raster paths are relative to ``target``'s folder (or absolute)."""
    scratch = target.with_name(f".{catalog_path.stem}-{abs(hash(str(catalog_path)))}.yaml")
    save_catalog(load_catalog(catalog_path), scratch)
    data = yaml.safe_load(scratch.read_text())
    scratch.unlink()
    return data


@task(name="merge-catalogs", persist_result=True, cache_policy=NO_CACHE)
def merge_catalogs(current: str | None, new: str, target: str) -> dict[str, Any]:
    """Merge the new scenes into a copy of the current catalog at ``target``.

    Returns:
        ``{"catalog": target, "locations": n, "added": [...], "replaced": [...]}``.

    Raises:
        CatalogError: a catalog does not follow the schema (named file and entry).
    """
    out = Path(target)
    out.parent.mkdir(parents=True, exist_ok=True)
    incoming = _as_dict(Path(new), out)
    base = (
        _as_dict(Path(current), out)
        if current and Path(current).exists()
        else {
            "version": incoming.get("version", 1),
            "name": incoming.get("name", "ingested"),
            "locations": [],
        }
    )
    new_ids = [loc["id"] for loc in incoming["locations"]]
    replaced = [loc["id"] for loc in base["locations"] if loc["id"] in new_ids]
    base["locations"] = [loc for loc in base["locations"] if loc["id"] not in new_ids] + incoming[
        "locations"
    ]
    with replace_atomically(out) as tmp:  # same folder: relative raster paths resolve the same
        tmp.write_text(yaml.safe_dump(base, sort_keys=False))
        load_catalog(tmp)  # the merged file must itself be a valid catalog, or nothing changes
    return {
        "catalog": str(out),
        "locations": len(base["locations"]),
        "added": [i for i in new_ids if i not in replaced],
        "replaced": replaced,
    }


@task(name="stac-catalog", persist_result=True, cache_policy=NO_CACHE)
def stac_catalog(
    snapshot: str | None,
    out_dir: str,
    params_file: str | None = None,
    overrides: list[str] | None = None,
    api: str | None = None,
    collections: list[str] | None = None,
    bbox: list[float] | None = None,
    datetime: str | None = None,
) -> dict[str, Any]:
    """A scene catalog from STAC items: search ``api`` (saving ``out_dir/items.json``) or read
    ``snapshot``; write ``out_dir/catalog.yaml`` and ``skipped.parquet``.

    Returns:
        The ingest result (:class:`skysense.data.stac.ingest.StacIngestResult` as a dict).

    Raises:
        StacIngestError: no location came out of the items (``skipped.parquet`` says why).
        StacSnapshotError: the snapshot cannot be read, or the search failed.
    """
    cfg = load_config(params_file, overrides)
    out = Path(out_dir)
    area = tuple(bbox) if bbox else None
    if api:
        out.mkdir(parents=True, exist_ok=True)
        snapshot = str(
            search_snapshot(
                api, out / SNAPSHOT, collections, area, datetime, cfg.data.stac.max_items
            )
        )
    if snapshot is None:
        raise StacIngestError("stac-catalog needs a snapshot file or a STAC API URL")
    result = ingest_snapshot(snapshot, out, stac_settings(cfg), area=area)  # type: ignore[arg-type]
    if result.catalog is None:
        raise StacIngestError(
            f"{snapshot}: no location (no {cfg.data.stac.location_m:g} m cell covered by every "
            f"one of {cfg.data.stac.required_modalities}); see {result.skipped_file}"
        )
    return result.to_dict()


@flow(name="skysense-ingest", log_prints=True, persist_result=True)
def ingest(
    scenes_catalog: str | None = None,
    params_path: str = "params.yaml",
    overrides: list[str] | None = None,
    include_current: bool = True,
    use_dvc: bool | None = None,
    project_root: str = ".",
    lock_wait_s: float = 0.0,
    stac_items: str | None = None,
    stac_api: str | None = None,
    stac_collections: list[str] | None = None,
    stac_bbox: list[float] | None = None,
    stac_datetime: str | None = None,
) -> dict[str, Any]:
    """Add the scenes of ``scenes_catalog`` (or of STAC items) to the working catalog and run the
    pipeline.

    Args:
        scenes_catalog: a catalog YAML listing the new locations and their rasters, or a STAC
            snapshot (``.json`` ItemCollection, ``.ndjson``).
        params_path: the params file.
        overrides: extra ``section.key=value`` settings for the pipeline.
        include_current: keep the locations of the current ``paths.catalog``.
        use_dvc: as in :func:`flows.pipeline.pipeline`.
        project_root: the working folder.
        lock_wait_s: how long to wait for another run holding the project lock.
        stac_items: a STAC snapshot to ingest (instead of ``scenes_catalog``).
        stac_api: a STAC API to search; the result is saved as ``<paths.stac>/items.json`` and
            ingested.
        stac_collections: the collections searched.
        stac_bbox: the search's bounding box (west, south, east, north; degrees).
        stac_datetime: the search's date or range (RFC 3339, ``start/end``).

    Returns:
        The merge result (with the STAC ingest result under ``stac`` when items were ingested)
        and the pipeline summary.

    Raises:
        LockHeldError: another run holds the project lock (the catalog was not touched).
    """
    root = Path(project_root).resolve()
    environment.configure(root)  # DVC, MLflow and GX settings for the stages (where unset)
    stac = {
        "items": stac_items,
        "api": stac_api,
        "collections": stac_collections,
        "bbox": stac_bbox,
        "datetime": stac_datetime,
    }
    if scenes_catalog and Path(scenes_catalog).suffix.lower() in SNAPSHOT_SUFFIXES:
        stac["items"] = scenes_catalog
    with project_lock(root, lock_wait_s):  # the merged catalog is written under it too
        return _ingest(scenes_catalog, root, params_path, overrides, include_current, use_dvc, stac)


def _ingest(
    scenes_catalog: str | None,
    root: Path,
    params_path: str,
    overrides: list[str] | None,
    include_current: bool,
    use_dvc: bool | None,
    stac: dict[str, Any],
) -> dict[str, Any]:
    """The body of :func:`ingest`, run while the project lock is held."""
    logger = get_run_logger()
    params_file = root / params_path
    cfg = load_config(params_file if params_file.exists() else None, overrides)
    stac_result = None
    if stac["items"] or stac["api"]:
        items = str(Path(stac["items"]).resolve()) if stac["items"] else None
        stac_result = stac_catalog(
            items,
            str(root / cfg.paths.stac),
            str(params_file) if params_file.exists() else None,
            overrides,
            stac["api"],
            stac["collections"],
            stac["bbox"],
            stac["datetime"],
        )
        scenes_catalog = stac_result["catalog"]
        logger.info(
            "STAC: %d items, %d skipped -> %d locations (%s)",
            stac_result["items"],
            sum(stac_result["skipped"].values()),
            stac_result["locations"],
            scenes_catalog,
        )
    if not scenes_catalog:
        raise StacIngestError(
            "ingest needs a scenes catalog, a STAC snapshot (stac_items) or a STAC API (stac_api)"
        )
    current = root / cfg.paths.catalog if include_current else None
    target = root / cfg.paths.sample.parent / "ingest" / "catalog.yaml"
    merged = merge_catalogs(
        str(current) if current else None, str(Path(scenes_catalog).resolve()), str(target)
    )
    logger.info(
        "catalog %s: %d locations (%d new, %d replaced)",
        merged["catalog"],
        merged["locations"],
        len(merged["added"]),
        len(merged["replaced"]),
    )
    create_markdown_artifact(
        key="ingested-scenes",
        markdown=f"Catalog `{merged['catalog']}`: {merged['locations']} locations\n\n"
        f"- added: {', '.join(merged['added']) or 'none'}\n- replaced: "
        f"{', '.join(merged['replaced']) or 'none'}",
        description="Scenes added by this ingest run",
    )
    rel_target = target.relative_to(root) if target.is_relative_to(root) else target
    summary = pipeline(
        params_path=params_path,
        overrides=[*(overrides or []), f"paths.catalog={rel_target}"],
        use_dvc=use_dvc,
        run_sample=not include_current or cfg.paths.catalog.is_relative_to(cfg.paths.sample),
        project_root=str(root),
        hold_project_lock=False,
    )
    if stac_result is not None:
        merged = {**merged, "stac": stac_result}
    return {"ingest": merged, "pipeline": summary}


def main(scenes_catalog: str, overrides: list[str] | None = None, dvc: bool = True) -> None:
    """Command line: ``python flows/ingest.py NEW_CATALOG|SNAPSHOT.json [--overrides k=v ...]
    [--no-dvc]``.
    """
    import json

    result = ingest(scenes_catalog, overrides=overrides or [], use_dvc=dvc)
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":  # pragma: no cover
    import typer

    typer.run(main)
