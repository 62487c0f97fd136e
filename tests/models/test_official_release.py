"""Importing the official SkySense release, per-module files or the combined state dict, as an
export: key sets and shapes from the release's module definitions (tests/models/official_layout),
on the meta device for the huge preset and as small random tensors for the tiny one.
"""

from __future__ import annotations

import json

import pytest
import torch
from official_layout import official_names, split_release
from typer.testing import CliRunner

from skysense.cli import app
from skysense.models.export_format import load_exported
from skysense.models.official_checkpoint import CheckpointMappingError, load_official_state_dict
from skysense.models.official_release import (
    OFFICIAL_OVERRIDES,
    ReleaseFile,
    build_official_model,
    identify_part,
    import_official,
    to_combined,
)
from skysense.models.presets import resolve_spec


def _release(spec, make=torch.randn) -> dict[str, torch.Tensor]:
    sd = {k: make(shape) for k, shape in official_names(spec).items()}
    # what the combined file holds beside the encoder
    sd["head_gep.mlp.0.weight"] = make((8, 8))
    sd["head_gep_fusion.last_layer.weight_v"] = make((8, 8))
    return sd


def test_huge_per_module_files_map_strictly_on_meta(tmp_path):
    spec = resolve_spec("skysense-huge")
    with torch.device("meta"):
        combined = _release(spec, torch.empty)
    files = []
    for name, state in split_release(combined).items():
        if name.endswith("_hr.pth"):
            state["head.fc.weight"] = torch.empty(10, 10, device="meta")  # a task head beside
        part = identify_part(tmp_path / name, state)
        files.append(ReleaseFile(tmp_path / name, part, state))
    assert sorted(f.part for f in files) == ["fusion", "hr", "s1", "s1_head", "s2", "s2_head"]
    mapped, aside = to_combined(files)
    model = build_official_model("skysense-huge")
    assert model.modality_embed is None and model.dem_encoder is None and model.geo_context is None
    report = load_official_state_dict(model, mapped, strict=True, assign=True)
    assert report.ok and not report.not_in_release
    assert report.loaded["fusion.porj_linear.weight"] == "fusion.input_proj.weight"
    assert report.loaded["ctpe"] == "date_encoding.weight"
    assert "not under backbone." in aside["skysense_model_backbone_hr.pth:head.fc.weight"]
    # every released encoder tensor is placed; only named non-encoder keys are left
    n_encoder = len([k for k in combined if not k.startswith("head_gep")])
    assert len(report.loaded) + len(report.ignored) == n_encoder
    combined_report = load_official_state_dict(
        build_official_model("skysense-huge"), combined, strict=True, assign=True
    )
    assert set(combined_report.ignored) >= {"head_gep.mlp.0.weight"}
    assert combined_report.loaded == report.loaded


def _save(tmp_path, spec):
    torch.manual_seed(0)
    combined = _release(spec)
    torch.save(combined, tmp_path / "skysense_model_combined.pth")
    folder = tmp_path / "modules"
    folder.mkdir()
    for name, state in split_release(combined).items():
        torch.save(state, folder / name)
    return combined, folder


def test_cli_imports_either_form_to_the_same_export(tmp_path):
    spec = resolve_spec("skysense-tiny")
    combined, folder = _save(tmp_path, spec)
    runner = CliRunner()
    modules = sorted(str(p) for p in folder.iterdir())
    res = runner.invoke(
        app,
        ["model", "import-official", *modules, "--out", str(tmp_path / "a"), "--preset"]
        + ["skysense-tiny", "--json"],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert "hr_backbone.patch_embed.projection.weight" in summary["adapted"]
    res = runner.invoke(
        app,
        ["model", "import-official", str(tmp_path / "skysense_model_combined.pth"), "--out"]
        + [str(tmp_path / "b"), "--preset", "skysense-tiny"],
    )
    assert res.exit_code == 0, res.output
    assert "head_gep" in res.output  # the ignored non-encoder heads are named with a reason
    model_a, config_a = load_exported(tmp_path / "a")
    model_b, _ = load_exported(tmp_path / "b")
    sd_a, sd_b = model_a.state_dict(), model_b.state_dict()
    assert sd_a.keys() == sd_b.keys()
    assert all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)
    assert config_a["overrides"] == OFFICIAL_OVERRIDES
    assert {"dem": False, "modality_embed": False, "geo_context": False}.items() <= set(
        config_a["overrides"].items()
    )
    assert [s["part"] for s in config_a["source"]] and all(
        len(s["sha256"]) == 64 for s in config_a["source"]
    )
    # the official weights are what the model computes with
    assert torch.equal(model_a.fusion.input_proj.weight, combined["fusion.porj_linear.weight"])
    assert torch.equal(model_a.date_encoding.weight, combined["ctpe"][0])
    assert torch.equal(
        model_a.s1_head.decoder[0].weight, combined["head_s1.decoder.0.weight"]
    )  # the S1 head is not taken for the S2 one
    assert model_a.modality_embed is None and model_a.geo_context is None


def test_imported_model_backbones_alone_and_without_location(tmp_path, make_batch):
    spec = resolve_spec("skysense-tiny", sentinel_px=4)
    _, folder = _save(tmp_path, spec)
    import_official(
        sorted(folder.iterdir()),
        tmp_path / "x",
        preset="skysense-tiny",
        overrides={"sentinel_px": 4},
    )
    model, _ = load_exported(tmp_path / "x")
    full = make_batch(b=2, s=4)
    with torch.no_grad():
        emb = model.embed(full)  # the DEM in the batch is not read by a model without it
        assert emb.shape == (2, model.embed_dim, 4, 4) and torch.isfinite(emb).all()
        out = model(make_batch(b=2, s=4, modalities=("hr",)))
        assert out["fused"].shape == (2, spec.fusion_dim, 4, 4) and not out["geo_context"]
        assert torch.count_nonzero(out["geo"]) == 0
        s2_only = make_batch(b=2, s=4, modalities=("s2",))
        del s2_only["region"]
        assert torch.isfinite(model.embed(s2_only)).all()
    with pytest.raises(Exception, match="dem=False"):
        model(full)  # training-style forward refuses an input the model does not take


def test_ambiguous_or_foreign_files_are_refused(tmp_path):
    spec = resolve_spec("skysense-tiny")
    _, folder = _save(tmp_path, spec)
    head = folder / "skysense_model_head_s2.pth"
    renamed = folder / "lifting_head.pth"
    head.rename(renamed)
    files = [str(p) for p in sorted(folder.iterdir())]
    with pytest.raises(CheckpointMappingError, match="s2_head=PATH"):
        import_official(files, tmp_path / "x", preset="skysense-tiny")
    files = [f"s2_head={renamed}" if f == str(renamed) else f for f in files]
    import_official(files, tmp_path / "x", preset="skysense-tiny")  # named explicitly: fine
    torch.save({"foo.weight": torch.zeros(2)}, tmp_path / "other.pth")
    res = CliRunner().invoke(
        app, ["model", "import-official", str(tmp_path / "other.pth"), "--out", str(tmp_path / "y")]
    )
    assert res.exit_code == 2 and "match no part" in res.output
    missing = [f for f in files if "fusion" not in f]
    with pytest.raises(CheckpointMappingError, match="missing"):
        import_official(missing, tmp_path / "z", preset="skysense-tiny")
    assert not (tmp_path / "z").exists()


def test_rgb_import_keeps_the_released_patch_embedding(tmp_path):
    spec = resolve_spec("skysense-tiny")
    combined, _ = _save(tmp_path, spec)
    res = CliRunner().invoke(
        app,
        ["model", "import-official", str(tmp_path / "skysense_model_combined.pth"), "--out"]
        + [str(tmp_path / "rgb"), "--preset", "skysense-tiny", "--rgb", "--json"],
    )
    assert res.exit_code == 0, res.output
    assert "hr_backbone.patch_embed.projection.weight" not in json.loads(res.stdout)["adapted"]
    model, config = load_exported(tmp_path / "rgb")
    assert config["overrides"]["hr_in_chans"] == 3
    assert torch.equal(
        model.hr_backbone.patch_embed.projection.weight,
        combined["backbone_gep.patch_embed.projection.weight"],
    )
