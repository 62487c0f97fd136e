"""The SkySense encoder as an MLflow pyfunc: modality arrays (with dates) in, embeddings out.

The weights and config travel as the ``export`` artifact (``model.safetensors`` + ``config.json``,
loaded with safetensors only); the ``skysense`` package travels as code, so loading needs only the
short pip requirements. The model itself is logged as code too
(:mod:`skysense.registry.pyfunc_code`),
never as a pickle. ``skysense predict`` does not load this pyfunc: it verifies and loads the export
directly (:mod:`skysense.registry.model_loading`). See :mod:`skysense.registry.signature` for the
input contract.
"""

from __future__ import annotations

import os
from typing import Any, cast

import numpy as np
import torch
from mlflow.pyfunc.model import PythonModel

from skysense.core.modalities import HR_RATIO
from skysense.models.batch import arrays_to_batch, resolve_device
from skysense.models.export_format import load_exported
from skysense.models.skysense import SkySense


class SkySenseEmbedder(PythonModel):
    """Per-pixel embeddings ``B x D x H x W`` of a SkySense encoder export.

    ``params={"device": "cuda"}`` (or ``SKYSENSE_DEVICE``) picks the device; default: CUDA when
    available, else CPU.
    """

    model: torch.nn.Module  # the SkySense encoder here; a TaskModel in SkySenseTaskModel
    config: dict[str, Any]

    def load_context(self, context: Any) -> None:
        """Load the verified export on ``SKYSENSE_DEVICE`` (default: CUDA when present)."""
        device = resolve_device(os.environ.get("SKYSENSE_DEVICE"))
        self.device = device
        self.model, self.config = load_exported(context.artifacts["export"], device=device)
        self.model.eval()

    def predict(
        self, context: Any, model_input: dict[str, np.ndarray], params: dict[str, Any] | None = None
    ) -> np.ndarray:
        """Embed a batch of chips given as physical-unit arrays (see the signature)."""
        device = self._use_device(params)
        batch = arrays_to_batch(dict(model_input), self.config.get("stats"), device)
        with torch.inference_mode():
            emb = cast(SkySense, self.model).embed(batch)
        return emb.float().cpu().numpy()

    def _use_device(self, params: dict[str, Any] | None) -> Any:
        """The device of this call (``params["device"]``, else the loaded one); moves the model."""
        wanted = (params or {}).get("device")
        device = resolve_device(wanted) if wanted not in (None, "") else self.device
        if str(device) != str(self.device):
            self.model.to(device)
            self.device = device
        return device


def model_inputs(spec: Any, modalities: list[str]) -> list[str]:
    """Signature input names for the modalities a preset is used with (plus lat/lon)."""
    names: list[str] = []
    for m in ("s2", "s1"):
        if m in modalities:
            names += [m, f"{m}_doy"]
    if "hr" in modalities:
        names.append("hr")
    if "dem" in modalities and getattr(spec, "dem", True):
        names.append("dem")
    return names + ["lat", "lon"]


def input_example(spec: Any, modalities: list[str], dates: int = 2) -> dict[str, np.ndarray]:
    """A small valid input for ``log_model``: one chip of one patch (``spec.patch_size`` Sentinel
    pixels, HR ``32x`` that) with 2 dates, so that the stored example stays small (HR values are
    whole numbers to keep its JSON short).
    """
    rng = np.random.default_rng(0)
    s = int(spec.patch_size)
    ex: dict[str, np.ndarray] = {}
    for name in model_inputs(spec, modalities):
        if name == "s2":
            ex[name] = np.round(rng.uniform(0.02, 0.4, size=(1, dates, 10, s, s)), 3).astype(
                np.float32
            )
        elif name == "s1":
            ex[name] = np.round(rng.uniform(-25, -5, size=(1, dates, 2, s, s)), 2).astype(
                np.float32
            )
        elif name.endswith("_doy"):
            ex[name] = np.array([[120 + 30 * i for i in range(dates)]], dtype=np.int64)
        elif name == "hr":
            hr = HR_RATIO * s
            ex[name] = rng.integers(0, 256, size=(1, int(spec.hr_in_chans), hr, hr)).astype(
                np.float32
            )
        elif name == "dem":
            ex[name] = np.round(rng.uniform(200, 600, size=(1, 1, s, s)), 1).astype(np.float32)
        elif name == "lat":
            ex[name] = np.array([46.5])
        elif name == "lon":
            ex[name] = np.array([7.5])
    return ex
