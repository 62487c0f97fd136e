"""``skysense finetune`` end to end: report against the frozen probe and the random-init
fine-tune, logged to a real SQLite MLflow store.
"""

from __future__ import annotations

import json

from mlflow import MlflowClient
from typer.testing import CliRunner

from skysense.cli import app
from skysense.models.task_model import load_task_model

FAST = [
    "--set",
    "finetune.steps=3",
    "--set",
    "finetune.micro_batch=2",
    "--set",
    "finetune.probe_epochs=20",
]


def test_finetune_reports_against_probe_and_random_and_logs(
    tmp_path, monkeypatch, ft_encoder, ft_sample
):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "ft"
    res = CliRunner().invoke(
        app,
        [
            "finetune",
            "--export",
            str(ft_encoder),
            "--downstream",
            str(ft_sample),
            "--out",
            str(out),
            "--json",
            *FAST,
        ],
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == report["metrics"]
    for key in ("miou", "pixel_acc"):
        for suffix in ("", "_frozen", "_random"):
            assert 0.0 <= metrics[key + suffix] <= 1.0
        assert metrics[f"{key}_gain_random"] == metrics[key] - metrics[f"{key}_random"]
        assert metrics[f"{key}_gain_frozen"] == metrics[key] - metrics[f"{key}_frozen"]
    assert any(k.startswith("iou.") for k in metrics)
    for name in (
        "confusion.png",
        "prediction.png",
        "per_class.csv",
        "per_class.md",
        "summary.json",
    ):
        assert (out / name).stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mlflow_run_id"] == report["mlflow_run_id"]
    assert summary["seconds_per_step"]["pretrained"] > 0
    _model, config = load_task_model(out / "export")
    assert config["encoder_source"] == str(ft_encoder)
    assert config["label_version"].startswith("sha256:")

    client = MlflowClient(uri)
    run = client.get_run(report["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.metrics["miou"] == metrics["miou"]
    assert run.data.tags["init"] == "pretrained"
    curve = client.get_metric_history(run.info.run_id, "train.loss")
    assert sorted(m.step for m in curve) == [1, 2, 3]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "random.loss")] == [1, 2, 3]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "finetune")}
    assert {
        "finetune/confusion.png",
        "finetune/prediction.png",
        "finetune/metrics.json",
    } <= artifacts
    assert {a.path for a in client.list_artifacts(run.info.run_id, "task_model")} >= {
        "task_model/model.safetensors",
        "task_model/config.json",
    }


def test_finetune_classification_task(tmp_path, ft_encoder, ft_sample):
    out = tmp_path / "cls"
    res = CliRunner().invoke(
        app,
        [
            "finetune", "--export", str(ft_encoder), "--downstream", str(ft_sample),
            "--out", str(out),
            "--task", "classification", "--no-mlflow", "--json", *FAST,
            "--set", "finetune.random_baseline=false",
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.stdout)["metrics"]
    assert 0.0 <= metrics["acc"] <= 1.0 and "acc_frozen" in metrics and "acc_random" not in metrics
    _model, config = load_task_model(out / "export")
    assert config["task"] == "classification"


def test_finetune_refuses_scene_labels_for_segmentation(tmp_path, ft_encoder, ft_sample):
    res = CliRunner().invoke(
        app,
        [
            "finetune",
            "--export",
            str(ft_encoder),
            "--downstream",
            str(ft_sample),
            "--out",
            str(tmp_path),
            "--labels",
            "eurosat",
        ],
    )
    assert res.exit_code == 2
    assert "--task classification" in res.output
