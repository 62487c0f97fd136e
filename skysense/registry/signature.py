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

from skysense.core.contract import MODALITY_SPECS


def embedding_signature(inputs: list[str], embed_dim: int, output: str = "embedding") -> Any:
    """MLflow ``ModelSignature`` for the named inputs and ``B x embed_dim x H x W`` output.

    Args:
        inputs: which of :data:`MODALITY_SPECS` the model takes (e.g. ``["s2", "s2_doy"]``).
        embed_dim: output channels ``D`` (a task model's classes for its probabilities).
        output: the output's name (``embedding``, or ``probabilities`` for a task model).
    """
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec

    specs: list[ColSpec | TensorSpec] = []
    for name in inputs:
        shape, dtype = MODALITY_SPECS[name]
        specs.append(TensorSpec(np.dtype(dtype), shape, name))
    out_specs: list[ColSpec | TensorSpec] = [
        TensorSpec(np.dtype("float32"), (-1, embed_dim, -1, -1), output)
    ]
    out = Schema(out_specs)
    params = ParamSchema([ParamSpec("device", "string", "auto")])
    return ModelSignature(inputs=Schema(specs), outputs=out, params=params)
