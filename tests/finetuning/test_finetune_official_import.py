"""An export made by ``skysense model import-official`` fine-tunes like a trained one (the task
model takes the official-shaped encoder: no DEM token, no modality embedding, no geo-context).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from skysense.finetuning.job import FinetuneJob
from skysense.finetuning.launch import finetune_into_folder
from skysense.finetuning.settings import FinetuneConfig
from skysense.models.official_release import import_official
from skysense.models.presets import resolve_spec
from skysense.models.task_model import load_task_model

sys.path.insert(0, str(Path(__file__).parent.parent / "models"))
from official_layout import official_names, split_release


def test_imported_release_fine_tunes(tmp_path, ft_sample):
    torch.manual_seed(0)
    combined = {
        k: torch.randn(s) * 0.02 for k, s in official_names(resolve_spec("skysense-tiny")).items()
    }
    for name, state in split_release(combined).items():
        torch.save(state, tmp_path / name)
    export, _ = import_official(
        sorted(tmp_path.glob("*.pth")), tmp_path / "export", preset="skysense-tiny"
    )
    job = FinetuneJob(
        finetune=FinetuneConfig(steps=2, micro_batch=2, checkpoint_every=2, warmup_steps=1),
        encoder_export=export,
        labels_root=ft_sample,
        modalities=["hr", "s2", "s1"],
    )
    finetune_into_folder(job, tmp_path / "ck", nproc=1, export_dir=tmp_path / "task")
    _model, config = load_task_model(tmp_path / "task")
    assert config["step"] == 2
    assert config["encoder"]["overrides"]["modality_embed"] is False
