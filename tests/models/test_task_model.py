"""Task models: UperNet segmentation and pooled classification heads on any subset of modalities."""

from __future__ import annotations

import pytest
import torch

from skysense.models import create_model
from skysense.models.task_model import build_task_model, load_task_model, write_task_export


def _batch(spec, mods, b=2, t=2):
    s = spec.sentinel_px
    batch = {
        "lat": torch.tensor([46.0] * b, dtype=torch.float64),
        "lon": torch.tensor([8.0] * b, dtype=torch.float64),
    }
    if "s2" in mods:
        batch.update(s2=torch.randn(b, t, 10, s, s), s2_doy=torch.tensor([[100, 200]] * b))
    if "s1" in mods:
        batch.update(s1=torch.randn(b, t, 2, s, s), s1_doy=torch.tensor([[110, 210]] * b))
    if "hr" in mods:
        batch["hr"] = torch.randn(b, 4, spec.hr_px, spec.hr_px)
    if "dem" in mods:
        batch["dem"] = torch.randn(b, 1, s, s)
    return batch


@pytest.mark.parametrize("mods", [["hr", "s2", "s1", "dem"], ["s2"], ["s2", "s1"], ["hr"]])
def test_segmentation_logits_on_the_sentinel_grid(mods):
    torch.manual_seed(0)
    enc = create_model("skysense-tiny")
    model = build_task_model(enc, "segmentation", 5, mods).eval()
    logits = model(_batch(enc.spec, mods))
    s = enc.spec.sentinel_px
    assert logits.shape == (2, 5, s, s)
    assert model.head_spec.use_hr == ("hr" in mods)
    proba = model.predict_proba(_batch(enc.spec, mods))
    assert torch.allclose(proba.sum(dim=1), torch.ones(2, s, s), atol=1e-5)


def test_hr_head_reads_zeros_when_hr_is_absent_from_a_batch():
    enc = create_model("skysense-tiny")
    model = build_task_model(enc, "segmentation", 3, ["hr", "s2"]).eval()
    assert model(_batch(enc.spec, ["s2"])).shape[1] == 3


@pytest.mark.parametrize("task", ["classification", "multilabel"])
def test_scene_heads(task):
    enc = create_model("skysense-tiny")
    model = build_task_model(enc, task, 7, ["s2", "s1"]).eval()
    assert model(_batch(enc.spec, ["s2", "s1"])).shape == (2, 7)


def test_export_round_trip(tmp_path):
    torch.manual_seed(0)
    enc = create_model("skysense-tiny")
    model = build_task_model(enc, "segmentation", 4, ["s2"], channels=32).eval()
    config = {
        "classes": ["a", "b", "c", "d"],
        "colours": [[0, 0, 0]] * 4,
        "modalities": ["s2"],
        "encoder": {"preset": "skysense-tiny", "overrides": {}},
    }
    write_task_export(model, config, tmp_path / "task")
    loaded, cfg = load_task_model(tmp_path / "task")
    batch = _batch(enc.spec, ["s2"])
    assert torch.equal(model(batch), loaded(batch))
    assert cfg["head"]["channels"] == 32 and cfg["task"] == "segmentation"
