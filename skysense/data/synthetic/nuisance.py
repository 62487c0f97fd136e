"""What changes a class's look from place to place and from date to date, while it stays the class.

Real land-cover tasks are hard because a class does not have one spectrum: a winter cereal in
Puglia is the same crop as in the Seeland, but on red soil, with another variety, sown by another
calendar, under another atmosphere, seen by a sensor whose calibration and geolocation drift from
one acquisition to the next. A linear probe over random features, fitted on a few places, learns
those places' looks and fails on a new one; features that encode what stays (timing of the green
phase relative to the other classes, HR texture, SAR structure, ratios of bands) transfer. This
module draws those nuisances, deterministically from a generator:

- :class:`PlaceLook`, once per place: soil colour (brightness and a smooth spectral tilt: red,
  dark or pale soils), vegetation spectrum (leaf chlorophyll and water: red-edge, NIR plateau and
  SWIR scaled), roof and pavement materials, per-class variety and management (peak vigour, a
  few days of calendar), HR colour balance and brightness (another camera, another flight), a SAR
  calibration/incidence offset (dB), the sensor's point-spread function (mixed pixels at field
  borders) and the scale of its geolocation error.
- :class:`AcquisitionLook`, once per Sentinel-2 date: gain per band (calibration, sun-view
  geometry, residual BRDF), haze of a random aerosol type (Angstrom exponent), noise, and a
  sub-pixel misregistration shift; :func:`resample_series` applies PSF and shift to a time series.

``strength`` scales every nuisance (0: none, the classes' textbook spectra; 1: the default).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skysense.core.sensors import S2_BANDS, SENSORS
from skysense.data.synthetic.landcover import ENDMEMBER_SPECTRA, ENDMEMBERS

N_BANDS = len(S2_BANDS)
_WAVELENGTH_NM = np.array(
    [b.wavelength_nm for name in S2_BANDS for b in SENSORS["sentinel2"].bands if b.name == name],
    dtype=np.float32,
)
# position of each band on a -1..1 axis from the blue to the SWIR-2 band, in log wavelength
_AXIS = (np.log(_WAVELENGTH_NM) - np.log(_WAVELENGTH_NM).mean()) / np.ptp(np.log(_WAVELENGTH_NM))
_AXIS = (2.0 * _AXIS).astype(np.float32)
_RED_EDGE = np.isin(np.array(S2_BANDS), ["B05", "B06", "B07"])
_NIR = np.isin(np.array(S2_BANDS), ["B08", "B8A"])
_SWIR = np.isin(np.array(S2_BANDS), ["B11", "B12"])


def spectral_tilt(brightness: float, slope: float, curve: float) -> np.ndarray:
    """Smooth multiplicative factor per Sentinel-2 band: ``brightness * exp(slope x + curve x^2)``
    over the bands' log-wavelength axis ``x`` in -1..1 (blue to SWIR-2).
    """
    return (brightness * np.exp(slope * _AXIS + curve * _AXIS**2)).astype(np.float32)


@dataclass(frozen=True)
class PlaceLook:
    """The look of one place (see the module docstring); arrays are float32.

    Attributes:
        soil: factor per band on the soil and straw endmembers.
        leaf: factor per band on the green-leaf and needle endmembers.
        roof: factor per band on the roof endmember.
        class_shift: days added to each class's calendar, per class id.
        class_vigour: factor on each class's peak green cover, per class id.
        hr_gain: factor per HR band (R, G, B, N).
        sar_offset_db: VV, VH offset in dB.
        psf_px: standard deviation of the Gaussian point-spread function, 10 m pixels.
        misregistration_px: standard deviation of each date's geolocation shift, 10 m pixels.
        haze: scale of the place's haze (aerosol load).
    """

    soil: np.ndarray
    leaf: np.ndarray
    roof: np.ndarray
    class_shift: np.ndarray
    class_vigour: np.ndarray
    hr_gain: np.ndarray
    sar_offset_db: np.ndarray
    psf_px: float
    misregistration_px: float
    haze: float

    def endmembers(self) -> np.ndarray:
        """The place's ``E x 10`` endmember spectra (reflectance, clipped to 0..1)."""
        spectra = ENDMEMBER_SPECTRA.copy()
        for name, factor in (
            ("leaf", self.leaf),
            ("needle", self.leaf),
            ("soil", self.soil),
            ("straw", np.sqrt(self.soil) * np.sqrt(self.leaf)),
            ("roof", self.roof),
        ):
            spectra[ENDMEMBERS.index(name)] *= factor
        return np.clip(spectra, 0.0, 1.0).astype(np.float32)

    @classmethod
    def draw(cls, rng: np.random.Generator, n_classes: int, strength: float = 1.0) -> PlaceLook:
        """A random place look; ``strength`` 0 gives the identity look."""
        s = float(strength)
        leaf = np.ones(N_BANDS, dtype=np.float32)
        leaf[_RED_EDGE] *= np.exp(s * rng.normal(0.0, 0.08))
        leaf[_NIR] *= np.exp(s * rng.normal(0.0, 0.12))
        leaf[_SWIR] *= np.exp(s * rng.normal(0.0, 0.15))
        leaf[:3] *= np.exp(s * rng.normal(0.0, 0.15, 3))  # chlorophyll, carotenoids
        return cls(
            soil=spectral_tilt(
                float(np.exp(s * rng.normal(0.0, 0.25))),
                s * rng.normal(0.0, 0.35),
                s * rng.normal(0.0, 0.15),
            ),
            leaf=leaf.astype(np.float32),
            roof=spectral_tilt(
                float(np.exp(s * rng.normal(0.0, 0.25))),
                s * rng.normal(0.0, 0.3),
                0.0,
            ),
            class_shift=(s * rng.normal(0.0, 6.0, n_classes)).astype(np.float32),
            class_vigour=np.exp(s * rng.normal(0.0, 0.08, n_classes)).astype(np.float32),
            hr_gain=(
                np.exp(s * rng.normal(0.0, 0.15)) * np.exp(s * rng.normal(0.0, 0.08, 4))
            ).astype(np.float32),
            sar_offset_db=(s * (rng.normal(0.0, 1.2) + rng.normal(0.0, 0.5, 2))).astype(np.float32),
            psf_px=float(s * rng.uniform(0.35, 0.8)),
            misregistration_px=float(s * rng.uniform(0.1, 0.4)),
            haze=float(s * rng.uniform(0.3, 2.0)),
        )


@dataclass(frozen=True)
class AcquisitionLook:
    """The nuisance of one Sentinel-2 acquisition.

    Attributes:
        gain: factor per band. haze: additive path radiance per band (reflectance).
        noise: standard deviation of the sensor noise (reflectance).
        shift_px: ``(dy, dx)`` geolocation error of the date, 10 m pixels.
    """

    gain: np.ndarray
    haze: np.ndarray
    noise: float
    shift_px: tuple[float, float]

    @classmethod
    def draw(
        cls, rng: np.random.Generator, place: PlaceLook, strength: float = 1.0
    ) -> AcquisitionLook:
        """A random acquisition of a place; ``strength`` 0 leaves only 0.4 % noise."""
        s = float(strength)
        gain = spectral_tilt(
            float(np.exp(s * rng.normal(0.0, 0.07))), s * rng.normal(0.0, 0.08), 0.0
        ) * np.exp(s * rng.normal(0.0, 0.025, N_BANDS)).astype(np.float32)
        angstrom = rng.uniform(0.5, 2.0)
        haze = (
            place.haze * rng.uniform(0.0, 1.0) * 0.03 * (_WAVELENGTH_NM / 490.0) ** -angstrom
        ).astype(np.float32)
        shift = rng.normal(0.0, 1.0, 2) * place.misregistration_px
        return cls(
            gain=gain.astype(np.float32),
            haze=haze,
            noise=float(0.004 + s * rng.uniform(0.0, 0.006)),
            shift_px=(float(shift[0]), float(shift[1])),
        )


def resampling_matrix(n: int, shift_px: float, psf_px: float) -> np.ndarray:
    """``n x n`` matrix that blurs a line of pixels by a Gaussian PSF (std ``psf_px``) and moves
    it by ``shift_px`` pixels (bilinear, edges clamped); rows sum to 1.
    """
    pos = np.arange(n, dtype=np.float64)
    centre = pos[:, None] + shift_px
    if psf_px > 1e-3:
        w = np.exp(-0.5 * ((pos[None, :] - centre) / psf_px) ** 2)
    else:  # a pure shift: linear interpolation between the two nearest pixels
        w = np.clip(1.0 - np.abs(pos[None, :] - np.clip(centre, 0, n - 1)), 0.0, None)
    w /= np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
    return w.astype(np.float32)


def resample_series(
    series: np.ndarray, shifts: list[tuple[float, float]], psf_px: float
) -> np.ndarray:
    """Apply each date's shift and the sensor's PSF to a ``T x C x H x W`` series (float32)."""
    _, _, h, w = series.shape
    out = np.empty_like(series, dtype=np.float32)
    for t, (dy, dx) in enumerate(shifts):
        my, mx = resampling_matrix(h, dy, psf_px), resampling_matrix(w, dx, psf_px)
        out[t] = np.einsum("hy,cyx,wx->chw", my, series[t], mx, optimize=True)
    return out
