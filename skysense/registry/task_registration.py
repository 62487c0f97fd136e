"""Registering a task model (``skysense finetune``'s export) as its own registered model.

The task model (``registry.task_model_name``, default ``skysense-landcover``) reuses the
encoder's machinery unchanged: the pyfunc logged as code (:mod:`skysense.registry.task_pyfunc`),
idempotent registration by checkpoint hash with repair (:func:`~skysense.registry.register.
register_pyfunc`), the ``challenger`` / ``champion`` aliases, promotion under the lock with its
history and rollback (:mod:`skysense.registry.promotion`), and its own policy
(``registry.task_policy``: ``miou`` decides, no ``iou.<class>`` drops by more than 0.05).

Lineage tags on each version: ``encoder_checkpoint_sha256`` (the encoder weights it started
from), ``encoder_version`` (that encoder's version in ``registry.model_name``, when registered),
``encoder_source``, ``label_version`` (the labels' DVC md5), ``label_set``, ``git_commit``,
``params_hash`` (the ``finetune`` settings), ``task``, ``classes``, ``training_run_id`` (the
fine-tuning run), ``metric.<key>`` for every ``metrics.json`` key. A task model is never promoted
while its encoder is not a version of ``registry.model_name``
(:func:`skysense.registry.task_lineage.encoder_requirement`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import skysense
from skysense.core.errors import RegistryError
from skysense.core.lineage import file_sha256, params_hash
from skysense.models.presets import resolve_spec
from skysense.models.task_model import TASK_FORMAT
from skysense.registry.export_registration import pip_requirements, read_export
from skysense.registry.pyfunc import input_example, model_inputs
from skysense.registry.register import (
    RegistrationResult,
    find_version_by_checkpoint,
    register_pyfunc,
)
from skysense.registry.signature import embedding_signature
from skysense.registry.task_lineage import ENCODER_SHA_TAG

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient

#: the pyfunc's code file (:mod:`skysense.registry.task_pyfunc_code`), by path: importing it
#: builds the model (MLflow "models from code"), which only the loading side should do
TASK_PYFUNC_CODE = Path(__file__).with_name("task_pyfunc_code.py")


def _card(
    name: str, config: dict[str, Any], lineage: dict[str, str], metrics: dict[str, float]
) -> str:
    classes = config.get("classes") or []
    colours = config.get("colours") or []
    lines = [
        f"# {name} ({config.get('task')}, {config['encoder'].get('preset')})",
        "",
        "SkySense task model: the pre-trained encoder plus a "
        + (
            "UperNet segmentation head"
            if config.get("task") == "segmentation"
            else "pooled classification head"
        )
        + f", fine-tuned on `{config.get('label_set')}`. `skysense predict` writes a uint8 "
        "class map "
        "(class names and colour table in the GeoTIFF, nodata 255).",
        "",
        "| class id | name | colour |",
        "|---:|---|---|",
        *(
            f"| {i} | {n} | {tuple(colours[i]) if i < len(colours) else ''} |"
            for i, n in enumerate(classes)
        ),
        "",
        "| metric | value |",
        "|---|---:|",
        *(f"| {k} | {v:.4f} |" for k, v in sorted(metrics.items())),
        "",
        "Lineage:",
        *(f"- {k}: `{v}`" for k, v in lineage.items()),
    ]
    return "\n".join(lines)


def register_task_export(
    client: MlflowClient,
    name: str,
    export_dir: str | Path,
    metrics: dict[str, float] | None = None,
    *,
    encoder_model_name: str,
    experiment_id: str | None = None,
    run_id: str | None = None,
    sqlite_db: Path | None = None,
    lock_url: str | None = None,
) -> RegistrationResult:
    """Log a task model export as a pyfunc and register it as the ``challenger`` of ``name``.

    Args:
        client: MLflow client of the tracking store and registry.
        name: ``registry.task_model_name``.
        export_dir: the task model export (``model.safetensors`` + ``config.json``).
        metrics: the fine-tuning's ``metrics.json``.
        encoder_model_name: ``registry.model_name``: where the encoder version is looked up.
        run_id: the fine-tuning's MLflow run (its ``summary.json``), logged into when in this
            store.
        experiment_id: else a new run in this experiment.
        sqlite_db: the SQLite database of the store, if any (else taken from the client's URI).
        lock_url: ``registry.lock_url`` for a server store (see :mod:`skysense.registry.lock`).

    Raises:
        RegistryError: not a task model export, or a file is missing.
    """
    export_dir = Path(export_dir)
    weights, config = read_export(export_dir)
    if config.get("format") != TASK_FORMAT:
        raise RegistryError(
            f"{export_dir / 'config.json'}: not a task model export ({config.get('format')!r}); "
            "register an encoder with `skysense register --export`, a task model with "
            "`skysense register --task-model` on the output of `skysense finetune`"
        )
    sha = file_sha256(weights)
    encoder = config["encoder"]
    spec = resolve_spec(encoder["preset"], **(encoder.get("overrides") or {}))
    encoder_sha = str((config.get("encoder_lineage") or {}).get("checkpoint_sha256") or "")
    encoder_mv = (
        find_version_by_checkpoint(client, encoder_model_name, encoder_sha) if encoder_sha else None
    )
    lineage = {
        ENCODER_SHA_TAG: encoder_sha,
        "encoder_version": "" if encoder_mv is None else str(encoder_mv.version),
        "encoder_model": encoder_model_name,
        "encoder_source": str(config.get("encoder_source") or ""),
        "label_set": str(config.get("label_set") or ""),
        "label_version": str(config.get("label_version") or "unknown"),
        "data_version": str(config.get("label_version") or "unknown"),
        "git_commit": str(config.get("git_commit") or "unknown"),
        "params_hash": params_hash(config.get("finetune") or {}),
        "export_config_sha256": file_sha256(export_dir / "config.json"),
        "preset": str(encoder["preset"]),
        "task": str(config.get("task")),
        "classes": json.dumps(config.get("classes") or []),
        "training_run_id": run_id or "",
    }
    mods = list(config["modalities"])
    return register_pyfunc(
        client,
        name,
        python_model=str(TASK_PYFUNC_CODE),
        checkpoint_sha256=sha,
        artifacts={"export": str(export_dir)},
        signature=embedding_signature(
            model_inputs(spec, mods), len(config["classes"]), output="probabilities"
        ),
        input_example=input_example(spec, mods),
        pip_requirements=pip_requirements(),
        code_paths=[str(Path(skysense.__file__).parent)],
        tags=lineage,
        metrics=metrics,
        description=_card(name, config, lineage, metrics or {}),
        run_id=run_id,
        experiment_id=experiment_id,
        sqlite_db=sqlite_db,
        lock_url=lock_url,
        model_description="SkySense task model (fine-tuned encoder + head)",
    )
