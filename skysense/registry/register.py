"""Logging a pyfunc model to MLflow and registering it as a new ``challenger`` version.

Registration is idempotent and repairs what a crashed run left half done: a version whose
``checkpoint_sha256`` tag equals the checkpoint's hash is not registered again, but its missing
tags, its empty description and the ``challenger`` alias (when it points at an older version, or
nowhere) are set, so a run killed after the version was created and before the alias was moved
leaves no stale challenger behind. Registration runs under the model's promotion lock (two
concurrent registrations of one checkpoint make one version), and every write re-checks it.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skysense.core.credentials import strip_credentials
from skysense.core.errors import RegistryError
from skysense.registry.lock import PromotionLock
from skysense.registry.policy import METRIC_TAG_PREFIX
from skysense.registry.promotion import CHALLENGER, alias_version

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.pyfunc import PythonModel

CHECKPOINT_TAG = "checkpoint_sha256"


@dataclass
class RegistrationResult:
    """The version that holds the checkpoint, whether this call created it, what it repaired
    on an existing version, and where ``challenger`` points afterwards.
    """

    name: str
    version: str
    created: bool
    model_uri: str
    run_id: str | None
    checkpoint_sha256: str
    repaired: list[str] = field(default_factory=list)
    challenger: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__)


def find_version_by_checkpoint(client: MlflowClient, name: str, sha256: str) -> ModelVersion | None:
    """The (oldest) version of ``name`` tagged with checkpoint hash ``sha256``, if any."""
    found = client.search_model_versions(
        filter_string=f"name = '{name}' and tags.{CHECKPOINT_TAG} = '{sha256}'"
    )
    if not found:
        return None
    return min(found, key=lambda mv: int(mv.version))


def ensure_registered_model(client: MlflowClient, name: str, description: str = "") -> None:
    """Create registered model ``name`` when it does not exist yet."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
        return
    except MlflowException:
        pass
    try:
        client.create_registered_model(name, description=description or None)
    except MlflowException as exc:
        if "already exists" not in str(exc).lower() and "RESOURCE_ALREADY_EXISTS" not in str(exc):
            raise


def metric_tags(metrics: dict[str, float]) -> dict[str, str]:
    """Evaluation metrics as ``metric.<name>`` version tags (6 significant digits)."""
    return {f"{METRIC_TAG_PREFIX}{k}": f"{float(v):.6g}" for k, v in metrics.items()}


def repair_version(
    client: MlflowClient,
    name: str,
    existing: ModelVersion,
    tags: dict[str, str],
    description: str,
    set_challenger: bool,
    lock: PromotionLock,
) -> list[str]:
    """Complete a version that a crashed registration left without tags, description or alias.

    Tags that are missing are set (values already recorded are kept: they are what the version
    was registered and judged with); an empty description gets ``description``; ``challenger``
    moves to the version when it is unset or points at an older version (never backwards).

    Returns:
        What was repaired, e.g. ``["tag metric.linear_acc", "description", "alias challenger"]``.
    """
    version = str(existing.version)
    repaired: list[str] = []
    for key, value in tags.items():
        if key not in existing.tags:
            lock.ensure_held()
            client.set_model_version_tag(name, version, key, value)
            repaired.append(f"tag {key}")
    if description and not (existing.description or "").strip():
        lock.ensure_held()
        client.update_model_version(name, version, description=description)
        repaired.append("description")
    if set_challenger:
        current = alias_version(client, name, CHALLENGER)
        if current is None or int(current.version) < int(version):
            lock.ensure_held()
            client.set_registered_model_alias(name, CHALLENGER, version)
            repaired.append(f"alias {CHALLENGER}")
    return repaired


def _named_artifacts(artifacts: dict[str, str] | None, staging: Path) -> dict[str, str] | None:
    """The artifacts under their keys' names: MLflow stores a folder under its own base name
    (``artifacts/<name>``), and readers look for ``artifacts/<key>`` (e.g. ``artifacts/export``),
    so a folder named otherwise (``checkpoints/task_model``) is linked or copied as ``<key>``.
    """
    if not artifacts:
        return artifacts
    named = {}
    for key, path in artifacts.items():
        source = Path(path)
        if source.name == key:
            named[key] = str(source)
            continue
        target = staging / key
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
        named[key] = str(target)
    return named


def register_pyfunc(
    client: MlflowClient,
    name: str,
    *,
    python_model: PythonModel | str,
    checkpoint_sha256: str,
    artifacts: dict[str, str] | None = None,
    signature: Any = None,
    input_example: Any = None,
    pip_requirements: list[str] | None = None,
    code_paths: list[str] | None = None,
    tags: dict[str, str] | None = None,
    metrics: dict[str, float] | None = None,
    description: str = "",
    run_id: str | None = None,
    experiment_id: str | None = None,
    sqlite_db: Path | None = None,
    set_challenger: bool = True,
    lock_url: str | None = None,
    model_description: str = "SkySense multi-modal remote-sensing encoder",
) -> RegistrationResult:
    """Log ``python_model`` to MLflow and register it as a new version of ``name``.

    Args:
        client: MLflow client of the tracking store and registry.
        name: registered model name (``registry.model_name``).
        python_model: the pyfunc model, or the path of its code file (MLflow "models from
            code": nothing is pickled).
        checkpoint_sha256: hash of the weights; a version with this tag already is returned
            (and repaired: see :func:`repair_version`).
        artifacts: files the pyfunc needs (``{key: local path}``).
        signature: the model signature (as ``mlflow.pyfunc.log_model``).
        input_example: an input example (as ``mlflow.pyfunc.log_model``).
        pip_requirements: the pyfunc's requirements (as ``mlflow.pyfunc.log_model``).
        code_paths: code shipped with the model (as ``mlflow.pyfunc.log_model``).
        tags: lineage tags for the version (data version, git commit, params hash, ...).
        metrics: evaluation metrics, stored as ``metric.<name>`` tags.
        description: the version description (the model card, Markdown).
        run_id: log into this existing run (the training run) when it is in this store.
        experiment_id: else a new run in this experiment.
        sqlite_db: the SQLite database of the store, if any (else taken from the client's URI).
        set_challenger: point the ``challenger`` alias at the new version.
        lock_url: ``registry.lock_url`` for a server store (see :mod:`skysense.registry.lock`).
        model_description: the registered model's description when this creates it.

    Returns:
        The registration result (``created`` False when the checkpoint was registered already;
        ``repaired`` lists what was completed on that version).
    """
    import mlflow

    ensure_registered_model(client, name, model_description)
    all_tags = {
        **{k: strip_credentials(str(v)) for k, v in (tags or {}).items()},
        **metric_tags(metrics or {}),
        CHECKPOINT_TAG: checkpoint_sha256,
    }
    with PromotionLock(client, name, sqlite_db, lock_url=lock_url) as lock:
        existing = find_version_by_checkpoint(client, name, checkpoint_sha256)
        if existing is not None:
            repaired = repair_version(
                client, name, existing, all_tags, description, set_challenger, lock
            )
            challenger = alias_version(client, name, CHALLENGER)
            return RegistrationResult(
                name,
                str(existing.version),
                False,
                f"models:/{name}/{existing.version}",
                existing.run_id,
                checkpoint_sha256,
                repaired,
                None if challenger is None else str(challenger.version),
            )
        if run_id is not None:
            try:
                client.get_run(run_id)
            except Exception:  # noqa: BLE001 - the training run lives in another store
                run_id = None
        run_kwargs: dict[str, Any] = (
            {"run_id": run_id}
            if run_id
            else {"experiment_id": experiment_id, "run_name": f"register-{checkpoint_sha256[:8]}"}
        )
        lock.ensure_held()
        with (
            tempfile.TemporaryDirectory(prefix="skysense-artifacts-") as staging,
            mlflow.start_run(**run_kwargs) as run,
        ):
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=python_model,
                artifacts=_named_artifacts(artifacts, Path(staging)),
                signature=signature,
                input_example=input_example,
                pip_requirements=pip_requirements,
                code_paths=code_paths,
            )
            if metrics:  # on the run, and on the logged model (its page lists them)
                mlflow.log_metrics(
                    {f"eval_{k}": float(v) for k, v in metrics.items()}, model_id=info.model_id
                )
            mlflow.set_tags(
                {f"registry.{k}": strip_credentials(str(v)) for k, v in (tags or {}).items()}
            )
            used_run = run.info.run_id
        lock.ensure_held()
        mv = mlflow.register_model(info.model_uri, name, tags=all_tags)
        version = str(mv.version)
        # A crash from here on leaves a version without description or alias: the next
        # registration of this checkpoint finds it by its tag and repairs it (repair_version).
        if description:
            lock.ensure_held()
            client.update_model_version(name, version, description=description)
        if set_challenger:
            lock.ensure_held()
            client.set_registered_model_alias(name, CHALLENGER, version)
        got = client.get_model_version(name, version)
        if got.tags.get(CHECKPOINT_TAG) != checkpoint_sha256:
            raise RegistryError(
                f"{name} v{version}: checkpoint tag did not persist; check the store"
            )
        challenger = alias_version(client, name, CHALLENGER)
    return RegistrationResult(
        name,
        version,
        True,
        f"models:/{name}/{version}",
        used_run,
        checkpoint_sha256,
        [],
        None if challenger is None else str(challenger.version),
    )
