"""Sliding windows over a scene and the weights that blend their overlaps.

Windows of ``size`` pixels step by ``size - overlap``; the last one of a row or column is moved
back to end at the scene edge (no padding unless the scene is smaller than a window). Every
pixel's value is the weighted mean of the windows covering it, with weights that ramp linearly
over the ``overlap`` band at a window's edges (never zero, so a pixel covered by a single window
keeps its value and seams vanish).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WindowGrid:
    """Window origins along rows and columns of a ``height x width`` scene (pixels)."""

    height: int
    width: int
    size: int
    overlap: int

    @property
    def stride(self) -> int:
        """Pixels between consecutive window origins."""
        return max(1, self.size - self.overlap)

    def starts(self, length: int) -> list[int]:
        """Window origins along one axis of ``length`` pixels."""
        if length <= self.size:
            return [0]
        out = list(range(0, length - self.size + 1, self.stride))
        if out[-1] + self.size < length:
            out.append(length - self.size)
        return out

    @property
    def row_starts(self) -> list[int]:
        """Origins along rows."""
        return self.starts(self.height)

    @property
    def col_starts(self) -> list[int]:
        """Origins along columns."""
        return self.starts(self.width)

    def __len__(self) -> int:
        return len(self.row_starts) * len(self.col_starts)

    def covering(self, r0: int, r1: int, c0: int, c1: int) -> list[tuple[int, int]]:
        """Origins ``(row, col)`` of the windows that intersect rows ``[r0, r1)``, cols ``[c0,
        c1)``.
        """
        rows = [r for r in self.row_starts if r < r1 and r + self.size > r0]
        cols = [c for c in self.col_starts if c < c1 and c + self.size > c0]
        return [(r, c) for r in rows for c in cols]


def blend_weights(size: int, overlap: int) -> np.ndarray:
    """``size x size`` float32 weights: 1 in the core, a linear ramp over ``overlap`` at the
    edges.
    """
    if overlap <= 0:
        return np.ones((size, size), dtype=np.float32)
    idx = np.arange(size, dtype=np.float32)
    ramp = np.minimum(1.0, np.minimum(idx + 0.5, size - idx - 0.5) / float(overlap))
    ramp = np.maximum(ramp, 1e-3)
    return np.outer(ramp, ramp).astype(np.float32)


def output_blocks(height: int, width: int, block: int) -> list[tuple[int, int, int, int]]:
    """Output blocks ``(r0, r1, c0, c1)`` aligned to ``block`` (the GeoTIFF tile size),
    row-major.
    """
    return [
        (r, min(r + block, height), c, min(c + block, width))
        for r in range(0, height, block)
        for c in range(0, width, block)
    ]
