"""The encoder ``skysense predict`` runs: verified safetensors from the registry, never a pickle.

``--model`` takes:

- ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``: the alias is resolved to one version, and
  only that version's ``export`` artifact (``model.safetensors`` + ``config.json``) and its
  ``MLmodel`` (YAML, for the input names) are downloaded, into a temporary folder. The weights'
  SHA-256 must equal the version's ``checkpoint_sha256`` tag, and ``config.json``'s its
  ``export_config_sha256`` tag when the version has one (versions registered before that tag
  existed are loaded with a warning); a mismatch is a :class:`ModelIntegrityError` and nothing
  is loaded. The weights are read with safetensors into the installed ``skysense`` model: no
  cloudpickle, no ``torch.load``, and no code from the artifact store runs.
- a local export folder (``OUT/export`` of ``skysense train``): the user's own files, loaded as
  they are.

A task model (``skysense finetune``; :func:`task_model_predictor`) is loaded the same way:
its ``export`` artifact verified, then read with safetensors.

Anything else (``runs:/``, ``s3://``, a pyfunc folder) is refused with a
:class:`ModelSourceError`: those would be loaded through MLflow's pyfunc machinery.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from skysense.core.contract import empty_modality
from skysense.core.errors import RegistryError
from skysense.core.lineage import file_sha256
from skysense.models.batch import arrays_to_batch, resolve_device
from skysense.models.export_format import load_exported
from skysense.models.skysense import SkySense
from skysense.models.task_model import is_task_export, load_task_model
from skysense.registry.pyfunc import model_inputs

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

EmbedFn = Callable[[dict[str, np.ndarray]], np.ndarray]
CHECKPOINT_TAG = "checkpoint_sha256"
CONFIG_TAG = "export_config_sha256"
EXPORT_ARTIFACT = "artifacts/export"  # where the pyfunc keeps its ``export`` artifact
ALL_MODALITIES = ["s2", "s1", "hr", "dem"]
_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))/?$")

logger = logging.getLogger(__name__)


class ModelIntegrityError(RegistryError):
    """A registered model's downloaded files do not match the hashes its version records."""


class ModelSourceError(RegistryError):
    """A ``--model`` value that predict does not load (not a registered version or an export)."""


@dataclass
class VerifiedEncoder:
    """An encoder ready to embed, and where it came from.

    Attributes:
        model: the SkySense encoder, in eval mode on ``device``.
        config: the export's ``config.json`` (preset, overrides, normalisation ``stats``).
        source: ``models:/NAME/VERSION`` or the export folder.
        version: the registered version, ``None`` for a local export.
        input_names: the inputs the model was registered with (missing ones are sent empty).
        device: ``cpu`` or ``cuda``.
    """

    model: SkySense
    config: dict[str, Any]
    source: str
    version: str | None
    input_names: list[str]
    device: str


def parse_models_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``(name, alias, version)`` of ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``.

    Raises:
        ModelSourceError: ``uri`` is not of either form.
    """
    match = _MODELS_URI.match(uri)
    if match is None:
        raise ModelSourceError(
            f"--model {uri!r}: predict loads a registered version (models:/NAME@champion, "
            "models:/NAME/3) or a local export folder (OUT/export with model.safetensors and "
            "config.json)"
        )
    return match.group("name"), match.group("alias"), match.group("version")


def resolve_version(client: MlflowClient, uri: str) -> ModelVersion:
    """The model version behind ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``.

    Raises:
        RegistryError: unknown model, alias or version.
    """
    from mlflow.exceptions import MlflowException

    name, alias, version = parse_models_uri(uri)
    try:
        if alias is not None:
            return client.get_model_version_by_alias(name, alias)
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        raise RegistryError(
            f"{uri}: no such registered model version ({exc.message.splitlines()[0][:200]}); "
            "see `skysense registry status`"
        ) from None


def verify_export(export_dir: Path, mv: ModelVersion) -> None:
    """Check the downloaded export against the hashes recorded on version ``mv``.

    Raises:
        ModelIntegrityError: the version records no checkpoint hash, or a file's hash differs.
    """
    label = f"{mv.name} v{mv.version}"
    expected = mv.tags.get(CHECKPOINT_TAG)
    if not expected:
        raise ModelIntegrityError(
            f"{label} has no {CHECKPOINT_TAG} tag, so its weights cannot be verified; "
            "register the export again with `skysense register`"
        )
    checks = [("model.safetensors", expected, CHECKPOINT_TAG)]
    if mv.tags.get(CONFIG_TAG):
        checks.append(("config.json", mv.tags[CONFIG_TAG], CONFIG_TAG))
    else:
        logger.warning(
            "%s has no %s tag (registered before it existed): config.json is not verified",
            label,
            CONFIG_TAG,
        )
    for file_name, want, tag in checks:
        path = export_dir / file_name
        if not path.is_file():
            raise ModelIntegrityError(
                f"{label}: its artifact {EXPORT_ARTIFACT}/{file_name} is missing in the artifact "
                "store; register the export again"
            )
        got = file_sha256(path)
        if got != want:
            raise ModelIntegrityError(
                f"{label}: {EXPORT_ARTIFACT}/{file_name} in the artifact store has SHA-256 "
                f"{got[:16]}..., but the version's {tag} tag records {want[:16]}...: the file "
                "was changed after registration; it was not loaded. Restore it from the "
                "training export (DVC) or register the export again, and check who can write "
                "to the artifact store"
            )


def _input_names(mlmodel_file: Path, spec: Any) -> list[str]:
    """Input names of the registered signature (MLmodel YAML), else those of the preset."""
    from mlflow.models import Model

    signature = Model.load(str(mlmodel_file)).signature if mlmodel_file.is_file() else None
    schema = signature.inputs if signature is not None else None
    if schema is not None and schema.has_input_names():
        return list(schema.input_names())
    return model_inputs(spec, ALL_MODALITIES)


def download_verified_export(
    model_uri: str, dest: Path, client: MlflowClient | None = None
) -> tuple[Path, ModelVersion]:
    """Download the ``export`` artifact (and ``MLmodel``) of ``models:/NAME@ALIAS`` or
    ``models:/NAME/VERSION`` into ``dest`` and verify it against the version's hash tags.

    Used for the encoder (predict, fine-tuning from the registry) and for task models alike.

    Returns:
        ``(dest/export, model version)``.

    Raises:
        ModelSourceError: not a ``models:/`` URI.
        ModelIntegrityError: a downloaded file does not match the version's hash.
        RegistryError: unknown model, alias or version.
    """
    from mlflow import MlflowClient
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    parse_models_uri(model_uri)
    client = client or MlflowClient()
    mv = resolve_version(client, model_uri)
    repo = get_artifact_repository(
        f"models:/{mv.name}/{mv.version}",
        tracking_uri=client.tracking_uri,
        registry_uri=getattr(client, "_registry_uri", None),
    )
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    export_dir = Path(repo.download_artifacts(EXPORT_ARTIFACT, str(dest)))
    repo.download_artifacts("MLmodel", str(dest))
    verify_export(export_dir, mv)
    return export_dir, mv


def load_encoder(
    model_uri: str, device: str = "auto", client: MlflowClient | None = None
) -> VerifiedEncoder:
    """Load the encoder of ``model_uri`` (see the module docstring) on ``device``.

    Args:
        model_uri: ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or an export folder.
        device: ``auto``, ``cpu`` or ``cuda``.
        client: MLflow client of the registry (default: one on the current tracking URI).

    Raises:
        ModelSourceError: ``model_uri`` is of another kind.
        ModelIntegrityError: a downloaded file does not match the version's hash.
        RegistryError: unknown model, alias or version.
    """
    resolved_device = resolve_device(device)
    local = Path(model_uri)
    if not model_uri.startswith("models:/"):
        if (local / "model.safetensors").is_file() and (local / "config.json").is_file():
            model, config = load_exported(local, device=resolved_device)
            return VerifiedEncoder(
                model,
                config,
                str(local),
                None,
                model_inputs(model.spec, ALL_MODALITIES),
                resolved_device,
            )
        parse_models_uri(model_uri)  # raises ModelSourceError with the accepted forms
    with tempfile.TemporaryDirectory(prefix="skysense-model-") as tmp:
        export_dir, mv = download_verified_export(model_uri, Path(tmp), client)
        source = f"models:/{mv.name}/{mv.version}"
        model, config = load_exported(export_dir, device=resolved_device)
        names = _input_names(Path(tmp) / "MLmodel", model.spec)
    logger.info("loaded %s (verified %s) on %s", source, CHECKPOINT_TAG, resolved_device)
    return VerifiedEncoder(model, config, source, str(mv.version), names, resolved_device)


def encoder_embedder(
    model_uri: str, device: str = "auto", client: MlflowClient | None = None
) -> tuple[EmbedFn, list[str]]:
    """:func:`load_encoder` as an embedding function for
    :func:`~skysense.inference.predict.predict_scene`.

    Returns:
        ``(fn, input_names)``: ``fn(arrays) -> B x D x H x W`` float32 (physical-unit arrays in,
        normalised with the export's ``stats``; inputs the model takes but ``arrays`` lacks are
        sent empty).
    """
    encoder = load_encoder(model_uri, device, client)
    return embedder_of(encoder), encoder.input_names


def embedder_of(encoder: VerifiedEncoder) -> EmbedFn:
    """The embedding function of a loaded encoder: ``fn(arrays) -> B x D x H x W`` float32
    (physical-unit arrays in, normalised with the export's ``stats``; inputs the model takes but
    ``arrays`` lacks are sent empty).
    """
    import torch

    names = encoder.input_names
    stats = encoder.config.get("stats")

    def embed(arrays: dict[str, np.ndarray]) -> np.ndarray:
        batch = len(arrays["lat"]) if "lat" in arrays else 1
        full = {n: arrays[n] if n in arrays else empty_modality(n, batch) for n in names}
        model_batch = arrays_to_batch(full, stats, encoder.device)
        with torch.inference_mode():
            emb = encoder.model.embed(model_batch)
        return emb.float().cpu().numpy()

    return embed


def is_task_model(model_uri: str, client: MlflowClient | None = None) -> bool:
    """True when ``model_uri`` (a ``models:/`` URI or an export folder) is a task model, which
    ``skysense predict`` serves as a class map: a folder whose ``config.json`` is a task model's,
    or a version tagged with a ``task`` (set by :mod:`skysense.registry.task_registration`).
    """
    if not model_uri.startswith("models:/"):
        return is_task_export(model_uri)
    from mlflow import MlflowClient

    return bool(resolve_version(client or MlflowClient(), model_uri).tags.get("task"))


def task_model_predictor(
    model_uri: str, device: str = "auto", client: MlflowClient | None = None
) -> tuple[EmbedFn, dict[str, Any]]:
    """A task model (``models:/...`` verified as the encoder is, or an export folder) as a
    function for :func:`~skysense.inference.predict.predict_scene`.

    Returns:
        ``(fn, config)``: ``fn(arrays) -> B x K x H x W`` float32 class probabilities (a scene
        classifier's ``B x K`` spread over the window), and the export's ``config.json``
        (``classes``, ``colours``, ``task``, ...).

    Raises:
        ModelIntegrityError: a downloaded file does not match the version's hash.
        ExportError: not a task model export.
    """
    import torch

    resolved_device = resolve_device(device)
    if model_uri.startswith("models:/"):
        with tempfile.TemporaryDirectory(prefix="skysense-task-") as tmp:
            export_dir, mv = download_verified_export(model_uri, Path(tmp), client)
            model, config = load_task_model(export_dir, device=resolved_device)
        logger.info("loaded task model %s v%s (verified)", mv.name, mv.version)
    else:
        model, config = load_task_model(model_uri, device=resolved_device)
    names = model_inputs(model.encoder.spec, list(config["modalities"]))
    stats = config["encoder"].get("stats")

    def predict(arrays: dict[str, np.ndarray]) -> np.ndarray:
        batch = len(arrays["lat"]) if "lat" in arrays else 1
        full = {n: arrays[n] if n in arrays else empty_modality(n, batch) for n in names}
        model_batch = arrays_to_batch(full, stats, resolved_device)
        with torch.inference_mode():
            proba = model.predict_proba(model_batch).float()
        if proba.ndim == 2:  # a scene classifier: one class per window
            side = next(v for k, v in full.items() if k in ("s2", "s1") and v.size).shape[-1]
            proba = proba[:, :, None, None].expand(-1, -1, side, side)
        return proba.cpu().numpy()

    return predict, config


def resolved_source(model_uri: str, client: MlflowClient | None = None) -> tuple[str, str | None]:
    """``(source, version)`` of ``model_uri``: ``models:/NAME/VERSION`` and its version for a
    registered model (an alias resolved now), or the export folder and ``None``.
    """
    if not model_uri.startswith("models:/"):
        return str(Path(model_uri)), None
    from mlflow import MlflowClient

    mv = resolve_version(client or MlflowClient(), model_uri)
    return f"models:/{mv.name}/{mv.version}", str(mv.version)
