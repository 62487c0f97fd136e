"""Frozen-encoder features of downstream samples (physical-unit sample dicts)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from skysense.core.modalities import SERIES
from skysense.models.batch import arrays_to_batch
from skysense.models.skysense import SkySense


def samples_to_batch(
    samples: Sequence[dict[str, Any]],
    stats: dict[str, Any] | None,
    modalities: Sequence[str],
    device: str = "cpu",
) -> dict[str, Any]:
    """Normalise and stack samples (``skysense.data.downstream`` layout) into a model batch.

    Time series are padded to the longest ``T`` with invalid dates; the samples' own ``*_valid``
    flags are kept. Only ``modalities`` present in every sample are used.
    """
    arrays: dict[str, np.ndarray] = {}
    valid_flags: dict[str, np.ndarray] = {}
    for key in modalities:
        if not all(key in s for s in samples):
            continue
        if key in SERIES:
            t_max = max(s[key].shape[0] for s in samples)
            shape = samples[0][key].shape[1:]
            data = np.full((len(samples), t_max, *shape), np.nan, dtype=np.float32)
            doy = np.ones((len(samples), t_max), dtype=np.int64)
            valid = np.zeros((len(samples), t_max), dtype=bool)
            for i, s in enumerate(samples):
                t = s[key].shape[0]
                data[i, :t] = s[key]
                doy[i, :t] = s[f"{key}_doy"]
                valid[i, :t] = s.get(f"{key}_valid", np.ones(t, dtype=bool))
            arrays[key], arrays[f"{key}_doy"], valid_flags[key] = data, doy, valid
        else:
            arrays[key] = np.stack([np.asarray(s[key], dtype=np.float32) for s in samples])
    if all("region" in s for s in samples):
        arrays["region"] = np.array([int(s["region"]) for s in samples])
    else:
        arrays["lat"] = np.array([float(s["lat"]) for s in samples])
        arrays["lon"] = np.array([float(s["lon"]) for s in samples])
    batch = arrays_to_batch(arrays, stats, device)
    for key, valid in valid_flags.items():
        v = torch.from_numpy(valid).to(device) & batch[f"{key}_valid"]
        batch[f"{key}_valid"] = v
        batch[f"has_{key}"] = v.any(dim=1)
    return batch


def pool_embedding(emb: torch.Tensor, pooling: str = "mean") -> torch.Tensor:
    """Scene feature of per-pixel embeddings ``B x D x s x s``: the mean over pixels (``mean``,
    B x D) or the mean and the population std over pixels (``mean_std``, B x 2D).
    """
    if pooling not in ("mean", "mean_std"):
        raise ValueError(f"pooling {pooling!r}: use 'mean' or 'mean_std' (eval.pooling)")
    feats = [emb.mean(dim=(2, 3))]
    if pooling == "mean_std":
        feats.append(emb.std(dim=(2, 3), unbiased=False))
    return torch.cat(feats, dim=1)


@torch.no_grad()
def embed_samples(
    model: SkySense,
    samples: Sequence[dict[str, Any]],
    stats: dict[str, Any] | None,
    modalities: Sequence[str],
    batch_size: int = 16,
    device: str = "cpu",
    keep_pixels: bool = False,
    pooling: str = "mean",
) -> tuple[np.ndarray, np.ndarray | None]:
    """Embed every sample with the frozen ``model``.

    Args:
        model: the encoder (its ``embed``), put in eval mode.
        samples: the samples (arrays in physical units, as the downstream readers give them).
        stats: the chips' normalisation statistics (``stats.json``), or None.
        modalities: the modalities fed to the model (others are sent empty).
        batch_size: samples per forward pass.
        device: ``cpu`` or ``cuda``.
        keep_pixels: also return the per-pixel maps (segmentation probes).
        pooling: scene feature from the per-pixel embedding: ``mean`` (N x D) or ``mean_std``
            (mean and standard deviation over pixels, N x 2D: texture and mixture of the chip).

    Returns:
        ``(pooled, pixels N x D x s x s or None)``: pooled embeddings for scene-level probes and,
        when ``keep_pixels``, the per-pixel maps for segmentation.
    """
    if pooling not in ("mean", "mean_std"):
        raise ValueError(f"pooling {pooling!r}: use 'mean' or 'mean_std' (eval.pooling)")
    model.eval()
    pooled, pixels = [], []
    for i in range(0, len(samples), batch_size):
        batch = samples_to_batch(samples[i : i + batch_size], stats, modalities, device)
        emb = model.embed(batch).float().cpu()
        pooled.append(pool_embedding(emb, pooling).numpy())
        if keep_pixels:
            pixels.append(emb.numpy())
    return np.concatenate(pooled), (np.concatenate(pixels) if keep_pixels else None)
