"""``skysense predict`` loads a registered model as verified safetensors, never as a pickle
(issue #21, item 13): weights or config changed in the artifact store after registration are
refused with a named error, before anything is loaded or written.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from scene_fixtures import write_random_export
from typer.testing import CliRunner

from skysense.cli import app
from skysense.config import SkySenseConfig, registration_settings
from skysense.registry.export_registration import register_export
from skysense.registry.model_loading import (
    ModelIntegrityError,
    ModelSourceError,
    encoder_embedder,
    load_encoder,
)
from skysense.registry.promotion import promote
from skysense.tracking.store import connect, ensure_experiment, sqlite_path

NAME = "skysense-verified"


@pytest.fixture()
def registered(tmp_path, monkeypatch):
    """``(client, export folder, stored export folder in the artifact store)`` of a champion."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    cfg = SkySenseConfig()
    cfg.registry.model_name = NAME
    client = connect(uri)
    exp = ensure_experiment(client, "verified", tmp_path / "art", uri)
    export = write_random_export(tmp_path / "export", seed=1)
    register_export(
        client,
        registration_settings(cfg),
        export,
        {"linear_acc": 0.5},
        experiment_id=exp,
        sqlite_db=sqlite_path(uri),
    )
    promote(client, NAME, cfg.registry.policy, sqlite_db=sqlite_path(uri))
    stored = [p.parent for p in (tmp_path / "art").rglob("model.safetensors")]
    assert len(stored) == 1
    return client, export, stored[0]


def _predict(scene_files, out):
    return CliRunner().invoke(
        app,
        [
            "predict",
            "--model",
            f"models:/{NAME}@champion",
            "--input",
            str(scene_files["s2"]),
            "--output",
            str(out),
            "--set",
            "predict.window=32",
            "--set",
            "predict.overlap=8",
            "--json",
        ],
    )


def test_registered_model_loads_verified_safetensors_without_pickles(registered, tmp_path):
    client, export, stored = registered
    logged = stored.parent.parent  # <model>/artifacts/export -> <model>
    assert not list(logged.rglob("*.pkl"))  # logged as code: no cloudpickled python_model
    encoder = load_encoder(f"models:/{NAME}@champion", "cpu", client)
    assert encoder.version == "1" and encoder.source == f"models:/{NAME}/1"
    assert encoder.input_names[:2] == ["s2", "s2_doy"]
    embed, _ = encoder_embedder(f"models:/{NAME}/1", "cpu", client)
    local, _ = encoder_embedder(str(export), "cpu")
    rng = np.random.default_rng(0)
    arrays = {
        "s2": rng.uniform(0.02, 0.4, (1, 2, 10, 8, 8)).astype(np.float32),
        "s2_doy": np.array([[120, 150]]),
        "lat": np.array([46.5]),
        "lon": np.array([7.5]),
    }
    np.testing.assert_array_equal(embed(arrays), local(arrays))


def test_tampered_weights_are_refused_by_predict(registered, tmp_path, scene_files):
    client, _, stored = registered
    # An attacker with write access to the artifact store swaps in other weights of the same
    # architecture: a valid safetensors file that would load without complaint.
    other = write_random_export(tmp_path / "other", seed=2)
    shutil.copy(other / "model.safetensors", stored / "model.safetensors")
    out = tmp_path / "pred.tif"
    result = _predict(scene_files, out)
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert (
        f"{NAME} v1: artifacts/export/model.safetensors in the artifact store has SHA-256" in text
    )
    assert "checkpoint_sha256 tag records" in text and "it was not loaded" in text
    assert not out.exists()
    with pytest.raises(ModelIntegrityError, match="model.safetensors"):
        load_encoder(f"models:/{NAME}@champion", "cpu", client)


def test_tampered_config_is_refused(registered):
    client, _, stored = registered
    config = stored / "config.json"
    config.write_text(config.read_text().replace('"stats": null', '"stats": {"s2": {}}'))
    with pytest.raises(ModelIntegrityError, match="config.json .* export_config_sha256"):
        load_encoder(f"models:/{NAME}@champion", "cpu", client)


def test_other_model_sources_are_refused(tmp_path):
    for uri in ("runs:/0123/model", "s3://bucket/model", str(tmp_path)):
        with pytest.raises(ModelSourceError, match="registered version"):
            load_encoder(uri, "cpu")
