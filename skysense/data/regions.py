"""Geo regions: a near-equal-area grid over the globe, indexed from latitude and longitude."""

from __future__ import annotations

import math

import numpy as np


def region_grid_side(n_regions: int) -> int:
    """Side of the square region grid; ``n_regions`` must be a perfect square (e.g. 4096 = 64^2)."""
    side = int(round(math.sqrt(n_regions)))
    if side * side != n_regions or side < 1:
        raise ValueError(
            f"n_regions must be a perfect square (e.g. 256, 1024, 4096), got {n_regions}"
        )
    return side


def region_id(lat: float | np.ndarray, lon: float | np.ndarray, n_regions: int) -> np.ndarray | int:
    """Region index of a position in degrees (WGS84).

    The globe is cut into ``sqrt(n)`` bands of equal area (equal steps of sin(latitude)) and
    ``sqrt(n)`` equal longitude sectors, so each region covers the same area.
    """
    side = region_grid_side(n_regions)
    lat_a = np.clip(np.asarray(lat, dtype=np.float64), -90.0, 90.0)
    lon_a = (np.asarray(lon, dtype=np.float64) + 180.0) % 360.0
    row = np.clip(((np.sin(np.radians(lat_a)) + 1.0) / 2.0 * side).astype(np.int64), 0, side - 1)
    col = np.clip((lon_a / 360.0 * side).astype(np.int64), 0, side - 1)
    out = row * side + col
    return int(out) if out.ndim == 0 else out
