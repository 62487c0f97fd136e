"""Training and evaluation runs log their datasets; registered metrics reach the logged model.

Issue #20: the chip manifest and the downstream sets are logged with ``log_input`` (digest: the
DVC md5 of the folder, from a real ``dvc add``), so MLflow's Datasets column shows them; the
evaluation metrics given to a registration are logged on the MLflow 3 logged model
(``model_id``), so its page lists them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from skysense.tracking.datasets import (
    LoggedInput,
    chips_dataset,
    downstream_datasets,
    dvc_digest,
    log_inputs,
)
from skysense.tracking.store import connect, ensure_experiment

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "registry"))
from registry_fixtures import register_projection


def _dvc(args, cwd):
    dvc = str(Path(sys.executable).with_name("dvc"))
    return subprocess.run([dvc, *args], cwd=cwd, check=True, capture_output=True, text=True)


def _chips(folder: Path) -> Path:
    folder.mkdir(parents=True)
    pd.DataFrame(
        {
            "sample_id": ["zurich-01-0000", "zurich-01-0001"],
            "location": ["zurich-01", "zurich-01"],
            "crs": ["EPSG:32632"] * 2,
            "size": [8, 8],
            "s2_dates": [["2023-04-02", "2023-05-12"], ["2023-04-02"]],
            "s2_valid": [[True, False], [True]],
            "shard": ["shard-0000.bin"] * 2,
            "offset": [0, 1024],
        }
    ).to_parquet(folder / "manifest.parquet")
    (folder / "shard-0000.bin").write_bytes(np.zeros(2048, np.uint8).tobytes())
    return folder


def test_chips_and_downstream_sets_are_run_inputs_with_the_dvc_md5(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _dvc(["init", "--no-scm", "-q"], tmp_path)
    chips = _chips(tmp_path / "data" / "chips")
    down = tmp_path / "data" / "downstream"
    (down / "classification").mkdir(parents=True)
    pd.DataFrame(
        {"sample_id": ["a", "b"], "class": ["forest", "water"], "class_id": [0, 1],
         "location": ["x", "y"], "path": ["a", "b"], "fraction": [0.9, 0.8]}
    ).to_csv(down / "classification" / "index.csv", index=False)  # fmt: skip
    _dvc(["add", "-q", "data/chips", "data/downstream/classification"], tmp_path)
    md5 = yaml.safe_load((tmp_path / "data" / "chips.dvc").read_text())["outs"][0]["md5"]
    assert dvc_digest(chips) == md5 and md5.endswith(".dir")

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = connect(uri)
    exp = ensure_experiment(client, "datasets", tmp_path / "art", uri)
    run = client.create_run(exp, run_name="pretrain").info.run_id
    sets = [LoggedInput(chips_dataset(chips), "training")]
    sets += [LoggedInput(d, "evaluation") for d in downstream_datasets(down)]
    log_inputs(client, run, sets)

    logged = client.get_run(run).inputs.dataset_inputs
    by_name = {d.dataset.name: d for d in logged}
    assert set(by_name) == {"chips", "downstream-classification"}
    assert by_name["chips"].dataset.digest == md5
    assert by_name["chips"].dataset.source_type == "local"
    assert str(chips) in by_name["chips"].dataset.source
    assert {t.key: t.value for t in by_name["chips"].tags}["mlflow.data.context"] == "training"
    classification = by_name["downstream-classification"]
    assert classification.dataset.digest == dvc_digest(down / "classification")
    assert "class_id" in classification.dataset.schema


def test_an_untracked_folder_gets_mlflows_own_digest(tmp_path):
    chips = _chips(tmp_path / "chips")
    assert dvc_digest(chips) is None
    dataset = chips_dataset(chips)
    assert dataset.digest and len(dataset.digest) <= 36
    assert chips_dataset(tmp_path / "nowhere") is None


def test_registered_metrics_are_on_the_logged_model(sqlite_store, tmp_path):
    client, _uri, exp, db = sqlite_store
    res = register_projection(client, "proj", tmp_path, 1, {"linear_acc": 0.61}, exp, db)
    mv = client.get_model_version("proj", res.version)
    (model,) = client.search_logged_models(experiment_ids=[exp])
    assert model.source_run_id == res.run_id and mv.source.endswith(model.model_id)
    metrics = {m.key: m.value for m in model.metrics}
    assert metrics["eval_linear_acc"] == 0.61
    assert client.get_run(res.run_id).data.metrics["eval_linear_acc"] == 0.61
