"""The paper's pre-training step on the tiny preset: multi-crop views, every term, gradients to
the student only, the teacher as EMA, the objective chosen by configuration.
"""

from __future__ import annotations

import math

import torch

from skysense.config import SkySenseConfig
from skysense.models import create_model
from skysense.models.multicrop import MultiCropAugment, local_side
from skysense.models.objectives import create_pretrainer
from skysense.models.paper_objective import PaperPretrainer
from skysense.models.photometric import hr_photometric
from skysense.models.pretraining import SkySensePretrainer
from skysense.models.settings import AugmentConfig, PaperObjectiveConfig


def test_multicrop_views_sizes_and_alignment(make_batch):
    batch = make_batch(b=2, s=8, t2=3, t1=2)
    cfg = AugmentConfig(local_crops=3)
    views = MultiCropAugment(cfg, patch=4)(batch, torch.Generator().manual_seed(0))
    assert [v.is_global for v in views] == [True, True, False, False, False]
    for v in views:
        side = 8 if v.is_global else local_side(8, cfg.local_px_fraction, 4)
        assert v.batch["s2"].shape[-1] == side and v.batch["hr"].shape[-1] == 32 * side
        assert v.batch["dem"].shape[-1] == side
    locals_ = [v.geometry.half for v in views if not v.is_global]
    assert all(float(h.max()) <= cfg.local_crop_fraction[1] for h in locals_)


def test_hr_photometric_changes_only_hr_values_and_keeps_the_input():
    x = torch.randn(3, 4, 64, 64)
    cfg = AugmentConfig(hr_jitter_prob=1.0, hr_blur_prob=1.0, hr_solarize_prob=0.0)
    y = hr_photometric(x, cfg, torch.Generator().manual_seed(1))
    assert y.shape == x.shape and not torch.equal(x, y)
    assert y.std() < x.std()  # a blur smooths white noise
    off = AugmentConfig(hr_jitter_prob=0.0, hr_blur_prob=0.0, hr_solarize_prob=0.0)
    assert torch.equal(hr_photometric(x, off), x)


def _pre(**paper):
    torch.manual_seed(0)
    return PaperPretrainer(
        create_model("skysense-tiny", sentinel_px=8),
        augment=AugmentConfig(local_crops=1),
        paper=PaperObjectiveConfig(head_prototypes=64, **paper),
    )


def test_step_has_every_term_and_gradients_reach_only_the_student(make_batch):
    pre = _pre()
    out = pre(make_batch(b=3, s=8, t2=3, t1=2))
    for level in ("pixel", "object", "image"):
        for stream in ("hr", "s2", "s1", "fused"):
            assert torch.isfinite(out[f"{level}_{stream}"])
        assert f"{level}_dem" not in out  # the DEM stream is not distilled by default
    for key in ("loss_pixel", "loss_object", "loss_image", "loss_fused", "loss_cross_modal"):
        assert torch.isfinite(out[key]) and float(out[key]) > 0
    for stream in ("hr", "s2", "s1", "fused"):  # the teacher's health, in nats, 64 prototypes
        for key in (f"teacher_entropy_{stream}", f"teacher_usage_{stream}"):
            assert 0.0 <= float(out[key]) <= math.log(64) + 1e-4
        assert float(out[f"teacher_entropy_{stream}"]) <= float(out[f"teacher_usage_{stream}"])
    # the sum over streams and levels, plus the cross-modal term
    total = sum(out[k] for k in ("loss_pixel", "loss_object", "loss_image", "loss_fused"))
    assert torch.allclose(out["loss"].detach(), total + out["loss_cross_modal"], atol=1e-4)
    out["loss"].backward()
    grads = [p.grad for p in pre.heads.parameters()]
    assert all(g is not None for g in grads)
    assert pre.student.fusion.input_proj.weight.grad is not None
    assert pre.student.s2_backbone.pos_embed.grad is not None
    assert all(p.grad is None for p in pre.teacher_module.parameters())
    # the centres moved towards the teacher's logits (a buffer, no gradient)
    assert float(pre.centers["s2_pixel"].center.abs().sum()) > 0


def test_teacher_is_the_ema_of_the_student():
    pre = _pre()
    teacher = pre.teacher_module
    t0 = teacher["heads"]["s2"].last.weight.clone()
    with torch.no_grad():
        for p in pre.trainable_parameters():
            p.add_(1.0)
    s_now = pre.heads["s2"].last.weight.clone()
    pre.update_teacher(0.996)
    assert torch.allclose(teacher["heads"]["s2"].last.weight, 0.996 * t0 + 0.004 * s_now)


def test_dem_stream_in_the_loss_when_asked(make_batch):
    out = _pre(dem_in_loss=True)(make_batch(b=2, s=8, t2=2, t1=2))
    assert torch.isfinite(out["pixel_dem"])


def test_objective_by_configuration():
    cfg = SkySenseConfig()
    assert cfg.train.objective == "paper"  # the paper's objective by default (docs/objective.md)
    assert isinstance(create_pretrainer(create_model("skysense-tiny"), cfg.train), PaperPretrainer)
    legacy = cfg.train.model_copy(update={"objective": "legacy"})
    pre = create_pretrainer(create_model("skysense-tiny"), legacy)
    assert type(pre) is SkySensePretrainer


def test_teacher_update_after_local_views_of_another_size(make_batch):
    # the student's Swin window tables follow the smaller local views; the EMA step copies only
    # persistent buffers (the prototypes), never those tables
    pre = _pre()
    pre(make_batch(b=2, s=8, t2=2, t1=2))
    pre.update_teacher(0.99)
    assert torch.equal(
        pre.teacher_module["encoder"].geo_context.prototypes, pre.student.geo_context.prototypes
    )
