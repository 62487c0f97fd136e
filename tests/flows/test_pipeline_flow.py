"""The pipeline flow end to end: real Prefect (ephemeral), real MLflow (SQLite), real DVC.

One project, two runs: the first builds everything and registers and promotes v1; the second
finds every DVC stage up to date and registers no new version. Then DVC's bookkeeping is checked:
a changed eval param makes only ``evaluate`` stale, a changed train param ``train`` and
``evaluate``; ``dvc push``/``dvc pull`` round-trip the chips through the default local remote.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from flow_project import SMALL, bin_path, run_cli

from skysense.core.lineage import dvc_md5

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _sets() -> list[str]:
    return [arg for item in SMALL for arg in ("--set", item)]


def _flow_state(project, run_id: str) -> str:
    with sqlite3.connect(project / ".prefect" / "prefect.db") as db:
        row = db.execute("SELECT state_type FROM flow_run WHERE id = ?", (run_id,)).fetchone()
    return row[0]


def _dvc_stale(project) -> set[str]:
    out = subprocess.run(
        [bin_path("dvc"), "status", "--json"],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(json.loads(out))


def test_pipeline_runs_then_skips_and_dvc_tracks_it(project):
    from mlflow import MlflowClient

    first = run_cli(project, "pipeline", "run", "--json", *_sets())
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-5000:]
    one = json.loads(first.stdout)
    assert one["flow_state"] == "Completed"
    assert _flow_state(project, one["flow_run_id"]) == "COMPLETED"
    assert [s["stage"] for s in one["stages"]] == [
        "sample",
        "validate",
        "chip",
        "train",
        "evaluate",
        "finetune",
    ]
    assert all(s["ran"] for s in one["stages"])
    assert one["registered_version"] == "1" and one["created"] is True
    assert one["promotion"]["action"] == "promote"
    assert one["champion_version"] == "1" and one["aliases"]["champion"] == "1"

    # dvc.lock records every stage; the version carries the DVC md5 of its chips and checkpoint.
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    assert set(lock) == {"sample", "validate", "chip", "train", "evaluate", "finetune"}
    # the task model: registered after its encoder, so its promotion is allowed
    task = one["task_model"]
    assert task["name"] == "skysense-landcover" and task["registered_version"] == "1"
    assert task["promotion"]["action"] == "promote", task["promotion"]
    data_md5 = dvc_md5("data/chips", project)
    assert data_md5 and data_md5.endswith(".dir")
    client = MlflowClient(tracking_uri=one["tracking_uri"], registry_uri=one["tracking_uri"])
    mv = client.get_model_version("skysense-encoder", "1")
    assert mv.tags["dvc.data_md5"] == data_md5
    assert mv.tags["dvc.checkpoint_md5"] == dvc_md5("checkpoints/deepspeed", project)
    assert client.get_run(mv.run_id).data.tags["dvc.data_md5"] == data_md5
    assert "champion" in mv.aliases and "challenger" in mv.aliases
    history = (
        json.loads(client.get_registered_model("skysense-encoder").tags["promotion.history"])
        if "promotion.history" in client.get_registered_model("skysense-encoder").tags
        else None
    )
    assert history is None or history[-1]["action"] == "promote"

    second = run_cli(project, "pipeline", "run", "--json", *_sets())
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-5000:]
    two = json.loads(second.stdout)
    assert two["flow_state"] == "Completed"
    assert not any(s["ran"] for s in two["stages"]), two["stages"]
    assert two["created"] is False and two["registered_version"] == "1"
    assert two["promotion"]["action"] == "skipped"
    assert two["task_model"]["created"] is False
    assert two["task_model"]["promotion"]["action"] == "skipped"
    assert len(client.search_model_versions("name = 'skysense-encoder'")) == 1

    # Batch inference with the champion over the sample's locations (predict flow).
    predicted = subprocess.run(
        [
            sys.executable,
            str(ROOT / "flows" / "predict.py"),
            "data/sample/catalog.yaml",
            "--overrides",
            "predict.window=16",
            "--overrides",
            "predict.overlap=4",
        ],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert predicted.returncode == 0, predicted.stdout[-2000:] + predicted.stderr[-4000:]
    outputs = sorted((project / "reports" / "predictions").glob("*.tif"))
    locations = yaml.safe_load((project / "data/sample/catalog.yaml").read_text())["locations"]
    assert [p.stem for p in outputs] == sorted(loc["id"] for loc in locations)
    import rasterio

    first_s2 = project / "data/sample" / locations[0]["modalities"]["s2"]["acquisitions"][0]["file"]
    with (
        rasterio.open(
            outputs[0]
            if outputs[0].stem == locations[0]["id"]
            else project / "reports/predictions" / f"{locations[0]['id']}.tif"
        ) as out,
        rasterio.open(first_s2) as ref,
    ):
        assert out.crs == ref.crs and out.transform == ref.transform
        assert (out.width, out.height) == (ref.width, ref.height) and out.count > 1

    # Precise params per stage: eval.* re-runs evaluate only; train.* re-runs train and evaluate.
    params = project / "params.yaml"
    original = params.read_text()
    raw = yaml.safe_load(original)
    raw["eval"]["knn_k"] = raw["eval"]["knn_k"] + 1
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert _dvc_stale(project) == {"evaluate"}
    raw["train"]["lr"] = raw["train"]["lr"] * 2
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert _dvc_stale(project) == {"train", "evaluate"}
    params.write_text(original)
    assert _dvc_stale(project) == set()

    # The default local remote: push, lose the chips, pull them back bit-identical.
    push = subprocess.run(
        [bin_path("dvc"), "push"], cwd=project, capture_output=True, text=True, check=False
    )
    assert push.returncode == 0, push.stderr
    shutil.rmtree(project / "data" / "chips")
    pull = subprocess.run(
        [bin_path("dvc"), "pull", "chip"], cwd=project, capture_output=True, text=True, check=False
    )
    assert pull.returncode == 0, pull.stderr
    assert (project / "data" / "chips" / "manifest.parquet").exists()
    assert _dvc_stale(project) == set()
