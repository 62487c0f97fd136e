"""End to end: a tiny SkySense export registered in MLflow, promoted, and served by
``skysense predict --model models:/NAME@champion`` on a real Sentinel-2/Sentinel-1 scene.
"""

from __future__ import annotations

import mlflow
import numpy as np
import rasterio
from scene_fixtures import NODATA_CORNER, write_random_export
from typer.testing import CliRunner

from skysense.cli import app
from skysense.config import SkySenseConfig, registration_settings
from skysense.registry.export_registration import register_export
from skysense.registry.promotion import promote
from skysense.tracking.store import connect, ensure_experiment, sqlite_path


def test_register_promote_and_predict(tmp_path, scene_files, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    cfg = SkySenseConfig()
    cfg.registry.model_name = "skysense-e2e"
    client = connect(uri)
    exp = ensure_experiment(client, "e2e", tmp_path / "art", uri)
    export = write_random_export(tmp_path / "export")
    res = register_export(
        client,
        registration_settings(cfg),
        export,
        {"linear_acc": 0.5},
        experiment_id=exp,
        sqlite_db=sqlite_path(uri),
    )
    again = register_export(
        client,
        registration_settings(cfg),
        export,
        {"linear_acc": 0.5},
        experiment_id=exp,
        sqlite_db=sqlite_path(uri),
    )
    assert res.created and not again.created
    mv = client.get_model_version("skysense-e2e", res.version)
    assert "| linear_acc | 0.5000" in mv.description and mv.tags["preset"] == "skysense-tiny"
    promote(client, "skysense-e2e", cfg.registry.policy, sqlite_db=sqlite_path(uri))

    model = mlflow.pyfunc.load_model("models:/skysense-e2e@champion")
    ex = {k: v for k, v in model.input_example.items()} if hasattr(model, "input_example") else None
    assert model.metadata.get_input_schema().input_names()[:2] == ["s2", "s2_doy"]

    out = tmp_path / "pred.tif"
    result = CliRunner().invoke(
        app,
        [
            "predict",
            "--model",
            "models:/skysense-e2e@champion",
            "--input",
            f"2017-06-13={scene_files['s2']}",
            "--s1",
            f"2017-06-13={scene_files['s1']}",
            "--output",
            str(out),
            "--set",
            "predict.window=32",
            "--set",
            "predict.overlap=8",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    with rasterio.open(scene_files["s2"]) as src, rasterio.open(out) as dst:
        assert dst.crs == src.crs and dst.transform == src.transform
        assert (dst.width, dst.height, dst.count) == (120, 120, 192)
        corner = dst.read(1, window=((0, NODATA_CORNER), (0, NODATA_CORNER)))
        inner = dst.read(window=((40, 80), (40, 80)))
    assert np.isnan(corner).all() and np.isfinite(inner).all()
    assert inner.std() > 0
    del ex
