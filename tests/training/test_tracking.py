"""MLflow logging of a training run into a real SQLite store; lineage tags."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from skysense.core.lineage import data_version
from skysense.training.loop import train
from skysense.training.tracking import flatten

sys.path.insert(0, str(Path(__file__).parent))
from fixture_pretrainer import TinyPretrainer, config_with, stack_samples, tiny_samples

from skysense.config import training_job


def _chips(tmp_path: Path) -> Path:
    chips = tmp_path / "chips"
    chips.mkdir()
    pd.DataFrame({"sample_id": ["a", "b"], "shard": ["shard-0.bin"] * 2}).to_parquet(
        chips / "manifest.parquet"
    )
    (chips / "stats.json").write_text(json.dumps({"s2": {"mean": [0.1] * 10, "std": [0.05] * 10}}))
    return chips


def test_data_version_prefers_dvc_md5_over_manifest_hash(tmp_path: Path) -> None:
    chips = _chips(tmp_path)
    sha = hashlib.sha256((chips / "manifest.parquet").read_bytes()).hexdigest()
    assert data_version(chips) == f"sha256:{sha}"
    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  chip:\n    cmd: x\n    outs:\n    - path: chips\n      md5: "
        "abc123.dir\n"
    )
    assert data_version(chips) == "dvc:abc123.dir"
    assert data_version(None) == "unknown"


def test_flatten_nested_params() -> None:
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": "x", "e": {}}) == {
        "a.b": "1",
        "a.c": "[1, 2]",
        "d": "x",
        "e": "{}",
    }


def test_rank0_logs_params_metrics_tags_and_run_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    chips = _chips(tmp_path)
    cfg = config_with(
        [
            "train.zero_stage=2",
            "train.steps=4",
            "train.checkpoint_every=4",
            "train.warmup_steps=1",
            f"registry.artifact_location={tmp_path / 'artifacts'}",
            "train.experiment=test-pretrain",
        ],
    )
    torch.manual_seed(0)
    result = train(
        training_job(cfg),
        chips,
        tmp_path / "ckpt",
        pretrainer=TinyPretrainer(),
        dataset=tiny_samples(),
        collate=stack_samples,
        show_progress=False,
    )
    run_info = json.loads((tmp_path / "ckpt" / "run.json").read_text())
    assert run_info["run_id"] == result.run_id
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "test-pretrain"
    assert run.data.params["train.zero_stage"] == "2"
    assert run.data.params["model.preset"] == "skysense-tiny"
    assert run.data.params["train.loss_weights.pixel"] == "1.0"
    assert run.data.tags["data_version"] == data_version(chips)
    (chips_input,) = run.inputs.dataset_inputs  # the Datasets column: the chip manifest
    assert chips_input.dataset.name == "chips" and str(chips) in chips_input.dataset.source
    assert {t.key: t.value for t in chips_input.tags}["mlflow.data.context"] == "training"
    assert run.data.tags["git_commit"] not in ("", None)
    for key in (
        "loss",
        "recon",
        "distill",
        "lr",
        "grad_norm",
        "samples_per_s",
        "peak_memory_bytes",
    ):
        history = client.get_metric_history(result.run_id, key)
        assert [m.step for m in history] == [1, 2, 3, 4], key
    losses = [m.value for m in client.get_metric_history(result.run_id, "loss")]
    assert losses == pytest.approx(result.losses)
    assert client.get_metric_history(result.run_id, "peak_memory_bytes")[0].value > 1e7
    artifacts = {a.path for a in client.list_artifacts(result.run_id, "deepspeed")}
    assert "deepspeed/ds_config.json" in artifacts
    export_cfg = json.loads((tmp_path / "ckpt" / "export" / "config.json").read_text())
    assert export_cfg["stats"]["s2"]["std"][0] == 0.05
    assert export_cfg["data_version"] == data_version(chips) and export_cfg["step"] == 4
