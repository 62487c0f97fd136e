"""Register the fine-tuned task model in MLflow and try to promote it (after the encoder's).

The task model is its own registered model (``registry.task_model_name``) with its own policy
(``registry.task_policy``); promotion is refused while the encoder it was fine-tuned from is not
a registered version of ``registry.model_name`` (the pipeline registers that encoder first).
Calls the registry library in-process, like :mod:`flows.release`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows import reporting
from flows.release import _client, _retry_transient, status_task, tracking_uri
from skysense.config import SkySenseConfig
from skysense.core.errors import RegistryError
from skysense.core.lineage import dvc_md5


@task(
    name="register-task-model",
    persist_result=True,
    cache_policy=NO_CACHE,
    retry_condition_fn=_retry_transient,
)
def register_task_model_task(root: str, cfg_json: dict[str, Any], uri: str) -> dict[str, Any]:
    """The task model export as a new ``challenger`` of ``registry.task_model_name`` (or the
    version that holds it), with the fine-tuning metrics and the DVC md5 of the export.
    """
    from skysense.config import config_from_dict
    from skysense.registry.task_registration import register_task_export
    from skysense.tracking.store import ensure_experiment

    cfg = config_from_dict(cfg_json)
    base = Path(root)
    report = base / cfg.paths.finetune
    metrics_file = report / "metrics.json"
    if not metrics_file.is_file():
        raise RegistryError(f"{metrics_file}: no metrics; the finetune stage must run first")
    metrics = reporting.numeric_metrics(json.loads(metrics_file.read_text()))
    summary = report / "summary.json"
    run_id = json.loads(summary.read_text()).get("mlflow_run_id") if summary.is_file() else None
    client, db = _client(uri)
    exp = ensure_experiment(
        client, cfg.finetune.experiment, base / cfg.registry.artifact_location, uri
    )
    result = register_task_export(
        client,
        cfg.registry.task_model_name,
        base / cfg.paths.task_model,
        metrics,
        encoder_model_name=cfg.registry.model_name,
        experiment_id=exp,
        run_id=run_id,
        sqlite_db=db,
        lock_url=cfg.registry.lock_url,
    )
    lineage = {}
    for key, path in (
        ("dvc.task_model_md5", cfg.paths.task_model),
        ("dvc.export_md5", cfg.paths.export),
    ):
        md5 = dvc_md5(path, base)
        if md5:
            lineage[key] = md5
            client.set_model_version_tag(result.name, result.version, key, md5)
    return {**result.to_dict(), "lineage": lineage}


@task(
    name="promote-task-model",
    persist_result=True,
    cache_policy=NO_CACHE,
    retry_condition_fn=_retry_transient,
)
def promote_task_model_task(cfg_json: dict[str, Any], uri: str, version: str) -> dict[str, Any]:
    """The task model challenger becomes champion when ``registry.task_policy`` passes and its
    encoder is registered (else ``refuse``, reasons in its tags).
    """
    from skysense.config import config_from_dict
    from skysense.registry.promotion import promote
    from skysense.registry.task_lineage import encoder_requirement

    cfg = config_from_dict(cfg_json)
    client, db = _client(uri)
    return promote(
        client,
        cfg.registry.task_model_name,
        cfg.registry.task_policy,
        version=version,
        sqlite_db=db,
        what="prefect flow skysense-pipeline",
        lock_url=cfg.registry.lock_url,
        requires=encoder_requirement(client, cfg.registry.model_name),
    ).to_dict()


def register_and_promote_task_model(
    root: Path, cfg: SkySenseConfig, promote: bool, options: dict[str, Any]
) -> dict[str, Any]:
    """Register and (unless disabled or already champion) promote the task model.

    Returns:
        ``name``, ``registered_version``, ``created``, ``promotion``, ``champion_version``.
    """
    logger = get_run_logger()
    uri = tracking_uri(cfg, root)
    name = cfg.registry.task_model_name
    cfg_json = cfg.model_dump(mode="json")
    before = status_task.with_options(**options)(uri, name)
    old_champion = (before.get("aliases") or {}).get("champion")
    reg = register_task_model_task.with_options(**options)(str(root), cfg_json, uri)
    version = str(reg.get("version"))
    if not promote:
        promotion: dict[str, Any] = {"action": "skipped", "reason": "promotion disabled"}
    elif old_champion is not None and str(old_champion) == version:
        promotion = {"action": "skipped", "reason": f"v{version} is already the champion"}
    else:
        promotion = promote_task_model_task.with_options(**options)(cfg_json, uri, version)
    after = status_task.with_options(**options)(uri, name)
    champion = (after.get("aliases") or {}).get("champion")
    logger.info("task model %s v%s: %s", name, version, promotion.get("action"))
    metrics = reporting.numeric_metrics(
        reporting.read_json(root / cfg.paths.finetune / "metrics.json")
    )
    create_markdown_artifact(
        key="task-model",
        markdown=f"# {name} v{version}\n\nPromotion: **{promotion.get('action')}**\n\n"
        + "\n".join(f"- {k}: {v:.4f}" for k, v in sorted(metrics.items()) if "." not in k),
        description="Fine-tuned task model of this run",
    )
    return {
        "name": name,
        "registered_version": version,
        "created": bool(reg.get("created")),
        "promotion": promotion,
        "champion_version": champion,
        "lineage": reg.get("lineage", {}),
    }
