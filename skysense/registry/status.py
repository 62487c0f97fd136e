"""What the registry holds for one model: versions, aliases, key metrics, lineage, history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from skysense.core.credentials import strip_credentials
from skysense.core.errors import RegistryError
from skysense.registry.model_card import KEY_METRICS
from skysense.registry.policy import metrics_from_tags
from skysense.registry.promotion import read_history

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient


_STAT_SUFFIXES = ("_random_std", "_gain_std", "_random", "_gain", "_std")


def _key_metric(name: str) -> bool:
    """A key metric (:data:`KEY_METRICS`), its twin, gain and spread, with all labels or ``k``
    labels per class (``k5_linear_acc_gain``): what the summary's pre-trained vs twin table shows.
    """
    head, _, rest = name.partition("_")
    if head.startswith("k") and head[1:].isdigit():
        name = rest
    for suffix in _STAT_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name in KEY_METRICS


def registry_status(client: MlflowClient, name: str) -> dict[str, Any]:
    """The registered model ``name`` as a JSON-ready dict.

    Returns:
        ``{"name", "aliases": {alias: version}, "versions": [...newest first], "history": [...]}``;
        each version has ``version``, ``aliases``, ``created``, ``metrics`` (key ones, with
        their twin, gain and spread, also per label budget ``k<k>_``),
        ``data_version``, ``git_commit``, ``checkpoint_sha256``, ``status``, ``run_id``.

    Raises:
        RegistryError: no registered model of that name.
    """
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise  # the server or store failed: not "no such model"
        raise RegistryError(
            f"no registered model {name!r} in {strip_credentials(client.tracking_uri)}; run "
            "`skysense register` "
            "or set registry.model_name / --tracking-uri"
        ) from exc
    aliases: dict[str, str] = {str(k): str(v) for k, v in (model.aliases or {}).items()}
    by_version: dict[str, list[str]] = {}
    for alias, version in aliases.items():
        by_version.setdefault(version, []).append(alias)
    versions: list[dict[str, Any]] = []
    for mv in client.search_model_versions(filter_string=f"name = '{name}'"):
        metrics = metrics_from_tags(mv.tags)
        key = {k: v for k, v in metrics.items() if _key_metric(k)}
        versions.append(
            {
                "version": str(mv.version),
                "aliases": sorted(by_version.get(str(mv.version), [])),
                "created": datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC)
                .replace(microsecond=0)
                .isoformat(),
                "metrics": key,
                "data_version": mv.tags.get("data_version", ""),
                "git_commit": mv.tags.get("git_commit", ""),
                "checkpoint_sha256": mv.tags.get("checkpoint_sha256", ""),
                "status": mv.tags.get("promotion.status", ""),
                "run_id": mv.run_id,
            }
        )
    versions.sort(key=lambda v: int(v["version"]), reverse=True)
    return {
        "name": name,
        "aliases": aliases,
        "versions": versions,
        "history": read_history(client, name),
    }
