"""Synthetic multi-modal scenes: places, land-cover layout, and every sensor's arrays.

A :class:`Scene` holds, for one place on the 10 m grid of its UTM zone, a parcel layout with a
land-cover class per parcel, a Sentinel-2 and a Sentinel-1 time series, one HR image 32 times
finer, and a DEM, all as in-memory arrays in their stored units.
:mod:`skysense.data.synthetic.sample`
writes scenes as GeoTIFFs. Nuisances that real data has are part of the model
(:mod:`skysense.data.synthetic.nuisance`, scaled by ``data.sample.nuisance``): per place soil
colour, vegetation spectra, roof materials, varieties and calendars, HR colour balance, SAR
calibration, the sensor's PSF (mixed pixels); per date gain per band, haze of a random aerosol,
noise and misregistration; sowing dates moved by +-2 weeks, seasons later with altitude and
latitude, soil moisture and orbit offsets in SAR, clouds with a mask, swath borders without data,
speckle.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
from affine import Affine
from rasterio.warp import transform as warp_transform

from skysense.core.modalities import HR_RATIO, SENTINEL_GSD_M
from skysense.core.sensors import SENSORS
from skysense.data.synthetic import landcover as lc
from skysense.data.synthetic.hr_texture import render_hr
from skysense.data.synthetic.noise import cloud_opacity, fractal_noise, swath_edge, value_noise
from skysense.data.synthetic.nuisance import AcquisitionLook, PlaceLook, resample_series

S2_NODATA = SENSORS["sentinel2"].nodata  # stored DN 0
S1_NODATA = SENSORS["sentinel1"].nodata  # -99 dB
DEM_NODATA = -9999.0  # declared in the sample's DEM files
S1_LOOKS = 4.4  # equivalent number of looks of Sentinel-1 IW GRD
_CLOUD_SPECTRUM = np.array(
    [0.46, 0.45, 0.44, 0.44, 0.44, 0.44, 0.45, 0.45, 0.36, 0.26], dtype=np.float32
)


@dataclass(frozen=True)
class Site:
    """A place the users map: name, centre (degrees WGS84), altitude (m), relief (m), land cover.

    ``mix`` weights the classes (by name) of the place's landscape blocks.
    """

    name: str
    lat: float
    lon: float
    altitude_m: float
    relief_m: float
    mix: dict[str, float]

    @property
    def epsg(self) -> int:
        """EPSG code of the UTM zone holding the site (northern hemisphere)."""
        return utm_epsg(self.lat, self.lon)

    @property
    def climate_shift_days(self) -> float:
        """Days by which seasons come later than at 45 N, 100 m: 3 d / 100 m, 3 d / degree N."""
        return 3.0 * (self.altitude_m - 100.0) / 100.0 + 3.0 * (self.lat - 45.0)


PRETRAIN_SITES: tuple[Site, ...] = (
    Site(
        "ch-zurich-plateau",
        47.38,
        8.62,
        480,
        60,
        {
            "grassland": 3,
            "forest": 2,
            "winter_cereal": 1.5,
            "summer_maize": 1,
            "urban_sparse": 1.5,
            "urban_dense": 0.7,
            "orchard": 1,
            "water": 0.5,
            "wetland": 0.3,
            "spring_cereal": 1,
        },
    ),
    Site(
        "ch-seeland",
        47.02,
        7.15,
        435,
        15,
        {
            "grassland": 2,
            "summer_maize": 1.5,
            "winter_cereal": 2,
            "wetland": 1.5,
            "water": 1,
            "forest": 1,
            "urban_sparse": 1,
            "orchard": 0.5,
            "urban_dense": 0.3,
            "spring_cereal": 1.5,
        },
    ),
    Site(
        "fr-beauce",
        48.32,
        1.62,
        140,
        10,
        {
            "winter_cereal": 4,
            "summer_maize": 2,
            "grassland": 1,
            "urban_sparse": 0.7,
            "forest": 0.7,
            "orchard": 0.3,
            "water": 0.2,
            "wetland": 0.2,
            "urban_dense": 0.3,
            "spring_cereal": 2,
        },
    ),
    Site(
        "fr-bretagne",
        48.10,
        -2.75,
        110,
        35,
        {
            "grassland": 3,
            "summer_maize": 2.5,
            "winter_cereal": 1.5,
            "forest": 1,
            "orchard": 0.7,
            "urban_sparse": 1,
            "water": 0.4,
            "wetland": 0.6,
            "urban_dense": 0.3,
            "spring_cereal": 1,
        },
    ),
    Site(
        "it-po-valley",
        45.12,
        9.95,
        60,
        8,
        {
            "summer_maize": 3.5,
            "winter_cereal": 2,
            "wetland": 1.2,
            "grassland": 1,
            "orchard": 1,
            "urban_sparse": 1,
            "urban_dense": 0.6,
            "water": 0.6,
            "forest": 0.4,
            "spring_cereal": 1,
        },
    ),
    Site(
        "it-puglia",
        41.05,
        16.55,
        180,
        40,
        {
            "orchard": 3,
            "winter_cereal": 3,
            "grassland": 1,
            "urban_sparse": 1,
            "urban_dense": 0.7,
            "forest": 0.5,
            "summer_maize": 0.4,
            "water": 0.3,
            "wetland": 0.2,
            "spring_cereal": 1,
        },
    ),
)
HELDOUT_SITES: tuple[Site, ...] = (
    Site("fr-camargue", 43.58, 4.52, 3, 4, {}),
    Site("it-veneto", 45.65, 12.25, 25, 12, {}),
)


def utm_epsg(lat: float, lon: float) -> int:
    """EPSG code of the WGS84 UTM zone of a position (326zz north, 327zz south)."""
    zone = int(np.floor((lon + 180.0) / 6.0)) % 60 + 1
    return (32600 if lat >= 0 else 32700) + zone


def sites_for(n_pretrain: int, n_heldout: int) -> list[tuple[Site, str]]:
    """The first ``n`` pre-training and held-out sites; extra ones repeat the list 4 km further
    east.
    """

    def take(base: tuple[Site, ...], n: int) -> list[Site]:
        out = []
        for i in range(n):
            s = base[i % len(base)]
            k = i // len(base)
            if k:
                s = Site(
                    f"{s.name}-{k + 1}", s.lat, s.lon + 0.05 * k, s.altitude_m, s.relief_m, s.mix
                )
            out.append(s)
        return out

    return [(s, "pretrain") for s in take(PRETRAIN_SITES, n_pretrain)] + [
        (s, "heldout") for s in take(HELDOUT_SITES, n_heldout)
    ]


@dataclass
class Scene:
    """One synthetic place: georeferencing, layout, and every modality in stored units.

    Attributes:
        s2: ``T x 10 x H x W`` uint16 reflectance x 10000, 0 = no data.
        s2_cloud: ``T x H x W`` uint8, 1 = cloud.
        s1: ``T x 2 x H x W`` float32 sigma0 dB (VV, VH), -99 = no data.
        hr: ``4 x 32H x 32W`` uint8 R, G, B, N.
        dem: ``1 x H x W`` float32 metres.
        labels: ``H x W`` uint8 class ids; parcels: ``H x W`` int32 parcel ids.
    """

    site: Site
    split: str
    epsg: int
    transform: Affine
    labels: np.ndarray
    parcels: np.ndarray
    s2: np.ndarray
    s2_cloud: np.ndarray
    s2_dates: list[dt.date]
    s1: np.ndarray
    s1_dates: list[dt.date]
    hr: np.ndarray
    hr_date: dt.date
    dem: np.ndarray
    meta: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        """Location id in the catalog."""
        return self.site.name

    @property
    def hr_transform(self) -> Affine:
        """Affine transform of the HR grid: same origin, pixels 32 times smaller."""
        return self.transform @ Affine.scale(1.0 / HR_RATIO)


def layout(
    rng: np.random.Generator, size: int, block: int, block_classes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Parcel map of a scene made of ``block`` x ``block`` landscape units.

    Each block is cut into 1-4 rectangular fields; the largest takes the block's dominant class
    and the others keep it with probability 0.7 or take another class, so a block stays at
    least about 55 % its dominant class.

    Returns:
        ``(parcels, parcel_class)``: ``size x size`` int32 parcel ids and class id per parcel.
    """
    parcels = np.zeros((size, size), dtype=np.int32)
    classes: list[int] = []
    nb = int(np.ceil(size / block))
    for by in range(nb):
        for bx in range(nb):
            y0, x0 = by * block, bx * block
            y1, x1 = min(y0 + block, size), min(x0 + block, size)
            rects = [(y0, y1, x0, x1)]
            for _ in range(int(rng.integers(0, 3))):
                rects.sort(key=lambda r: (r[1] - r[0]) * (r[3] - r[2]))
                ry0, ry1, rx0, rx1 = rects.pop()
                if ry1 - ry0 >= rx1 - rx0 and ry1 - ry0 >= 8:
                    cut = int(rng.integers(ry0 + 3, ry1 - 3))
                    rects += [(ry0, cut, rx0, rx1), (cut, ry1, rx0, rx1)]
                elif rx1 - rx0 >= 8:
                    cut = int(rng.integers(rx0 + 3, rx1 - 3))
                    rects += [(ry0, ry1, rx0, cut), (ry0, ry1, cut, rx1)]
                else:
                    rects.append((ry0, ry1, rx0, rx1))
                    break
            rects.sort(key=lambda r: -(r[1] - r[0]) * (r[3] - r[2]))
            dominant = int(block_classes[by * nb + bx])
            for k, (ry0, ry1, rx0, rx1) in enumerate(rects):
                c = dominant
                if k > 0 and rng.random() < 0.3:
                    c = int(rng.integers(0, lc.N_CLASSES))
                parcels[ry0:ry1, rx0:rx1] = len(classes)
                classes.append(c)
    return parcels, np.asarray(classes, dtype=np.int64)


def block_classes(
    rng: np.random.Generator, site: Site, n_blocks: int, balanced: bool
) -> np.ndarray:
    """Dominant class of each block: every class in turn (``balanced``) or drawn from the site mix.

    Balanced scenes repeat a random order of the classes, so when the blocks do not divide evenly
    the classes left with fewer blocks change from place to place (not always the last ones).
    """
    if balanced or not site.mix:
        reps = np.tile(rng.permutation(lc.N_CLASSES), int(np.ceil(n_blocks / lc.N_CLASSES)))
        return rng.permutation(reps[:n_blocks])
    w = np.array([site.mix.get(n, 0.0) for n in lc.CLASS_NAMES], dtype=np.float64)
    return rng.choice(lc.N_CLASSES, size=n_blocks, p=w / w.sum())


def acquisition_days(rng: np.random.Generator, n: int, offset: float) -> np.ndarray:
    """``n`` distinct days of year spread over the year, sorted.

    The schedule of each place moves by up to +-25 days and each date by up to +-15 days (orbits,
    clouds), so the i-th date of two places is not the same season: models must use the dates.
    """
    base = 12 + offset + rng.uniform(-25, 25) + (np.arange(n) + 0.5) * 340.0 / n
    days = np.clip(np.rint(base + rng.uniform(-15, 15, n)), 1, 365).astype(np.int64)
    return np.unique(days)


def _dates(year: int, days: np.ndarray) -> list[dt.date]:
    return [dt.date(year, 1, 1) + dt.timedelta(days=int(d) - 1) for d in days]


def _hillshade(
    dem: np.ndarray, azimuth_deg: float = 150.0, elevation_deg: float = 45.0
) -> np.ndarray:
    """Illumination factor cos(incidence)/sin(sun elevation) of a DEM on the 10 m grid."""
    gy, gx = np.gradient(dem.astype(np.float32), SENTINEL_GSD_M)
    slope = np.arctan(np.hypot(gx, gy))
    aspect = np.arctan2(-gx, gy)
    az, el = np.deg2rad(azimuth_deg), np.deg2rad(elevation_deg)
    cos_i = np.sin(el) * np.cos(slope) + np.cos(el) * np.sin(slope) * np.cos(az - aspect)
    return np.clip(cos_i / np.sin(el), 0.6, 1.3).astype(np.float32)


def synthesize_scene(site: Site, split: str, index: int, cfg, seed: int) -> Scene:
    """Every modality of one place, deterministic in ``(seed, index)``.

    Args:
        site: the place.
        split: ``pretrain`` or ``heldout``.
        index: position in the sample.
        cfg: the ``data.sample`` settings (:class:`skysense.config.SampleConfig`).
        seed: ``data.seed``.
    """
    rng = np.random.default_rng([seed, index, 7])
    size, block = cfg.size_px, cfg.block_px
    nb = int(np.ceil(size / block))
    parcels, pclass = layout(
        rng, size, block, block_classes(rng, site, nb * nb, split == "heldout")
    )
    n_par = pclass.size
    traits = lc.ParcelTraits.draw(rng, n_par, site.climate_shift_days)
    # the place's look and each acquisition's nuisance come from their own stream
    nrng = np.random.default_rng([seed, index, 11])
    look = PlaceLook.draw(nrng, lc.N_CLASSES, cfg.nuisance)
    traits.shift = (traits.shift + look.class_shift[pclass]).astype(np.float32)
    traits.vigour = np.clip(traits.vigour * look.class_vigour[pclass], 0.5, 1.05).astype(np.float32)
    endmembers = look.endmembers()
    soil_b = (rng.uniform(0.75, 1.25) * rng.uniform(0.9, 1.1, n_par)).astype(np.float32)

    # georeferencing: the site's centre snapped to the 10 m grid of its UTM zone
    epsg = site.epsg
    xs, ys = warp_transform("EPSG:4326", f"EPSG:{epsg}", [site.lon], [site.lat])
    half = size * SENTINEL_GSD_M / 2
    west = np.floor((xs[0] - half) / SENTINEL_GSD_M) * SENTINEL_GSD_M
    north = np.floor((ys[0] + half) / SENTINEL_GSD_M) * SENTINEL_GSD_M
    transform = Affine(SENTINEL_GSD_M, 0.0, west, 0.0, -SENTINEL_GSD_M, north)

    # DEM: smooth terrain plus a tilt; open water lies flat at the local low
    dem = site.altitude_m + site.relief_m * 0.5 * fractal_noise(rng, (size, size), size / 2.5, 2)
    tilt = rng.normal(0, 0.01, 2)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) * SENTINEL_GSD_M
    dem = (dem + tilt[0] * yy + tilt[1] * xx).astype(np.float32)
    water = pclass[parcels] == lc.class_id("water")
    if water.any():
        dem[water] = np.percentile(dem, 5)
    shade = _hillshade(dem)
    texture = (1.0 + 0.03 * value_noise(rng, (size, size), 3.0)).astype(np.float32)

    # Sentinel-2 time series
    s2_doy = acquisition_days(rng, cfg.s2_dates, 0.0)
    refl = lc.reflectance(lc.fractions(pclass, s2_doy, traits), soil_b, endmembers)  # T x P x 10
    s2 = np.moveaxis(refl[:, parcels, :], -1, 1)  # T x 10 x H x W
    s2 = s2 * (shade * texture)[None, None]
    t2 = s2.shape[0]
    acq = [AcquisitionLook.draw(nrng, look, cfg.nuisance) for _ in range(t2)]
    s2 = resample_series(s2, [a.shift_px for a in acq], look.psf_px)  # mixed pixels, geolocation
    gain = np.stack([a.gain for a in acq])[:, :, None, None]
    haze = np.stack([a.haze for a in acq])[:, :, None, None]
    noise = np.array([a.noise for a in acq], dtype=np.float32)[:, None, None, None]
    s2 = s2 * gain + haze + noise * rng.standard_normal(s2.shape, dtype=np.float32)
    cloud = np.zeros((t2, size, size), dtype=np.uint8)
    no_data = np.zeros((t2, size, size), dtype=bool)
    winter = 0.5 + 0.5 * np.cos(2 * np.pi * (s2_doy - 15) / 365.0)
    for t in range(t2):
        if rng.random() < np.clip(cfg.cloud_probability * (0.6 + 0.8 * winter[t]), 0, 0.95):
            alpha = cloud_opacity(rng, (size, size), rng.uniform(0.1, 0.6), size / 3.0)
            bright = _CLOUD_SPECTRUM * rng.uniform(0.85, 1.15)
            s2[t] = s2[t] * (1 - alpha[None]) + alpha[None] * bright[:, None, None]
            cloud[t] = alpha > 0.3
        if rng.random() < 0.2:
            no_data[t] = swath_edge(rng, (size, size), rng.uniform(0.1, 0.4))
    dn = np.clip(np.rint(s2 * 10000.0), 1, 65535).astype(np.uint16)
    dn[np.broadcast_to(no_data[:, None], dn.shape)] = S2_NODATA
    cloud[no_data] = 0

    # Sentinel-1 time series: class backscatter, orbit and moisture offsets, gamma speckle
    s1_doy = acquisition_days(rng, cfg.s1_dates, 4.0)
    t1 = s1_doy.size
    moisture = rng.normal(0.0, 1.0, t1).astype(np.float32)
    frac1 = lc.fractions(pclass, s1_doy, traits)
    sig = lc.backscatter_db(pclass, frac1, s1_doy, traits, moisture)  # T x P x 2
    db = np.moveaxis(sig[:, parcels, :], -1, 1)
    shifts = [tuple(nrng.normal(0.0, look.misregistration_px, 2)) for _ in range(t1)]
    db = resample_series(db, shifts, 1.3 * look.psf_px)  # in dB: smooths speckle-free borders
    db = db + look.sar_offset_db[None, :, None, None]
    db = db + rng.normal(0.0, 0.6, t1).astype(np.float32)[:, None, None, None]
    db = db + 0.5 * value_noise(rng, (size, size), 4.0)[None, None]
    speckle = rng.gamma(S1_LOOKS, 1.0 / S1_LOOKS, db.shape).astype(np.float32)
    s1 = (10.0 * np.log10(10.0 ** (db / 10.0) * speckle)).astype(np.float32)
    for t in range(t1):
        if rng.random() < 0.2:
            s1[t][:, swath_edge(rng, (size, size), rng.uniform(0.1, 0.35))] = S1_NODATA

    # HR image at an early-summer date
    hr_doy = np.array([int(rng.integers(120, 260))])
    hr_refl = lc.reflectance(lc.fractions(pclass, hr_doy, traits), soil_b, endmembers)[0]
    idx = list(lc.HR_FROM_S2)
    soil_rgbn = endmembers[2, idx][None, :] * soil_b[:, None]
    # another camera, another flight: the place's colour balance
    hr = render_hr(rng, parcels, pclass, hr_refl[:, idx], soil_rgbn, shade, look.hr_gain)

    labels = pclass[parcels].astype(np.uint8)
    return Scene(
        site=site,
        split=split,
        epsg=epsg,
        transform=transform,
        labels=labels,
        parcels=parcels,
        s2=dn,
        s2_cloud=cloud,
        s2_dates=_dates(cfg.year, s2_doy),
        s1=s1,
        s1_dates=_dates(cfg.year, s1_doy),
        hr=hr,
        hr_date=_dates(cfg.year, hr_doy)[0],
        dem=dem[None].astype(np.float32),
        meta={
            "n_parcels": int(n_par),
            "class_counts": np.bincount(labels.ravel(), minlength=lc.N_CLASSES).tolist(),
        },
    )
