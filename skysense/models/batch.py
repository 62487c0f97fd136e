"""Arrays in physical units (the pyfunc contract) -> a normalised model batch of tensors.

Used by the registered pyfunc, by ``skysense predict`` and by evaluation, so that every consumer
normalises exactly as training did: with the export's ``stats`` when it carries them, else the
sensor defaults (``skysense.core.sensors``). NaN marks nodata; a date with no finite pixel is
invalid (``*_valid`` False); nodata pixels are set to the band mean (0 after normalisation).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from skysense.core.sensors import get_sensor

SENSOR_OF = {"s2": "sentinel2", "s1": "sentinel1", "hr": "hr", "dem": "dem"}


def resolve_device(setting: str | None) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; other values as given."""
    if setting in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(setting)


def band_normalisation(
    stats: dict[str, Any] | None, modality: str
) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, std)`` per band of ``modality`` in physical units.

    Accepts the dataset's ``stats.json`` forms ``{mod: {"mean": [...], "std": [...]}}`` and
    ``{mod: {band: {"mean": m, "std": s}}}``; falls back to the sensor's defaults.
    """
    entry = (stats or {}).get(modality)
    if isinstance(entry, dict):
        if "mean" in entry and "std" in entry:
            return (
                np.asarray(entry["mean"], dtype=np.float32).reshape(-1),
                np.asarray(entry["std"], dtype=np.float32).reshape(-1),
            )
        per_band = [v for v in entry.values() if isinstance(v, dict) and "mean" in v]
        if per_band:
            return (
                np.asarray([v["mean"] for v in per_band], dtype=np.float32),
                np.asarray([v.get("std", 1.0) for v in per_band], dtype=np.float32),
            )

    return get_sensor(SENSOR_OF[modality]).normalisation()


def _normalise(x: np.ndarray, mean: np.ndarray, std: np.ndarray, band_axis: int) -> np.ndarray:
    shape = [1] * x.ndim
    shape[band_axis] = -1
    out = (x - mean.reshape(shape)) / np.maximum(std.reshape(shape), 1e-6)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


def is_missing(arr: np.ndarray | None) -> bool:
    """A modality sent with zero dates or a zero-size grid (or not at all) is missing."""
    return arr is None or arr.size == 0


def arrays_to_batch(
    arrays: dict[str, np.ndarray],
    stats: dict[str, Any] | None = None,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Build the model batch (``docs/interfaces.md``) from physical-unit arrays.

    Args:
        arrays: ``s2`` B x T x 10 x H x W reflectance, ``s2_doy`` B x T; ``s1``/``s1_doy`` (dB);
            ``hr`` B x C x 32H x 32W; ``dem`` B x 1 x H x W metres; ``lat``/``lon`` B degrees or
            ``region`` B. Missing modalities are absent or empty.
        stats: normalisation statistics (the export config's ``stats``).
        device: torch device of the tensors.

    Returns:
        Tensors ``s2``, ``s2_doy``, ``s2_valid``, ... and ``lat``/``lon`` or ``region``.
    """
    batch: dict[str, Any] = {}
    for key in ("s2", "s1"):
        x = arrays.get(key)
        if is_missing(x):
            continue
        x = np.asarray(x, dtype=np.float32)
        mean, std = band_normalisation(stats, key)
        finite = np.isfinite(x)
        valid = finite.reshape(x.shape[0], x.shape[1], -1).any(axis=2)
        batch[key] = torch.from_numpy(_normalise(x, mean, std, 2)).to(device)
        doy = np.asarray(arrays.get(f"{key}_doy", np.ones(x.shape[:2])), dtype=np.int64)
        batch[f"{key}_doy"] = torch.from_numpy(np.clip(doy, 1, 366)).to(device)
        batch[f"{key}_valid"] = torch.from_numpy(valid).to(device)
        batch[f"has_{key}"] = torch.from_numpy(valid.any(axis=1)).to(device)
    for key in ("hr", "dem"):
        x = arrays.get(key)
        if is_missing(x):
            continue
        x = np.asarray(x, dtype=np.float32)
        mean, std = band_normalisation(stats, key)
        batch[key] = torch.from_numpy(_normalise(x, mean, std, 1)).to(device)
        batch[f"has_{key}"] = torch.from_numpy(
            np.isfinite(x).reshape(x.shape[0], -1).any(axis=1)
        ).to(device)
    if arrays.get("region") is not None:
        batch["region"] = (
            torch.as_tensor(np.asarray(arrays["region"]).reshape(-1)).long().to(device)
        )
    elif arrays.get("lat") is not None and arrays.get("lon") is not None:
        batch["lat"] = torch.as_tensor(np.asarray(arrays["lat"], dtype=np.float64).reshape(-1))
        batch["lon"] = torch.as_tensor(np.asarray(arrays["lon"], dtype=np.float64).reshape(-1))
    return batch
