"""ZeRO-3 needs every rank to use every parameter: ``run_all_branches`` guarantees it."""

from __future__ import annotations

import torch

from skysense.models import create_model
from skysense.models.pretraining import SkySensePretrainer


def _batch(b: int, s: int, n_regions: int) -> dict:
    g = torch.Generator().manual_seed(0)
    return {
        "s2": torch.randn(b, 3, 10, s, s, generator=g),
        "s2_doy": torch.randint(1, 366, (b, 3), generator=g),
        "s2_valid": torch.ones(b, 3, dtype=torch.bool),
        "s1": torch.randn(b, 2, 2, s, s, generator=g),
        "s1_doy": torch.randint(1, 366, (b, 2), generator=g),
        "s1_valid": torch.ones(b, 2, dtype=torch.bool),
        "has_s1": torch.zeros(b, dtype=torch.bool),
        "region": torch.randint(0, n_regions, (b,), generator=g),
    }  # no HR and no DEM in the whole batch; S1 absent for every sample


def _without_grad(run_all: bool) -> list[str]:
    torch.manual_seed(0)
    model = create_model("skysense-tiny", sentinel_px=4)
    model.run_all_branches = run_all
    pre = SkySensePretrainer(model)
    out = pre(_batch(2, 4, model.spec.n_regions))
    out["loss"].backward()
    return [n for n, p in pre.named_parameters() if p.requires_grad and p.grad is None]


def test_missing_modalities_leave_branches_unused_by_default() -> None:
    unused = _without_grad(run_all=False)
    assert any(n.startswith("student.hr_backbone.") for n in unused)
    assert any(n.startswith("student.s1_backbone.") for n in unused)


def test_run_all_branches_reaches_every_parameter_without_changing_the_loss() -> None:
    assert _without_grad(run_all=True) == []
    losses = []
    for run_all in (False, True):
        torch.manual_seed(0)
        model = create_model("skysense-tiny", sentinel_px=4)
        model.run_all_branches = run_all
        pre = SkySensePretrainer(model)
        losses.append(pre(_batch(2, 4, model.spec.n_regions))["loss"].item())
    assert losses[0] == losses[1]
