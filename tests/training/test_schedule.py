"""Learning-rate, EMA-momentum schedules and layer-wise decay groups."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from skysense.training.schedule import (
    WarmupCosineSchedule,
    ema_momentum_at,
    layer_id,
    lr_at,
    param_groups,
)


def test_lr_warms_up_linearly_then_decays_by_cosine_to_min_lr() -> None:
    kw = {"lr": 1.0, "min_lr": 0.1, "warmup_steps": 4, "total_steps": 14}
    assert [lr_at(s, **kw) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_at(4, **kw) == pytest.approx(1.0)
    assert lr_at(9, **kw) == pytest.approx(0.55)  # half-way: (1 + 0.1) / 2
    assert lr_at(14, **kw) == pytest.approx(0.1)
    assert lr_at(100, **kw) == pytest.approx(0.1)


def test_ema_momentum_rises_from_start_to_end() -> None:
    values = [ema_momentum_at(s, start=0.99, end=1.0, total_steps=10) for s in range(11)]
    assert values[0] == pytest.approx(0.99)
    assert values[-1] == pytest.approx(1.0)
    assert values[5] == pytest.approx(0.995)
    assert all(a <= b for a, b in itertools.pairwise(values))


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.patch_embed = nn.Linear(4, 8)
        self.blocks = nn.ModuleList([nn.Linear(8, 8), nn.Linear(8, 8)])
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 2)
        self.frozen = nn.Linear(8, 8)
        for p in self.frozen.parameters():
            p.requires_grad_(False)


def test_param_groups_skip_decay_on_biases_and_norms_and_leave_frozen_out() -> None:
    net = _Net()
    groups = param_groups(net, weight_decay=0.05)
    ids = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    assert ids[id(net.blocks[0].weight)] == 0.05
    assert ids[id(net.blocks[0].bias)] == 0.0
    assert ids[id(net.norm.weight)] == 0.0
    assert id(net.frozen.weight) not in ids
    assert sum(len(g["params"]) for g in groups) == 10


def test_layer_decay_scales_lr_by_depth() -> None:
    net = _Net()
    assert layer_id("patch_embed.weight", 2) == 0
    assert layer_id("blocks.1.weight", 2) == 2
    assert layer_id("encoder.stages.1.blocks.0.attn.qkv.weight", 4) == 2
    assert layer_id("head.weight", 2) == 3
    groups = param_groups(net, weight_decay=0.0, layer_decay=0.5)
    scale = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    assert scale[id(net.head.weight)] == 1.0
    assert scale[id(net.blocks[1].weight)] == 0.5
    assert scale[id(net.blocks[0].weight)] == 0.25
    assert scale[id(net.patch_embed.weight)] == 0.125


def test_schedule_sets_group_lr_and_resumes_from_state() -> None:
    net = _Net()
    opt = torch.optim.AdamW(param_groups(net, weight_decay=0.0, layer_decay=0.5), lr=1.0)
    sched = WarmupCosineSchedule(opt, lr=1.0, min_lr=0.0, warmup_steps=2, total_steps=6)
    assert max(sched.get_last_lr()) == pytest.approx(0.5)
    for _ in range(3):
        sched.step()
    assert sched.current_lr() == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.25)))
    other = WarmupCosineSchedule(opt, lr=1.0, min_lr=0.0, warmup_steps=2, total_steps=6)
    other.load_state_dict(sched.state_dict())
    assert other.get_last_lr() == sched.get_last_lr()
    assert sorted(set(other.get_last_lr())) == sorted(
        {other.current_lr() * s for s in (1.0, 0.5, 0.25, 0.125)}
    )
