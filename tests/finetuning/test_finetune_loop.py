"""Fine-tuning through DeepSpeed: one process, two processes (torchrun), exact resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from skysense.core.errors import TrainingError
from skysense.finetuning.job import FinetuneJob
from skysense.finetuning.launch import finetune_into_folder
from skysense.finetuning.settings import FinetuneConfig
from skysense.models.task_model import load_task_model

MODS = ["hr", "s2", "s1", "dem"]


def _job(encoder: Path, labels: Path, **settings) -> FinetuneJob:
    base = dict(steps=4, micro_batch=2, checkpoint_every=2, warmup_steps=1)
    base.update(settings)
    return FinetuneJob(
        finetune=FinetuneConfig(**base), encoder_export=encoder, labels_root=labels, modalities=MODS
    )


def _weights(export: Path) -> dict[str, torch.Tensor]:
    return load_file(str(export / "model.safetensors"))


def _log_rows(folder: Path) -> list[str]:
    """``train_log.csv`` without its last column (``step_time_s``, wall time)."""
    return [r.rsplit(",", 1)[0] for r in (folder / "train_log.csv").read_text().splitlines()]


def test_one_process_trains_exports_and_loads(tmp_path, ft_encoder, ft_sample):
    job = _job(ft_encoder, ft_sample)
    plan = finetune_into_folder(job, tmp_path / "ck", nproc=1, export_dir=tmp_path / "task")
    assert not plan.resume
    _model, config = load_task_model(tmp_path / "task")
    assert config["format"] == "skysense-task-model/1"
    assert config["task"] == "segmentation" and config["step"] == 4
    assert len(config["classes"]) == len(config["colours"]) == 10
    assert config["encoder"]["preset"] == "skysense-tiny"
    rows = _log_rows(tmp_path / "ck")
    assert rows[0] == "step,loss,acc,lr" and len(rows) == 5
    # the encoder moved (layer-wise decay scales its lr, it does not freeze it)
    before = load_file(str(ft_encoder / "model.safetensors"))
    after = _weights(tmp_path / "task")
    key = "hr_backbone.patch_embed.projection.weight"
    assert not torch.equal(before[key], after[f"encoder.{key}"])


def test_frozen_backbone_keeps_the_encoder(tmp_path, ft_encoder, ft_sample):
    job = _job(ft_encoder, ft_sample, freeze_backbone=True, steps=2)
    finetune_into_folder(job, tmp_path / "ck", nproc=1, export_dir=tmp_path / "task")
    before = load_file(str(ft_encoder / "model.safetensors"))
    after = _weights(tmp_path / "task")
    for key, value in before.items():
        assert torch.equal(value, after[f"encoder.{key}"]), key
    head = [k for k in after if k.startswith("head.")]
    assert head


def test_resume_equals_an_uninterrupted_run(tmp_path, ft_encoder, ft_sample):
    job = _job(ft_encoder, ft_sample)
    finetune_into_folder(job, tmp_path / "whole", nproc=1, export_dir=tmp_path / "whole-task")
    # interrupted after step 2 (its checkpoint), then the same command resumes it
    finetune_into_folder(
        job, tmp_path / "cut", nproc=1, export_dir=tmp_path / "cut-task", stop_after=2
    )
    assert not (tmp_path / "cut-task").exists()
    plan = finetune_into_folder(job, tmp_path / "cut", nproc=1, export_dir=tmp_path / "cut-task")
    assert plan.resume and plan.latest == "step-00000002"
    whole, cut = _weights(tmp_path / "whole-task"), _weights(tmp_path / "cut-task")
    assert whole.keys() == cut.keys()
    for key in whole:
        assert torch.equal(whole[key], cut[key]), key
    assert _log_rows(tmp_path / "whole") == _log_rows(tmp_path / "cut")


def test_resume_refuses_another_job(tmp_path, ft_encoder, ft_sample):
    finetune_into_folder(
        _job(ft_encoder, ft_sample, steps=2), tmp_path / "ck", nproc=1, export_dir=tmp_path / "t"
    )
    with pytest.raises(TrainingError, match="another run"):
        finetune_into_folder(
            _job(ft_encoder, ft_sample, steps=2, lr=5e-4),
            tmp_path / "ck",
            nproc=1,
            export_dir=tmp_path / "t",
            mode="resume",
        )


def test_two_processes_train_and_resume(tmp_path, ft_encoder, ft_sample):
    job = _job(ft_encoder, ft_sample, nproc=2)
    finetune_into_folder(job, tmp_path / "ck", nproc=2, export_dir=tmp_path / "task", stop_after=2)
    tags = sorted(p.name for p in (tmp_path / "ck").glob("step-*"))
    assert tags == ["step-00000002"]
    assert {p.name for p in (tmp_path / "ck" / tags[0]).glob("trainer-rank*.json")} == {
        "trainer-rank0.json",
        "trainer-rank1.json",
    }
    plan = finetune_into_folder(job, tmp_path / "ck", nproc=2, export_dir=tmp_path / "task")
    assert plan.resume
    model, config = load_task_model(tmp_path / "task")
    assert config["step"] == 4
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert len(_log_rows(tmp_path / "ck")) == 5  # every step once, also across the resume
