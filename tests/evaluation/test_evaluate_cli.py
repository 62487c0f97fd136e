"""``skysense evaluate`` end to end on a small generated sample, logged to a real SQLite store."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mlflow import MlflowClient
from typer.testing import CliRunner

from skysense.cli import app

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
from scene_fixtures import write_random_export
from small_sample import SMALL_SAMPLE as SMALL

FAST = [
    "--set",
    "model.modalities=[s2,s1,dem]",
    "--set",
    "eval.linear_epochs=30",
    "--set",
    "eval.seg_epochs=20",
]


def test_evaluate_writes_metrics_pngs_tables_and_child_run(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    res = runner.invoke(app, ["data", "sample", "--out", str(tmp_path / "sample"), *SMALL])
    assert res.exit_code == 0, res.output
    export = write_random_export(tmp_path / "checkpoints" / "export", seed=3)
    res = runner.invoke(
        app,
        [
            "evaluate",
            "--export",
            str(export),
            "--downstream",
            str(tmp_path / "sample" / "downstream"),
            "--out",
            str(tmp_path / "eval"),
            "--json",
            *FAST,
        ],
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics == report["metrics"]
    for key in ("linear_acc", "knn_acc", "macro_f1", "miou"):
        assert 0.0 <= metrics[key] <= 1.0
        assert metrics[f"{key}_gain"] == metrics[key] - metrics[f"{key}_random"]
    # label-scarce probes: k labels per class (eval.shots), mean and spread over eval.draws
    for k in (1, 5, 20):
        for key in ("linear_acc", "knn_acc", "macro_f1", "miou"):
            if key == "miou" and k == 20:
                assert "k20_miou" not in metrics  # eval.seg_shots: [1, 5]
                continue
            name = f"k{k}_{key}"
            assert 0.0 <= metrics[name] <= 1.0 and metrics[f"{name}_std"] >= 0.0
            assert abs(metrics[f"{name}_gain"] - (metrics[name] - metrics[f"{name}_random"])) < 1e-9
            assert f"{name}_gain_std" in metrics
    for name in (
        "confusion.png",
        "pca_embeddings.png",
        "per_class_classification.csv",
        "per_class_segmentation.md",
        "seg_head.npz",
    ):
        assert (tmp_path / "eval" / name).stat().st_size > 0
    run = MlflowClient(uri).get_run(report["mlflow_run_id"])
    assert run.data.metrics["miou"] == metrics["miou"]
    logged = {d.dataset.name for d in run.inputs.dataset_inputs}
    assert logged == {"downstream-classification", "downstream-segmentation"}
