"""Spatially coherent random fields for synthetic scenes (terrain, clouds, textures).

All fields are made by interpolating a coarse grid of Gaussian values (value noise) with two
small matrix products, so a 2048 x 2048 field costs a few tens of milliseconds.
"""

from __future__ import annotations

import numpy as np


def _interp_matrix(n_out: int, n_in: int, cell: float) -> np.ndarray:
    """Linear interpolation weights ``n_out x n_in`` from a grid with ``cell`` output px spacing."""
    pos = (np.arange(n_out, dtype=np.float64) + 0.5) / cell
    i0 = np.clip(np.floor(pos).astype(np.int64), 0, n_in - 2)
    w1 = np.clip(pos - i0, 0.0, 1.0)
    # smoothstep gives C1-continuous fields (no visible grid creases)
    w1 = w1 * w1 * (3.0 - 2.0 * w1)
    m = np.zeros((n_out, n_in), dtype=np.float32)
    rows = np.arange(n_out)
    m[rows, i0] = 1.0 - w1
    m[rows, i0 + 1] = w1
    return m


def value_noise(rng: np.random.Generator, shape: tuple[int, int], cell_px: float) -> np.ndarray:
    """A smooth random field of zero mean and unit standard deviation.

    Args:
        rng: random generator (consumed deterministically).
        shape: output ``(height, width)`` in pixels.
        cell_px: feature size in pixels (distance between independent values).

    Returns:
        float32 array of ``shape``.
    """
    h, w = shape
    cell = max(float(cell_px), 1.0)
    gh, gw = int(np.ceil(h / cell)) + 2, int(np.ceil(w / cell)) + 2
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    field = _interp_matrix(h, gh, cell) @ grid @ _interp_matrix(w, gw, cell).T
    field -= field.mean()
    std = field.std()
    return field / std if std > 0 else field


def fractal_noise(
    rng: np.random.Generator, shape: tuple[int, int], cell_px: float, octaves: int = 3
) -> np.ndarray:
    """Sum of value-noise octaves (each half the size, half the weight), unit std."""
    out = np.zeros(shape, dtype=np.float32)
    for k in range(octaves):
        out += 0.5**k * value_noise(rng, shape, cell_px / 2**k)
    return out / out.std()


def cloud_opacity(
    rng: np.random.Generator, shape: tuple[int, int], cover: float, cell_px: float
) -> np.ndarray:
    """Cloud opacity in [0, 1]: coherent blobs covering about ``cover`` of the scene.

    The thick cores are opaque (1), edges thin out over a band of the field's values, like
    real cumulus with semi-transparent borders.
    """
    field = fractal_noise(rng, shape, cell_px, octaves=3)
    thr = float(np.quantile(field, 1.0 - cover))
    return np.clip((field - thr) / 0.6 + 0.35, 0.0, 1.0) * (field > thr - 0.2)


def swath_edge(rng: np.random.Generator, shape: tuple[int, int], fraction: float) -> np.ndarray:
    """Boolean mask of a no-data wedge beyond a slanted straight swath border (True = no data)."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = np.deg2rad(rng.uniform(-20, 20))
    side = rng.choice([-1.0, 1.0])
    u = side * (xx * np.cos(angle) + yy * np.sin(angle))
    return u > np.quantile(u, 1.0 - fraction)
