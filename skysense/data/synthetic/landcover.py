"""Land-cover classes of the synthetic sample: spectra, phenology and radar backscatter.

Each pixel is a linear mixture of surface *endmembers* (green leaves, needles, moist soil, dry
straw/litter, water, roofs/pavement) whose fractions follow each class's seasonal cycle. Sentinel-2
reflectance is the mixture of the endmembers' spectra (surface reflectance, unitless); Sentinel-1
backscatter is a mixture in linear power of per-component sigma0 values, converted to dB.

Classes (id, name: what separates it from its look-alikes):

0. ``water``: lakes, rivers. Dark in every band, very low VV/VH (-22/-28 dB), wind roughening.
1. ``urban_dense``: city centre, roofs and pavement. High VV (double bounce); HR: large buildings.
2. ``urban_sparse``: residential with gardens. Roof/vegetation mix; HR: small houses, gardens.
3. ``forest``: mixed broadleaf/conifer. High VH (volume); HR: tree crowns with shadowed gaps.
4. ``grassland``: meadows and pastures, cut 2-3 times a year (NDVI dips after each cut).
5. ``winter_cereal``: wheat/barley sown in autumn. NDVI peaks about day 135, straw in July,
   bare soil in September. VV *drops* at the peak (vertical stems attenuate).
6. ``summer_maize``: sown in May. Bare soil in spring, NDVI peaks about day 215; high VH.
7. ``orchard``: rows of deciduous trees over mown grass. Its 10 m spectrum over the year is close
   to grassland's; it differs by HR texture (a regular grid of crowns) and a higher VH.
8. ``wetland``: reeds and sedges, flooded in winter and spring. Optically close to grassland
   (slightly lower SWIR when flooded); in Sentinel-1 flooded vegetation gives a strong VV double
   bounce (about -4 dB) where grassland is about -11 dB: separable by SAR/optical agreement.
9. ``spring_cereal``: the same crop sown in March: bare in winter, NDVI peak about day 165,
   harvest about day 225. Its spectra, backscatter and HR rows are winter cereal's shifted by
   about a month: only the *timing* of the green phase separates the two.

Winter cereal, spring cereal, maize and grassland have similar mean spectra over a year (green,
straw and soil phases in different order) and are separated by *when* they are green; orchard vs
grassland needs HR texture; wetland vs grassland needs Sentinel-1. Per-parcel sowing dates move by
+-2 weeks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HR_FROM_S2: tuple[int, ...] = (2, 1, 0, 6)  # R=B04, G=B03, B=B02, N=B08

ENDMEMBERS: tuple[str, ...] = ("leaf", "needle", "soil", "straw", "water", "roof")
# Surface reflectance of each endmember at B02 B03 B04 B05 B06 B07 B08 B8A B11 B12.
ENDMEMBER_SPECTRA = np.array(
    [
        [0.030, 0.075, 0.035, 0.115, 0.310, 0.400, 0.440, 0.455, 0.225, 0.105],  # leaf
        [0.020, 0.045, 0.024, 0.070, 0.170, 0.220, 0.250, 0.262, 0.120, 0.052],  # needle
        [0.060, 0.085, 0.110, 0.130, 0.150, 0.165, 0.180, 0.192, 0.270, 0.220],  # moist soil
        [0.080, 0.110, 0.140, 0.180, 0.220, 0.250, 0.270, 0.290, 0.380, 0.280],  # straw, litter
        [0.060, 0.052, 0.032, 0.022, 0.012, 0.010, 0.008, 0.007, 0.003, 0.002],  # water
        [0.120, 0.130, 0.140, 0.150, 0.160, 0.170, 0.180, 0.185, 0.210, 0.190],  # roofs, asphalt
    ],
    dtype=np.float32,
)
# Sentinel-1 sigma0 (dB) of the generic components, VV and VH.
SOIL_DB = (-10.5, -17.5)
STRAW_DB = (-12.0, -19.0)
WATER_DB = (-23.0, -29.0)
NEEDLE_DB = (-7.5, -12.5)


@dataclass(frozen=True)
class LandCoverClass:
    """A land-cover class: id in label rasters, name, leaf sigma0 (VV, VH dB), roof sigma0."""

    id: int
    name: str
    leaf_db: tuple[float, float]
    roof_db: tuple[float, float] = (-3.0, -11.0)


CLASSES: tuple[LandCoverClass, ...] = (
    LandCoverClass(0, "water", (-11.0, -17.0)),
    LandCoverClass(1, "urban_dense", (-8.0, -13.0), roof_db=(1.0, -8.0)),
    LandCoverClass(2, "urban_sparse", (-8.0, -13.0), roof_db=(-3.0, -11.0)),
    LandCoverClass(3, "forest", (-7.0, -12.0)),
    LandCoverClass(4, "grassland", (-11.0, -17.5)),
    LandCoverClass(5, "winter_cereal", (-14.5, -17.0)),
    LandCoverClass(6, "summer_maize", (-8.5, -13.0)),
    LandCoverClass(7, "orchard", (-7.5, -12.5)),
    LandCoverClass(8, "wetland", (-11.0, -17.0)),
    LandCoverClass(9, "spring_cereal", (-14.5, -17.0)),
)
CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in CLASSES)
N_CLASSES = len(CLASSES)
LABEL_NODATA = 255


def class_id(name: str) -> int:
    """Id of a class by name (``'forest'`` -> 3)."""
    return CLASS_NAMES.index(name)


def logistic(doy: np.ndarray, centre: np.ndarray | float, width: float) -> np.ndarray:
    """Smooth step from 0 to 1 around ``centre`` (day of year), ``width`` days wide."""
    return 1.0 / (1.0 + np.exp(-(doy - centre) / width))


def deciduous(doy: np.ndarray, shift: np.ndarray | float = 0.0) -> np.ndarray:
    """Leaf-on fraction of deciduous trees: leaves out about day 110, fall about day 295."""
    return logistic(doy, 110 + shift, 8.0) * (1.0 - logistic(doy, 295 + shift, 9.0))


@dataclass
class ParcelTraits:
    """Per-parcel random traits, each an array over parcels.

    Attributes:
        shift: sowing / green-up shift in days (climate of the location plus +-14 days).
        vigour: peak green fraction multiplier (0.8-1.0).
        needle: conifer share of forests (0.1-0.8).
        cuts: grassland mowing days, parcels x 3 (a large value means no cut).
        turbidity: suspended soil in water (0-0.08).
    """

    shift: np.ndarray
    vigour: np.ndarray
    needle: np.ndarray
    cuts: np.ndarray
    turbidity: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, n: int, climate_shift: float) -> ParcelTraits:
        """Random traits of ``n`` parcels in a place whose seasons are ``climate_shift`` days
        late.
        """
        cuts = np.sort(rng.uniform(135, 275, size=(n, 3)), axis=1).astype(np.float32)
        cuts[rng.random(n) < 0.4, 2] = 999.0  # two cuts only on many meadows
        return cls(
            shift=(climate_shift + rng.uniform(-14, 14, n)).astype(np.float32),
            vigour=rng.uniform(0.8, 1.0, n).astype(np.float32),
            needle=rng.uniform(0.1, 0.8, n).astype(np.float32),
            cuts=cuts,
            turbidity=rng.uniform(0.0, 0.08, n).astype(np.float32),
        )


def _grass_green(doy: np.ndarray, shift: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Green fraction of a meadow (T x P): winter dormancy, spring growth, dips after each cut."""
    g = 0.45 + 0.42 * logistic(doy, 95 + shift, 12.0) * (1.0 - logistic(doy, 300 + shift, 12.0))
    for k in range(cuts.shape[1]):
        dt = doy - cuts[None, :, k]
        g = g * (1.0 - np.where(dt >= 0, 0.55 * np.exp(-np.clip(dt, 0, None) / 18.0), 0.0))
    return g


def fractions(class_ids: np.ndarray, doy: np.ndarray, traits: ParcelTraits) -> np.ndarray:
    """Endmember fractions of each parcel at each date.

    Args:
        class_ids: class id per parcel, shape ``P``.
        doy: day of year per date, shape ``T``.
        traits: per-parcel traits.

    Returns:
        ``T x P x E`` fractions (E = len(ENDMEMBERS)), each row summing to 1.
    """
    d = doy.astype(np.float32)[:, None]
    s, v = traits.shift[None, :], traits.vigour[None, :]
    p = class_ids.size
    out = np.zeros((d.shape[0], p, len(ENDMEMBERS)), dtype=np.float32)
    leaf, needle, soil, straw, water, roof = range(len(ENDMEMBERS))
    dec = deciduous(d, s)

    def put(cid: int, comps: dict[int, np.ndarray]) -> None:
        sel = class_ids == cid
        if sel.any():
            for e, val in comps.items():
                out[:, sel, e] = np.broadcast_to(val, (d.shape[0], p))[:, sel]

    put(
        0,
        {
            water: 0.97 - traits.turbidity[None] - 0.02 * dec,
            soil: traits.turbidity[None] + 0.03 + 0 * d,
            leaf: 0.02 * dec,
        },
    )
    put(1, {roof: 0.82 + 0 * d, leaf: 0.10 * dec, straw: 0.10 * (1 - dec), soil: 0.08 + 0 * d})
    put(
        2,
        {roof: 0.42 + 0 * d, leaf: 0.15 + 0.30 * dec, straw: 0.30 * (1 - dec), soil: 0.13 + 0 * d},
    )
    nd = traits.needle[None, :]
    put(3, {needle: nd + 0 * d, leaf: (1 - nd) * dec * v, straw: (1 - nd) * (1 - dec * v)})
    grass = _grass_green(d, s, traits.cuts) * v
    put(4, {leaf: grass, straw: (1 - grass) * 0.75, soil: (1 - grass) * 0.25})
    # winter cereal: tillered in winter, peak ~135, yellow ~175, harvest ~200, ploughed ~245, resown
    spring = 0.22 + 0.70 * v * logistic(d, 85 + s, 10.0)
    senesce = logistic(d, 172 + s, 6.0)
    green = spring * (1 - senesce) + 0.18 * logistic(d, 305 + s, 8.0)
    dry = senesce * (0.92 - 0.42 * logistic(d, 200 + s, 3.0)) * (1 - logistic(d, 245 + s, 4.0))
    put(5, {leaf: green, straw: dry, soil: np.clip(1 - green - dry, 0, 1)})
    # maize: bare until sown (~125), peak ~215, dries ~262, harvested ~290 (stalks then soil)
    green = 0.92 * v * logistic(d, 168 + s, 9.0) * (1 - logistic(d, 262 + s, 7.0))
    dry = 0.85 * logistic(d, 262 + s, 7.0) * (1 - 0.6 * logistic(d, 292 + s, 4.0))
    put(6, {leaf: green, straw: dry, soil: np.clip(1 - green - dry, 0, 1)})
    # orchard: 35 % tree crowns (deciduous) over lightly mown grass
    under = 0.65 * (0.45 + 0.40 * logistic(d, 95 + s, 12.0) * (1 - logistic(d, 300 + s, 12.0)))
    put(
        7,
        {
            leaf: 0.35 * dec * v + under,
            straw: 0.35 * (1 - dec * v) + 0.65 * 0.12,
            soil: np.clip(1 - 0.35 - under - 0.65 * 0.12, 0, 1),
        },
    )
    # wetland: reeds green May-October, flooded from November to May (water under the canopy)
    flood = flood_fraction(d, s)
    green = (0.40 + 0.45 * logistic(d, 120 + s, 10.0) * (1 - logistic(d, 285 + s, 10.0))) * v
    wet = 0.10 * flood
    put(
        8,
        {
            leaf: green,
            water: wet,
            straw: np.clip(1 - green - wet, 0, 1) * 0.85,
            soil: np.clip(1 - green - wet, 0, 1) * 0.15,
        },
    )
    # spring cereal: same crop as winter cereal, sown in March: bare in winter, peak ~165, harvest
    # ~225
    green = 0.92 * v * logistic(d, 118 + s, 9.0) * (1 - logistic(d, 200 + s, 6.0))
    dry = (
        logistic(d, 200 + s, 6.0)
        * (0.92 - 0.42 * logistic(d, 225 + s, 3.0))
        * (1 - logistic(d, 265 + s, 4.0))
    )
    put(9, {leaf: green, straw: dry, soil: np.clip(1 - green - dry, 0, 1)})
    out /= np.clip(out.sum(axis=2, keepdims=True), 1e-6, None)
    return out


def flood_fraction(doy: np.ndarray, shift: np.ndarray | float = 0.0) -> np.ndarray:
    """Share of a wetland under standing water: 1 in winter/spring, 0 from July to October."""
    return np.clip(1.0 - logistic(doy, 140 + shift, 8.0) + logistic(doy, 315 + shift, 8.0), 0, 1)


def reflectance(
    frac: np.ndarray, soil_brightness: np.ndarray, endmembers: np.ndarray | None = None
) -> np.ndarray:
    """Surface reflectance ``T x P x 10`` of fractions ``T x P x E``; soil scaled per parcel.

    ``endmembers``: the place's ``E x 10`` endmember spectra (default :data:`ENDMEMBER_SPECTRA`).
    """
    base = ENDMEMBER_SPECTRA if endmembers is None else endmembers
    spectra = np.broadcast_to(base, (soil_brightness.size, *base.shape)).copy()
    soil, straw = ENDMEMBERS.index("soil"), ENDMEMBERS.index("straw")
    spectra[:, soil] *= soil_brightness[:, None]
    spectra[:, straw] *= (0.5 + 0.5 * soil_brightness)[:, None]
    return np.einsum("tpe,peb->tpb", frac, spectra, optimize=True).astype(np.float32)


def ndvi(refl: np.ndarray, band_axis: int = -1) -> np.ndarray:
    """NDVI from reflectance with the 10 S2 bands on ``band_axis`` (B08 and B04)."""
    nir = np.take(refl, 6, axis=band_axis).astype(np.float32)
    red = np.take(refl, 2, axis=band_axis).astype(np.float32)
    return (nir - red) / np.clip(nir + red, 1e-6, None)


def backscatter_db(
    class_ids: np.ndarray,
    frac: np.ndarray,
    doy: np.ndarray,
    traits: ParcelTraits,
    soil_moisture_db: np.ndarray,
) -> np.ndarray:
    """Sentinel-1 sigma0 (dB) of each parcel at each date, ``T x P x 2`` (VV, VH), no speckle.

    Components mix in linear power with the optical fractions as weights; the leaf component
    takes the class's own sigma0 (structure), flooded wetlands add a double-bounce term.

    Args:
        class_ids: class per parcel ``P``.
        frac: ``T x P x E`` endmember fractions at the SAR dates.
        doy: SAR dates ``T`` (days of year).
        traits: the parcels' traits (calendar shift, vigour, ...).
        soil_moisture_db: ``T`` offset of the soil terms (dB).
    """
    t, p, _ = frac.shape
    comp_db = np.zeros((t, p, len(ENDMEMBERS), 2), dtype=np.float32)
    leaf_db = np.array([CLASSES[c].leaf_db for c in class_ids], dtype=np.float32)
    roof_db = np.array([CLASSES[c].roof_db for c in class_ids], dtype=np.float32)
    comp_db[:, :, 0] = leaf_db[None]
    comp_db[:, :, 1] = np.array(NEEDLE_DB, dtype=np.float32)
    comp_db[:, :, 2] = np.array(SOIL_DB, dtype=np.float32) + soil_moisture_db[:, None, None]
    comp_db[:, :, 3] = np.array(STRAW_DB, dtype=np.float32) + 0.5 * soil_moisture_db[:, None, None]
    comp_db[:, :, 4] = np.array(WATER_DB, dtype=np.float32)
    comp_db[:, :, 5] = roof_db[None]
    comp_db[:, class_ids == class_id("water"), :5] = np.array(WATER_DB, dtype=np.float32)
    lin = np.einsum("tpe,tpec->tpc", frac, 10.0 ** (comp_db / 10.0))
    wet = class_ids == class_id("wetland")
    if wet.any():
        flood = flood_fraction(doy.astype(np.float32)[:, None], traits.shift[None, wet])
        bounce = 10.0 ** (np.array([-2.5, -13.5], dtype=np.float32) / 10.0)
        lin[:, wet] = lin[:, wet] * (1 - 0.75 * flood[..., None]) + 0.75 * flood[..., None] * bounce
    return (10.0 * np.log10(np.clip(lin, 1e-6, None))).astype(np.float32)
