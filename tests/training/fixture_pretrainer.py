"""Test fixture: a small pre-trainer with the SkySensePretrainer contract, and a chip-like dataset.

Not product code: it lets the engine, checkpoint, resume and export machinery be tested in
isolation (fast, exact) from the real model; the end-to-end tests use the real tiny preset.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class TinyEncoder(nn.Module):
    """Per-pixel encoder of a Sentinel-2 time series (mean over dates, two 1x1 convs)."""

    def __init__(self, bands: int = 10, dim: int = 16) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([nn.Conv2d(bands, dim, 1), nn.Conv2d(dim, dim, 1)])
        self.norm = nn.GroupNorm(1, dim)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = batch["s2"].mean(dim=1)
        x = torch.relu(self.blocks[0](x))
        return self.norm(self.blocks[1](x))

    embed = forward


class TinyPretrainer(nn.Module):
    """Student, frozen EMA teacher and a head; ``forward(batch) -> {'loss', components}``."""

    def __init__(self, bands: int = 10, dim: int = 16) -> None:
        super().__init__()
        self.student = TinyEncoder(bands, dim)
        self.teacher = copy.deepcopy(self.student)
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.head = nn.Conv2d(dim, bands, 1)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        noisy = dict(batch)
        noisy["s2"] = batch["s2"] + 0.1 * torch.randn_like(batch["s2"])  # uses the torch RNG
        feats = self.student(noisy)
        recon = (self.head(feats) - batch["s2"].mean(dim=1)).pow(2).mean()
        with torch.no_grad():
            target = self.teacher(batch)
        distill = (feats - target).pow(2).mean()
        return {"loss": recon + 0.1 * distill, "recon": recon, "distill": distill}

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        for s, t in zip(self.student.parameters(), self.teacher.parameters(), strict=True):
            t.mul_(momentum).add_(s, alpha=1.0 - momentum)


def tiny_samples(
    n: int = 16, t: int = 3, size: int = 4, seed: int = 0
) -> list[dict[str, torch.Tensor]]:
    """``n`` chip-like samples: ``s2`` T x 10 x size x size with a learnable structure."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.randn(10, 1, 1, generator=gen)
    return [
        {"s2": base + 0.5 * torch.randn(t, 10, size, size, generator=gen), "index": torch.tensor(i)}
        for i in range(n)
    ]


def stack_samples(samples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Collate by stacking every key."""
    return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}


def config_with(sets: list[str] | None = None):
    """The embedded default configuration with dotted overrides (independent of ./params.yaml)."""
    from skysense.config import apply_overrides, config_from_dict

    return config_from_dict(apply_overrides({}, sets or []), "<test defaults>")
