"""Very-high-resolution (0.3125 m) RGBN rendering of a land-cover layout, with per-class texture.

The HR grid is 32 times finer than the 10 m Sentinel grid. Each parcel's mean colour comes from
the same reflectance model as Sentinel-2 at the HR acquisition date; on top of it each class has
the texture an aerial image shows: crop rows and tramlines, tree crowns with shadows (forest
irregular, orchard on a regular grid), buildings with roofs, yards, roads and shadows (dense or
sparse), mowing stripes on meadows, ripples on water, open-water patches in wetlands.
"""

from __future__ import annotations

import numpy as np

from skysense.core.modalities import HR_RATIO
from skysense.data.synthetic.landcover import CLASS_NAMES, ENDMEMBER_SPECTRA, HR_FROM_S2
from skysense.data.synthetic.noise import value_noise

HR_GAIN = np.array([620.0, 620.0, 620.0, 420.0], dtype=np.float32)  # reflectance -> uint8 DN
_LEAF = ENDMEMBER_SPECTRA[0, list(HR_FROM_S2)]
_WATER = ENDMEMBER_SPECTRA[4, list(HR_FROM_S2)]
_ROOFS = np.array(
    [
        [0.28, 0.14, 0.10, 0.30],
        [0.20, 0.20, 0.21, 0.22],
        [0.09, 0.09, 0.10, 0.11],
        [0.34, 0.34, 0.35, 0.36],
    ],
    dtype=np.float32,
)
_ASPHALT = np.array([0.07, 0.07, 0.075, 0.09], dtype=np.float32)
_PAVING = np.array([0.15, 0.15, 0.15, 0.17], dtype=np.float32)
_C = {name: i for i, name in enumerate(CLASS_NAMES)}


def _crowns(
    rng: np.random.Generator,
    yy: np.ndarray,
    xx: np.ndarray,
    cell: int,
    r_range: tuple[float, float],
    fill: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Crown brightness profile (0 outside) and shadow mask of one tree per jittered grid cell."""
    gy, gx = yy // cell, xx // cell
    ny, nx = int(gy.max()) + 1, int(gx.max()) + 1
    rad = rng.uniform(*r_range, size=(ny, nx)).astype(np.float32)
    rad *= rng.random((ny, nx)) < fill
    cy = rng.uniform(0, cell, size=(ny, nx)).astype(np.float32)
    cx = rng.uniform(0, cell, size=(ny, nx)).astype(np.float32)
    ly, lx = (yy % cell).astype(np.float32), (xx % cell).astype(np.float32)
    r2 = rad[gy, gx] ** 2
    dy, dx = ly - cy[gy, gx], lx - cx[gy, gx]
    d2 = dy**2 + dx**2
    crown = np.sqrt(np.clip(1.0 - d2 / np.maximum(r2, 1e-3), 0.0, 1.0)) * (r2 > 0)
    # sun from the south-east: shadows fall to the north-west (up, left)
    shadow = ((dy + 4) ** 2 + (dx + 2) ** 2 < r2) & (crown == 0)
    return crown, shadow


def _orchard(yy: np.ndarray, xx: np.ndarray, turn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crowns on a regular 6 m x 4 m planting grid (rows along x, or along y where ``turn``)."""
    a = np.where(turn, xx, yy).astype(np.float32)
    b = np.where(turn, yy, xx).astype(np.float32)
    da, db = a % 19 - 9.5, b % 13 - 6.5
    d2 = da**2 + db**2
    crown = np.sqrt(np.clip(1.0 - d2 / 4.6**2, 0.0, 1.0))
    shadow = ((da + 3.5) ** 2 + (db + 2) ** 2 < 4.6**2) & (crown == 0)
    return crown, shadow


def _texture(
    rng: np.random.Generator,
    c: int,
    rgbn: np.ndarray,
    soil: np.ndarray,
    yy: np.ndarray,
    xx: np.ndarray,
    turn: bool,
) -> np.ndarray:
    """Textured reflectance ``4 x h x w`` of one parcel of class ``c`` and mean colour ``rgbn``."""
    h, w = yy.shape[0], xx.shape[1]
    img = np.broadcast_to(rgbn[:, None, None], (4, h, w)).astype(np.float32)
    along = (xx if turn else yy) + 0 * yy
    across = (yy if turn else xx) + 0 * xx
    if c in (_C["winter_cereal"], _C["summer_maize"], _C["spring_cereal"]):
        # rows (maize 0.75 m, cereal drill rows blurred to 1.25 m), tramlines every 18 m
        period = 2.4 if c == _C["summer_maize"] else 4.0
        rows = np.sin(2 * np.pi * along.astype(np.float32) / period)
        ndvi = (rgbn[3] - rgbn[0]) / max(rgbn[3] + rgbn[0], 1e-6)
        cover = float(np.clip((ndvi - 0.15) / 0.65, 0.0, 1.0))
        img = (
            img + (0.35 * 4.0 * cover * (1.0 - cover)) * rows[None] * (_LEAF - soil)[:, None, None]
        )
        if cover > 0.15:
            img = np.where((across % 58 < 2)[None], soil[:, None, None], img)
    elif c == _C["forest"]:
        crown, shadow = _crowns(rng, yy, xx, 12, (4.0, 6.5), 0.92)
        img = img * np.where(shadow, 0.4, 0.45 + 0.75 * crown)[None]
    elif c == _C["orchard"]:
        ocrown, oshadow = _orchard(yy, xx, np.asarray(turn))
        tree = _LEAF[:, None, None] * (0.7 + 0.5 * ocrown)[None]
        img = np.where((ocrown > 0)[None], tree, img * np.where(oshadow, 0.5, 1.0)[None])
    elif c == _C["grassland"]:
        stripes = np.sign(np.sin(2 * np.pi * across / 20.0)).astype(np.float32)
        img = img * (1.0 + 0.035 * stripes + 0.05 * value_noise(rng, (h, w), 48.0))[None]
    elif c in (_C["urban_dense"], _C["urban_sparse"]):
        # 12.5 m lots, a road every third lot, one building per lot with its shadow
        lot, dense = 40, c == _C["urban_dense"]
        gy, gx = yy // lot - yy[0, 0] // lot, xx // lot - xx[0, 0] // lot
        ny, nx = int(gy.max()) + 1, int(gx.max()) + 1
        frac = rng.uniform(0.34, 0.46, (ny, nx)) if dense else rng.uniform(0.16, 0.27, (ny, nx))
        ly, lx = (yy % lot).astype(np.float32) - lot / 2, (xx % lot).astype(np.float32) - lot / 2
        hy = (frac * lot).astype(np.float32)[gy, gx]
        hx = (rng.uniform(0.7, 1.0, (ny, nx)) * frac * lot).astype(np.float32)[gy, gx]
        building = (np.abs(ly) < hy) & (np.abs(lx) < hx)
        bshadow = (np.abs(ly + 5) < hy) & (np.abs(lx + 3) < hx) & ~building
        roof = _ROOFS.T[:, rng.integers(0, len(_ROOFS), (ny, nx))[gy, gx]]
        if dense:
            yard = np.broadcast_to(_PAVING[:, None, None], img.shape)
        else:
            crown, _ = _crowns(rng, yy, xx, 12, (4.0, 6.5), 0.5)
            yard = np.where(
                (crown > 0)[None], _LEAF[:, None, None] * (0.6 + 0.5 * crown)[None], img
            )
        town = np.where(building[None], roof, yard * np.where(bshadow, 0.45, 1.0)[None])
        road = ((yy % (3 * lot)) < 14) | ((xx % (3 * lot)) < 14)
        img = np.where(road[None], _ASPHALT[:, None, None], town)
    elif c == _C["water"]:
        ripple = np.sin(2 * np.pi * (0.8 * xx + 0.6 * yy) / 9.0).astype(np.float32)
        img = img * (1.0 + 0.06 * ripple)[None]
    elif c == _C["wetland"]:
        pools = value_noise(rng, (h, w), 28.0) > 0.75
        reeds = img * (1.0 + 0.08 * value_noise(rng, (h, w), 3.0))[None]
        img = np.where(pools[None], _WATER[:, None, None] * 1.3, reeds)
    return img


def render_hr(
    rng: np.random.Generator,
    parcels: np.ndarray,
    parcel_class: np.ndarray,
    parcel_rgbn: np.ndarray,
    parcel_soil: np.ndarray,
    shade: np.ndarray,
    colour_balance: np.ndarray | None = None,
) -> np.ndarray:
    """Render the HR image of a scene whose parcels are rectangles.

    Args:
        rng: random generator.
        parcels: parcel id per 10 m pixel, ``H x W`` (each parcel a rectangle).
        parcel_class: class id per parcel ``P``.
        parcel_rgbn: surface reflectance R, G, B, N of each parcel at the HR date, ``P x 4``.
        parcel_soil: bare-soil reflectance R, G, B, N per parcel, ``P x 4``.
        shade: topographic illumination factor per 10 m pixel, ``H x W``.
        colour_balance: factor per band (R, G, B, N) of the camera and flight (default 1).

    Returns:
        ``4 x 32H x 32W`` uint8 digital numbers (R, G, B, N).
    """
    r = HR_RATIO
    hgt, wid = parcels.shape
    img = np.empty((4, hgt * r, wid * r), dtype=np.float32)
    turns = rng.random(parcel_class.size) < 0.5
    for p in range(parcel_class.size):
        rows = np.flatnonzero((parcels == p).any(axis=1))
        cols = np.flatnonzero((parcels == p).any(axis=0))
        if rows.size == 0:
            continue
        y0, y1, x0, x1 = rows[0] * r, (rows[-1] + 1) * r, cols[0] * r, (cols[-1] + 1) * r
        yy = np.arange(y0, y1, dtype=np.int32)[:, None]
        xx = np.arange(x0, x1, dtype=np.int32)[None, :]
        img[:, y0:y1, x0:x1] = _texture(
            rng,
            int(parcel_class[p]),
            parcel_rgbn[p].astype(np.float32),
            parcel_soil[p].astype(np.float32),
            yy,
            xx,
            bool(turns[p]),
        )
    img *= np.repeat(np.repeat(shade.astype(np.float32), r, axis=0), r, axis=1)[None]
    gain = HR_GAIN if colour_balance is None else HR_GAIN * colour_balance.astype(np.float32)
    img *= gain[:, None, None]
    img += rng.standard_normal(img.shape, dtype=np.float32) * 1.2  # sensor noise, DN
    np.rint(img, out=img)
    np.clip(img, 1, 255, out=img)
    return img.astype(np.uint8)
