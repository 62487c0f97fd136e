"""Process environment for Prefect, DVC and MLflow, set before any of them is imported.

Prefect reads its settings from the environment; an unset ``PREFECT_HOME`` would put the
ephemeral API database in the user's home, shared by every project. Explicit settings in the
environment always win over these defaults.
"""

from __future__ import annotations

import os
from pathlib import Path

STARTUP_TIMEOUT_S = "180"


def configure(project_root: str | Path = ".") -> dict[str, str]:
    """Set project-local defaults (only where unset) and return the values in effect.

    Args:
        project_root: the working folder of the pipeline (holds ``params.yaml``, ``dvc.yaml``).

    Returns:
        The environment variables this function is about, as now set.
    """
    root = Path(project_root).resolve()
    defaults = {
        "PREFECT_HOME": str(root / ".prefect"),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": STARTUP_TIMEOUT_S,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
        "DVC_SITE_CACHE_DIR": str(root / ".dvc" / "site-cache"),
        "DVC_NO_ANALYTICS": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
        "GX_ANALYTICS_ENABLED": "false",
    }
    # The import-time default in skysense/__init__.py is shorter; raise it unless a user set one.
    current = os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS")
    if current is not None and current.isdigit() and int(current) < int(STARTUP_TIMEOUT_S):
        os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = STARTUP_TIMEOUT_S
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
    return {key: os.environ[key] for key in defaults}
