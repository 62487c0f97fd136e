"""Warper-free reads for sources whose pixel grid is aligned with the target grid.

Most inputs are already on the location's grid or an integer multiple of it: Sentinel-2 10 m bands
and Sentinel-1 on the 10 m UTM grid, 20 m / 60 m Sentinel-2 bands (2x, 6x), HR at 1.25 m (4x of
the 0.3125 m HR grid) or exactly at 0.3125 m. For those, GDAL's warper (a per-pixel coordinate
transform) is not needed: the window is read at native resolution with a plain windowed read.
Nearest: each target pixel takes the source pixel containing its centre (a slice when the
resolution is the same, ``numpy.repeat`` for a ratio). Bilinear upsampling: GDAL's resampled read
(``out_shape``) of the window plus a one-pixel margin, whose output pixel centres are the target's,
so values match the warper's within rounding; when the window holds invalid pixels (whose nodata
value GDAL may not know, e.g. the sensor's default), a normalised interpolation in numpy instead,
so invalid pixels never leak into their neighbours.
Validity comes from the same native read (nodata value or alpha band; the file's mask when it has
neither) and is repeated to the target pixels: a target pixel is valid when the source pixel
containing its centre is valid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

from skysense.data.grid import Grid

ALIGN_TOLERANCE_PX = 1e-4


@dataclass(frozen=True)
class GridAlignment:
    """How a source pixel grid sits under a target grid (same CRS, north-up).

    Attributes:
        kx, ky: target pixels per source pixel along x and y (1: same resolution).
        col_off, row_off: position of the target grid's origin from the source origin, in
            target pixels (may be negative when the target starts before the source).
    """

    kx: int
    ky: int
    col_off: int
    row_off: int


def grid_alignment(
    ds: rasterio.DatasetReader, grid: Grid, tol: float = ALIGN_TOLERANCE_PX
) -> GridAlignment | None:
    """The alignment of ``ds`` under ``grid``, or None when a warp is needed.

    Aligned means: same CRS, a north-up source transform, source pixels an integer number of
    target pixels wide and high, and the target origin on a target-pixel boundary of the source.
    """
    if ds.crs is None or grid.crs is None or ds.crs != grid.crs:
        return None
    t = ds.transform
    if t.b != 0.0 or t.d != 0.0 or t.a <= 0.0 or t.e >= 0.0:
        return None
    ks = []
    for src_res in (t.a, -t.e):
        k = src_res / grid.res
        if k < 1.0 - tol or abs(k - round(k)) > tol * max(1.0, k):
            return None
        ks.append(round(k))
    offs = []
    for delta in ((grid.x0 - t.c) / grid.res, (t.f - grid.y0) / grid.res):
        if abs(delta - round(delta)) > tol:
            return None
        offs.append(round(delta))
    return GridAlignment(ks[0], ks[1], offs[0], offs[1])


def _span(t0: int, n: int, k: int, size: int, margin: int) -> tuple[int, int]:
    """Source index range ``[s0, s1)`` (clipped to ``[0, size)``) covering target ``[t0, t0+n)``."""
    s0 = math.floor(t0 / k) - margin
    s1 = math.ceil((t0 + n) / k) + margin
    return max(s0, 0), min(s1, size)


def _repeat_axis(a: np.ndarray, axis: int, t0: int, n: int, k: int, s0: int) -> np.ndarray:
    """Nearest along ``axis``: target pixels ``t0 .. t0+n-1`` from samples starting at source
    ``s0``.

    Target pixel ``t`` lies in source pixel ``t // k``; with ``k == 1`` this is a view (no copy).
    """
    a0 = t0 // k - s0
    a1 = -(-(t0 + n) // k) - s0
    part = a[(slice(None),) * axis + (slice(a0, a1),)]
    if k == 1:
        return part
    skip = t0 - (t0 // k) * k
    return np.repeat(part, k, axis=axis)[(slice(None),) * axis + (slice(skip, skip + n),)]


def _bilinear_axis(a: np.ndarray, axis: int, t0: int, n: int, k: int, s0: int) -> np.ndarray:
    """Linear interpolation along ``axis`` at target pixel centres (edge samples replicated).

    ``a`` (float32) holds source samples ``s0, s0+1, ...`` along ``axis``; the result holds target
    pixels ``t0 .. t0+n-1`` (``k`` target pixels per source pixel). With an integer ratio the
    weights repeat every ``k`` pixels, so each phase is one blend of two shifted views.
    """
    m = a.shape[axis]
    ap = np.concatenate([np.take(a, [0], axis=axis), a, np.take(a, [m - 1], axis=axis)], axis=axis)
    full = np.empty(a.shape[: axis + 1] + (k,) + a.shape[axis + 1 :], np.float32)

    def along(arr: np.ndarray, lo: int, hi: int) -> np.ndarray:
        return arr[(slice(None),) * axis + (slice(lo, hi),)]

    for phase in range(k):
        u = (phase + 0.5) / k - 0.5  # offset of the pixel centre from its source pixel centre
        j = 0 if u < 0 else 1  # ap[j + s] is the sample left of target (s, phase)
        f = np.float32(1.0 + u if u < 0 else u)
        lo, hi = along(ap, j, j + m), along(ap, j + 1, j + 1 + m)
        out = full[(slice(None),) * (axis + 1) + (phase,)]
        if f == 0:
            out[...] = lo
            continue
        np.subtract(hi, lo, out=out)
        out *= f
        out += lo
    full = full.reshape(a.shape[:axis] + (m * k,) + a.shape[axis + 1 :])
    start = t0 - s0 * k
    return along(full, start, start + n)


def read_aligned(
    ds: rasterio.DatasetReader,
    indexes: list[int],
    align: GridAlignment,
    window: Window,
    resampling: Resampling,
    nodata: float | None,
    alpha: int | None,
    internal_mask: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Read ``window`` of the target grid from an aligned source, data and validity in one pass.

    Args:
        ds: the open source.
        indexes: 1-based data bands to read.
        align: from :func:`grid_alignment`.
        window: integer pixel window of the target grid.
        resampling: ``nearest`` or ``bilinear`` (any kernel is the identity when ``k == 1``).
        nodata: the source's nodata value (pixels equal to it, or NaN for NaN, are invalid).
        alpha: 1-based alpha band index (0 = invalid), read with the data.
        internal_mask: read the file's per-dataset mask (used when there is no nodata value).

    Returns:
        ``data`` (len(indexes) x H x W, the source dtype; 0 where invalid or outside) and ``valid``
        (H x W bool: inside the source and not masked).
    """
    c0, r0 = int(window.col_off) + align.col_off, int(window.row_off) + align.row_off
    w, h = int(window.width), int(window.height)
    kx, ky = align.kx, align.ky
    dtype = np.dtype(ds.dtypes[indexes[0] - 1])
    # the part of the window whose pixel centres fall on the source; the rest stays invalid
    x0, x1 = max(c0, 0), min(c0 + w, ds.width * kx)
    y0, y1 = max(r0, 0), min(r0 + h, ds.height * ky)
    if x0 >= x1 or y0 >= y1:
        return np.zeros((len(indexes), h, w), dtype), np.zeros((h, w), bool)
    bilinear = resampling != Resampling.nearest and (kx > 1 or ky > 1)
    margin = 1 if bilinear else 0
    sx0, sx1 = _span(x0, x1 - x0, kx, ds.width, margin)
    sy0, sy1 = _span(y0, y1 - y0, ky, ds.height, margin)
    src_win = Window(sx0, sy0, sx1 - sx0, sy1 - sy0)
    raw = ds.read(indexes + ([alpha] if alpha is not None else []), window=src_win)
    if alpha is not None:
        raw, valid = raw[:-1], raw[-1] > 0
    elif nodata is not None:
        valid = (
            ~np.isnan(raw).any(axis=0)
            if np.isnan(nodata)
            else (raw != raw.dtype.type(nodata)).all(axis=0)
        )
    elif internal_mask:
        valid = ds.read_masks(1, window=src_win) > 0
    else:
        valid = np.ones(raw.shape[1:], bool)
    inner_valid = _repeat_axis(
        _repeat_axis(valid, 0, y0, y1 - y0, ky, sy0), 1, x0, x1 - x0, kx, sx0
    )
    if not bilinear:
        inner = _repeat_axis(_repeat_axis(raw, 1, y0, y1 - y0, ky, sy0), 2, x0, x1 - x0, kx, sx0)
    elif valid.all():  # GDAL's resampled read of the same window (block cache hot)
        shape = (len(indexes), (sy1 - sy0) * ky, (sx1 - sx0) * kx)
        up = ds.read(indexes, window=src_win, out_shape=shape, resampling=Resampling.bilinear)
        inner = up[:, y0 - sy0 * ky : y1 - sy0 * ky, x0 - sx0 * kx : x1 - sx0 * kx]
    else:  # invalid pixels (maybe a nodata value GDAL does not know): normalised interpolation
        vals = np.nan_to_num(raw.astype(np.float32) * valid, nan=0.0)
        wgt = valid.astype(np.float32)[None]
        up, wsum = (
            _bilinear_axis(_bilinear_axis(a, 1, y0, y1 - y0, ky, sy0), 2, x0, x1 - x0, kx, sx0)
            for a in (vals, wgt)
        )
        up = np.divide(up, wsum, out=np.zeros_like(up), where=wsum > 0)
        inner = (np.rint(up) if dtype.kind in "iu" else up).astype(dtype)
    if (x0, x1, y0, y1) == (c0, c0 + w, r0, r0 + h):  # window entirely on the source
        data, out_valid = inner, inner_valid
    else:
        data = np.zeros((len(indexes), h, w), dtype)
        out_valid = np.zeros((h, w), bool)
        data[:, y0 - r0 : y1 - r0, x0 - c0 : x1 - c0] = inner
        out_valid[y0 - r0 : y1 - r0, x0 - c0 : x1 - c0] = inner_valid
    if not out_valid.all():
        data = np.where(out_valid[None], data, np.zeros((), dtype))
    return data, np.ascontiguousarray(out_valid)
