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
from skysense.registry.pyfunc import model_inputs

if TYPE_CHECKING:  # pragma: no cover
    import torch
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

    model: torch.nn.Module
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
    from mlflow import MlflowClient
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    client = client or MlflowClient()
    mv = resolve_version(client, model_uri)
    source = f"models:/{mv.name}/{mv.version}"
    repo = get_artifact_repository(
        source,
        tracking_uri=client.tracking_uri,
        registry_uri=getattr(client, "_registry_uri", None),
    )
    with tempfile.TemporaryDirectory(prefix="skysense-model-") as tmp:
        export_dir = Path(repo.download_artifacts(EXPORT_ARTIFACT, tmp))
        mlmodel = Path(repo.download_artifacts("MLmodel", tmp))
        verify_export(export_dir, mv)
        model, config = load_exported(export_dir, device=resolved_device)
        names = _input_names(mlmodel, model.spec)
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
    import torch

    encoder = load_encoder(model_uri, device, client)
    names = encoder.input_names
    stats = encoder.config.get("stats")

    def embed(arrays: dict[str, np.ndarray]) -> np.ndarray:
        batch = len(arrays["lat"]) if "lat" in arrays else 1
        full = {n: arrays[n] if n in arrays else empty_modality(n, batch) for n in names}
        model_batch = arrays_to_batch(full, stats, encoder.device)
        with torch.inference_mode():
            emb = encoder.model.embed(model_batch)
        return emb.float().cpu().numpy()

    return embed, names
