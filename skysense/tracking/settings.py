"""Settings of the MLflow tracking store every stage logs to (part of ``params.yaml: registry``)."""

from __future__ import annotations

from pathlib import Path

from skysense.core.settings import Section
from skysense.tracking.store import DEFAULT_TRACKING_URI


class TrackingConfig(Section):
    """Where runs are logged: the tracking URI and, for a local store, the artifact folder."""

    tracking_uri: str = DEFAULT_TRACKING_URI
    artifact_location: Path = Path("mlartifacts")
