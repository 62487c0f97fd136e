"""The real tiny preset (with small size overrides) on real chips: ``skysense train --nproc 2``
under ZeRO-3 end to end (MLflow, run.json, export), and in-process export equality.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from skysense.config import dump_config, load_config, training_job
from skysense.models.export_format import load_exported
from skysense.training.export import consolidated_state_dict

sys.path.insert(0, str(Path(__file__).parent))
from chips_fixture import TINY_OVERRIDES, write_tiny_chips
from fixture_pretrainer import config_with

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def chips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_chips(tmp_path_factory.mktemp("chips") / "chips")


def _params(tmp: Path, **train: object) -> Path:
    cfg = config_with([f"train.{k}={v}" for k, v in train.items()])
    raw = yaml.safe_load(dump_config(cfg))
    raw["model"]["overrides"] = TINY_OVERRIDES
    # ZeRO-3 needs every rank to run every branch; the model skips a modality branch absent
    # from a whole batch, so augmentation keeps all modalities here (see the training report).
    raw["train"]["augment"]["modality_dropout"] = 0.0
    raw["registry"]["artifact_location"] = str(tmp / "mlartifacts")
    path = tmp / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.slow
def test_cli_two_processes_zero3_trains_logs_and_exports(chips: Path, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    params = _params(
        tmp_path,
        zero_stage=3,
        steps=4,
        checkpoint_every=2,
        warmup_steps=1,
        lr=0.003,
        micro_batch=2,
        experiment="cli-test",
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri, PYTHONPATH=str(REPO))
    out = tmp_path / "ckpt"
    skysense = Path(sys.executable).with_name("skysense")
    proc = subprocess.run(
        [
            str(skysense),
            "train",
            "--chips",
            str(chips),
            "--out",
            str(out),
            "--nproc",
            "2",
            "--params",
            str(params),
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=500,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads(proc.stdout)
    assert summary["checkpoint"].endswith("step-00000004") and summary["step"] == 4
    assert json.loads((out / "run.json").read_text())["run_id"] == summary["run_id"]

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(summary["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["train.zero_stage"] == "3"
    assert run.data.tags["data_version"].startswith("sha256:")
    losses = [m.value for m in client.get_metric_history(summary["run_id"], "loss")]
    assert len(losses) == 4 and all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[2:]) < sum(losses[:2])  # loss falls (mean over 2 ranks, 2 steps each)
    for key in ("loss_pixel", "loss_cross_modal", "lr", "grad_norm", "samples_per_s"):
        assert len(client.get_metric_history(summary["run_id"], key)) == 4, key

    model, config = load_exported(out / "export")
    assert config["preset"] == "skysense-tiny" and config["step"] == 4
    assert config["spec"]["sentinel_px"] == 4 and config["stats"]["s2"]["mean"]
    assert config["data_version"] == run.data.tags["data_version"]
    merged = consolidated_state_dict(out / "step-00000004")
    exported = model.state_dict()
    assert config["encoder"] == "teacher"  # train.export_encoder default: the EMA teacher
    prefix = "teacher.encoder."
    teacher = {k[len(prefix) :]: v for k, v in merged.items() if k.startswith(prefix)}
    assert set(teacher) == set(exported)
    for key, value in teacher.items():
        assert torch.equal(exported[key], value), key


@pytest.mark.slow
def test_in_process_export_matches_the_engine(chips: Path, tmp_path: Path) -> None:
    from skysense.data.dataset import ChipDataset, collate_samples
    from skysense.training.loop import train

    cfg = load_config(_params(tmp_path, zero_stage=3, steps=2, warmup_steps=1, micro_batch=2))
    result = train(training_job(cfg), chips, tmp_path / "ckpt", track=False, show_progress=False)
    model, _ = load_exported(tmp_path / "ckpt" / "export")
    batch = collate_samples(
        [ChipDataset(chips, split="pretrain", n_regions=64)[i] for i in range(2)]
    )
    teacher = result.engine.module.teacher["encoder"]  # the exported encoder (train.export_encoder)
    teacher.eval()
    with torch.no_grad():
        expected = teacher.embed(batch)
        got = model.embed(batch)
    assert got.shape == expected.shape and got.shape[-1] == 4
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
