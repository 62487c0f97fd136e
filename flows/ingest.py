"""The ``ingest`` flow: new scenes into the working catalog, then the pipeline on it.

The new scenes come as a catalog file (``skysense/data/catalog.py`` schema). They are merged
with the current catalog (``paths.catalog``) into ``<data>/ingest/catalog.yaml`` (a location id
already present is replaced by the new one; raster paths stay where they are), and the pipeline
runs with ``paths.catalog`` pointing there and without writing the synthetic sample. The
original catalogs are never modified.
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
from skysense.config import load_config
from skysense.core.atomic_files import replace_atomically
from skysense.data.catalog import load_catalog, save_catalog


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
    base = _as_dict(Path(current), out) if current and Path(current).exists() else {
        "version": incoming.get("version", 1), "name": incoming.get("name", "ingested"), "locations": []}
    new_ids = [loc["id"] for loc in incoming["locations"]]
    replaced = [loc["id"] for loc in base["locations"] if loc["id"] in new_ids]
    base["locations"] = [loc for loc in base["locations"] if loc["id"] not in new_ids] + incoming["locations"]
    with replace_atomically(out) as tmp:  # same folder: relative raster paths resolve the same
        tmp.write_text(yaml.safe_dump(base, sort_keys=False))
        load_catalog(tmp)  # the merged file must itself be a valid catalog, or nothing changes
    return {"catalog": str(out), "locations": len(base["locations"]),
            "added": [i for i in new_ids if i not in replaced], "replaced": replaced}


@flow(name="skysense-ingest", log_prints=True, persist_result=True)
def ingest(
    scenes_catalog: str,
    params_path: str = "params.yaml",
    overrides: list[str] | None = None,
    include_current: bool = True,
    use_dvc: bool | None = None,
    project_root: str = ".",
    lock_wait_s: float = 0.0,
) -> dict[str, Any]:
    """Add the scenes of ``scenes_catalog`` to the working catalog and run the pipeline.

    Args:
        scenes_catalog: a catalog YAML listing the new locations and their rasters.
        params_path: the params file.
        overrides: extra ``section.key=value`` settings for the pipeline.
        include_current: keep the locations of the current ``paths.catalog``.
        use_dvc: as in :func:`flows.pipeline.pipeline`.
        project_root: the working folder.
        lock_wait_s: how long to wait for another run holding the project lock.

    Returns:
        The merge result and the pipeline summary.

    Raises:
        LockHeldError: another run holds the project lock (the catalog was not touched).
    """
    root = Path(project_root).resolve()
    environment.configure(root)  # DVC, MLflow and GX settings for the stages (where unset)
    with project_lock(root, lock_wait_s):  # the merged catalog is written under it too
        return _ingest(scenes_catalog, root, params_path, overrides, include_current, use_dvc)


def _ingest(scenes_catalog: str, root: Path, params_path: str, overrides: list[str] | None,
            include_current: bool, use_dvc: bool | None) -> dict[str, Any]:
    """The body of :func:`ingest`, run while the project lock is held."""
    logger = get_run_logger()
    params_file = root / params_path
    cfg = load_config(params_file if params_file.exists() else None, overrides)
    current = root / cfg.paths.catalog if include_current else None
    target = root / cfg.paths.sample.parent / "ingest" / "catalog.yaml"
    merged = merge_catalogs(str(current) if current else None, str(Path(scenes_catalog).resolve()), str(target))
    logger.info("catalog %s: %d locations (%d new, %d replaced)", merged["catalog"], merged["locations"],
                len(merged["added"]), len(merged["replaced"]))
    create_markdown_artifact(
        key="ingested-scenes",
        markdown=f"Catalog `{merged['catalog']}`: {merged['locations']} locations\n\n"
        f"- added: {', '.join(merged['added']) or 'none'}\n- replaced: {', '.join(merged['replaced']) or 'none'}",
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
    return {"ingest": merged, "pipeline": summary}


def main(scenes_catalog: str, overrides: list[str] | None = None, dvc: bool = True) -> None:
    """Command line: ``python flows/ingest.py NEW_CATALOG [--overrides k=v ...] [--no-dvc]``."""
    import json

    result = ingest(scenes_catalog, overrides=overrides or [], use_dvc=dvc)
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":  # pragma: no cover
    import typer

    typer.run(main)
