"""Model presets: named sizes of the SkySense encoder, and their validated overrides.

``PRESETS`` maps a preset name to its :class:`SkySenseSpec`; ``skysense/config.py`` reads it to
validate ``model.preset``. Small presets keep the structure and the tied widths of the huge one
(HR stage-4 width = Sentinel head width = fusion input; HR grid 32x finer than Sentinel).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

from skysense.core.errors import PresetError
from skysense.core.modalities import HR_RATIO


@dataclass(frozen=True)
class SkySenseSpec:
    """Every size of one SkySense encoder; sizes in pixels, widths in channels.

    Attributes:
        name: preset name.
        sentinel_px: nominal Sentinel chip side on the 10 m grid, pixels (S2, S1, DEM).
        hr_px: nominal HR chip side, pixels; always ``32 * sentinel_px``.
        patch_size: patch side of every branch, pixels.
        hr_in_chans: HR bands (4: R, G, B, N; the release used RGB, see the checkpoint loader).
        hr_embed_dim: Swin V2 stage-1 width C; stage 4 has ``8 C``.
        hr_depths: Swin V2 blocks per stage.
        hr_heads: Swin V2 attention heads per stage.
        hr_window: Swin V2 window side, tokens.
        hr_extra_norm_every: extra LayerNorm after every n-th block of a stage (0: none).
        hr_cpb_hidden: hidden width of the continuous relative position bias MLP.
        s2_in_chans: Sentinel-2 bands (B2 B3 B4 B5 B6 B7 B8 B8A B11 B12).
        s1_in_chans: Sentinel-1 bands (VV, VH).
        vit_dim: Sentinel ViT width.
        vit_depth: Sentinel ViT layers.
        vit_heads: Sentinel ViT heads.
        vit_mlp_ratio: Sentinel ViT MLP ratio.
        fusion_dim: fusion transformer width (after the input projection).
        fusion_depth: fusion transformer layers.
        fusion_heads: fusion transformer heads.
        fusion_ffn: fusion transformer feed-forward width.
        calendar_days: rows of the date-specific positional encoding (day of year).
        date_init: initial rows of that table: ``"normal"`` (truncated normal, std 0.02, the
            usual ViT position-table init) or ``"annual"`` (sines and cosines of the annual
            cycle and its harmonics, so that nearby days start with nearby rows).
        date_smoothing_days: when > 0, the table is read through a circular Gaussian of this
            width (days): a day's encoding is a weighted mean of the rows around it, so what
            training teaches the days it sees reaches the days it does not (0: plain lookup, as
            in the paper and the official model).
        n_regions: geo regions on the globe (a perfect square, see ``skysense.data.regions``).
        n_prototypes: prototypes per region.
        geo_temperature: softmax temperature of the prototype read-out (cosine similarities).
        dem: whether the DEM joins the fusion sequence through its own small encoder (not in
            the paper; ``false`` for the official model).
        modality_embed: whether a learned per-modality vector is added to the fusion tokens
            (not in the paper; ``false`` for the official model, whose tokens carry only the
            date-specific positional encoding).
        geo_context: whether the geo-context prototypes are built and read out (``false``: the
            read-out is zeros, as for a batch without location; the official release holds no
            prototype bank, so its import sets ``false``).
        dem_hidden: hidden width of the DEM encoder.
        proj_dim: output width of the pre-training projection heads.
        proj_hidden: hidden width of the pre-training projection heads.
        drop_path: stochastic depth rate (max, linearly increasing over depth).
    """

    name: str
    sentinel_px: int
    hr_px: int
    hr_embed_dim: int
    hr_depths: tuple[int, ...]
    hr_heads: tuple[int, ...]
    vit_dim: int
    vit_depth: int
    vit_heads: int
    fusion_dim: int
    fusion_depth: int
    fusion_heads: int
    fusion_ffn: int
    n_regions: int
    n_prototypes: int
    proj_dim: int
    proj_hidden: int
    patch_size: int = 4
    hr_in_chans: int = 4
    hr_window: int = 8
    hr_extra_norm_every: int = 6
    hr_cpb_hidden: int = 512
    s2_in_chans: int = 10
    s1_in_chans: int = 2
    vit_mlp_ratio: float = 4.0
    calendar_days: int = 365
    date_init: str = "normal"
    date_smoothing_days: float = 0.0
    geo_temperature: float = 0.1
    dem: bool = True
    modality_embed: bool = True
    geo_context: bool = True
    dem_hidden: int = 64
    drop_path: float = 0.0

    @property
    def hr_width(self) -> int:
        """HR stage-4 width: the width of every token entering the fusion (2816 for huge)."""
        return self.hr_embed_dim * 2 ** (len(self.hr_depths) - 1)

    @property
    def embed_dim(self) -> int:
        """Width of ``SkySense.embed``: fused feature concatenated with the geo read-out."""
        return 2 * self.fusion_dim

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able mapping of every field (tuples as lists)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


DATE_INITS = ("normal", "annual")


def _check(spec: SkySenseSpec) -> None:
    """Raise :class:`PresetError` when the sizes do not fit together."""
    problems: list[str] = []
    n_stages = len(spec.hr_depths)
    if len(spec.hr_heads) != n_stages:
        problems.append(f"hr_heads has {len(spec.hr_heads)} entries, hr_depths {n_stages}")
    if spec.patch_size * 2 ** (n_stages - 1) != HR_RATIO:
        problems.append(
            f"patch_size * 2**(stages-1) must be {HR_RATIO} (HR stage 4 on the Sentinel grid); "
            f"got patch_size={spec.patch_size} with {n_stages} stages"
        )
    if spec.sentinel_px % spec.patch_size:
        problems.append(
            f"sentinel_px={spec.sentinel_px} must be divisible by patch_size={spec.patch_size}"
        )
    if spec.hr_px != HR_RATIO * spec.sentinel_px:
        problems.append(
            f"hr_px must be {HR_RATIO} x sentinel_px = {HR_RATIO * spec.sentinel_px}, got "
            f"{spec.hr_px}"
        )
    for i, heads in enumerate(spec.hr_heads):
        width = spec.hr_embed_dim * 2**i
        if heads < 1 or width % heads:
            problems.append(
                f"hr stage {i + 1} width {width} is not divisible by hr_heads[{i}]={heads}"
            )
    if spec.vit_dim % spec.vit_heads:
        problems.append(f"vit_dim={spec.vit_dim} is not divisible by vit_heads={spec.vit_heads}")
    if spec.fusion_dim % spec.fusion_heads:
        problems.append(
            f"fusion_dim={spec.fusion_dim} is not divisible by fusion_heads={spec.fusion_heads}"
        )
    side = int(round(spec.n_regions**0.5))
    if side * side != spec.n_regions:
        problems.append(
            f"n_regions={spec.n_regions} must be a perfect square (e.g. 64, 1024, 4096)"
        )
    positive = [
        "sentinel_px",
        "hr_embed_dim",
        "vit_dim",
        "vit_depth",
        "fusion_dim",
        "fusion_depth",
        "fusion_ffn",
        "n_prototypes",
        "proj_dim",
        "proj_hidden",
        "hr_window",
        "hr_in_chans",
        "s2_in_chans",
        "s1_in_chans",
        "calendar_days",
        "dem_hidden",
    ]
    for name in positive:
        if getattr(spec, name) < 1:
            problems.append(f"{name} must be >= 1, got {getattr(spec, name)}")
    if any(d < 1 for d in spec.hr_depths):
        problems.append(f"hr_depths must all be >= 1, got {list(spec.hr_depths)}")
    if spec.date_init not in DATE_INITS:
        problems.append(f"date_init must be one of {', '.join(DATE_INITS)}, got {spec.date_init!r}")
    if not 0.0 <= spec.date_smoothing_days <= spec.calendar_days / 2:
        problems.append(
            f"date_smoothing_days must be in [0, calendar_days / 2], got {spec.date_smoothing_days}"
        )
    if not 0.0 <= spec.drop_path < 1.0:
        problems.append(f"drop_path must be in [0, 1), got {spec.drop_path}")
    if problems:
        raise PresetError(
            f"preset {spec.name!r} does not fit together: "
            + "; ".join(problems)
            + ". Fix model.overrides in params.yaml (or the --set override)."
        )


def apply_overrides(spec: SkySenseSpec, overrides: dict[str, Any]) -> SkySenseSpec:
    """Return ``spec`` with fields replaced by ``overrides``, validated.

    ``sentinel_px`` alone also moves ``hr_px`` to 32x. Lists become tuples.

    Raises:
        PresetError: an unknown field, a value of the wrong type, or sizes that do not fit.
    """
    allowed = {f.name: f for f in fields(SkySenseSpec)}
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in allowed:
            raise PresetError(
                f"model.overrides has unknown key {key!r}; allowed: {', '.join(sorted(allowed))}"
            )
        current = getattr(spec, key)
        changes[key] = _coerce(key, value, current)
    if "sentinel_px" in changes and "hr_px" not in changes:
        changes["hr_px"] = HR_RATIO * changes["sentinel_px"]
    new = dataclasses.replace(spec, **changes)
    _check(new)
    return new


def _coerce(key: str, value: Any, current: Any) -> Any:
    """Coerce an override value to the type of the field it replaces."""
    bad = PresetError(
        f"model.overrides.{key}={value!r} has the wrong type; expected "
        f"{type(current).__name__} like {current!r}"
    )
    if isinstance(current, bool):
        if isinstance(value, bool):
            return value
        raise bad
    if isinstance(current, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if isinstance(current, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if isinstance(current, tuple):
        if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise bad
        return tuple(value)
    if isinstance(current, str):
        if not isinstance(value, str):
            raise bad
        return value
    return value


PRESETS: dict[str, SkySenseSpec] = {
    # The published model (CVPR 2024): Swin V2-H, two ViT-L, a 24-layer fusion transformer.
    "skysense-huge": SkySenseSpec(
        name="skysense-huge",
        sentinel_px=64,
        hr_px=2048,
        hr_embed_dim=352,
        hr_depths=(2, 2, 18, 2),
        hr_heads=(8, 16, 32, 64),
        vit_dim=1024,
        vit_depth=24,
        vit_heads=16,
        fusion_dim=1024,
        fusion_depth=24,
        fusion_heads=16,
        fusion_ffn=4096,
        n_regions=4096,
        n_prototypes=100,
        proj_dim=256,
        proj_hidden=2048,
        drop_path=0.2,
    ),
    # Swin V2-B, two ViT-B, a 12-layer fusion transformer.
    "skysense-base": SkySenseSpec(
        name="skysense-base",
        sentinel_px=32,
        hr_px=1024,
        hr_embed_dim=128,
        hr_depths=(2, 2, 18, 2),
        hr_heads=(4, 8, 16, 32),
        vit_dim=768,
        vit_depth=12,
        vit_heads=12,
        fusion_dim=768,
        fusion_depth=12,
        fusion_heads=12,
        fusion_ffn=3072,
        n_regions=1024,
        n_prototypes=50,
        proj_dim=256,
        proj_hidden=1024,
        drop_path=0.1,
        dem_hidden=32,
    ),
    # CPU-sized: same structure (4 stages, extra norm every 6 blocks in stage 3, tied widths).
    "skysense-tiny": SkySenseSpec(
        name="skysense-tiny",
        sentinel_px=8,
        hr_px=256,
        hr_embed_dim=16,
        hr_depths=(2, 2, 6, 2),
        hr_heads=(1, 2, 4, 8),
        vit_dim=96,
        vit_depth=4,
        vit_heads=4,
        fusion_dim=96,
        fusion_depth=2,
        fusion_heads=4,
        fusion_ffn=384,
        n_regions=64,
        n_prototypes=16,
        proj_dim=64,
        proj_hidden=128,
        hr_cpb_hidden=64,
        dem_hidden=16,
    ),
}


def resolve_spec(name: str, **overrides: Any) -> SkySenseSpec:
    """The spec of preset ``name`` with ``overrides`` applied.

    Raises:
        PresetError: unknown preset (the message lists the known ones) or a bad override.
    """
    if name not in PRESETS:
        raise PresetError(
            f"unknown model preset {name!r}; known presets: {', '.join(sorted(PRESETS))}. "
            "Set model.preset in params.yaml to one of them."
        )
    return apply_overrides(PRESETS[name], overrides)
