"""Register the evaluated export in MLflow, tag its DVC lineage, and try to promote it.

Runs the ``skysense register`` / ``skysense promote`` / ``skysense registry status`` commands
(``--json``) so the flow and the CLI share one code path; registration is idempotent by checkpoint
hash (a second run of an unchanged pipeline registers no new version) and runs under the
registry's promotion lock, so nothing is half-registered. Publishes Prefect artifacts: metrics
against the champion, and links to the MLflow run and model version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows import reporting, stages
from skysense.config import SkySenseConfig
from skysense.dvc_lineage import lineage_tags


def _retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except stages.TransientStageError:
        return True
    except Exception:  # noqa: BLE001 - not transient
        return False
    return False


def tracking_uri(cfg: SkySenseConfig, root: Path) -> str:
    """The tracking URI the stage commands use from ``root`` (env var wins, as in the CLI)."""
    import os

    uri = os.environ.get("MLFLOW_TRACKING_URI") or cfg.registry.tracking_uri
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + str((root / uri[len("sqlite:///"):]).resolve())
    return uri


def _cli(params_file: Path, *args: str) -> list[str]:
    argv = [stages.skysense_bin(), *args, "--json"]
    if params_file.exists():
        argv += ["--params", str(params_file)]
    return argv


@task(name="register", persist_result=True, cache_policy=NO_CACHE, retry_condition_fn=_retry_transient)
def register_task(root: str, params_file: str) -> dict[str, Any]:
    """``skysense register``: the export as a new ``challenger`` version (or the existing one)."""
    return stages.run_json_command("register", _cli(Path(params_file), "register"), root)


@task(name="lineage-tags", persist_result=True, cache_policy=NO_CACHE, retry_condition_fn=_retry_transient)
def tag_lineage_task(root: str, uri: str, name: str, version: str, run_id: str | None) -> dict[str, str]:
    """Put the DVC md5 of the data and checkpoint on the model version and its run."""
    from mlflow import MlflowClient

    tags = lineage_tags(root)
    if not tags:
        return {}
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
        if run_id:
            client.set_tag(run_id, key, value)
    return tags


@task(name="promote", persist_result=True, cache_policy=NO_CACHE, retry_condition_fn=_retry_transient)
def promote_task(root: str, params_file: str) -> dict[str, Any]:
    """``skysense promote``: the challenger becomes champion when the policy passes."""
    return stages.run_json_command("promote", _cli(Path(params_file), "promote"), root)


@task(name="registry-status", persist_result=True, cache_policy=NO_CACHE, retry_condition_fn=_retry_transient)
def status_task(root: str, params_file: str) -> dict[str, Any]:
    """``skysense registry status``: aliases, versions and their key metrics."""
    return stages.run_json_command("registry status", _cli(Path(params_file), "registry", "status"), root)


def _version_entry(status: dict[str, Any], version: str | None) -> dict[str, Any]:
    for entry in status.get("versions", []):
        if version is not None and str(entry.get("version")) == str(version):
            return entry
    return {}


def register_and_promote(root: Path, params_file: Path, cfg: SkySenseConfig, promote: bool,
                         options: dict[str, Any]) -> dict[str, Any]:
    """Register, tag lineage, promote (unless already champion), publish artifacts.

    Returns:
        ``registered_version``, ``created``, ``promotion`` (the promote command's JSON or a
        skip reason), ``champion_version``, ``champion_metrics``, ``links``, ``lineage``.
    """
    logger = get_run_logger()
    uri = tracking_uri(cfg, root)
    name = cfg.registry.model_name
    before = status_task.with_options(**options)(str(root), str(params_file)) if _has_model(uri, name) else {}
    old_champion = (before.get("aliases") or {}).get("champion")

    reg = register_task.with_options(**options)(str(root), str(params_file))
    version = str(reg.get("version"))
    run_id = reg.get("run_id")
    lineage = tag_lineage_task.with_options(**options)(str(root), uri, name, version, run_id)

    if not promote:
        promotion: dict[str, Any] = {"action": "skipped", "reason": "promotion disabled"}
    elif old_champion is not None and str(old_champion) == version:
        promotion = {"action": "skipped", "reason": f"v{version} is already the champion"}
    else:
        promotion = promote_task.with_options(**options)(str(root), str(params_file))
    logger.info("registered v%s (new: %s); promotion: %s", version, reg.get("created"), promotion.get("action"))

    after = status_task.with_options(**options)(str(root), str(params_file))
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
    create_link_artifact(key="mlflow-model-version", link=links["model_version"],
                         link_text=f"{name} v{version}", description="Registered model version")
    if run_id:
        experiment_id = _experiment_of(uri, run_id)
        if experiment_id is not None:
            links["run"] = reporting.run_link(uri, experiment_id, run_id)
            create_link_artifact(key="mlflow-run", link=links["run"], link_text=f"run {run_id}",
                                 description="MLflow run of this model")
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
        "tracking_uri": uri,
    }


def _has_model(uri: str, name: str) -> bool:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        MlflowClient(tracking_uri=uri, registry_uri=uri).get_registered_model(name)
    except MlflowException:
        return False
    return True


def _experiment_of(uri: str, run_id: str) -> str | None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return MlflowClient(tracking_uri=uri).get_run(run_id).info.experiment_id
    except MlflowException:
        return None
