"""Sinkhorn-Knopp and the contrastive losses, each on its own."""

from __future__ import annotations

import torch

from skysense.models.losses import (
    cross_modal_loss,
    image_contrastive_loss,
    info_nce,
    object_contrastive_loss,
    pixel_contrastive_loss,
    weighted_total,
)
from skysense.models.sinkhorn import sinkhorn_knopp


def test_sinkhorn_row_and_column_sums():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(60, 5, generator=g)
    q = sinkhorn_knopp(scores, epsilon=0.5, iters=50)
    assert torch.allclose(q.sum(1), torch.ones(60), atol=1e-5)
    assert torch.allclose(q.sum(0), torch.full((5,), 12.0), atol=1e-3)
    assert (q >= 0).all()
    batched = sinkhorn_knopp(torch.stack([scores, scores.flip(0)]), epsilon=0.5, iters=50)
    assert torch.allclose(batched[0], q, atol=1e-6)
    assert torch.allclose(batched[1].sum(-2), torch.full((5,), 12.0), atol=1e-3)


def test_sinkhorn_balances_a_skewed_assignment():
    scores = torch.zeros(40, 4)
    scores[:, 0] = 1.0  # every sample prefers cluster 0
    q = sinkhorn_knopp(scores, epsilon=0.05, iters=100)
    assert torch.allclose(q.sum(0), torch.full((4,), 10.0), atol=1e-2)


def _features(n=32, d=16, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def test_info_nce_identical_minimal_shuffled_larger():
    x = _features()
    same = info_nce(x, x, temperature=0.05)
    shuffled = info_nce(
        x, x[torch.randperm(32, generator=torch.Generator().manual_seed(1))], temperature=0.05
    )
    assert same < 0.05  # near zero: distinct random directions at a low temperature
    assert shuffled > same + 1.0
    assert info_nce(x[:1], x[:1]) == 0.0  # a single row has no negatives


def test_pixel_loss_masks_and_orders():
    s = torch.randn(3, 3, 8, 16, generator=torch.Generator().manual_seed(0))
    mask = torch.ones(3, 3, 8, dtype=torch.bool)
    same = pixel_contrastive_loss(s, s, mask, temperature=0.05)
    perm = s.reshape(-1, 16)[
        torch.randperm(72, generator=torch.Generator().manual_seed(2))
    ].reshape(s.shape)
    assert pixel_contrastive_loss(s, perm, mask, 0.05) > same + 1.0
    garbage = s.clone()
    garbage[1] = 1e3 * torch.randn(3, 8, 16)
    mask[1] = False
    kept = torch.tensor([0, 2])
    masked = pixel_contrastive_loss(s, garbage, mask, 0.05)
    assert masked > 0
    assert torch.allclose(masked, pixel_contrastive_loss(s[kept], s[kept], mask[kept], 0.05))


def test_info_nce_groups_leave_same_group_keys_out_of_negatives():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 16, generator=g)
    dup = x.clone()
    dup[1] = dup[0]  # rows 0 and 1 are one field seen at two points of one chip
    groups = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    plain = info_nce(dup, dup, temperature=0.05)
    grouped = info_nce(dup, dup, temperature=0.05, groups=groups)
    assert plain > 0.15  # the twin is a "negative" as close as the positive: log 2 on 2 of 8 rows
    assert grouped < 0.05
    # one group only: no negatives, zero loss with a graph
    q = x.clone().requires_grad_(True)
    alone = info_nce(q, x, groups=torch.zeros(8, dtype=torch.long))
    assert alone == 0.0 and alone.requires_grad


def test_pixel_loss_does_not_push_apart_points_of_one_sample():
    g = torch.Generator().manual_seed(0)
    field = torch.randn(4, 1, 1, 16, generator=g)
    s = field.expand(4, 3, 8, 16) + 0.01 * torch.randn(
        4, 3, 8, 16, generator=g
    )  # 4 chips, one field each
    mask = torch.ones(4, 3, 8, dtype=torch.bool)
    assert pixel_contrastive_loss(s, s, mask, 0.05) < 0.1


def test_object_loss_identical_minimal_shuffled_larger():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 4, 16, generator=g) * 3
    pts = centres.repeat_interleave(8, dim=1) + 0.1 * torch.randn(
        4, 32, 16, generator=g
    )  # 4 objects per image
    keep = torch.ones(4, dtype=torch.bool)
    same = object_contrastive_loss(pts, pts, keep, n_clusters=4, temperature=0.1)
    other = object_contrastive_loss(
        pts, pts[torch.tensor([1, 2, 3, 0])], keep, n_clusters=4, temperature=0.1
    )
    assert same < 0.5
    assert other > same + 1.0


def test_image_loss():
    x = _features(8, 32)
    keep = torch.ones(8, dtype=torch.bool)
    same = image_contrastive_loss(x, x, keep, 0.1)
    assert same < 0.1
    assert image_contrastive_loss(x, x.roll(1, 0), keep, 0.1) > same + 1.0


def test_cross_modal_loss():
    x = torch.randn(4, 8, 16, generator=torch.Generator().manual_seed(3))
    masks = {m: torch.ones(4, dtype=torch.bool) for m in ("hr", "s2", "s1")}
    aligned = cross_modal_loss({"hr": x, "s2": x, "s1": x}, masks, 0.05)
    shuffled = cross_modal_loss({"hr": x, "s2": x.roll(1, 1), "s1": x.roll(2, 1)}, masks, 0.05)
    assert aligned < 0.05 and shuffled > aligned + 1.0
    # pairs with a modality absent everywhere drop out
    masks["s1"] = torch.zeros(4, dtype=torch.bool)
    only_pair = cross_modal_loss({"hr": x, "s2": x, "s1": x.roll(2, 1)}, masks, 0.05)
    assert only_pair < 0.05


def test_weighted_total():
    class W:
        pixel, object, image, fused, cross_modal = 1.0, 0.5, 2.0, 0.0, 1.0

    comp = {
        k: torch.tensor(v)
        for k, v in dict(pixel=1.0, object=2.0, image=3.0, fused=100.0, cross_modal=4.0).items()
    }
    assert float(weighted_total(comp, W)) == 1.0 + 1.0 + 6.0 + 0.0 + 4.0
