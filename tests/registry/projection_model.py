"""A small real pyfunc for registry tests: per-pixel embeddings by a fixed band projection.

It follows the SkySense pyfunc contract (dict of modality arrays in, ``B x D x H x W`` out), with
its weights in an ``.npz`` artifact, so tests exercise logging, registration, aliases and loading
``models:/NAME@champion`` on a real MLflow store without the full encoder.
"""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import numpy as np


class BandProjectionEmbedder(mlflow.pyfunc.PythonModel):
    """Embeds each pixel of the last S2 date by ``tanh(W @ bands + b)``."""

    def load_context(self, context) -> None:
        data = np.load(context.artifacts["weights"])
        self.weight = data["weight"].astype(np.float32)  # D x C
        self.bias = data["bias"].astype(np.float32)  # D

    def predict(self, context, model_input, params=None):
        s2 = np.asarray(model_input["s2"], dtype=np.float32)  # B x T x C x H x W
        last = np.nan_to_num(s2[:, -1])  # B x C x H x W
        out = np.einsum("dc,bchw->bdhw", self.weight, last) + self.bias[None, :, None, None]
        return np.tanh(out).astype(np.float32)


def write_weights(path: Path, seed: int, dim: int = 8, bands: int = 10) -> Path:
    """Save a random projection (``weight`` D x C, ``bias`` D) to ``path`` (.npz)."""
    rng = np.random.default_rng(seed)
    np.savez(
        path,
        weight=rng.normal(size=(dim, bands)).astype(np.float32),
        bias=rng.normal(size=dim).astype(np.float32),
    )
    return path


def example_input(batch: int = 1, dates: int = 2, size: int = 8) -> dict[str, np.ndarray]:
    """An input example of the pyfunc contract (S2 reflectance and days of year)."""
    rng = np.random.default_rng(0)
    return {
        "s2": rng.uniform(0, 0.5, size=(batch, dates, 10, size, size)).astype(np.float32),
        "s2_doy": np.tile(np.arange(1, dates + 1, dtype=np.int64) * 30, (batch, 1)),
    }
