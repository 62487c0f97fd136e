"""Photometric augmentation of the HR view, in normalised units, as torch ops on a batch.

The paper augments the HR image photometrically (the BYOL/DINO set: colour jitter, Gaussian
blur, solarisation) besides the spatial crops; Sentinel views get spectral gain/offset jitter
instead (``train.augment.spectral_jitter``). The chips are z-scored per band, so every op works
on normalised values: brightness adds, contrast scales around the image mean, saturation mixes
each visible band with the visible mean, solarisation negates values above a threshold. Band 4 of
RGBN (near infrared) takes brightness and contrast, not saturation.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


def _gaussian_kernel(sigma: Tensor, size: int) -> Tensor:
    """Per-sample 1-D Gaussian kernels ``B x size`` (normalised)."""
    x = torch.arange(size, device=sigma.device, dtype=sigma.dtype) - (size - 1) / 2
    k = torch.exp(-(x[None, :] ** 2) / (2 * sigma[:, None] ** 2))
    return k / k.sum(1, keepdim=True)


def gaussian_blur(x: Tensor, sigma: Tensor, size: int = 9) -> Tensor:
    """Separable Gaussian blur of ``B x C x H x W`` with one ``sigma`` (pixels) per sample."""
    b, c, h, w = x.shape
    k = _gaussian_kernel(sigma.to(x.dtype), size)  # B x size
    pad = size // 2
    flat = x.reshape(1, b * c, h, w)
    kx = k.repeat_interleave(c, 0)[:, None, None, :]  # BC x 1 x 1 x size
    flat = F.conv2d(F.pad(flat, (pad, pad, 0, 0), mode="replicate"), kx, groups=b * c)
    ky = k.repeat_interleave(c, 0)[:, None, :, None]
    flat = F.conv2d(F.pad(flat, (0, 0, pad, pad), mode="replicate"), ky, groups=b * c)
    return flat.reshape(b, c, h, w)


def hr_photometric(x: Tensor, cfg: Any, generator: torch.Generator | None = None) -> Tensor:
    """Random photometric augmentation of an HR batch ``B x C x H x W`` (normalised bands).

    Args:
        x: HR batch, bands R, G, B[, N].
        cfg: ``train.augment``: ``hr_jitter_prob``, ``hr_brightness``, ``hr_contrast``,
            ``hr_saturation``, ``hr_blur_prob``, ``hr_blur_sigma`` (lo, hi pixels),
            ``hr_solarize_prob``.
        generator: random generator (tests).

    Returns:
        A new tensor; ``x`` is not modified.
    """
    b, c = x.shape[:2]
    dev = x.device
    rand = lambda *shape: torch.rand(*shape, generator=generator, device=dev)
    out = x
    jitter = (rand(b) < float(cfg.hr_jitter_prob)).to(x.dtype)[:, None, None, None]
    bright = (rand(b) * 2 - 1) * float(cfg.hr_brightness)
    contrast = 1 + (rand(b) * 2 - 1) * float(cfg.hr_contrast)
    sat = 1 + (rand(b) * 2 - 1) * float(cfg.hr_saturation)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    adj = (out - mean) * contrast[:, None, None, None].to(x.dtype) + mean
    adj = adj + bright[:, None, None, None].to(x.dtype)
    vis = min(3, c)
    grey = adj[:, :vis].mean(1, keepdim=True)
    s = sat[:, None, None, None].to(x.dtype)
    adj = torch.cat([grey + (adj[:, :vis] - grey) * s, adj[:, vis:]], dim=1)
    out = jitter * adj + (1 - jitter) * out
    lo, hi = (float(v) for v in cfg.hr_blur_sigma)
    blur = rand(b) < float(cfg.hr_blur_prob)
    if bool(blur.any()):
        sigma = lo + (hi - lo) * rand(b)
        out = torch.where(blur[:, None, None, None], gaussian_blur(out, sigma.clamp_min(1e-3)), out)
    solar = rand(b) < float(cfg.hr_solarize_prob)
    if bool(solar.any()):
        out = torch.where(solar[:, None, None, None] & (out > 0), -out, out)
    return out
