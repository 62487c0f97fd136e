"""A task model as an MLflow pyfunc: modality arrays in, per-pixel class probabilities out.

Same contract as the encoder's pyfunc (:mod:`skysense.registry.signature`: physical-unit arrays,
NaN = nodata, a missing modality sent empty); output ``B x K x H x W`` float32 probabilities
(softmax over the K classes; for a scene classifier ``B x K x 1 x 1``). The weights travel as the
``export`` artifact (safetensors), the model as code (:mod:`skysense.registry.task_pyfunc_code`).
``skysense predict`` verifies and loads the export itself and writes the class map.
"""

from __future__ import annotations

import os
from typing import Any, cast

import numpy as np

from skysense.core.contract import empty_modality
from skysense.models.batch import arrays_to_batch, resolve_device
from skysense.models.task_model import TaskModel, load_task_model
from skysense.registry.pyfunc import SkySenseEmbedder, model_inputs


class SkySenseTaskModel(SkySenseEmbedder):
    """Class probabilities of a task model export (``params={"device": ...}`` as the encoder)."""

    def load_context(self, context: Any) -> None:
        """Load the task model export on ``SKYSENSE_DEVICE`` (default: CUDA when present)."""
        self.device = resolve_device(os.environ.get("SKYSENSE_DEVICE"))
        model, self.config = load_task_model(context.artifacts["export"], device=self.device)
        self.model = model
        self.inputs = model_inputs(model.encoder.spec, list(self.config["modalities"]))

    def predict(
        self, context: Any, model_input: dict[str, np.ndarray], params: dict[str, Any] | None = None
    ) -> np.ndarray:
        """Probabilities ``B x K x H x W`` for a batch of chips."""
        import torch

        device = self._use_device(params)
        arrays = dict(model_input)
        b = len(arrays["lat"]) if "lat" in arrays else 1
        full = {n: arrays[n] if n in arrays else empty_modality(n, b) for n in self.inputs}
        batch = arrays_to_batch(full, self.config["encoder"].get("stats"), device)
        with torch.inference_mode():
            proba = cast(TaskModel, self.model).predict_proba(batch).float()
        if proba.ndim == 2:
            proba = proba[:, :, None, None]
        return proba.cpu().numpy()
