"""Two-view augmentation for teacher-student pre-training, as torch ops on a batch.

Runs inside the training step on any device: spatial crops (one affine crop per sample applied
to HR, Sentinel and DEM alike, so the 1:32 alignment holds), flips, spectral jitter, random date
subsets and modality dropout (``train.augment`` in params.yaml). Each view keeps its geometry so
that corresponding points of two views can be sampled for pixel-level losses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from skysense.core.modalities import HR_RATIO

SPECTRAL = ("hr", "s2", "s1")


@dataclass
class ViewGeometry:
    """Where a view lies in the original chip, in normalised coordinates ([-1, 1] per axis).

    A view pixel at normalised position ``v`` shows the original position
    ``centre + half * flip * v``.

    Attributes:
        centre: crop centre per sample, B x 2 (x, y).
        half: crop half-size per sample, B (1 = the whole chip).
        flip: +1 or -1 per sample and axis, B x 2 (x, y).
    """

    centre: Tensor
    half: Tensor
    flip: Tensor

    def theta(self) -> Tensor:
        """Affine matrices B x 2 x 3 for ``F.affine_grid`` (view -> original)."""
        b = self.centre.shape[0]
        theta = self.centre.new_zeros(b, 2, 3)
        theta[:, 0, 0] = self.half * self.flip[:, 0]
        theta[:, 1, 1] = self.half * self.flip[:, 1]
        theta[:, :, 2] = self.centre
        return theta

    def to_view(self, u: Tensor) -> Tensor:
        """Original normalised points ``B x K x 2`` -> this view's normalised coordinates."""
        return (u - self.centre[:, None, :]) / (self.half[:, None, None] * self.flip[:, None, :])


def _warp(x: Tensor, theta: Tensor, side: int | None = None) -> Tensor:
    """Resample ``B x ... x H x W`` through per-sample affine ``theta`` (bilinear, border) onto
    ``side x side`` (default: the input's size).
    """
    shape = x.shape
    flat = x.reshape(shape[0], -1, shape[-2], shape[-1])
    out_hw = (shape[-2], shape[-1]) if side is None else (side, side)
    size = [flat.shape[0], flat.shape[1], *out_hw]
    grid = F.affine_grid(theta.to(flat.dtype), size, align_corners=False)
    return F.grid_sample(
        flat, grid, mode="bilinear", padding_mode="border", align_corners=False
    ).reshape(*shape[:-2], *out_hw)


class TwoViewAugment:
    """Random views of a batch with settings from ``train.augment`` (``AugmentConfig``).

    Args:
        cfg: object with ``crop_fraction`` (lo, hi: crop side as a fraction of the chip side),
            ``flip`` (bool), ``spectral_jitter`` (std of per-band gain and offset, normalised
            units), ``date_keep`` (lo, hi: fraction of dates kept) and ``modality_dropout``
            (probability to drop each modality of a sample; one always stays).
    """

    def __init__(self, cfg: Any) -> None:
        self.crop = tuple(float(v) for v in cfg.crop_fraction)
        self.flip = bool(cfg.flip)
        self.jitter = float(cfg.spectral_jitter)
        self.date_keep = tuple(float(v) for v in cfg.date_keep)
        self.dropout = float(cfg.modality_dropout)
        self.spectral_keys: tuple[str, ...] = SPECTRAL  # modalities given gain/offset jitter

    def geometry(
        self, b: int, device: torch.device, generator: torch.Generator | None = None
    ) -> ViewGeometry:
        """Draw a crop and flips per sample."""
        lo, hi = self.crop
        rand = lambda *shape: torch.rand(*shape, generator=generator, device=device)
        half = lo + (hi - lo) * rand(b)
        centre = (rand(b, 2) * 2 - 1) * (1 - half)[:, None]
        flip = torch.ones(b, 2, device=device)
        if self.flip:
            flip = torch.where(rand(b, 2) < 0.5, -flip, flip)
        return ViewGeometry(centre=centre, half=half, flip=flip)

    def __call__(
        self,
        batch: dict[str, Any],
        generator: torch.Generator | None = None,
        side: int | None = None,
    ) -> tuple[dict[str, Any], ViewGeometry]:
        """One random view of ``batch`` (a new dict; the input is not modified) and its geometry.

        ``side``: the view's Sentinel side in pixels (HR 32x; default: the chip's), e.g. the
        smaller local views of multi-crop.
        """
        ref = next(batch[k] for k in ("s2", "s1", "dem", "hr") if k in batch)
        b, device = ref.shape[0], ref.device
        rand = lambda *shape: torch.rand(*shape, generator=generator, device=device)
        randn = lambda *shape: torch.randn(*shape, generator=generator, device=device)
        geo = self.geometry(b, device, generator)
        theta = geo.theta()
        view = dict(batch)
        for key in ("hr", "s2", "s1", "dem"):
            if key in batch:
                size = None if side is None else (side * HR_RATIO if key == "hr" else side)
                view[key] = _warp(batch[key], theta, size)
        if self.jitter > 0:
            for key in self.spectral_keys:
                if key not in view:
                    continue
                x = view[key]
                bands = x.shape[-3]
                shape = (b,) + (1,) * (x.ndim - 4) + (bands, 1, 1)
                gain = 1 + self.jitter * randn(b, bands).reshape(shape)
                offset = self.jitter * randn(b, bands).reshape(shape)
                view[key] = x * gain.to(x.dtype) + offset.to(x.dtype)
        for key in ("s2", "s1"):
            if key in view:
                view[f"{key}_valid"] = self._date_subset(view, key, rand)
        if self.dropout > 0:
            self._drop_modalities(view, b, device, rand)
        return view, geo

    def _date_subset(self, view: dict[str, Any], key: str, rand) -> Tensor:
        """Keep a random fraction of each sample's valid dates (at least one when any)."""
        x = view[key]
        b, t = x.shape[:2]
        valid = view.get(f"{key}_valid")
        valid = (
            torch.ones(b, t, dtype=torch.bool, device=x.device)
            if valid is None
            else valid.to(torch.bool)
        )
        lo, hi = self.date_keep
        frac = lo + (hi - lo) * rand(b)
        noise = rand(b, t)
        keep = valid & (noise < frac[:, None])
        rescue = valid.any(1) & ~keep.any(1)
        if bool(rescue.any()):
            pick = torch.where(valid, noise, torch.full_like(noise, -1.0)).argmax(1)
            keep[rescue, pick[rescue]] = True
        return keep

    def _drop_modalities(self, view: dict[str, Any], b: int, device: torch.device, rand) -> None:
        """Drop each present modality of a sample with probability ``dropout``; one always stays."""
        names = [m for m in ("hr", "s2", "s1", "dem") if m in view]
        usable = []
        for m in names:
            has = view.get(f"has_{m}")
            has = (
                torch.ones(b, dtype=torch.bool, device=device)
                if has is None
                else has.to(torch.bool)
            )
            if m in ("s2", "s1"):
                has = has & view[f"{m}_valid"].any(1)
            usable.append(has)
        usable_t = torch.stack(usable, dim=1)  # B x M
        kept = usable_t & (rand(b, len(names)) >= self.dropout)
        rescue = usable_t.any(1) & ~kept.any(1)
        if bool(rescue.any()):
            pick = torch.where(
                usable_t, rand(b, len(names)), torch.full((b, len(names)), -1.0, device=device)
            ).argmax(1)
            kept[rescue, pick[rescue]] = True
        for i, m in enumerate(names):
            view[f"has_{m}"] = kept[:, i]


def sample_points(
    a: ViewGeometry, b: ViewGeometry, k: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """``k`` random points per sample seen by both views.

    Returns:
        Points in view ``a`` and in view ``b`` (normalised, B x K x 2, for ``F.grid_sample``),
        and a mask B (False where the two crops do not overlap).
    """
    lo = torch.maximum(a.centre - a.half[:, None], b.centre - b.half[:, None])
    hi = torch.minimum(a.centre + a.half[:, None], b.centre + b.half[:, None])
    ok = (hi > lo).all(dim=1)
    hi = torch.where(ok[:, None], hi, lo + 1e-3)
    u = lo[:, None, :] + (hi - lo)[:, None, :] * torch.rand(
        lo.shape[0], k, 2, generator=generator, device=lo.device
    )
    return a.to_view(u), b.to_view(u), ok


def sample_at(maps: Tensor, points: Tensor) -> Tensor:
    """Features of ``maps`` (B x [T x] C x H x W) at ``points`` (B x K x 2) -> B x [T x] K x C.

    Bilinear, with the border pixel repeated outside the outer pixel centres: a point within half
    a pixel of a view's edge (a quarter of the points of an 8 px view) is not mixed with zeros.
    """
    if maps.ndim == 5:
        b, t, c, h, w = maps.shape
        pts = points[:, None].expand(b, t, -1, -1).reshape(b * t, -1, 1, 2)
        out = F.grid_sample(
            maps.reshape(b * t, c, h, w),
            pts.to(maps.dtype),
            mode="bilinear",
            padding_mode="border",
            align_corners=False,
        )
        return out.squeeze(-1).transpose(1, 2).reshape(b, t, -1, c)
    out = F.grid_sample(
        maps,
        points[:, :, None, :].to(maps.dtype),
        mode="bilinear",
        padding_mode="border",
        align_corners=False,
    )
    return out.squeeze(-1).transpose(1, 2)
