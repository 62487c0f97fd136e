"""Registering a training export (``model.safetensors`` + ``config.json``) as a pyfunc version.

The pyfunc is logged as code (:mod:`skysense.registry.pyfunc_code`, MLflow "models from code"):
no pickled object is stored, and the version's ``checkpoint_sha256`` / ``export_config_sha256``
tags let a consumer verify the two files it downloads (``skysense predict`` does, see
:mod:`skysense.registry.model_loading`).
"""

from __future__ import annotations

import json
import tempfile
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import skysense
from skysense.core.errors import RegistryError
from skysense.core.lineage import file_sha256, params_hash
from skysense.models.presets import resolve_spec
from skysense.registry import pyfunc_code
from skysense.registry.model_card import render_model_card
from skysense.registry.onnx_artifact import ONNX_ARTIFACT, export_registered_onnx
from skysense.registry.pyfunc import input_example, model_inputs
from skysense.registry.register import RegistrationResult, register_pyfunc
from skysense.registry.settings import RegistrationSettings
from skysense.registry.signature import embedding_signature

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient


def pip_requirements() -> list[str]:
    """The short, explicit list the pyfunc needs at load time (the code travels with it)."""
    out = []
    for dist, name in (
        ("torch", "torch"),
        ("safetensors", "safetensors"),
        ("numpy", "numpy"),
        ("pydantic", "pydantic"),
        ("PyYAML", "pyyaml"),
        ("mlflow", "mlflow"),
    ):
        version = metadata.version(dist).split("+")[0]
        out.append(f"{name}=={version}")
    return out


def training_run_id(export_dir: Path, config: dict[str, Any]) -> str | None:
    """The training run's MLflow id: the export config's ``mlflow_run_id`` (written by the run
    that made the export), else ``run.json`` in the export or beside it (``OUT/run.json``).

    The config comes first: the export is its own folder (``checkpoints/export`` beside
    ``checkpoints/deepspeed``), and a ``run.json`` beside it may be another run's.
    """
    recorded = config.get("mlflow_run_id") or config.get("run_id")
    if recorded:
        return str(recorded)
    for folder in (export_dir, export_dir.parent):
        path = folder / "run.json"
        if path.is_file():
            run = json.loads(path.read_text()).get("run_id")
            if run:
                return str(run)
    return None


def read_export(export_dir: str | Path) -> tuple[Path, dict[str, Any]]:
    """``(weights path, config dict)`` of an export folder.

    Raises:
        RegistryError: a file is missing.
    """
    export_dir = Path(export_dir)
    weights, cfg_file = export_dir / "model.safetensors", export_dir / "config.json"
    for path in (weights, cfg_file):
        if not path.is_file():
            raise RegistryError(
                f"{path} is missing; run `skysense train` (it exports) or pass --export"
            )
    return weights, json.loads(cfg_file.read_text())


def register_export(
    client: MlflowClient,
    target: RegistrationSettings,
    export_dir: str | Path,
    metrics: dict[str, float] | None = None,
    *,
    experiment_id: str | None = None,
    sqlite_db: Path | None = None,
    training_summary: dict[str, Any] | None = None,
    lock_url: str | None = None,
) -> RegistrationResult:
    """Log the export as a :class:`~skysense.registry.pyfunc.SkySenseEmbedder` and register it.

    Tags: ``data_version``, ``git_commit``, ``params_hash``, ``checkpoint_sha256``,
    ``export_config_sha256``, ``preset``, ``training_run_id`` and ``metric.<name>`` for every
    evaluation metric; the model card is the version description; alias ``challenger``.
    Idempotent by checkpoint hash; a version a crashed run left half registered is repaired.
    ``lock_url``: ``registry.lock_url`` for a server store (:mod:`skysense.registry.lock`).
    With ``target.onnx`` the encoder is also logged as ONNX (artifact ``onnx/encoder.onnx``,
    :mod:`skysense.registry.onnx_artifact`).
    """
    export_dir = Path(export_dir)
    weights, config = read_export(export_dir)
    sha = file_sha256(weights)
    spec = resolve_spec(config["preset"], **(config.get("overrides") or {}))
    run_id = training_run_id(export_dir, config)
    lineage = {
        "data_version": str(config.get("data_version") or "unknown"),
        "git_commit": str(config.get("git_commit") or "unknown"),
        "params_hash": params_hash(target.params),
        "checkpoint_sha256": sha,
        "export_config_sha256": file_sha256(export_dir / "config.json"),
        "preset": str(config["preset"]),
        "training_run_id": run_id or "",
    }
    training = {
        "step": config.get("step"),
        "n_parameters": config.get("n_parameters"),
        "training run": run_id,
        **(training_summary or {}),
    }
    card = render_model_card(
        target.model_name, config["preset"], lineage, training, metrics or {}, config.get("spec")
    )
    inputs = model_inputs(spec, list(target.modalities))
    with tempfile.TemporaryDirectory(prefix="skysense-onnx-") as tmp:
        artifacts = {"export": str(export_dir)}
        if target.onnx:
            # MLflow stores a folder artifact under the folder's own name: call it onnx/
            onnx_dir = export_registered_onnx(export_dir, Path(tmp) / ONNX_ARTIFACT)
            artifacts[ONNX_ARTIFACT] = str(onnx_dir)
        return register_pyfunc(
            client,
            target.model_name,
            python_model=str(Path(pyfunc_code.__file__)),
            checkpoint_sha256=sha,
            artifacts=artifacts,
            signature=embedding_signature(inputs, spec.embed_dim),
            input_example=input_example(spec, list(target.modalities)),
            pip_requirements=pip_requirements(),
            code_paths=[str(Path(skysense.__file__).parent)],
            tags={k: v for k, v in lineage.items() if k != "checkpoint_sha256"},
            metrics=metrics,
            description=card,
            run_id=run_id,
            experiment_id=experiment_id,
            sqlite_db=sqlite_db,
            lock_url=lock_url,
        )
