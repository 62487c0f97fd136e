"""Checks of a model batch against a preset: shapes, band counts, the 1:32 grid ratio.

Batch layout (``docs/interfaces.md``): ``hr`` B x C x 32s x 32s; ``s2`` B x T x 10 x s x s with
``s2_doy``/``s2_valid`` B x T; ``s1`` B x T x 2 x s x s likewise; ``dem`` B x 1 x s x s;
``has_*`` B bool; ``region`` B int64 (or ``lat``/``lon``). A modality absent for all samples is a
missing key.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from skysense.core.errors import InputShapeError
from skysense.core.modalities import HR_RATIO, MODALITIES
from skysense.data.regions import region_id
from skysense.models.presets import SkySenseSpec


@dataclass(frozen=True)
class BatchLayout:
    """What a checked batch holds: batch size, Sentinel grid side, modalities present."""

    batch: int
    sentinel_px: int
    modalities: tuple[str, ...]


def _shape(t: Tensor) -> str:
    return " x ".join(str(d) for d in t.shape)


def check_batch(batch: dict, spec: SkySenseSpec) -> BatchLayout:
    """Validate ``batch`` for a model built from ``spec``.

    Raises:
        InputShapeError: a tensor whose rank, band count or size does not fit, naming the key,
            the shape found and the shape expected.
    """
    present = tuple(m for m in MODALITIES if m in batch and batch[m] is not None)
    if not present:
        raise InputShapeError(
            "the batch holds none of the modalities hr, s2, s1, dem; give at least one "
            "(see docs/interfaces.md, Batch)"
        )
    if "dem" in present and not spec.dem:
        raise InputShapeError(
            f"batch has 'dem' but preset {spec.name!r} has dem=False; drop the key or set "
            "model.overrides.dem=true"
        )
    sizes: dict[str, int] = {}
    batch_sizes: dict[str, int] = {}
    bands = {"s2": spec.s2_in_chans, "s1": spec.s1_in_chans}
    for key in ("s2", "s1"):
        if key not in present:
            continue
        x = batch[key]
        if x.ndim != 5 or x.shape[2] != bands[key] or x.shape[3] != x.shape[4]:
            raise InputShapeError(
                f"batch[{key!r}] is {_shape(x)}; expected B x T x {bands[key]} x s x s "
                f"(T dates, {bands[key]} bands, square chips of s Sentinel pixels)"
            )
        batch_sizes[key], sizes[key] = x.shape[0], x.shape[3]
        for suffix in ("doy", "valid"):
            aux = batch.get(f"{key}_{suffix}")
            if aux is not None and tuple(aux.shape) != tuple(x.shape[:2]):
                raise InputShapeError(
                    f"batch['{key}_{suffix}'] is {_shape(aux)}; expected B x T = {x.shape[0]} x "
                    f"{x.shape[1]} like batch[{key!r}]"
                )
        if batch.get(f"{key}_doy") is None:
            raise InputShapeError(
                f"batch has {key!r} but no '{key}_doy' (day of year per date, B x T int64)"
            )
    if "dem" in present:
        x = batch["dem"]
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] != x.shape[3]:
            raise InputShapeError(
                f"batch['dem'] is {_shape(x)}; expected B x 1 x s x s (elevation on the Sentinel "
                "grid)"
            )
        batch_sizes["dem"], sizes["dem"] = x.shape[0], x.shape[2]
    if "hr" in present:
        x = batch["hr"]
        if x.ndim != 4 or x.shape[1] != spec.hr_in_chans or x.shape[2] != x.shape[3]:
            raise InputShapeError(
                f"batch['hr'] is {_shape(x)}; expected B x {spec.hr_in_chans} x {HR_RATIO}s x "
                f"{HR_RATIO}s "
                f"({spec.hr_in_chans} HR bands, {HR_RATIO}x the Sentinel grid)"
            )
        if x.shape[2] % HR_RATIO:
            raise InputShapeError(
                f"batch['hr'] side {x.shape[2]} px is not a multiple of {HR_RATIO}; HR must be "
                f"{HR_RATIO}x the Sentinel chip"
            )
        batch_sizes["hr"], sizes["hr"] = x.shape[0], x.shape[2] // HR_RATIO
    # pairwise comparisons, not set(): sizes may be symbolic while a graph is traced (export)
    first_b, first_s = next(iter(batch_sizes.values())), next(iter(sizes.values()))
    if any(v != first_b for v in batch_sizes.values()):
        raise InputShapeError(f"modalities disagree on the batch size: {batch_sizes}")
    if any(v != first_s for v in sizes.values()):
        raise InputShapeError(
            f"modalities disagree on the Sentinel grid side (HR counted as side/{HR_RATIO}): "
            f"{sizes}; "
            f"HR must be exactly {HR_RATIO}x the Sentinel chip"
        )
    side = next(iter(sizes.values()))
    if side % spec.patch_size:
        raise InputShapeError(
            f"Sentinel chip side {side} px is not divisible by the patch size {spec.patch_size}"
        )
    b = next(iter(batch_sizes.values()))
    for m in MODALITIES:
        flag = batch.get(f"has_{m}")
        if flag is not None and tuple(flag.shape) != (b,):
            raise InputShapeError(f"batch['has_{m}'] is {_shape(flag)}; expected B = {b} booleans")
    return BatchLayout(batch=b, sentinel_px=side, modalities=present)


def presence(batch: dict, modality: str, b: int, device: torch.device) -> Tensor:
    """``has_<modality>`` as a bool tensor B (all True when the flag is absent)."""
    flag = batch.get(f"has_{modality}")
    if flag is None:
        return torch.ones(b, dtype=torch.bool, device=device)
    return flag.to(device=device, dtype=torch.bool)


def regions(batch: dict, n_regions: int, device: torch.device) -> Tensor | None:
    """Region id per sample: ``batch['region']``, else computed from ``lat``/``lon``; None when
    the batch has neither (the geo-context read-out is then skipped, as the paper allows).
    """
    if batch.get("region") is not None:
        return torch.as_tensor(batch["region"], device=device).long().reshape(-1)
    if batch.get("lat") is not None and batch.get("lon") is not None:
        lat = torch.as_tensor(batch["lat"]).detach().cpu().double().numpy()
        lon = torch.as_tensor(batch["lon"]).detach().cpu().double().numpy()
        return torch.as_tensor(region_id(lat, lon, n_regions), device=device).long().reshape(-1)
    return None
