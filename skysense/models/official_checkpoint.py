"""Load the official SkySense release checkpoint (mmcv/mmcls/mmseg names) into :class:`SkySense`.

Key prefixes of the release and where they go here:

============================  ==================================================
release                       this model
============================  ==================================================
``backbone_gep.``             ``hr_backbone.`` (Swin V2; RGB patch embedding gets the
                              red filters copied for N when the model has RGBN)
``backbone_s2.``              ``s2_backbone.`` (position embedding resized if needed)
``backbone_s1.``              ``s1_backbone.``
``head_s2.`` / ``head_s1.``   ``s2_head.`` / ``s1_head.``
``fusion.porj_linear.``       ``fusion.input_proj.``
``fusion.cls_token``          ``fusion.cls_token``
``fusion.layers.``            ``fusion.layers.``
``ctpe`` (1 x 365 x W)        ``date_encoding.weight`` (365 x W)
============================  ==================================================

Strict: every key of the file is used or reported (``ignored`` with a reason: rebuilt buffers,
the HR mask token and stage 1-3 norms, ``head_gep*`` and other non-encoder heads; or
``unexpected``), and every key of the model is loaded or reported (``not_in_release`` for the
parts the release does not hold: DEM encoder, modality embedding, prototype bank).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from skysense.core.errors import SkySenseError
from skysense.models.skysense import SkySense
from skysense.models.vit import resize_pos_embed

PREFIXES = (
    ("backbone_gep.", "hr_backbone."),
    ("backbone_s2.", "s2_backbone."),
    ("backbone_s1.", "s1_backbone."),
    ("head_s2.", "s2_head."),
    ("head_s1.", "s1_head."),
    ("fusion.porj_linear.", "fusion.input_proj."),
    ("fusion.", "fusion."),
)
# Parts of the release rebuilt here rather than loaded, and why.
IGNORED_SUFFIXES = {
    "relative_position_index": "rebuilt from the window size",
    "relative_coords_table": "rebuilt from the window size",
}
IGNORED_KEYS = {"backbone_gep.mask_token": "masked-image-modelling token, unused by the encoder"}
IGNORED_KEYS.update(
    {
        f"backbone_gep.norm{i}.{p}": (
            f"output norm of HR stage {i + 1}, only stage 4 feeds the fusion"
        )
        for i in range(3)
        for p in ("weight", "bias")
    }
)
# Top-level parts of the combined release that are not encoder parts, and why they are left.
IGNORED_PREFIXES = {
    "head_gep": "HR pre-training projection head (head_gep*), not part of the encoder",
    "head_fusion": "fusion pre-training projection head, not part of the encoder",
    "head_": "a pre-training or task head other than the two lifting heads, not the encoder",
    "neck.": "a task neck, not part of the encoder",
    "decode_head.": "a segmentation decode head, not part of the encoder",
    "auxiliary_head.": "a segmentation auxiliary head, not part of the encoder",
}
LIFTING_HEADS = ("head_s2.", "head_s1.")


def ignored_reason(key: str) -> str | None:
    """Why a release key is left out of the encoder, or None when it belongs to it."""
    suffix = key.rsplit(".", 1)[-1]
    if suffix in IGNORED_SUFFIXES:
        return IGNORED_SUFFIXES[suffix]
    if key in IGNORED_KEYS:
        return IGNORED_KEYS[key]
    if key.startswith(LIFTING_HEADS):
        return None
    for prefix, reason in IGNORED_PREFIXES.items():
        if key.startswith(prefix):
            return reason
    return None


# Parts of this model the release does not hold (kept at their initial values).
NOT_IN_RELEASE = ("dem_encoder.", "modality_embed", "geo_context.prototypes")


class CheckpointMappingError(SkySenseError):
    """An official checkpoint does not map onto the model (unknown keys, shapes, missing parts)."""


@dataclass
class OfficialLoadReport:
    """What happened to every key: loaded, adapted, ignored, unexpected, missing."""

    loaded: dict[str, str] = field(default_factory=dict)  # release key -> model key
    adapted: dict[str, str] = field(default_factory=dict)  # model key -> what was done
    ignored: dict[str, str] = field(default_factory=dict)  # release key -> reason
    unexpected: list[str] = field(default_factory=list)  # release keys with no place here
    missing: list[str] = field(default_factory=list)  # model keys the release lacks (errors)
    not_in_release: list[str] = field(default_factory=list)  # model keys the release never had

    @property
    def ok(self) -> bool:
        """True when nothing is unexpected or missing."""
        return not self.unexpected and not self.missing


def map_key(key: str) -> str | None:
    """The model key for a release key, or None when no prefix matches."""
    if key == "ctpe":
        return "date_encoding.weight"
    for old, new in PREFIXES:
        if key.startswith(old):
            return new + key[len(old) :]
    return None


def unwrap(checkpoint: Mapping[str, Any]) -> dict[str, Tensor]:
    """The state dict inside a release file (``{'model': ...}``/``{'state_dict': ...}``)."""
    for wrapper in ("model", "state_dict"):
        inner = checkpoint.get(wrapper) if isinstance(checkpoint, Mapping) else None
        if isinstance(inner, Mapping):
            checkpoint = inner
            break
    return {(k.removeprefix("module.")): v for k, v in checkpoint.items()}


def _adapt(model_key: str, value: Tensor, target: Tensor) -> tuple[Tensor, str | None]:
    """Fit a release tensor to the model's shape where a known rule applies."""
    if tuple(value.shape) == tuple(target.shape):
        return value, None
    if (
        model_key == "date_encoding.weight"
        and value.ndim == 3
        and tuple(value.shape[1:]) == tuple(target.shape)
    ):
        return value[0], "ctpe 1 x days x W squeezed"
    if (
        model_key == "hr_backbone.patch_embed.projection.weight"
        and value.shape[1] == 3
        and target.shape[1] == 4
    ):
        return torch.cat([value, value[:, :1]], dim=1), "RGB filters + red copied for N (RGBN)"
    if model_key.endswith("backbone.pos_embed") and value.shape[-1] == target.shape[-1]:
        side = int(round((target.shape[1] - 1) ** 0.5))
        return resize_pos_embed(value, (side, side)), f"position embedding resized to {side}x{side}"
    raise CheckpointMappingError(
        f"release tensor for {model_key} is {tuple(value.shape)} but the model expects "
        f"{tuple(target.shape)}; "
        "build the model with the preset of the release (skysense-huge) or matching overrides"
    )


def load_official_state_dict(
    model: SkySense, checkpoint: Mapping[str, Any], strict: bool = True, assign: bool = False
) -> OfficialLoadReport:
    """Map a release state dict onto ``model`` and load it.

    Args:
        model: a SkySense encoder (any device, ``meta`` included).
        checkpoint: the release file's content (``torch.load(path, weights_only=True)``) or its
            state dict.
        strict: raise when a key is unexpected or a model key is missing.
        assign: assign the tensors instead of copying (``load_state_dict(assign=True)``; use
            with a model built on the meta device).

    Raises:
        CheckpointMappingError: strict and a key has no place, or a shape cannot be fitted.
    """
    source = unwrap(checkpoint)
    target = model.state_dict()
    report = OfficialLoadReport()
    mapped: dict[str, Tensor] = {}
    for key, value in source.items():
        reason = ignored_reason(key)
        if reason is not None:
            report.ignored[key] = reason
            continue
        new = map_key(key)
        if new is None or new not in target:
            report.unexpected.append(key)
            continue
        value, note = _adapt(new, value, target[new])
        if note:
            report.adapted[new] = note
        mapped[new] = value
        report.loaded[key] = new
    for key in target:
        if key in mapped:
            continue
        if key.startswith(NOT_IN_RELEASE):
            report.not_in_release.append(key)
        else:
            report.missing.append(key)
    if strict and not report.ok:
        raise CheckpointMappingError(
            f"official checkpoint does not map strictly: {len(report.unexpected)} unexpected keys "
            f"{report.unexpected[:5]}, {len(report.missing)} missing model keys "
            f"{report.missing[:5]}; "
            "pass strict=False to load what fits and inspect the report"
        )
    model.load_state_dict(mapped, strict=False, assign=assign)
    return report
