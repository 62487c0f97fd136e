"""Process defaults an entry point sets before the tools it drives are imported.

Offline by default (no telemetry or analytics traffic from MLflow, DVC, great-expectations and
Prefect), a long start-up limit for Prefect's ephemeral server, and OpenMP threads that sleep
instead of spinning between ops: on small shared CPUs spinning threads stall each other (3-5x
the CPU per training step measured on 2 cores). Values already in the environment win. Called
by the console entry point (:mod:`skysense.cli`), the training worker
(:mod:`skysense.cli.train_worker`) and the test suite; the library itself sets nothing.
"""

from __future__ import annotations

import os

DEFAULTS: dict[str, str] = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DVC_NO_ANALYTICS": "1",
    "DO_NOT_TRACK": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "OMP_WAIT_POLICY": "PASSIVE",
}


def set_process_defaults() -> dict[str, str]:
    """Set :data:`DEFAULTS` where unset; returns the values now in effect."""
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
    return {key: os.environ[key] for key in DEFAULTS}
