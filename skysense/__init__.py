"""SkySense platform: multi-modal remote-sensing foundation models, end to end."""

import os as _os

__version__ = "0.1.0"

# Offline by default: no telemetry or analytics traffic from the tools the platform drives.
for _key, _value in {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DVC_NO_ANALYTICS": "1",
    "DO_NOT_TRACK": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    # OpenMP threads that sleep instead of spinning between ops: on small shared CPUs spinning
    # threads stall each other (3-5x the CPU per training step measured on 2 cores).
    "OMP_WAIT_POLICY": "PASSIVE",
}.items():
    _os.environ.setdefault(_key, _value)
