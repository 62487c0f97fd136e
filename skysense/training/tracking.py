"""MLflow logging of a training run, from rank 0 only.

The run gets every resolved param (flattened ``section.key``), the DeepSpeed config as an
artifact, per-step metrics, and the data version and git commit as tags. Its id goes to
``OUT/run.json``, so evaluation and registration log into the same run, and ``--resume``
continues it. Tracking URI: ``MLFLOW_TRACKING_URI`` when set, else ``registry.tracking_uri``.
Params, tags and ``run.json`` never hold URI credentials (``user:password@`` is stripped).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from skysense.core.atomic_files import write_text_atomic
from skysense.core.credentials import strip_credentials, strip_credentials_in
from skysense.core.lineage import data_version, git_commit
from skysense.tracking.datasets import LoggedInput, chips_dataset, log_inputs
from skysense.tracking.store import connect, ensure_experiment, resolve_tracking_uri
from skysense.training.engine import Runtime
from skysense.training.job import TrainingJob

RUN_FILE = "run.json"
MAX_PARAM_LEN = 6000
PARAM_BATCH = 100


def flatten(tree: Any, prefix: str = "") -> dict[str, str]:
    """Nested mappings as ``{"a.b.c": "value"}`` (lists and scalars as their JSON text)."""
    flat: dict[str, str] = {}
    if isinstance(tree, dict) and tree:
        for key, value in tree.items():
            flat.update(flatten(value, f"{prefix}{key}."))
        return flat
    text = tree if isinstance(tree, str) else json.dumps(tree, default=str)
    flat[prefix.rstrip(".")] = text[:MAX_PARAM_LEN]
    return flat


def read_run_id(out_dir: Path) -> str | None:
    """The MLflow run id recorded in ``OUT/run.json``, if any."""
    path = Path(out_dir) / RUN_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get("run_id")


class RunTracker:
    """One MLflow run of a training job (use it on rank 0 only).

    Args:
        job: resolved configuration.
        out_dir: checkpoints folder (``run.json`` is written there).
        chips_dir: chips folder, for the data-version tag.
        resume: continue the run named in ``run.json`` when there is one.
    """

    def __init__(
        self, job: TrainingJob, out_dir: Path, chips_dir: Path | None, resume: bool
    ) -> None:

        self.job = job
        self.out_dir = Path(out_dir)
        self.tracking_uri = resolve_tracking_uri(None, job.tracking.tracking_uri)
        self.client = connect(self.tracking_uri)
        self.experiment_id = ensure_experiment(
            self.client, job.train.experiment, job.tracking.artifact_location, self.tracking_uri
        )
        self.data_version = data_version(chips_dir)
        self.chips_dir = Path(chips_dir) if chips_dir is not None else None
        self.git_commit = git_commit()
        previous = read_run_id(self.out_dir) if resume else None
        if previous is not None:
            self.run_id = previous
            self.client.update_run(previous, status="RUNNING")
        else:
            run = self.client.create_run(
                self.experiment_id, run_name=f"pretrain-{job.model.preset}"
            )
            self.run_id = run.info.run_id
        self._resumed = previous is not None
        write_text_atomic(
            self.out_dir / RUN_FILE,
            json.dumps(
                {
                    "run_id": self.run_id,
                    "experiment_id": self.experiment_id,
                    "tracking_uri": strip_credentials(self.tracking_uri),
                },
                indent=2,
            ),
        )

    def start(self, ds_config: dict[str, Any], runtime: Runtime) -> None:
        """Log params, tags and the DeepSpeed config (params once: a resumed run has them)."""
        from mlflow.entities import Param, RunTag

        tags = {
            "data_version": self.data_version,
            "git_commit": self.git_commit,
            "stage": "pretrain",
            "preset": self.job.model.preset,
            "device": runtime.device,
            "backend": runtime.backend,
        }
        self.client.log_batch(
            self.run_id, tags=[RunTag(k, strip_credentials(v)) for k, v in tags.items()]
        )
        if self._resumed:
            return
        chips = chips_dataset(self.chips_dir) if self.chips_dir is not None else None
        if chips is not None:  # the run table's Datasets column (digest: the DVC md5)
            log_inputs(self.client, self.run_id, [LoggedInput(chips, "training")])
        params = flatten(self.job.params or self.job.model_dump(mode="json"))
        items = [Param(k, strip_credentials(v)) for k, v in sorted(params.items())]
        for i in range(0, len(items), PARAM_BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + PARAM_BATCH])
        self.client.log_dict(
            self.run_id, strip_credentials_in(ds_config), "deepspeed/ds_config.json"
        )

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        """Log one optimizer step's metrics (non-finite values are skipped)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items() if math.isfinite(v)]
        self.client.log_batch(self.run_id, metrics=batch)

    def log_export(self, export_dir: Path) -> None:
        """Attach the export's ``config.json`` to the run."""
        config = Path(export_dir) / "config.json"
        if config.is_file():
            self.client.log_artifact(self.run_id, str(config), artifact_path="export")

    def finish(self, status: str) -> None:
        """Mark the run ``FINISHED`` or ``FAILED``."""
        self.client.set_terminated(self.run_id, status=status)
