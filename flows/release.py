"""Register the evaluated export in MLflow, tag its DVC lineage, and try to promote it.

Calls the registry library in-process (the functions behind ``skysense register`` /
``promote`` / ``registry status``; no interpreter start per step). Registration is idempotent
by checkpoint hash (a second run of an unchanged pipeline registers no new version) and runs
under the registry's promotion lock, so nothing is half-registered. Publishes Prefect
artifacts: metrics against the champion, and links to the MLflow run and model version.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows import reporting, stages
from flows.alerts import emit_promoted
from skysense.config import SkySenseConfig, registration_settings
from skysense.core.credentials import strip_credentials
from skysense.core.errors import RegistryError
from skysense.core.lineage import lineage_tags

TRANSIENT = (ConnectionError, TimeoutError, OSError)


def _retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only a store or server that was unreachable (not a refused or bad request)."""
    try:
        state.result()
    except stages.TransientStageError:
        return True
    except RegistryError as exc:
        return bool(stages.TRANSIENT_MARKERS.search(str(exc)))
    except TRANSIENT:
        return True
    except Exception as exc:  # noqa: BLE001 - MLflow wraps HTTP errors in its own types
        return bool(stages.TRANSIENT_MARKERS.search(str(exc)))
    return False


def tracking_uri(cfg: SkySenseConfig, root: Path) -> str:
    """The tracking URI of the pipeline in ``root`` (``MLFLOW_TRACKING_URI`` wins, as in the CLI);
    a relative SQLite path resolves against ``root``.
    """
    import os

    uri = os.environ.get("MLFLOW_TRACKING_URI") or cfg.registry.tracking_uri
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + str((root / uri[len("sqlite:///") :]).resolve())
    return uri


def _client(uri: str):
    from skysense.tracking.store import connect, sqlite_path

    return connect(uri), sqlite_path(uri)


@task(
    name="register", persist_result=True, cache_policy=NO_CACHE, retry_condition_fn=_retry_transient
)
def register_task(root: str, cfg_json: dict[str, Any], uri: str) -> dict[str, Any]:
    """The export as a new ``challenger`` version (or the version that already holds it), with
    the evaluation metrics and the DVC md5 of data and checkpoint (``dvc.*`` tags) on the
    version and its run.
    """
    from skysense.config import config_from_dict
    from skysense.registry.export_registration import register_export
    from skysense.tracking.store import ensure_experiment

    cfg = config_from_dict(cfg_json)
    base = Path(root)
    metrics_file = base / cfg.paths.eval / "metrics.json"
    if not metrics_file.is_file():
        raise RegistryError(
            f"{metrics_file}: no metrics; the evaluate stage must run before register"
        )
    metrics = {
        k: float(v)
        for k, v in json.loads(metrics_file.read_text()).items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    client, db = _client(uri)
    exp = ensure_experiment(
        client, cfg.train.experiment, base / cfg.registry.artifact_location, uri
    )
    result = register_export(
        client,
        registration_settings(cfg),
        base / cfg.paths.export,
        metrics,
        experiment_id=exp,
        sqlite_db=db,
        lock_url=cfg.registry.lock_url,
    )
    # Lineage in the same task: a retry re-finds the version by checkpoint hash and tags it, so
    # the task completes only with a fully tagged version.
    lineage = lineage_tags(base)
    for key, value in lineage.items():
        client.set_model_version_tag(result.name, result.version, key, value)
        if result.run_id:
            client.set_tag(result.run_id, key, value)
    return {**result.to_dict(), "lineage": lineage}


@task(
    name="promote", persist_result=True, cache_policy=NO_CACHE, retry_condition_fn=_retry_transient
)
def promote_task(cfg_json: dict[str, Any], uri: str, version: str) -> dict[str, Any]:
    """The challenger becomes champion when ``registry.policy`` passes (else ``refuse``)."""
    from skysense.config import config_from_dict
    from skysense.registry.promotion import promote

    cfg = config_from_dict(cfg_json)
    client, db = _client(uri)
    result = promote(
        client,
        cfg.registry.model_name,
        cfg.registry.policy,
        version=version,
        sqlite_db=db,
        what="prefect flow skysense-pipeline",
        lock_url=cfg.registry.lock_url,
    )
    return result.to_dict()


@task(
    name="registry-status",
    persist_result=True,
    cache_policy=NO_CACHE,
    retry_condition_fn=_retry_transient,
)
def status_task(uri: str, name: str) -> dict[str, Any]:
    """Aliases, versions and their key metrics; ``{}`` when the model is not registered yet."""
    from mlflow.exceptions import MlflowException

    from skysense.registry.status import registry_status

    client, _ = _client(uri)
    try:
        client.get_registered_model(name)
    except MlflowException:
        return {}
    return registry_status(client, name)


def _version_entry(status: dict[str, Any], version: str | None) -> dict[str, Any]:
    for entry in status.get("versions", []):
        if version is not None and str(entry.get("version")) == str(version):
            return entry
    return {}


def register_and_promote(
    root: Path, cfg: SkySenseConfig, promote: bool, options: dict[str, Any]
) -> dict[str, Any]:
    """Register, tag lineage, promote (unless already champion), publish artifacts.

    Returns:
        ``registered_version``, ``created``, ``promotion`` (the promotion result or a skip
        reason), ``champion_version``, ``champion_metrics``, ``links``, ``lineage``.
    """
    logger = get_run_logger()
    uri = tracking_uri(cfg, root)
    name = cfg.registry.model_name
    cfg_json = cfg.model_dump(mode="json")
    before = status_task.with_options(**options)(uri, name)
    old_champion = (before.get("aliases") or {}).get("champion")

    reg = register_task.with_options(**options)(str(root), cfg_json, uri)
    version = str(reg.get("version"))
    run_id = reg.get("run_id")
    lineage = reg.get("lineage", {})

    if not promote:
        promotion: dict[str, Any] = {"action": "skipped", "reason": "promotion disabled"}
    elif old_champion is not None and str(old_champion) == version:
        promotion = {"action": "skipped", "reason": f"v{version} is already the champion"}
    else:
        promotion = promote_task.with_options(**options)(cfg_json, uri, version)
        if str(promotion.get("champion")) == version and promotion.get("action") == "promote":
            # a Prefect event a deployment trigger (flows.alerts) can start predict with
            emit_promoted(name, version, uri)
    logger.info(
        "registered v%s (new: %s); promotion: %s",
        version,
        reg.get("created"),
        promotion.get("action"),
    )

    after = status_task.with_options(**options)(uri, name)
    champion = (after.get("aliases") or {}).get("champion")
    metrics = reporting.numeric_metrics(reporting.read_json(root / cfg.paths.eval / "metrics.json"))
    champ_before = _version_entry(before, old_champion).get("metrics") if old_champion else None
    create_markdown_artifact(
        key="metrics-vs-champion",
        markdown=reporting.metrics_table(metrics, champ_before, version, old_champion)
        + f"\n\nPromotion: **{promotion.get('action')}**",
        description="Evaluation metrics of the new version against the champion before this run",
    )
    links = {"model_version": reporting.model_version_link(uri, name, version)}
    create_link_artifact(
        key="mlflow-model-version",
        link=links["model_version"],
        link_text=f"{name} v{version}",
        description="Registered model version",
    )
    if run_id:
        experiment_id = _experiment_of(uri, run_id)
        if experiment_id is not None:
            links["run"] = reporting.run_link(uri, experiment_id, run_id)
            create_link_artifact(
                key="mlflow-run",
                link=links["run"],
                link_text=f"run {run_id}",
                description="MLflow run of this model",
            )
    champ_entry = _version_entry(after, champion)
    return {
        "registered_version": version,
        "created": bool(reg.get("created")),
        "run_id": run_id,
        "promotion": promotion,
        "champion_version": champion,
        "champion_metrics": champ_entry.get("metrics", {}),
        "aliases": after.get("aliases", {}),
        "links": links,
        "lineage": lineage,
        "tracking_uri": strip_credentials(uri),  # the summary is printed and persisted
    }


def _experiment_of(uri: str, run_id: str) -> str | None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return MlflowClient(tracking_uri=uri).get_run(run_id).info.experiment_id
    except MlflowException:
        return None
