"""Process environment for Prefect, DVC and MLflow, set before any of them is imported.

Prefect reads its settings from the environment; an unset ``PREFECT_HOME`` would put the
ephemeral API database in the user's home, shared by every project. Explicit settings in the
environment always win over these defaults. A new project home gets Prefect's already migrated
empty database (:mod:`flows.prefect_schema`), so its first flow does not wait for migrations.
"""

from __future__ import annotations

import os
import sys
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
    # The command line's default (skysense.cli.process_env) is shorter; raise it unless a user set
    # one.
    current = os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS")
    if current is not None and current.isdigit() and int(current) < int(STARTUP_TIMEOUT_S):
        os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = STARTUP_TIMEOUT_S
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    home = Path(os.environ["PREFECT_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    _seed_prefect_home(home)
    return {key: os.environ[key] for key in defaults}


def _seed_prefect_home(home: Path) -> None:
    """Copy the migrated empty Prefect database into a new home (:mod:`flows.prefect_schema`);
    if it cannot be built, Prefect migrates the database itself as usual. A home database at the
    template's revision has nothing to migrate, so the ephemeral server skips its migration
    check (about 1 s of its start) unless the user chose otherwise.
    """
    from flows.prefect_schema import SchemaBuildError, at_template_revision, seed_home

    try:
        if seed_home(home) in ("seeded", "exists") and at_template_revision(home):
            os.environ.setdefault("PREFECT_SERVER_DATABASE_MIGRATE_ON_START", "false")
    except (SchemaBuildError, OSError) as exc:
        print(
            f"warning: Prefect schema template not used ({exc}); Prefect will migrate "
            f"{home} itself",
            file=sys.stderr,
        )
