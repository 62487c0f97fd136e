"""A fine-tuned task model registered, promoted and served as a class map:
``skysense predict --model models:/skysense-landcover@champion`` on a real Sentinel-2/Sentinel-1
scene (BigEarthNet patch, tests/data/real/inference).
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import rasterio
from scene_fixtures import NODATA_CORNER, write_random_export
from small_sample import SMALL_SAMPLE as SAMPLE
from typer.testing import CliRunner

from skysense.cli import app
from skysense.models.presets import resolve_spec
from skysense.registry.pyfunc import input_example


def test_task_model_predicts_a_styled_class_map_on_a_real_scene(tmp_path, scene_files, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    res = runner.invoke(app, ["data", "sample", "--out", str(tmp_path / "s"), *SAMPLE])
    assert res.exit_code == 0, res.output
    encoder = write_random_export(tmp_path / "enc", seed=1)
    res = runner.invoke(app, ["register", "--export", str(encoder), "--json"])
    assert res.exit_code == 0, res.output
    # fine-tuned from the registered encoder version (downloaded, sha256-verified)
    res = runner.invoke(
        app,
        [
            "finetune", "--export", "models:/skysense-encoder/1",
            "--downstream", str(tmp_path / "s" / "downstream"), "--out", str(tmp_path / "ft"),
            "--set", "finetune.steps=2", "--set", "finetune.micro_batch=2",
            "--set", "finetune.random_baseline=false", "--set", "finetune.frozen_probe=false",
            "--set", "finetune.modalities=[s2,s1]", "--json",
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    export_dir = Path(report["export"])
    config = json.loads((export_dir / "config.json").read_text())
    assert config["encoder_source"] == "models:/skysense-encoder/1"
    for args in (
        [
            "register",
            "--task-model",
            str(export_dir),
            "--metrics",
            str(tmp_path / "ft" / "metrics.json"),
        ],
        ["promote", "--task-model"],
    ):
        res = runner.invoke(app, [*args, "--json"])
        assert res.exit_code == 0, res.output
    mv = mlflow.MlflowClient().get_model_version_by_alias("skysense-landcover", "champion")
    assert mv.tags["encoder_version"] == "1"
    assert mv.tags["training_run_id"] == report["mlflow_run_id"]

    # the registered pyfunc loads through MLflow and returns class probabilities
    pyfunc = mlflow.pyfunc.load_model("models:/skysense-landcover@champion")
    assert pyfunc.metadata.get_output_schema().input_names() == ["probabilities"]
    example = input_example(resolve_spec("skysense-tiny"), ["s2", "s1"])
    served = pyfunc.predict(example)
    assert served.shape[:2] == (1, len(report["summary"]["classes"]))
    assert np.allclose(served.sum(axis=1), 1.0, atol=1e-4)

    out, proba = tmp_path / "map.tif", tmp_path / "proba.tif"
    res = runner.invoke(
        app,
        [
            "predict", "--model", "models:/skysense-landcover@champion",
            "--input", f"2017-06-13={scene_files['s2']}", "--s1", f"2017-06-13={scene_files['s1']}",
            "--output", str(out), "--probabilities", str(proba),
            "--set", "predict.window=32", "--set", "predict.overlap=8", "--json",
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["bands"] == 1
    classes = report["summary"]["classes"]
    with (
        rasterio.open(scene_files["s2"]) as src,
        rasterio.open(out) as dst,
        rasterio.open(proba) as p,
    ):
        assert dst.crs == src.crs and dst.transform == src.transform
        assert (dst.width, dst.height, dst.count) == (src.width, src.height, 1)
        assert dst.dtypes[0] == "uint8" and dst.nodata == 255
        assert dst.tags(1)["classes"].split(",") == classes
        assert dst.tags(1)["class_0"] == classes[0]
        table = dst.colormap(1)
        for i, rgb in enumerate(config["colours"]):
            assert table[i] == (*rgb, 255)
        data = dst.read(1)
        assert (data[:NODATA_CORNER, :NODATA_CORNER] == 255).all()
        inner = data[40:80, 40:80]
        assert (inner < len(classes)).all()
        assert p.count == len(classes) and p.crs == src.crs and p.transform == src.transform
        assert p.descriptions[0] == f"p_{classes[0]}"
        probs = p.read(window=((40, 80), (40, 80)))
    assert np.allclose(probs.sum(axis=0), 1.0, atol=1e-4)
    assert (probs.argmax(axis=0) == inner).all()
