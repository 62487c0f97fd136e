"""Warper-free reads for sources whose pixel grid is aligned with the target grid.

Most inputs are already on the location's grid or an integer multiple of it: Sentinel-2 10 m bands
and Sentinel-1 on the 10 m UTM grid, 20 m / 60 m Sentinel-2 bands (2x, 6x), HR at 1.25 m (4x of
the 0.3125 m HR grid) or exactly at 0.3125 m. For those, GDAL's warper (a per-pixel coordinate
transform) is not needed: the window is read at native resolution with a plain windowed read and,
when the source is coarser, upsampled in numpy. Each target pixel centre maps to the source pixel
that contains it (nearest), or is interpolated between the four source pixel centres around it
(bilinear, the warper's pixel-centre convention), so values equal what the warper produces in the
interior. Validity is read in the same pass (nodata value, alpha band or the file's mask at native
resolution) and repeated to the target pixels (each target pixel is valid when the source pixel
containing its centre is valid); invalid source pixels do not leak into bilinear neighbours
(normalised interpolation).
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


def grid_alignment(ds: rasterio.DatasetReader, grid: Grid, tol: float = ALIGN_TOLERANCE_PX) -> GridAlignment | None:
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
        ks.append(int(round(k)))
    offs = []
    for delta in ((grid.x0 - t.c) / grid.res, (t.f - grid.y0) / grid.res):
        if abs(delta - round(delta)) > tol:
            return None
        offs.append(int(round(delta)))
    return GridAlignment(ks[0], ks[1], offs[0], offs[1])


def _span(t0: int, n: int, k: int, size: int, margin: int) -> tuple[int, int]:
    """Source index range ``[s0, s1)`` (clipped to ``[0, size)``) covering target ``[t0, t0+n)``."""
    s0 = math.floor(t0 / k) - margin
    s1 = math.ceil((t0 + n) / k) + margin
    return max(s0, 0), min(s1, size)


def _nearest_index(t0: int, n: int, k: int, s0: int) -> np.ndarray:
    """Index into a native read starting at source ``s0`` of the source pixel under each target."""
    return np.floor_divide(np.arange(t0, t0 + n), k) - s0


def _bilinear_axis(a: np.ndarray, axis: int, t0: int, n: int, k: int, s0: int) -> np.ndarray:
    """Linear interpolation along ``axis`` at target pixel centres (edge samples replicated).

    ``a`` (float32) holds source samples ``s0, s0+1, ...`` along ``axis``; the result holds target
    pixels ``t0 .. t0+n-1`` (``k`` target pixels per source pixel). With an integer ratio the
    weights repeat every ``k`` pixels, so each phase is one blend of two shifted views.
    """
    m = a.shape[axis]
    ap = np.concatenate([np.take(a, [0], axis=axis), a, np.take(a, [m - 1], axis=axis)], axis=axis)
    full = np.empty(a.shape[:axis + 1] + (k,) + a.shape[axis + 1:], np.float32)

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
    full = full.reshape(a.shape[:axis] + (m * k,) + a.shape[axis + 1:])
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
    bilinear = resampling != Resampling.nearest and (kx > 1 or ky > 1)
    margin = 1 if bilinear else 0
    sx0, sx1 = _span(c0, w, kx, ds.width, margin)
    sy0, sy1 = _span(r0, h, ky, ds.height, margin)
    dtype = np.dtype(ds.dtypes[indexes[0] - 1])
    if sx0 >= sx1 or sy0 >= sy1:  # window entirely outside the source
        return np.zeros((len(indexes), h, w), dtype), np.zeros((h, w), bool)
    src_win = Window(sx0, sy0, sx1 - sx0, sy1 - sy0)
    bands = indexes + ([alpha] if alpha is not None else [])
    raw = ds.read(bands, window=src_win)
    if alpha is not None:
        raw, valid = raw[:-1], raw[-1] > 0
    elif nodata is not None:
        valid = ~np.isnan(raw).any(axis=0) if np.isnan(nodata) else (raw != raw.dtype.type(nodata)).all(axis=0)
    elif internal_mask:
        valid = ds.read_masks(1, window=src_win) > 0
    else:
        valid = np.ones(raw.shape[1:], bool)
    # target pixels whose centre falls on the source (others stay invalid)
    cols = np.arange(c0, c0 + w)
    rows = np.arange(r0, r0 + h)
    inside_c = (cols >= 0) & (cols < ds.width * kx)
    inside_r = (rows >= 0) & (rows < ds.height * ky)
    ix = np.clip(_nearest_index(c0, w, kx, sx0), 0, raw.shape[2] - 1)
    iy = np.clip(_nearest_index(r0, h, ky, sy0), 0, raw.shape[1] - 1)
    out_valid = valid[np.ix_(iy, ix)] & inside_r[:, None] & inside_c[None, :]
    if not bilinear:
        data = raw[:, iy][:, :, ix]
    else:
        vals = raw.astype(np.float32)
        all_valid = bool(valid.all())
        if not all_valid:
            vals *= valid
        if np.isnan(vals).any():
            vals = np.nan_to_num(vals, nan=0.0)
        up = _bilinear_axis(_bilinear_axis(vals, 1, r0, h, ky, sy0), 2, c0, w, kx, sx0)
        if not all_valid:
            wgt = valid.astype(np.float32)[None]
            wsum = _bilinear_axis(_bilinear_axis(wgt, 1, r0, h, ky, sy0), 2, c0, w, kx, sx0)
            up = np.divide(up, wsum, out=np.zeros_like(up), where=wsum > 0)
        if dtype.kind in "iu":
            up = np.rint(up, out=up if up.flags.writeable and up.base is None else None)
        data = up.astype(dtype)
    if not out_valid.all():
        data = np.where(out_valid[None], data, np.zeros((), dtype))
    return np.ascontiguousarray(data), out_valid
