"""A very small real MLflow pyfunc for the server tests: per-pixel mean of S2 bands, scaled.

Its scale is a weights artifact (``.npy``), so registering two scales makes two checkpoints.
"""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import numpy as np


class ScaledBandMean(mlflow.pyfunc.PythonModel):
    """``B x T x C x H x W`` S2 reflectance -> ``B x 1 x H x W``: scale * mean over dates and
    bands.
    """

    def load_context(self, context) -> None:
        self.scale = float(np.load(context.artifacts["scale"]))

    def predict(self, context, model_input, params=None):
        s2 = np.asarray(model_input["s2"], dtype=np.float32)
        return (self.scale * s2.mean(axis=(1, 2)))[:, None].astype(np.float32)


def write_scale(path: Path, scale: float) -> Path:
    """Save the scale as ``.npy``; its bytes differ per scale (a distinct checkpoint hash)."""
    np.save(path, np.float32(scale))
    return path


def example_input() -> dict[str, np.ndarray]:
    """One S2 input of 2 dates, 10 bands, 4 x 4 pixels."""
    return {"s2": np.full((1, 2, 10, 4, 4), 0.25, dtype=np.float32)}
