"""Huge preset parameter table (meta device) and the official checkpoint key mapping."""

from __future__ import annotations

import json

import pytest
import torch
from official_layout import official_names as _official_names
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
    sd["head_gep.fc.weight"] = torch.zeros(1)  # a non-encoder head: ignored by name
    assert (
        "not part of the encoder"
        in load_official_state_dict(model, sd).ignored["head_gep.fc.weight"]
    )
    sd["backbone_s2.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointMappingError, match="unexpected"):
        load_official_state_dict(model, sd)
    loose = load_official_state_dict(model, sd, strict=False)
    assert loose.unexpected == ["backbone_s2.extra.weight"]
    del sd["backbone_s2.extra.weight"]
    del sd["fusion.cls_token"]
    assert load_official_state_dict(model, sd, strict=False).missing == ["fusion.cls_token"]
