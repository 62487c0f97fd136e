"""The modalities of a SkySense sample and the grid facts that tie them together.

A sample holds up to four modalities, always in this order: very-high-resolution optical
(``hr``), the Sentinel-2 multispectral time series (``s2``), the Sentinel-1 SAR time series
(``s1``) and elevation (``dem``). The HR grid is exactly :data:`HR_RATIO` times finer than the
Sentinel grid (SkySense: a 2048 px HR image over a 64 px Sentinel-2/Sentinel-1 chip), so an HR
pixel is ``SENTINEL_GSD_M / HR_RATIO`` = 0.3125 m.
"""

from __future__ import annotations

from typing import Literal

Modality = Literal["hr", "s2", "s1", "dem"]

MODALITIES: tuple[Modality, ...] = ("hr", "s2", "s1", "dem")
"""Every modality, in sample order."""

SERIES: tuple[Modality, ...] = ("s2", "s1")
"""The modalities that are time series (``T x C x H x W``, with dates and per-date validity)."""

HR_RATIO = 32
"""HR pixels per Sentinel pixel along each axis."""

SENTINEL_GSD_M = 10.0
"""Pixel size of the Sentinel grid every modality is read onto, metres."""

HR_GSD_M = SENTINEL_GSD_M / HR_RATIO
"""Pixel size of the HR grid, metres (0.3125)."""
