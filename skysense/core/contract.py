"""The sample and batch contract every layer keeps: keys, shapes and what a missing modality is.

A *sample* is one chip (``skysense.data.dataset.ChipDataset``); a *batch* is samples collated
with a leading batch dimension ``B`` (``skysense.data.dataset.collate_samples``); *model
arrays* are the physical-unit numpy inputs of a served encoder (MLflow pyfunc, ``predict``).
Sentinel grid side ``s`` (10 m pixels), HR side ``HR_RATIO * s``, dates ``T``; details in
``docs/interfaces.md``.
"""

from __future__ import annotations

from typing import TypedDict

import numpy as np

from skysense.core.modalities import SERIES


class _Arrays(TypedDict, total=False):
    """The keys a sample and a batch share (see :class:`Sample` and :class:`Batch`)."""

    lat: object
    lon: object
    region: object
    hr: object
    s2: object
    s2_doy: object
    s2_valid: object
    s1: object
    s1_doy: object
    s1_valid: object
    dem: object
    label: object
    mask: object


class Sample(_Arrays, total=False):
    """One chip, normalised float32 tensors; a modality the chip lacks is a missing key.

    Keys: ``id``; ``lat``, ``lon`` (degrees WGS84); ``region`` (geo-context region id);
    ``hr`` ``C x 32s x 32s``; ``s2`` ``T x 10 x s x s`` with ``s2_doy`` (``T``, day of year
    1..366) and ``s2_valid`` (``T`` bool); ``s1`` ``T x 2 x s x s`` with ``s1_doy``,
    ``s1_valid``; ``dem`` ``1 x s x s``; downstream sets add ``label`` or ``mask``.
    """

    id: str


class Batch(_Arrays, total=False):
    """Collated samples: the same keys with a leading ``B``, series padded to the longest ``T``
    (``*_doy`` 0 and ``*_valid`` False on padding), ``has_<modality>`` (``B`` bool) where a
    modality is missing for some samples, and ``ids`` (list of str).
    """

    ids: list[str]
    has_hr: object
    has_s2: object
    has_s1: object
    has_dem: object


# model-array name -> (shape with -1 for free dimensions, dtype); physical units (see
# skysense.registry.signature for the served model's table)
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


def empty_modality(name: str, batch: int, channels: int | None = None) -> np.ndarray:
    """A zero-date (or zero-size) model array meaning "this modality is missing" for ``name``."""
    shape, dtype = MODALITY_SPECS[name]
    dims = [batch] + [0] * (len(shape) - 1)
    if name in SERIES:
        dims[2] = shape[2]
    elif name == "hr" and channels is not None:
        dims[1] = channels
    elif name == "dem":
        dims[1] = 1
    elif name in ("lat", "lon"):
        return np.zeros(batch, dtype=dtype)
    return np.zeros(dims, dtype=dtype)
