"""The ``predict`` flow: batch inference with the champion over a list of scenes.

Scenes are given as mappings ``{"id", "s2": ["DATE=path", ...], "s1": [...], "hr": path,
"dem": path}`` or taken from the locations of a catalog file. The champion
(``models:/<registry.model_name>@champion``) is loaded once; each scene is a mapped task writing
``<paths.predictions>/<id>.tif`` (a Cloud-Optimised GeoTIFF of embeddings on the scene's 10 m
grid, or on ``predict.crs`` when set) and its STAC item ``<id>.json``; the batch's items are
gathered in the ItemCollection ``<paths.predictions>/_items.json`` (no scene id starts with
``_``, so it never takes a scene's name). Before
anything is loaded or written, every output path is checked for the whole batch
(:func:`skysense.inference.outputs.prediction_outputs`): ids are plain names, outputs stay in the
predictions folder and none is an input of any scene.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flows import environment

if __name__ == "__main__":  # run as a script, this file is the entry point: the process
    environment.configure(".")  # environment (Prefect's home first) before Prefect is imported

from prefect import flow, get_run_logger, task, unmapped
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows.release import tracking_uri
from skysense.config import load_config
from skysense.inference.settings import PredictConfig

ITEM_COLLECTION = "_items.json"  # ids start with a letter or digit: never a scene's item


def scenes_from_catalog(path: str | Path) -> list[dict[str, Any]]:
    """One scene per catalog location: its dated S2/S1 files, HR and DEM (first acquisition)."""
    from skysense.data.catalog import load_catalog

    catalog = load_catalog(path)
    scenes = []
    for loc in catalog.locations:
        scene: dict[str, Any] = {"id": loc.id}
        for mod in ("s2", "s1"):
            entry = loc.modalities.get(mod)
            if entry is not None:
                scene[mod] = [
                    (f"{acq.date.isoformat()}=" if acq.date else "")
                    + str(catalog.resolve(acq.file))
                    for acq in entry.acquisitions
                    if acq.file is not None
                ]
        for mod in ("hr", "dem"):
            entry = loc.modalities.get(mod)
            if entry is not None and entry.acquisitions and entry.acquisitions[0].file is not None:
                scene[mod] = str(catalog.resolve(entry.acquisitions[0].file))
        scenes.append(scene)
    return scenes


def scene_inputs(scene: dict[str, Any]) -> list[Path]:
    """Every raster file a scene mapping reads (its S2/S1 ``[DATE=]path`` values, HR, DEM)."""
    from skysense.inference.scene import parse_dated

    files = [parse_dated(v).path for mod in ("s2", "s1") for v in scene.get(mod) or []]
    return files + [Path(scene[mod]) for mod in ("hr", "dem") if scene.get(mod)]


@task(
    name="predict-scene",
    task_run_name="predict-{scene[id]}",
    persist_result=True,
    cache_policy=NO_CACHE,
    retries=1,
    retry_delay_seconds=2,
)
def predict_one(
    scene: dict[str, Any],
    embed: Any,
    output: str,
    settings: dict[str, Any],
    access: Any = None,
    model: Any = None,
    crs: str | None = None,
) -> dict[str, Any]:
    """Embed one scene window by window and write ``output`` (its checked ``<out_dir>/<id>.tif``,
    a COG, and its STAC item made for ``model``; rasters opened under the raster access policy
    ``access``, onto the grid of ``crs`` when given).
    """
    from skysense.inference.predict import predict_scene
    from skysense.inference.scene import Scene, parse_dated

    opened = Scene(
        s2=[parse_dated(v) for v in scene.get("s2", [])],
        s1=[parse_dated(v) for v in scene.get("s1", [])] or None,
        hr=Path(scene["hr"]) if scene.get("hr") else None,
        dem=Path(scene["dem"]) if scene.get("dem") else None,
        access=access,
        crs=crs,
    )
    try:
        summary = predict_scene(
            opened,
            embed,
            Path(output),
            progress=False,
            model=model,
            item_id=scene["id"],
            **settings,
        )
    finally:
        opened.close()
    return {"id": scene["id"], **summary.to_dict()}


@flow(name="skysense-predict", log_prints=True, persist_result=True)
def predict(
    scenes: list[dict[str, Any]] | None = None,
    catalog: str | None = None,
    params_path: str = "params.yaml",
    overrides: list[str] | None = None,
    model_uri: str | None = None,
    out_dir: str | None = None,
    project_root: str = ".",
) -> list[dict[str, Any]]:
    """Run the champion over ``scenes`` (or the locations of ``catalog``).

    Args:
        scenes: scene mappings (see module docstring).
        catalog: a catalog file whose locations are the scenes (used when ``scenes`` is empty).
        params_path: the params file (``predict`` section: window, overlap, batch, dtype).
        overrides: ``section.key=value`` settings.
        model_uri: default ``models:/<registry.model_name>@champion``.
        out_dir: default ``paths.predictions``.
        project_root: the working folder.

    Returns:
        One summary per scene (output path, size, windows, seconds, km²).

    Raises:
        UnsafeIdError, OutsideOutputError, OutputIsInputError: a scene id that cannot name its
            output (checked for every scene before the model is loaded).
    """
    import pystac

    from skysense.data.raster_access import RasterAccessPolicy
    from skysense.inference.outputs import prediction_outputs
    from skysense.inference.stac_item import ModelIdentity, write_item_collection
    from skysense.registry.model_loading import embedder_of, load_encoder
    from skysense.tracking.store import connect

    logger = get_run_logger()
    root = Path(project_root).resolve()
    environment.configure(root)  # DVC, MLflow and GX settings for the stages (where unset)
    params_file = root / params_path
    cfg = load_config(params_file if params_file.exists() else None, overrides)
    todo = list(scenes or []) or (scenes_from_catalog(catalog) if catalog else [])
    if not todo:
        raise ValueError(
            "predict: give scenes=[...] or catalog=PATH (a catalog YAML of the scenes)"
        )
    out = root / (out_dir or cfg.paths.predictions)
    outputs = prediction_outputs([(s.get("id"), scene_inputs(s)) for s in todo], out)
    uri = tracking_uri(cfg, root)
    model = model_uri or f"models:/{cfg.registry.model_name}@champion"
    encoder = load_encoder(model, cfg.predict.device, connect(uri))
    embed = embedder_of(encoder)
    identity = ModelIdentity(model, encoder.source, encoder.version)
    out.mkdir(parents=True, exist_ok=True)
    p: PredictConfig = cfg.predict
    settings = {
        "window": p.window,
        "overlap": p.overlap,
        "batch_size": p.batch_size,
        "output_dtype": p.output_dtype,
        "block": p.block,
        "overview_resampling": p.embedding_overviews,
    }
    futures = predict_one.map(
        todo,
        embed=unmapped(embed),
        output=[str(outputs[s["id"]]) for s in todo],
        settings=unmapped(settings),
        access=unmapped(RasterAccessPolicy.from_config(cfg.data)),
        model=unmapped(identity),
        crs=unmapped(p.crs),
    )
    results = [f.result() for f in futures]
    collection = write_item_collection(
        [pystac.Item.from_file(r["item"]) for r in results], out / ITEM_COLLECTION
    )
    create_table_artifact(key="predictions", table=results, description=f"Predictions of {model}")
    logger.info(
        "wrote %d prediction(s) to %s with %s (STAC items: %s)",
        len(results),
        out,
        model,
        collection,
    )
    return results


def main(
    catalog: str,
    overrides: list[str] | None = None,
    model_uri: str | None = None,
) -> None:
    """Command line: ``python flows/predict.py CATALOG [--overrides k=v ...] [--model-uri URI]``."""
    import json

    results = predict(catalog=catalog, overrides=overrides or [], model_uri=model_uri)
    print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":  # pragma: no cover
    import typer

    typer.run(main)
