"""The pyfunc contract of a SkySense encoder: named arrays of the modalities in, embeddings out.

Inputs (physical units, as the readers give them; batch ``B``, dates ``T``, 10 m grid ``H x W``):

| name | shape | dtype | what |
|---|---|---|---|
| ``s2`` | ``B x T x 10 x H x W`` | float32 | Sentinel-2 reflectance, NaN = nodata |
| ``s2_doy`` | ``B x T`` | int64 | day of year of each date (1..366) |
| ``s1`` | ``B x T x 2 x H x W`` | float32 | Sentinel-1 VV, VH backscatter, dB |
| ``s1_doy`` | ``B x T`` | int64 | |
| ``hr`` | ``B x C x 32H x 32W`` | float32 | very-high-resolution optical, stored values |
| ``dem`` | ``B x 1 x H x W`` | float32 | elevation, metres |
| ``lat``, ``lon`` | ``B`` | float64 | centre of each chip, degrees WGS84 (geo-context region) |

A modality the caller does not have is sent with zero dates (``T = 0``) or a zero-size grid.
Output: ``B x D x H x W`` float32 per-pixel embeddings. Parameter ``device``: ``auto`` (CUDA when
available), ``cpu`` or ``cuda``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# name -> (shape with -1 for free dimensions, dtype)
MODALITY_SPECS: dict[str, tuple[tuple[int, ...], str]] = {
    "s2": ((-1, -1, 10, -1, -1), "float32"),
    "s2_doy": ((-1, -1), "int64"),
    "s1": ((-1, -1, 2, -1, -1), "float32"),
    "s1_doy": ((-1, -1), "int64"),
    "hr": ((-1, -1, -1, -1), "float32"),
    "dem": ((-1, 1, -1, -1), "float32"),
    "lat": ((-1,), "float64"),
    "lon": ((-1,), "float64"),
}


def embedding_signature(inputs: list[str], embed_dim: int) -> Any:
    """MLflow ``ModelSignature`` for the named inputs and ``B x embed_dim x H x W`` output.

    Args:
        inputs: which of :data:`MODALITY_SPECS` the model takes (e.g. ``["s2", "s2_doy"]``).
        embed_dim: embedding channels ``D``.
    """
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ParamSchema, ParamSpec, Schema, TensorSpec

    specs = []
    for name in inputs:
        shape, dtype = MODALITY_SPECS[name]
        specs.append(TensorSpec(np.dtype(dtype), shape, name))
    out = Schema([TensorSpec(np.dtype("float32"), (-1, embed_dim, -1, -1), "embedding")])
    params = ParamSchema([ParamSpec("device", "string", "auto")])
    return ModelSignature(inputs=Schema(specs), outputs=out, params=params)


def empty_modality(name: str, batch: int, channels: int | None = None) -> np.ndarray:
    """A zero-date (or zero-size) array meaning "this modality is missing" for ``name``."""
    shape, dtype = MODALITY_SPECS[name]
    dims = [batch] + [0] * (len(shape) - 1)
    if name in ("s2", "s1"):
        dims[2] = shape[2]
    elif name == "hr" and channels is not None:
        dims[1] = channels
    elif name == "dem":
        dims[1] = 1
    elif name in ("lat", "lon"):
        return np.zeros(batch, dtype=dtype)
    return np.zeros(dims, dtype=dtype)
