"""The paper objective's pieces: DINO head, teacher centring/sharpening, the distillation
cross-entropy, Sinkhorn-Knopp object clusters, and the pixel/object/image terms of one pair.
"""

from __future__ import annotations

import math

import torch

from skysense.models.augment import ViewGeometry
from skysense.models.distillation import (
    Centering,
    DistillationHead,
    TeacherHealth,
    distillation_loss,
    teacher_probabilities,
    update_centres,
)
from skysense.models.paper_objective import cluster_assignments, pixel_centres, to_original


def test_head_shapes_and_normalised_bottleneck():
    head = DistillationHead(16, 32, 8, 64)
    x = torch.randn(2, 3, 5, 16)
    assert head(x).shape == (2, 3, 5, 64)
    assert torch.allclose(head.embed(x).norm(dim=-1), torch.ones(2, 3, 5), atol=1e-5)
    # logits are cosines with unit prototypes: bounded by 1
    assert head(x).abs().max() <= 1.0 + 1e-5


def test_distillation_loss_known_values():
    # uniform teacher, uniform student over K: H = log K
    k = 8
    s = torch.zeros(3, k)
    p = teacher_probabilities(torch.zeros(3, k), torch.zeros(k), 0.04)
    assert torch.allclose(distillation_loss(s, p, 0.1), torch.tensor(math.log(k)))
    # one-hot teacher on class 0, student logits [1, 0] at tau_s = 0.5: -log softmax([2, 0])[0]
    s = torch.tensor([[1.0, 0.0]])
    p = torch.tensor([[1.0, 0.0]])
    want = -math.log(math.exp(2) / (math.exp(2) + 1))
    assert math.isclose(float(distillation_loss(s, p, 0.5)), want, rel_tol=1e-6)
    # masked rows take no part; no row: zero with a graph
    s2 = torch.cat([s, torch.tensor([[0.0, 9.0]])]).requires_grad_()
    p2 = torch.cat([p, torch.tensor([[1.0, 0.0]])])
    mask = torch.tensor([True, False])
    assert math.isclose(float(distillation_loss(s2, p2, 0.5, mask).detach()), want, rel_tol=1e-6)
    zero = distillation_loss(s2, p2, 0.5, torch.tensor([False, False]))
    zero.backward()
    assert float(zero.detach()) == 0.0 and s2.grad is not None


def test_teacher_health_tells_the_two_collapses_apart():
    k = 16
    uniform = TeacherHealth()
    uniform.add(torch.full((10, k), 1.0 / k))
    row, mean = uniform.values()
    assert math.isclose(float(row), math.log(k), rel_tol=1e-5)  # centring wins
    assert math.isclose(float(mean), math.log(k), rel_tol=1e-5)
    one = TeacherHealth()
    one.add(torch.nn.functional.one_hot(torch.zeros(10, dtype=torch.long), k).float())
    row, mean = one.values()
    assert float(row) < 1e-6 and float(mean) < 1e-6  # sharpening wins
    healthy = TeacherHealth()  # sharp rows spread over 4 prototypes, in two calls
    healthy.add(torch.nn.functional.one_hot(torch.tensor([0, 1]), k).float())
    healthy.add(torch.nn.functional.one_hot(torch.tensor([2, 3]), k).float())
    healthy.add(torch.zeros(0, k))  # no row: nothing changes
    row, mean = healthy.values()
    assert float(row) < 1e-6 and math.isclose(float(mean), math.log(4), rel_tol=1e-5)
    assert healthy.rows == 4
    assert TeacherHealth().values() is None


def test_centring_and_sharpening():
    t = torch.tensor([[2.0, 0.0, 0.0], [2.0, 1.0, 0.0]])
    c = Centering(3, momentum=0.9)
    c.update(t)
    assert torch.allclose(c.center, 0.1 * t.mean(0))
    # centring removes a constant offset per prototype; sharpening (small tau) is near one-hot
    p = teacher_probabilities(torch.tensor([[1.0, 0.5, 0.0]]) + 5.0, torch.full((3,), 5.0), 0.04)
    assert p[0, 0] > 0.99 and torch.allclose(p.sum(-1), torch.ones(1))


def test_teacher_side_gets_no_gradient():
    s = torch.randn(4, 6, requires_grad=True)
    t = torch.randn(4, 6, requires_grad=True)
    loss = distillation_loss(s, teacher_probabilities(t, torch.zeros(6), 0.04), 0.1)
    loss.backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


def test_clusters_group_two_objects():
    # 8 pixels: 4 along +x, 4 along +y; two clusters must separate them
    a = torch.tensor([1.0, 0.0]).expand(4, 2)
    b = torch.tensor([0.0, 1.0]).expand(4, 2)
    feats = torch.cat([a, b])[None] + 0.01 * torch.randn(1, 8, 2)
    q = cluster_assignments(feats, torch.ones(1, 8, dtype=torch.bool), 2)
    assert q.shape == (1, 8, 2)
    hard = q.argmax(-1)[0]
    assert len(set(hard[:4].tolist())) == 1 and len(set(hard[4:].tolist())) == 1
    assert hard[0] != hard[4]
    assert torch.allclose(q.sum(-2), torch.ones(1, 2), atol=1e-5)  # each column a mean
    masked = torch.tensor([[True] * 4 + [False] * 4])
    q = cluster_assignments(feats, masked, 2)
    assert torch.count_nonzero(q[0, 4:]) == 0  # pixels out of the mask carry no mass


def test_pixel_correspondence_between_views():
    # view b: a half-side crop left of the centre (x in [-1, 0], y in [-0.5, 0.5]); its 2 x 2
    # pixel centres in view a (the whole chip)
    a = ViewGeometry(torch.zeros(1, 2), torch.ones(1), torch.ones(1, 2))
    b = ViewGeometry(torch.tensor([[-0.5, 0.0]]), torch.tensor([0.5]), torch.ones(1, 2))
    p = a.to_view(to_original(b, pixel_centres(1, 2, torch.device("cpu"))))
    want = torch.tensor([[[-0.75, -0.25], [-0.25, -0.25], [-0.75, 0.25], [-0.25, 0.25]]])
    assert torch.allclose(p, want)


def test_update_centres_in_one_pass_skips_centres_without_rows():
    a, b, c = Centering(3, momentum=0.5), Centering(2, momentum=0.9), Centering(3, momentum=0.5)
    c.center.fill_(1.0)
    ta = torch.tensor([[2.0, 0.0, 4.0], [0.0, 2.0, 0.0]])
    tb = torch.tensor([[[10.0, 20.0]]])
    update_centres([(a, ta), (b, tb), (c, None)])
    torch.testing.assert_close(a.center, 0.5 * ta.mean(0))
    torch.testing.assert_close(b.center, 0.1 * torch.tensor([10.0, 20.0]))
    torch.testing.assert_close(c.center, torch.ones(3))  # no rows anywhere: unchanged
    update_centres([(c, torch.zeros(0, 3))])
    torch.testing.assert_close(c.center, torch.ones(3))


def _two_rank_centres(rank: int, port: int, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    a, b = Centering(2, momentum=0.0), Centering(2, momentum=0.0)
    # rank 0 has rows for both centres, rank 1 only for b (a missing stream on that rank)
    rows_a = torch.tensor([[1.0, 3.0]]) if rank == 0 else None
    rows_b = torch.tensor([[2.0, 2.0], [4.0, 0.0]]) if rank == 0 else torch.tensor([[6.0, 4.0]])
    update_centres([(a, rows_a), (b, rows_b)])
    torch.save({"a": a.center, "b": b.center}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def test_update_centres_pools_rows_over_ranks_with_one_collective(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_two_rank_centres, args=(port, str(tmp_path)), nprocs=2, join=True)
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        torch.testing.assert_close(got["a"], torch.tensor([1.0, 3.0]))  # rank 0's row alone
        torch.testing.assert_close(got["b"], torch.tensor([4.0, 2.0]))  # mean of the 3 rows
