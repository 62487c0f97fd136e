"""Multi-crop views for the paper's objective: two global views and several local views.

Global views are crops of ``train.augment.crop_fraction`` of the chip side at the chip's
resolution, seen by the teacher and the student; local views are smaller crops
(``local_crop_fraction``) resampled to a smaller side (``local_px_fraction`` of the Sentinel side,
a multiple of the patch size, HR 32x), seen by the student only (DINO's multi-crop, which the
paper's self-distillation builds on). Each view keeps its :class:`ViewGeometry`, so every student
pixel finds the teacher's feature at the same place of the original chip. Every view also gets
the two-view augmentations (flips, spectral jitter, date subsets, modality dropout) and HR
photometric augmentation (:mod:`skysense.models.photometric`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from skysense.core.modalities import HR_RATIO
from skysense.models.augment import TwoViewAugment, ViewGeometry
from skysense.models.photometric import hr_photometric


@dataclass
class View:
    """One augmented view: the batch dict, where it lies in the chip, global or local."""

    batch: dict[str, Any]
    geometry: ViewGeometry
    is_global: bool


def sentinel_side(batch: dict[str, Any]) -> int:
    """The chip's Sentinel side in pixels (HR counted as side / 32)."""
    for key in ("s2", "s1", "dem"):
        if key in batch:
            return int(batch[key].shape[-1])
    return int(batch["hr"].shape[-1]) // HR_RATIO


def local_side(sentinel_px: int, fraction: float, patch: int) -> int:
    """Sentinel side of a local view: ``fraction`` of the chip side, a multiple of ``patch``."""
    side = int(round(sentinel_px * fraction / patch)) * patch
    return max(patch, min(side, sentinel_px))


class MultiCropAugment:
    """``n_global`` (2) global and ``cfg.local_crops`` local views of a batch.

    Args:
        cfg: ``train.augment`` (``AugmentConfig``).
        patch: the model's patch size (local sides are multiples of it).
    """

    def __init__(self, cfg: Any, patch: int = 4) -> None:
        self.cfg = cfg
        self.patch = patch
        self.two_view = TwoViewAugment(cfg)
        self.local = TwoViewAugment(cfg)
        self.local.crop = tuple(float(v) for v in cfg.local_crop_fraction)
        if cfg.hr_photometric:  # HR gets photometric augmentation instead of band jitter
            self.two_view.spectral_keys = self.local.spectral_keys = ("s2", "s1")

    def _photometric(self, view: dict[str, Any], generator: torch.Generator | None) -> None:
        if self.cfg.hr_photometric and "hr" in view:
            view["hr"] = hr_photometric(view["hr"], self.cfg, generator)

    def __call__(
        self, batch: dict[str, Any], generator: torch.Generator | None = None
    ) -> list[View]:
        """The global views first, then the local ones (the input is not modified)."""
        views = []
        for _ in range(2):
            v, geo = self.two_view(batch, generator)
            self._photometric(v, generator)
            views.append(View(v, geo, True))
        side = local_side(sentinel_side(batch), float(self.cfg.local_px_fraction), self.patch)
        for _ in range(int(self.cfg.local_crops)):
            v, geo = self.local(batch, generator, side=side)
            self._photometric(v, generator)
            views.append(View(v, geo, False))
        return views
