"""An export made by ``skysense model import-official`` is a model like a trained one: it
registers in MLflow, loads back as verified safetensors, and ``skysense predict`` writes a
georeferenced embedding from it (no DEM token, no modality embedding, no geo-context).
"""

from __future__ import annotations

import sys
from pathlib import Path

import rasterio
import torch
from typer.testing import CliRunner

from skysense.cli import app
from skysense.config import SkySenseConfig, registration_settings
from skysense.models.official_release import import_official
from skysense.models.presets import resolve_spec
from skysense.registry.export_registration import register_export
from skysense.registry.model_loading import load_encoder
from skysense.registry.promotion import promote
from skysense.tracking.store import connect, ensure_experiment, sqlite_path

sys.path.insert(0, str(Path(__file__).parent.parent / "models"))
from official_layout import official_names, split_release

NAME = "skysense-official"


def test_imported_release_registers_and_predicts(tmp_path, monkeypatch, scene_files):
    torch.manual_seed(0)
    spec = resolve_spec("skysense-tiny")
    combined = {k: torch.randn(s) * 0.02 for k, s in official_names(spec).items()}
    for name, state in split_release(combined).items():
        torch.save(state, tmp_path / name)
    export, _ = import_official(
        sorted(tmp_path.glob("*.pth")), tmp_path / "export", preset="skysense-tiny"
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    cfg = SkySenseConfig()
    cfg.registry.model_name = NAME
    client = connect(uri)
    exp = ensure_experiment(client, "official", tmp_path / "art", uri)
    register_export(
        client,
        registration_settings(cfg),
        export,
        {"linear_acc": 0.5},
        experiment_id=exp,
        sqlite_db=sqlite_path(uri),
    )
    promote(client, NAME, cfg.registry.policy, sqlite_db=sqlite_path(uri))
    encoder = load_encoder(f"models:/{NAME}@champion", "cpu", client)
    assert "dem" not in encoder.input_names
    assert torch.equal(encoder.model.date_encoding.weight, combined["ctpe"][0])
    out = tmp_path / "emb.tif"
    res = CliRunner().invoke(
        app,
        ["predict", "--model", f"models:/{NAME}@champion", "--input", str(scene_files["s2"])]
        + ["--output", str(out), "--set", "predict.window=32", "--set", "predict.overlap=8"],
    )
    assert res.exit_code == 0, res.output
    with rasterio.open(out) as ds, rasterio.open(scene_files["s2"]) as src:
        assert ds.crs == src.crs and ds.transform == src.transform
        assert ds.count == spec.embed_dim
