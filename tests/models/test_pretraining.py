"""Augmentation, EMA teacher and the pre-training step of the tiny preset."""

from __future__ import annotations

import torch

from skysense.models import create_model
from skysense.models.augment import TwoViewAugment, ViewGeometry, sample_at, sample_points
from skysense.models.pretraining import SkySensePretrainer
from skysense.models.settings import AugmentConfig, LossWeights


def test_augment_keeps_hr_and_sentinel_aligned(make_batch):
    batch = make_batch(b=3, s=4)
    # the same pattern on both grids: HR is the Sentinel image upsampled 32x
    base = torch.randn(3, 1, 4, 4)
    batch["s2"][:, :, :1] = base[:, None]
    batch["hr"][:, :1] = torch.nn.functional.interpolate(base, scale_factor=32, mode="nearest")
    aug = TwoViewAugment(
        AugmentConfig(spectral_jitter=0.0, modality_dropout=0.0, date_keep=(1.0, 1.0))
    )
    view, _geo = aug(batch, torch.Generator().manual_seed(0))
    hr_down = torch.nn.functional.avg_pool2d(view["hr"][:, :1], 32)
    assert torch.allclose(hr_down, view["s2"][:, 0, :1], atol=0.35 * base.abs().max())
    assert view["hr"].shape == batch["hr"].shape and view["s2"].shape == batch["s2"].shape
    assert batch["hr"] is not view["hr"]  # input untouched


def test_augment_dates_and_modalities_never_empty(make_batch):
    batch = make_batch(b=16, s=4, t2=4, t1=3)
    aug = TwoViewAugment(AugmentConfig(date_keep=(0.0, 0.1), modality_dropout=1.0))
    view, _ = aug(batch, torch.Generator().manual_seed(0))
    assert view["s2_valid"].sum(1).min() >= 1 and view["s1_valid"].sum(1).min() >= 1
    kept = torch.stack([view[f"has_{m}"] for m in ("hr", "s2", "s1", "dem")], 1)
    assert (kept.sum(1) == 1).all()  # dropout 1.0: exactly the one rescued modality


def test_identity_geometry_and_point_sampling():
    geo = ViewGeometry(
        centre=torch.zeros(1, 2), half=torch.ones(1), flip=torch.tensor([[-1.0, 1.0]])
    )
    maps = torch.arange(16.0).reshape(1, 1, 4, 4)
    pa, pb, ok = sample_points(
        geo, ViewGeometry(torch.zeros(1, 2), torch.ones(1), torch.ones(1, 2)), 5
    )
    assert ok.all()
    flipped = maps.flip(-1)
    assert torch.allclose(sample_at(flipped, pa), sample_at(maps, pb), atol=1e-5)


def test_sample_at_view_edges_repeat_the_border_not_zeros():
    maps = torch.full((1, 2, 3, 8, 8), 5.0)  # B x T x C x H x W, a uniform field
    edges = torch.tensor(
        [[[-1.0, -1.0], [1.0, 1.0], [-0.99, 0.3], [0.0, 0.999]]]
    )  # within half a pixel
    out = sample_at(maps, edges)
    assert out.shape == (1, 2, 4, 3)
    assert torch.allclose(out, torch.full_like(out, 5.0))  # zero padding gave 1.25-3.75 here
    assert torch.allclose(sample_at(maps[:, 0], edges), torch.full((1, 4, 3), 5.0))


def test_teacher_is_frozen_and_moves_by_the_ema_amount():
    torch.manual_seed(0)
    pre = SkySensePretrainer(create_model("skysense-tiny", sentinel_px=4))
    teacher = pre.teacher_module
    assert all(not p.requires_grad for p in teacher.parameters())
    trainable = list(pre.trainable_parameters())
    assert {id(p) for p in trainable}.isdisjoint({id(p) for p in teacher.parameters()})
    assert len(trainable) == len(list(pre.student.parameters())) + len(list(pre.heads.parameters()))
    with torch.no_grad():
        for p in pre.student.parameters():
            p.add_(1.0)
    t_before = teacher["encoder"].fusion.input_proj.weight.clone()
    s_now = pre.student.fusion.input_proj.weight.clone()
    pre.update_teacher(0.9)
    expected = 0.9 * t_before + 0.1 * s_now
    assert torch.allclose(teacher["encoder"].fusion.input_proj.weight, expected, atol=1e-6)
    assert torch.allclose(
        teacher["encoder"].modality_embed,
        0.9 * (pre.student.modality_embed - 1) + 0.1 * pre.student.modality_embed,
        atol=1e-6,
    )
    assert torch.equal(
        teacher["encoder"].geo_context.prototypes, pre.student.geo_context.prototypes
    )


def test_detached_teacher_outside_state_dict():
    pre = SkySensePretrainer(create_model("skysense-tiny", sentinel_px=4), register_teacher=False)
    assert not any(k.startswith("teacher") for k in pre.state_dict())
    assert len(pre.teacher_state_dict()) > 0
    pre.to(torch.float64)
    assert pre.teacher_module["encoder"].fusion.cls_token.dtype == torch.float64


def test_step_returns_every_component_and_grads_skip_prototypes(make_batch):
    torch.manual_seed(0)
    pre = SkySensePretrainer(create_model("skysense-tiny", sentinel_px=4), points=8)
    out = pre(make_batch(b=4, s=4))
    for key in (
        "loss",
        "loss_pixel",
        "loss_object",
        "loss_image",
        "loss_fused",
        "loss_cross_modal",
        "pixel_hr",
        "object_s2",
        "image_fused",
    ):
        assert key in out and torch.isfinite(out[key])
    out["loss"].backward()
    no_grad = [n for n, p in pre.named_parameters() if p.requires_grad and p.grad is None]
    assert no_grad == []
    assert all(p.grad is None for p in pre.teacher_module.parameters())


def test_loss_falls_over_30_steps_on_a_fixed_batch(make_batch):
    """The student learns a fixed batch: mild augmentation (no modality dropout, every date
    kept) so the fall is not hidden by view noise; 4 samples of 4 Sentinel px, one date.
    """
    torch.manual_seed(0)
    weights = LossWeights()
    augment = AugmentConfig(
        crop_fraction=(0.7, 1.0), spectral_jitter=0.05, date_keep=(1.0, 1.0), modality_dropout=0.0
    )
    pre = SkySensePretrainer(
        create_model("skysense-tiny", sentinel_px=4),
        loss_weights=weights,
        augment=augment,
        points=8,
    )
    batch = make_batch(b=4, s=4, t2=1, t1=1, seed=1)
    opt = torch.optim.AdamW(pre.trainable_parameters(), lr=2e-3)
    losses = []
    for _ in range(30):
        out = pre(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        pre.update_teacher(0.9)
        losses.append(float(out["loss"].detach()))
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first * 0.9, losses
