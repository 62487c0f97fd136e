"""The champion served by ``mlflow models serve``, and its ONNX artifact (issue #20).

A randomly initialised tiny export is registered in a real SQLite store with
``registry.onnx: true`` and promoted. Then:

- the real ``mlflow models serve -m models:/NAME@champion --env-manager local`` is started on
  127.0.0.1 (``MLFLOW_TRACKING_URI`` names the store); a JSON request with the arrays of the
  version's input example returns the embeddings the in-process pyfunc gives;
- the version's ``onnx/encoder.onnx`` artifact, run with onnxruntime on the same chips
  (normalised as the pyfunc does), gives the same embeddings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import onnxruntime as ort
from scene_fixtures import write_random_export

from skysense.config import SkySenseConfig, registration_settings
from skysense.models.onnx_export import onnx_feeds
from skysense.models.presets import resolve_spec
from skysense.registry.export_registration import register_export
from skysense.registry.onnx_artifact import ONNX_ARTIFACT, ONNX_FILE, chip_example, model_batch
from skysense.registry.promotion import promote
from skysense.tracking.server import _stop, free_port, wait_for_health

NAME = "skysense-served"


def _mlflow_cli() -> str:
    return str(Path(sys.executable).with_name("mlflow"))


def test_champion_served_over_http_and_as_onnx(sqlite_store, tmp_path, monkeypatch):
    client, uri, exp, db = sqlite_store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    cfg = SkySenseConfig()
    cfg.registry.model_name = NAME
    cfg.registry.onnx = True
    export = write_random_export(tmp_path / "export")
    res = register_export(
        client,
        registration_settings(cfg),
        export,
        {"linear_acc": 0.5},
        experiment_id=exp,
        sqlite_db=db,
    )
    promote(client, NAME, cfg.registry.policy, sqlite_db=db)
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == res.version

    spec = resolve_spec("skysense-tiny")
    example = chip_example(spec, spec.sentinel_px)  # the chip side the ONNX file was made for
    example = {k: np.concatenate([v, v]) for k, v in example.items()}  # 2 chips
    example["lat"] = np.array([46.5, 45.9])
    example["lon"] = np.array([7.5, 6.8])
    pyfunc = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    expected = np.asarray(pyfunc.predict(example))
    assert expected.shape == (2, spec.embed_dim, spec.sentinel_px, spec.sentinel_px)

    # the served model: the real scoring server, local environment, loopback only
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [_mlflow_cli(), "models", "serve", "-m", f"models:/{NAME}@champion",
         "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True,
        # the scoring server runs `uvicorn` from PATH: the environment's bin folder first
        env={**os.environ, "MLFLOW_TRACKING_URI": uri,
             "PATH": f"{Path(_mlflow_cli()).parent}{os.pathsep}{os.environ.get('PATH', '')}"},
    )  # fmt: skip
    try:
        wait_for_health(f"http://127.0.0.1:{port}", timeout_s=120, process=proc)
        body = json.dumps({"inputs": {k: v.tolist() for k, v in example.items()}}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as resp:
            assert resp.status == 200
            served = np.asarray(json.loads(resp.read())["predictions"], dtype=np.float32)
    finally:
        _stop(proc)
        log.close()
    np.testing.assert_allclose(served, expected, atol=1e-5, rtol=1e-5)

    # the ONNX artifact of the same version, with onnxruntime
    model_dir = Path(
        mlflow.artifacts.download_artifacts(f"models:/{NAME}/{res.version}", dst_path=tmp_path)
    )
    onnx_file = model_dir / "artifacts" / ONNX_ARTIFACT / ONNX_FILE
    assert onnx_file.is_file()
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    config = json.loads((export / "config.json").read_text())
    batch = model_batch(example, config, spec.n_regions)
    names = [i.name for i in session.get_inputs()]
    (got,) = session.run(["embedding"], onnx_feeds(batch, names))
    assert np.abs(got - expected).max() <= 1e-4
