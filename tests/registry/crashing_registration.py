"""Register an export and die with SIGKILL right after its version was created (issue #21, 12).

Usage: python crashing_registration.py TRACKING_URI NAME EXPORT_DIR EXPERIMENT_ID LINEAR_ACC

The real MLflow client does all the work up to the crash: the run, the logged model and the
model version with its tags exist. The process is killed where registration next writes (the
version's description, then the ``challenger`` alias), as a crash or an OOM kill would.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from mlflow import MlflowClient

from skysense.config import SkySenseConfig, registration_settings
from skysense.registry.export_registration import register_export
from skysense.tracking.store import connect


class DiesAfterVersionCreated(MlflowClient):
    """The real client; the process dies when registration first updates the new version."""

    def update_model_version(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)


uri, name, export, experiment_id, acc = sys.argv[1:6]
connect(uri)
cfg = SkySenseConfig()
cfg.registry.model_name = name
register_export(
    DiesAfterVersionCreated(tracking_uri=uri, registry_uri=uri),
    registration_settings(cfg),
    Path(export),
    {"linear_acc": float(acc)},
    experiment_id=experiment_id,
)
sys.exit("registration finished: the crash point was not reached")
