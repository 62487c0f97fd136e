"""Parameters per component of a preset, built on the meta device (no memory, any size).

The encoder's total counts every part used at inference, the geo-context prototype bank
included (a buffer, updated by EMA). Pre-training-only parts (projection heads, the EMA teacher)
are listed on their own lines, outside the total. Published SkySense (huge) figures are shown
beside the matching groups for comparison; nothing is padded to reach them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from skysense.models.presets import resolve_spec
from skysense.models.pretraining import SkySensePretrainer
from skysense.models.skysense import SkySense

# component label -> name prefixes in SkySense.named_parameters() / named_buffers()
COMPONENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("HR backbone (Swin V2)", ("hr_backbone.",)),
    ("S2 backbone (ViT)", ("s2_backbone.",)),
    ("S1 backbone (ViT)", ("s1_backbone.",)),
    ("fusion heads (1x1 conv + PixelShuffle)", ("s2_head.", "s1_head.")),
    ("fusion transformer", ("fusion.",)),
    ("date encoding + modality embedding", ("date_encoding.", "modality_embed")),
    ("DEM encoder", ("dem_encoder.",)),
    ("geo-context prototypes (buffer, EMA)", ("geo_context.prototypes",)),
)
GROUPS = {
    "backbones": ("HR backbone (Swin V2)", "S2 backbone (ViT)", "S1 backbone (ViT)"),
    "fusion": (
        "fusion heads (1x1 conv + PixelShuffle)",
        "fusion transformer",
        "date encoding + modality embedding",
    ),
    "others": ("geo-context prototypes (buffer, EMA)",),
}
PUBLISHED_HUGE_M = {"backbones": 1260.31, "fusion": 398.20, "others": 404.13, "total": 2062.85}


@dataclass
class ParamRow:
    """One line of the table."""

    component: str
    params: int
    in_total: bool


def parameter_table(preset: str, **overrides: Any) -> dict[str, Any]:
    """Parameter counts per component of ``preset`` (built on the meta device).

    Returns:
        ``{"preset", "spec", "rows": [{component, params, millions, in_total}], "total",
        "groups": {name: params}, "published_millions" (huge only)}``.
    """
    spec = resolve_spec(preset, **overrides)
    with torch.device("meta"):
        model = SkySense(spec)
        pre = SkySensePretrainer(model)  # the default objective (train.objective: legacy)
    tensors: dict[str, Tensor] = dict(model.named_parameters())
    tensors.update({k: b for k, b in model.named_buffers() if k == "geo_context.prototypes"})
    rows: list[ParamRow] = []
    for label, prefixes in COMPONENTS:
        n = sum(t.numel() for k, t in tensors.items() if k.startswith(prefixes))
        if n or label != "DEM encoder":
            rows.append(ParamRow(label, n, True))
    total = sum(r.params for r in rows)
    heads = sum(p.numel() for p in pre.heads.parameters())
    teacher = pre.teacher_module
    teacher_n = sum(p.numel() for p in teacher.parameters()) + sum(
        b.numel() for k, b in teacher["encoder"].named_buffers() if k.endswith("prototypes")
    )
    rows.append(ParamRow("pre-training projection heads (student)", heads, False))
    rows.append(ParamRow("EMA teacher (encoder + heads + prototypes)", teacher_n, False))
    by_label = {r.component: r.params for r in rows}
    groups = {g: sum(by_label.get(c, 0) for c in comps) for g, comps in GROUPS.items()}
    out: dict[str, Any] = {
        "preset": preset,
        "spec": spec.to_dict(),
        "rows": [
            {
                "component": r.component,
                "params": r.params,
                "millions": round(r.params / 1e6, 2),
                "in_total": r.in_total,
            }
            for r in rows
        ],
        "total": total,
        "total_millions": round(total / 1e6, 2),
        "groups": groups,
    }
    if preset == "skysense-huge" and not overrides:
        out["published_millions"] = PUBLISHED_HUGE_M
        out["deviation_percent"] = {
            g: round(100.0 * (v / 1e6 - PUBLISHED_HUGE_M[g]) / PUBLISHED_HUGE_M[g], 2)
            for g, v in {**groups, "total": total}.items()
        }
    return out
