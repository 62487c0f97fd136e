"""The encoder exported to ONNX gives PyTorch's embeddings, and runs with onnxruntime alone.

One export of a randomly initialised tiny encoder (about 25 s on two cores) serves every test:
parity on a batch unlike the export example (3 samples, 3 S2 dates and 2 S1 dates, an invalid
date, a sample without HR), and a run of ``infra/serving/onnx_embed.py`` in a subprocess that
imports neither PyTorch, DeepSpeed nor skysense.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from skysense.data.regions import region_id
from skysense.models import create_model
from skysense.models.batch import arrays_to_batch
from skysense.models.onnx_export import (
    EncoderGraph,
    OnnxExportError,
    export_encoder_onnx,
    graph_inputs,
    onnx_feeds,
)
from skysense.registry.pyfunc import input_example

SERVING_SCRIPT = Path(__file__).resolve().parents[2] / "infra" / "serving" / "onnx_embed.py"


def _batch(model, samples: int, dates: int, hr_missing: int | None = None) -> dict:
    arrays = input_example(model.spec, ["s2", "s1", "hr", "dem"], dates=dates)
    arrays = {k: np.concatenate([v] * samples) for k, v in arrays.items()}
    rng = np.random.default_rng(samples)
    arrays["s2"] = arrays["s2"] * rng.uniform(0.8, 1.2, arrays["s2"].shape).astype(np.float32)
    arrays["s1"] = arrays["s1"][:, : max(dates - 1, 1)]
    arrays["s1_doy"] = arrays["s1_doy"][:, : max(dates - 1, 1)]
    arrays["lat"] = np.array([46.5, 45.1, 47.3][:samples])
    arrays["lon"] = np.array([7.5, 9.2, 8.5][:samples])
    batch = arrays_to_batch(arrays, None)
    if hr_missing is not None:
        batch["hr"][hr_missing] = 0
        batch["has_hr"][hr_missing] = False
    batch["has_dem"] = torch.ones(samples, dtype=torch.bool)
    batch["region"] = torch.as_tensor(
        region_id(arrays["lat"], arrays["lon"], model.spec.n_regions)
    ).long()
    return batch


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("skysense-tiny").eval()
    path = tmp_path_factory.mktemp("onnx") / "encoder.onnx"
    export_encoder_onnx(model, _batch(model, 1, 2), path, metadata={"skysense:test": True})
    return model, path


def test_onnx_matches_pytorch_on_other_batch_sizes_dates_and_missing_inputs(exported):
    model, path = exported
    batch = _batch(model, 3, 3, hr_missing=1)
    batch["s2"][2, 1] = 0.0  # date 2 of sample 3 unusable
    batch["s2_valid"][2, 1] = False
    with torch.no_grad():
        expected = model.embed(batch).numpy()  # the default (branching) PyTorch path
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    assert names == EncoderGraph(model).input_names
    (got,) = session.run(["embedding"], onnx_feeds(batch, names))
    assert got.shape == expected.shape == (3, model.embed_dim, 4, 4)
    assert np.abs(got - expected).max() <= 1e-4
    meta = {p.key: json.loads(p.value) for p in onnx.load(str(path)).metadata_props}
    assert meta["skysense:inputs"] == names and meta["skysense:sentinel_px"] == 4
    assert meta["skysense:embed_dim"] == model.embed_dim and meta["skysense:test"] is True


def test_onnxruntime_alone_in_a_subprocess(exported, tmp_path):
    model, path = exported
    batch = _batch(model, 2, 4)
    names = EncoderGraph(model).input_names
    np.savez(tmp_path / "inputs.npz", **onnx_feeds(batch, names))
    run = subprocess.run(
        [sys.executable, "-I", str(SERVING_SCRIPT), str(path), str(tmp_path / "inputs.npz"),
         str(tmp_path / "emb.npz")],
        check=False, capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["heavy_modules"] == []  # no torch, deepspeed, skysense or mlflow imported
    assert report["inputs"] == names
    got = np.load(tmp_path / "emb.npz")["embedding"]
    with torch.no_grad():
        expected = model.embed(batch).numpy()
    assert np.abs(got - expected).max() <= 1e-4


def test_a_batch_without_a_modality_is_refused_by_name(exported):
    model, _ = exported
    batch = _batch(model, 2, 2)
    del batch["has_hr"], batch["hr"]
    with pytest.raises(OnnxExportError, match="lacks hr, has_hr"):
        graph_inputs(batch, EncoderGraph(model).input_names)


def test_dense_mode_gives_the_default_paths_embeddings(exported):
    model, _ = exported
    batch = _batch(model, 2, 2, hr_missing=0)
    with torch.no_grad():
        default = model.embed(batch)
        model.dense = True
        try:
            dense = model.embed(batch)
        finally:
            model.dense = False
    torch.testing.assert_close(dense, default, atol=1e-5, rtol=1e-5)
