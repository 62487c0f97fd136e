"""Huge preset parameter table (meta device) and the official checkpoint key mapping."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from skysense.cli import app
from skysense.models import create_model
from skysense.models.official_checkpoint import CheckpointMappingError, load_official_state_dict
from skysense.models.param_table import parameter_table


def test_huge_table_matches_published_numbers():
    table = parameter_table("skysense-huge")
    g = table["groups"]
    assert abs(g["backbones"] / 1e6 - 1260.31) / 1260.31 < 0.01
    assert abs(g["fusion"] / 1e6 - 398.20) / 398.20 < 0.01
    assert abs(table["total"] / 1e6 - 2062.85) / 2062.85 < 0.01
    rows = {r["component"]: r for r in table["rows"]}
    assert rows["geo-context prototypes (buffer, EMA)"]["params"] == 4096 * 100 * 1024
    assert not rows["pre-training projection heads (student)"]["in_total"]
    assert sum(r["params"] for r in table["rows"] if r["in_total"]) == table["total"]


def test_cli_model_info_json():
    result = CliRunner().invoke(app, ["model", "info", "--preset", "skysense-tiny", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["spec"]["sentinel_px"] == 8 and data["total"] < 10_000_000
    bad = CliRunner().invoke(app, ["model", "info", "--preset", "skysense-giant"])
    assert bad.exit_code == 2


def _official_names(spec) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the release, written from its mmcls/mmseg module layout."""
    sd: dict[str, tuple[int, ...]] = {}
    c = spec.hr_embed_dim
    sd["backbone_gep.patch_embed.projection.weight"] = (c, 3, 4, 4)  # the release is RGB
    sd["backbone_gep.patch_embed.projection.bias"] = (c,)
    sd["backbone_gep.patch_embed.norm.weight"] = sd["backbone_gep.patch_embed.norm.bias"] = (c,)
    sd["backbone_gep.mask_token"] = (1, 1, c)
    for i, (depth, heads) in enumerate(zip(spec.hr_depths, spec.hr_heads)):
        d = c * 2**i
        st = f"backbone_gep.stages.{i}"
        if i:
            sd[f"{st}.downsample.reduction.weight"] = (d, 2 * d)
            sd[f"{st}.downsample.norm.weight"] = sd[f"{st}.downsample.norm.bias"] = (d,)
        for j in range(depth):
            b = f"{st}.blocks.{j}"
            w = f"{b}.attn.w_msa"
            sd.update(
                {
                    f"{w}.logit_scale": (heads, 1, 1),
                    f"{w}.cpb_mlp.0.weight": (spec.hr_cpb_hidden, 2),
                    f"{w}.cpb_mlp.0.bias": (spec.hr_cpb_hidden,),
                    f"{w}.cpb_mlp.2.weight": (heads, spec.hr_cpb_hidden),
                    f"{w}.qkv.weight": (3 * d, d),
                    f"{w}.q_bias": (d,),
                    f"{w}.v_bias": (d,),
                    f"{w}.proj.weight": (d, d),
                    f"{w}.proj.bias": (d,),
                    f"{w}.relative_coords_table": (1, 15, 15, 2),
                    f"{w}.relative_position_index": (64, 64),
                    f"{b}.ffn.layers.0.0.weight": (4 * d, d),
                    f"{b}.ffn.layers.0.0.bias": (4 * d,),
                    f"{b}.ffn.layers.1.weight": (d, 4 * d),
                    f"{b}.ffn.layers.1.bias": (d,),
                }
            )
            for n in ("norm1", "norm2") + (("norm3",) if (j + 1) % 6 == 0 else ()):
                sd[f"{b}.{n}.weight"] = sd[f"{b}.{n}.bias"] = (d,)
        sd[f"backbone_gep.norm{i}.weight"] = sd[f"backbone_gep.norm{i}.bias"] = (c * 2**i,)
    v = spec.vit_dim
    for name, bands in (("backbone_s2", 10), ("backbone_s1", 2)):
        sd[f"{name}.patch_embed.projection.weight"] = (v, bands, 4, 4)
        sd[f"{name}.patch_embed.projection.bias"] = (v,)
        sd[f"{name}.cls_token"] = (1, 1, v)
        sd[f"{name}.pos_embed"] = (1, 1 + (64 // 4) ** 2, v)  # released at 64 px
        for k in range(spec.vit_depth):
            sd.update(_layer(f"{name}.layers.{k}", v, int(v * 4)))
    width = spec.hr_width
    for name in ("head_s2", "head_s1"):
        sd[f"{name}.decoder.0.weight"] = (16 * width, v, 1, 1)
        sd[f"{name}.decoder.0.bias"] = (16 * width,)
    f = spec.fusion_dim
    sd["fusion.porj_linear.weight"], sd["fusion.porj_linear.bias"] = (f, width), (f,)
    sd["fusion.cls_token"] = (1, 1, f)
    for k in range(spec.fusion_depth):
        sd.update(_layer(f"fusion.layers.{k}", f, spec.fusion_ffn))
    sd["ctpe"] = (1, 365, width)
    return sd


def _layer(prefix: str, d: int, hidden: int) -> dict[str, tuple[int, ...]]:
    return {
        f"{prefix}.ln1.weight": (d,),
        f"{prefix}.ln1.bias": (d,),
        f"{prefix}.ln2.weight": (d,),
        f"{prefix}.ln2.bias": (d,),
        f"{prefix}.attn.attn.in_proj_weight": (3 * d, d),
        f"{prefix}.attn.attn.in_proj_bias": (3 * d,),
        f"{prefix}.attn.attn.out_proj.weight": (d, d),
        f"{prefix}.attn.attn.out_proj.bias": (d,),
        f"{prefix}.ffn.layers.0.0.weight": (hidden, d),
        f"{prefix}.ffn.layers.0.0.bias": (hidden,),
        f"{prefix}.ffn.layers.1.weight": (d, hidden),
        f"{prefix}.ffn.layers.1.bias": (d,),
    }


def test_official_huge_mapping_on_meta_is_strict():
    with torch.device("meta"):
        model = create_model("skysense-huge")
        sd = {k: torch.empty(shape) for k, shape in _official_names(model.spec).items()}
    report = load_official_state_dict(model, {"model": sd}, strict=True, assign=True)
    assert report.ok
    assert len(report.loaded) + len(report.ignored) == len(sd)
    assert report.loaded["fusion.porj_linear.weight"] == "fusion.input_proj.weight"
    assert report.loaded["ctpe"] == "date_encoding.weight"
    assert "RGBN" in report.adapted["hr_backbone.patch_embed.projection.weight"]
    assert set(report.not_in_release) >= {"modality_embed", "geo_context.prototypes"}
    assert model.hr_backbone.patch_embed.projection.weight.shape[1] == 4


def test_official_mapping_copies_values_and_reports_strays():
    torch.manual_seed(0)
    model = create_model("skysense-tiny", sentinel_px=4)
    sd = {k: torch.randn(shape) for k, shape in _official_names(model.spec).items()}
    report = load_official_state_dict(model, sd)
    assert torch.equal(model.fusion.input_proj.weight, sd["fusion.porj_linear.weight"])
    assert torch.equal(model.date_encoding.weight, sd["ctpe"][0])
    red = sd["backbone_gep.patch_embed.projection.weight"][:, 0]
    assert torch.equal(model.hr_backbone.patch_embed.projection.weight[:, 3], red)
    assert (
        model.s2_backbone.pos_embed.shape[1] == 1 + 1
    )  # resized from 16x16 to the 1x1 grid of 4 px
    assert "s2_backbone.pos_embed" in report.adapted
    sd["head_gep.fc.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointMappingError, match="unexpected"):
        load_official_state_dict(model, sd)
    loose = load_official_state_dict(model, sd, strict=False)
    assert loose.unexpected == ["head_gep.fc.weight"]
    del sd["fusion.cls_token"]
    assert load_official_state_dict(model, sd, strict=False).missing == ["fusion.cls_token"]
