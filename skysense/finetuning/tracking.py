"""MLflow logging of a fine-tuning: params, curves, held-out metrics, pictures, the task model.

One run per ``skysense finetune`` in experiment ``finetune.experiment``: the ``finetune``
settings as params; the per-step curves of both fine-tunings (``train.loss``, ``train.acc``,
``lr``; ``random.loss``, ``random.acc``) at their step numbers, read from each
``train_log.csv`` (so a resumed run's curve has every step once); ``metrics.json`` as metrics;
the report files under ``finetune/`` and the export under ``task_model/``; tags linking to the
encoder (``encoder_source``, ``encoder_run_id``) and the labels (``label_version``). The run id is
written into ``summary.json`` and is what the registry's task model version points at.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from skysense.finetuning.runner import FinetuneReport
from skysense.training.tracking import flatten

CURVES = {"pretrained": "train", "random": "random"}


def _curve_metrics(log: Path, prefix: str) -> list[Any]:
    """Per-step ``<prefix>.loss``, ``<prefix>.acc`` (and ``lr`` for the main fine-tuning)."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    names = {"loss": f"{prefix}.loss", "acc": f"{prefix}.acc"}
    if prefix == "train":
        names["lr"] = "lr"
    out: list[Metric] = []
    with open(log, newline="") as fh:
        for row in csv.DictReader(fh):
            step = int(float(row["step"]))
            out.extend(
                Metric(name, float(row[key]), now, step)
                for key, name in names.items()
                if row.get(key) not in (None, "")
            )
    return out


def log_finetune(
    client: Any,
    experiment_id: str,
    report: FinetuneReport,
    params: dict[str, Any],
    tags: dict[str, str],
) -> str:
    """Log a fine-tuning report as a new run; returns its id (also written to ``summary.json``)."""
    run = client.create_run(experiment_id, run_name=f"finetune-{report.summary['task']}", tags=tags)
    run_id = run.info.run_id
    try:
        items = list(flatten(params).items())
        from mlflow.entities import Metric, Param

        for i in range(0, len(items), 100):
            client.log_batch(run_id, params=[Param(k, v) for k, v in items[i : i + 100]])
        curves: list[Any] = []
        for which, log in report.logs.items():
            if log.is_file():
                curves.extend(_curve_metrics(log, CURVES[which]))
        now = int(time.time() * 1000)
        finals = [
            Metric(k, float(v), now, int(report.summary["steps"]))
            for k, v in report.metrics.items()
            if np.isfinite(v)
        ]
        sps = report.summary.get("seconds_per_step") or {}
        finals += [Metric(f"seconds_per_step.{k}", float(v), now, 0) for k, v in sps.items() if v]
        batch = curves + finals
        for i in range(0, len(batch), 500):
            client.log_batch(run_id, metrics=batch[i : i + 500])
        for f in report.files:
            client.log_artifact(run_id, str(f), artifact_path="finetune")
        client.log_artifacts(run_id, str(report.export_dir), artifact_path="task_model")
        client.set_terminated(run_id, "FINISHED")
    except Exception:
        client.set_terminated(run_id, "FAILED")
        raise
    summary_file = next((f for f in report.files if f.name == "summary.json"), None)
    if summary_file is not None:
        summary = {**report.summary, "mlflow_run_id": run_id}
        summary_file.write_text(json.dumps(summary, indent=2))
        report.summary = summary
    return run_id
