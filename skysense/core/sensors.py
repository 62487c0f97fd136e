"""Sensor specifications as data: bands, dtypes, physical units, nodata and normalisation.

Every reader, the chipper and the dataset look sensors up here by name (``get_sensor``) instead of
branching on the sensor in code. Physical units after :meth:`SensorSpec.to_physical`:

- ``sentinel2``: top-of-atmosphere / surface reflectance (unitless, (DN + offset) x 1e-4, where the
  per-acquisition DN offset is -1000 from processing baseline 04.00 on; see
  :mod:`skysense.data.products.sentinel2`)
- ``sentinel1``: backscatter in dB (from calibrated dB, linear power, amplitude or complex SLC
  input); raw GRD digital numbers (``dn``) are refused: calibrate them first
- ``hr``: values as stored (uint8 or uint16 digital numbers), any GSD finer than 2 m
- ``dem``: elevation in metres
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from skysense.core.errors import SkySenseError

InputUnits = Literal["dn", "reflectance", "db", "linear", "amplitude", "complex", "metres"]


SCL_CLOUD_CLASSES: tuple[int, ...] = (3, 8, 9, 10)
"""Sentinel-2 L2A scene classes counted as cloud by default: cloud shadow (3), cloud medium (8) and
high (9) probability, thin cirrus (10); the default of ``validation.scl_cloud_classes``."""


class UncalibratedInputError(SkySenseError, ValueError):
    """Stored values that are not in a physical unit the model takes (raw Sentinel-1 GRD DN)."""


class UnknownSensorError(SkySenseError, KeyError):
    """A catalog or call names a sensor that is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Band:
    """One spectral band or polarisation: name, centre wavelength (nm, None for SAR/DEM), GSD
    (m).
    """

    name: str
    wavelength_nm: float | None
    gsd_m: float


@dataclass(frozen=True)
class SensorSpec:
    """What a sensor's rasters hold and how to turn them into physical units.

    Attributes:
        name: registry name (``sentinel2``...).
        modality: the sample key it feeds (``s2``, ``s1``, ``hr``, ``dem``).
        bands: every band the sensor has, in product order.
        default_bands: the bands SkySense uses, in model order.
        dtypes: accepted stored dtypes (first is the usual one).
        scale, offset: physical = stored * scale + offset (for ``dn``/``metres`` input).
        input_units: what the stored values are by default.
        output_units: the physical unit after conversion.
        nodata: stored value meaning "no data" when the file does not declare one.
        max_gsd_m: coarsest accepted ground sampling distance (HR: finer than 2 m).
        norm_mean, norm_std: default normalisation per band, in output units.
        continuous: True for measurements (bilinear/average), False for labels (nearest).
        units_by_dtype_kind: input units implied by a stored dtype kind (numpy ``kind``: ``f``
            float, ``u`` unsigned, ``c`` complex) when the catalog does not say, e.g. a float32
            Sentinel-2 file already holds reflectance and a uint16 Sentinel-1 GRD holds amplitude.
        auxiliary_gsd_m: GSD of product layers that are not spectral bands (Sentinel-2 ``SCL``).
        uncalibrated_units: input units that are not a physical quantity of this sensor and
            must be converted before use (Sentinel-1 ``dn``: GRD digital numbers, which only
            a radiometric calibration turns into sigma0/gamma0).
    """

    name: str
    modality: Literal["s2", "s1", "hr", "dem"]
    bands: tuple[Band, ...]
    default_bands: tuple[str, ...]
    dtypes: tuple[str, ...]
    scale: float = 1.0
    offset: float = 0.0
    input_units: InputUnits = "dn"
    output_units: str = "dn"
    nodata: float | None = None
    max_gsd_m: float | None = None
    norm_mean: dict[str, float] = field(default_factory=dict)
    norm_std: dict[str, float] = field(default_factory=dict)
    continuous: bool = True
    units_by_dtype_kind: dict[str, str] = field(default_factory=dict)
    auxiliary_gsd_m: dict[str, float] = field(default_factory=dict)
    uncalibrated_units: tuple[str, ...] = ()

    @property
    def band_names(self) -> tuple[str, ...]:
        """All band names in product order."""
        return tuple(b.name for b in self.bands)

    def native_gsd_m(self) -> dict[str, float]:
        """GSD of every band and auxiliary layer coarser than the finest band, metres (e.g.
        Sentinel-2 B05: 20, B01: 60, SCL: 20): what a file holding only that band has.
        """
        finest = self.gsd_m
        native = {b.name: b.gsd_m for b in self.bands if b.gsd_m != finest}
        native.update({k: v for k, v in self.auxiliary_gsd_m.items() if v != finest})
        return native

    @property
    def gsd_m(self) -> float:
        """Finest GSD among the bands, metres."""
        return min(b.gsd_m for b in self.bands)

    def band(self, name: str) -> Band:
        """The band called ``name``; raises UnknownSensorError naming the valid bands."""
        for b in self.bands:
            if b.name == name:
                return b
        raise UnknownSensorError(
            f"sensor {self.name!r} has no band {name!r}; its bands are {', '.join(self.band_names)}"
        )

    def with_overrides(
        self, nodata: float | None = None, input_units: str | None = None
    ) -> SensorSpec:
        """A copy with a catalog-level nodata value or input unit (e.g. S1 in linear power)."""
        out = self
        if nodata is not None:
            out = replace(out, nodata=float(nodata))
        if input_units is not None:
            out = replace(out, input_units=input_units)  # type: ignore[arg-type]
        return out

    def units_for(self, dtype: str, override: str | None = None) -> str:
        """Input units of a file with stored ``dtype`` (catalog override, dtype rule, default)."""
        if override:
            return override
        kind = "c" if dtype.startswith("complex") else np.dtype(dtype).kind
        return self.units_by_dtype_kind.get(kind, self.input_units)

    def stored_dtype(self, source_dtype: str) -> np.dtype:
        """Dtype chips of this sensor are stored in (HR keeps its integer DN; others float32)."""
        if self.modality == "hr" and source_dtype in ("uint8", "uint16"):
            return np.dtype(source_dtype)
        return np.dtype("float32")

    def calibration_problem(self, units: str) -> str | None:
        """Why stored values in ``units`` cannot become this sensor's physical unit, or None."""
        if units not in self.uncalibrated_units:
            return None
        return (
            f"{self.name} values in {units!r} are raw digital numbers, not calibrated "
            f"backscatter: 20*log10(DN) is not {self.output_units}. Calibrate the product "
            "to sigma0 or gamma0 first (e.g. radiometric terrain correction with sarsen, or "
            "ESA SNAP's Calibration), or use an analysis-ready collection (sentinel-1-rtc), "
            "and state input_units (linear, amplitude or db) in the catalog"
        )

    def to_physical(
        self, raw: np.ndarray, input_units: str | None = None, dn_offset: float = 0.0
    ) -> np.ndarray:
        """Stored values -> physical units (reflectance, dB, metres; HR unchanged).

        DN input: ``(raw + dn_offset) * scale + offset`` (Sentinel-2 reflectance with the
        acquisition's DN offset, -1000 from processing baseline 04.00 on). Complex input (SLC)
        becomes amplitude, amplitude and linear power become dB. Values with no finite dB
        (power <= 0) become NaN, which readers count as invalid.

        Raises:
            UncalibratedInputError: the units are raw, uncalibrated numbers (Sentinel-1 ``dn``).
        """
        units = input_units or self.input_units
        problem = self.calibration_problem(units)
        if problem is not None:
            raise UncalibratedInputError(problem)
        if np.iscomplexobj(raw):
            raw = np.abs(raw)
            units = "amplitude" if units in ("complex", "db", "linear", "dn") else units
        if self.modality == "hr":
            return raw
        x = raw.astype(np.float32, copy=False)
        if self.output_units == "dB":
            with np.errstate(divide="ignore", invalid="ignore"):
                if units == "amplitude":
                    x = np.where(x > 0, 20.0 * np.log10(x), np.nan).astype(np.float32)
                elif units == "linear":
                    x = np.where(x > 0, 10.0 * np.log10(x), np.nan).astype(np.float32)
            return x
        if units in ("reflectance",):
            return x
        if dn_offset != 0.0:
            x = x + np.float32(dn_offset)
        if self.scale != 1.0 or self.offset != 0.0:
            x = x * np.float32(self.scale) + np.float32(self.offset)
        return x.astype(np.float32, copy=False)

    def normalisation(
        self, bands: list[str] | tuple[str, ...] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Default ``(mean, std)`` per band in output units, as float32 arrays."""
        names = list(bands or self.default_bands)
        mean = np.array([self.norm_mean.get(n, 0.0) for n in names], dtype=np.float32)
        std = np.array([self.norm_std.get(n, 1.0) for n in names], dtype=np.float32)
        return mean, std


_S2_BANDS = (
    Band("B01", 443.0, 60.0),
    Band("B02", 490.0, 10.0),
    Band("B03", 560.0, 10.0),
    Band("B04", 665.0, 10.0),
    Band("B05", 705.0, 20.0),
    Band("B06", 740.0, 20.0),
    Band("B07", 783.0, 20.0),
    Band("B08", 842.0, 10.0),
    Band("B8A", 865.0, 20.0),
    Band("B09", 945.0, 60.0),
    Band("B10", 1375.0, 60.0),
    Band("B11", 1610.0, 20.0),
    Band("B12", 2190.0, 20.0),
)

SENSORS: dict[str, SensorSpec] = {
    "sentinel2": SensorSpec(
        name="sentinel2",
        modality="s2",
        bands=_S2_BANDS,
        default_bands=("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"),
        dtypes=("uint16", "float32"),
        scale=1e-4,
        offset=0.0,
        input_units="dn",
        output_units="reflectance",
        nodata=0.0,
        units_by_dtype_kind={"f": "reflectance"},
        auxiliary_gsd_m={"SCL": 20.0},  # L2A scene classification
        # Reflectance statistics of Sentinel-2 over land (SSL4EO-S12 order of magnitude).
        norm_mean={
            "B02": 0.12,
            "B03": 0.115,
            "B04": 0.115,
            "B05": 0.135,
            "B06": 0.185,
            "B07": 0.21,
            "B08": 0.205,
            "B8A": 0.225,
            "B11": 0.195,
            "B12": 0.14,
        },
        norm_std={
            "B02": 0.09,
            "B03": 0.085,
            "B04": 0.09,
            "B05": 0.09,
            "B06": 0.09,
            "B07": 0.095,
            "B08": 0.095,
            "B8A": 0.1,
            "B11": 0.1,
            "B12": 0.09,
        },
    ),
    "sentinel1": SensorSpec(
        name="sentinel1",
        modality="s1",
        bands=(Band("VV", None, 10.0), Band("VH", None, 10.0)),
        default_bands=("VV", "VH"),
        dtypes=("float32", "uint16", "complex64", "complex_int16"),
        input_units="db",
        output_units="dB",
        nodata=-99.0,
        # integer Sentinel-1 rasters are GRD digital numbers (uncalibrated) unless the catalog
        # states their units; calibrated products are float32 (linear power, amplitude or dB)
        units_by_dtype_kind={"u": "dn", "i": "dn", "c": "complex"},
        uncalibrated_units=("dn",),
        norm_mean={"VV": -12.5, "VH": -20.0},
        norm_std={"VV": 5.0, "VH": 5.5},
    ),
    "hr": SensorSpec(
        name="hr",
        modality="hr",
        bands=(
            Band("R", 665.0, 1.0),
            Band("G", 560.0, 1.0),
            Band("B", 490.0, 1.0),
            Band("N", 842.0, 1.0),
        ),
        default_bands=("R", "G", "B", "N"),
        dtypes=("uint8", "uint16"),
        input_units="dn",
        output_units="dn",
        nodata=None,
        max_gsd_m=2.0,
        norm_mean={"R": 110.0, "G": 110.0, "B": 100.0, "N": 120.0},
        norm_std={"R": 55.0, "G": 50.0, "B": 50.0, "N": 55.0},
    ),
    "dem": SensorSpec(
        name="dem",
        modality="dem",
        bands=(Band("elevation", None, 30.0),),
        default_bands=("elevation",),
        dtypes=("float32", "int16", "uint16", "float64"),
        input_units="metres",
        output_units="m",
        nodata=-32768.0,
        norm_mean={"elevation": 500.0},
        norm_std={"elevation": 600.0},
    ),
}


S2_BANDS: tuple[str, ...] = SENSORS["sentinel2"].default_bands
"""The 10 Sentinel-2 bands SkySense uses, in model order (B02 ... B12 without B01, B09, B10)."""
S2_PRODUCT_BANDS: tuple[str, ...] = SENSORS["sentinel2"].band_names
"""All 13 Sentinel-2 MSI bands in product order (B01 ... B12 with B8A after B08)."""
S1_BANDS: tuple[str, ...] = SENSORS["sentinel1"].default_bands
"""Sentinel-1 polarisations, in model order (VV, VH)."""
HR_BANDS: tuple[str, ...] = SENSORS["hr"].default_bands
"""HR optical bands, in model order (R, G, B, N)."""


def get_sensor(name: str) -> SensorSpec:
    """The spec registered as ``name``.

    Raises:
        UnknownSensorError: naming the known sensors.
    """
    try:
        return SENSORS[name]
    except KeyError:
        raise UnknownSensorError(
            f"unknown sensor {name!r}; known sensors: {', '.join(sorted(SENSORS))}. "
            "Fix the 'sensor:' entry in the catalog."
        ) from None
