"""The ONNX encoder that travels with a registered version (artifact ``onnx/encoder.onnx``).

With ``registry.onnx: true`` registration exports the encoder of the training export to ONNX
(:func:`skysense.models.onnx_export.export_encoder_onnx`) for chips of the preset's
``sentinel_px`` (HR 32 times that; any batch size and number of dates) and logs it beside the
``export``
artifact, so that a consumer without PyTorch, DeepSpeed or this package runs the same encoder
with onnxruntime alone (``infra/serving/onnx_embed.py``). The export is about a minute on two
CPU cores for the tiny preset, hence off by default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from skysense.data.regions import region_id
from skysense.models.batch import arrays_to_batch
from skysense.models.export_format import load_exported
from skysense.models.onnx_export import export_encoder_onnx
from skysense.registry.pyfunc import input_example

ONNX_ARTIFACT = "onnx"
ONNX_FILE = "encoder.onnx"


def model_batch(arrays: dict[str, np.ndarray], config: dict[str, Any], n_regions: int) -> dict:
    """The normalised model batch of physical-unit ``arrays`` (as the pyfunc makes it), every
    modality present (absent ones zero-filled, ``has_*`` False) and ``region`` from lat/lon.
    """
    batch = arrays_to_batch(arrays, config.get("stats"))
    b = int(np.asarray(arrays["lat"]).reshape(-1).shape[0])
    region = region_id(np.asarray(arrays["lat"]), np.asarray(arrays["lon"]), n_regions)
    batch["region"] = torch.as_tensor(region).long().reshape(-1)
    for key in ("s2", "s1", "hr", "dem"):
        if f"has_{key}" not in batch and key in batch:
            batch[f"has_{key}"] = torch.ones(b, dtype=torch.bool)
    return batch


def chip_example(spec: Any, sentinel_px: int) -> dict[str, np.ndarray]:
    """The pyfunc's input example (one patch) tiled to chips of ``sentinel_px`` Sentinel pixels."""
    example = input_example(spec, ["s2", "s1", "hr", "dem"], dates=2)
    reps = sentinel_px // int(spec.patch_size)
    for key in ("s2", "s1", "hr", "dem"):
        if key in example:
            tile = [1] * (example[key].ndim - 2) + [reps, reps]
            example[key] = np.tile(example[key], tile)
    return example


def export_registered_onnx(
    export_dir: str | Path, out_dir: str | Path, sentinel_px: int | None = None
) -> Path:
    """Export the encoder of ``export_dir`` to ``out_dir/encoder.onnx`` for chips of
    ``sentinel_px`` Sentinel pixels (default: the preset's ``sentinel_px``).

    Returns:
        The folder holding ``encoder.onnx`` (the artifact).
    """
    model, config = load_exported(Path(export_dir), device="cpu")
    example = chip_example(model.spec, int(sentinel_px or model.spec.sentinel_px))
    batch = model_batch(example, config, model.spec.n_regions)
    out = Path(out_dir)
    export_encoder_onnx(
        model,
        batch,
        out / ONNX_FILE,
        metadata={
            "skysense:preset": config.get("preset"),
            "skysense:data_version": config.get("data_version"),
            "skysense:git_commit": config.get("git_commit"),
            "skysense:stats": config.get("stats"),
        },
    )
    return out
