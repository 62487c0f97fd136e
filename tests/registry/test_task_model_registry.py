"""The task model as its own registered model: lineage, policy, promotion, refusals, rollback,
against a real SQLite MLflow store.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from skysense.cli import app
from skysense.finetuning.job import FinetuneJob
from skysense.finetuning.runner import run_finetune
from skysense.finetuning.settings import FinetuneConfig
from skysense.models.task_model import load_task_model
from skysense.registry.model_loading import download_verified_export

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "finetuning"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
from scene_fixtures import write_random_export
from small_sample import SMALL_SAMPLE

NAME = "skysense-landcover"


def _finetune(tmp: Path, encoder: Path, labels: Path, seed: int) -> Path:
    job = FinetuneJob(
        finetune=FinetuneConfig(
            steps=1, micro_batch=2, seed=seed, random_baseline=False, frozen_probe=False
        ),
        encoder_export=encoder,
        labels_root=labels,
        modalities=["s2", "s1", "dem"],
    )
    out = tmp / f"ft-{seed}-{encoder.parent.name}"
    run_finetune(job, out)
    return out


def _with_metrics(report: Path, **changes: float) -> Path:
    """The report's metrics.json with ``changes`` (a better or worse challenger)."""
    metrics = json.loads((report / "metrics.json").read_text())
    metrics.update(changes)
    (report / "metrics.json").write_text(json.dumps(metrics))
    return report / "metrics.json"


def _variant(report: Path, dest: Path, nudge: float, **config_changes) -> Path:
    """Another task model checkpoint: ``report``'s export with its classifier bias moved by
    ``nudge`` (distinct weights, so a distinct version) and ``config_changes`` in its config.
    """
    shutil.copytree(report, dest)
    weights = dest / "export" / "model.safetensors"
    state = load_file(str(weights))
    state["head.classifier.bias"] = state["head.classifier.bias"] + nudge
    save_file(state, str(weights))
    config = json.loads((dest / "export" / "config.json").read_text())
    for key, value in config_changes.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    (dest / "export" / "config.json").write_text(json.dumps(config))
    return dest


@pytest.fixture(scope="module")
def sample_labels(tmp_path_factory):
    root = tmp_path_factory.mktemp("reg-sample")
    res = CliRunner().invoke(
        app,
        ["data", "sample", "--out", str(root / "s"), *SMALL_SAMPLE],
    )
    assert res.exit_code == 0, res.output
    return root / "s" / "downstream"


def _cli(*args: str):
    return CliRunner().invoke(app, [*args, "--json"])


def test_task_model_lineage_policy_promotion_refusal_and_rollback(
    tmp_path, monkeypatch, sample_labels
):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    client = MlflowClient(uri)
    encoder = write_random_export(tmp_path / "enc" / "export", seed=1)
    first = _finetune(tmp_path, encoder, sample_labels, seed=0)
    worse = _variant(first, tmp_path / "worse", 0.01)
    better = _variant(first, tmp_path / "better", 0.02)
    # fine-tuned from an encoder that is never registered
    orphan = _variant(
        first, tmp_path / "orphan", 0.03, encoder_lineage={"checkpoint_sha256": "0" * 64}
    )

    # the task model before its encoder is registered: registered, but never promoted
    res = _cli(
        "register",
        "--task-model",
        str(orphan / "export"),
        "--metrics",
        str(orphan / "metrics.json"),
    )
    assert res.exit_code == 0, res.output
    orphan_v = json.loads(res.stdout)["version"]
    res = _cli("promote", "--task-model", "--version", orphan_v)
    assert res.exit_code == 1, res.output
    tags = client.get_model_version(NAME, orphan_v).tags
    assert tags["promotion.status"] == "refused"
    assert "is not a version of 'skysense-encoder'" in tags["promotion.reasons"]

    res = _cli("register", "--export", str(encoder))
    assert res.exit_code == 0, res.output
    encoder_v = json.loads(res.stdout)["version"]
    # from a folder named like the pipeline's (paths.task_model), not `export`
    shutil.copytree(first / "export", tmp_path / "checkpoints" / "task_model")
    res = _cli(
        "register",
        "--task-model",
        str(tmp_path / "checkpoints" / "task_model"),
        "--metrics",
        str(first / "metrics.json"),
    )
    assert res.exit_code == 0, res.output
    v1 = json.loads(res.stdout)["version"]
    tags = client.get_model_version(NAME, v1).tags
    config = json.loads((first / "export" / "config.json").read_text())
    assert tags["encoder_version"] == encoder_v
    assert tags["encoder_checkpoint_sha256"] == config["encoder_lineage"]["checkpoint_sha256"]
    assert tags["label_version"] == config["label_version"] != "unknown"
    assert tags["task"] == "segmentation" and json.loads(tags["classes"]) == config["classes"]
    assert tags["git_commit"] and tags["params_hash"]
    assert float(tags["metric.miou"]) == pytest.approx(
        json.loads((first / "metrics.json").read_text())["miou"], abs=1e-5
    )
    res = _cli("promote", "--task-model")
    assert res.exit_code == 0, res.output
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == v1
    # the champion's verified export downloads and loads as a task model
    folder, _ = download_verified_export(f"models:/{NAME}@champion", tmp_path / "dl", client)
    model, loaded = load_task_model(folder)
    assert loaded["classes"] == config["classes"] and model.task == "segmentation"

    # a worse challenger (lower mIoU, one class's IoU down 0.2) is refused, with the reasons tagged
    m1 = json.loads((first / "metrics.json").read_text())
    cls = next(k for k in m1 if k.startswith("iou."))
    metrics = _with_metrics(worse, miou=m1["miou"] - 0.05, **{cls: max(m1[cls] - 0.2, 0.0)})
    res = _cli("register", "--task-model", str(worse / "export"), "--metrics", str(metrics))
    v2 = json.loads(res.stdout)["version"]
    res = _cli("promote", "--task-model")
    assert res.exit_code == 1, res.output
    tags = client.get_model_version(NAME, v2).tags
    assert tags["promotion.status"] == "refused"
    assert "FAIL miou" in tags["promotion.reasons"]
    if m1[cls] >= 0.2:
        assert f"FAIL {cls}" in tags["promotion.reasons"]
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == v1

    # a better one is promoted; rollback returns to v1
    metrics = _with_metrics(
        better, miou=m1["miou"] + 0.05, **{k: v for k, v in m1.items() if k.startswith("iou.")}
    )
    res = _cli("register", "--task-model", str(better / "export"), "--metrics", str(metrics))
    v3 = json.loads(res.stdout)["version"]
    res = _cli("promote", "--task-model")
    assert res.exit_code == 0, res.output
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == v3
    res = _cli("promote", "--task-model", "--rollback", "--reason", "map artefacts")
    assert res.exit_code == 0, res.output
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == v1
    # the encoder's own registered model is untouched by all this
    assert client.get_registered_model("skysense-encoder").aliases.get("champion") is None
    status = _cli("registry", "status", "--task-model")
    assert status.exit_code == 0
    assert [h["action"] for h in json.loads(status.stdout)["history"]] == [
        "refuse", "promote", "refuse", "promote", "rollback",
    ]  # fmt: skip
