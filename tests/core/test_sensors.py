"""Sensor specs: registry, band tables, conversion to physical units."""

from __future__ import annotations

import numpy as np
import pytest

from skysense.core.errors import SkySenseError
from skysense.core.sensors import SENSORS, UncalibratedInputError, UnknownSensorError, get_sensor


def test_sentinel2_has_all_13_bands_with_wavelength_and_gsd() -> None:
    s2 = get_sensor("sentinel2")
    assert s2.band_names == (
        "B01",
        "B02",
        "B03",
        "B04",
        "B05",
        "B06",
        "B07",
        "B08",
        "B8A",
        "B09",
        "B10",
        "B11",
        "B12",
    )
    assert s2.default_bands == (
        "B02",
        "B03",
        "B04",
        "B05",
        "B06",
        "B07",
        "B08",
        "B8A",
        "B11",
        "B12",
    )
    assert s2.band("B04").wavelength_nm == 665.0 and s2.band("B04").gsd_m == 10.0
    assert s2.band("B8A").gsd_m == 20.0 and s2.band("B10").gsd_m == 60.0
    assert s2.band("B12").wavelength_nm == 2190.0
    assert {b.gsd_m for b in s2.bands} == {10.0, 20.0, 60.0}
    assert s2.nodata == 0.0 and s2.dtypes[0] == "uint16" and s2.scale == 1e-4


def test_sentinel2_dn_to_reflectance_and_float_files_are_reflectance() -> None:
    s2 = get_sensor("sentinel2")
    refl = s2.to_physical(np.array([[1234, 10000]], dtype=np.uint16), s2.units_for("uint16"))
    np.testing.assert_allclose(refl, [[0.1234, 1.0]], rtol=1e-6)
    assert refl.dtype == np.float32
    assert s2.units_for("float32") == "reflectance"
    np.testing.assert_allclose(s2.to_physical(np.array([0.25], np.float32), "reflectance"), [0.25])


def test_sentinel1_linear_amplitude_complex_and_db_inputs_give_db() -> None:
    s1 = get_sensor("sentinel1")
    assert s1.band_names == ("VV", "VH") and s1.output_units == "dB"
    np.testing.assert_allclose(
        s1.to_physical(np.array([0.1, 1.0], np.float32), "linear"), [-10.0, 0.0], atol=1e-5
    )
    np.testing.assert_allclose(s1.to_physical(np.array([-12.5], np.float32), "db"), [-12.5])
    np.testing.assert_allclose(
        s1.to_physical(np.array([10.0], np.float32), "amplitude"), [20.0], atol=1e-5
    )
    slc = np.array([3 + 4j, 0j], dtype=np.complex64)  # |z| = 5 -> 20 log10 5 dB; 0 -> no value
    out = s1.to_physical(slc, s1.units_for("complex64"))
    assert out[0] == pytest.approx(20 * np.log10(5.0), abs=1e-5) and np.isnan(out[1])
    # integer Sentinel-1 is GRD digital numbers: uncalibrated, refused rather than 20*log10(DN)
    assert s1.units_for("uint16") == "dn" and s1.calibration_problem("dn") is not None
    with pytest.raises(UncalibratedInputError, match="sarsen"):
        s1.to_physical(np.array([300], np.uint16), "dn")
    assert s1.calibration_problem("amplitude") is None
    assert s1.with_overrides(nodata=float("nan"), input_units="linear").input_units == "linear"


def test_hr_and_dem_specs() -> None:
    hr = get_sensor("hr")
    assert hr.default_bands == ("R", "G", "B", "N") and hr.max_gsd_m == 2.0
    assert hr.stored_dtype("uint8") == np.uint8 and hr.stored_dtype("uint16") == np.uint16
    raw = np.array([[7]], np.uint8)
    assert hr.to_physical(raw) is raw  # HR stays as stored
    dem = get_sensor("dem")
    assert dem.output_units == "m"
    np.testing.assert_allclose(dem.to_physical(np.array([[412]], np.int16)), [[412.0]])


def test_normalisation_defaults_per_band() -> None:
    mean, std = get_sensor("sentinel1").normalisation()
    assert mean.tolist() == [-12.5, -20.0] and std.tolist() == [5.0, 5.5]
    for spec in SENSORS.values():
        m, s = spec.normalisation()
        assert len(m) == len(spec.default_bands) and (s > 0).all()


def test_unknown_sensor_is_a_named_error() -> None:
    with pytest.raises(UnknownSensorError, match="unknown sensor 'landsat9'.*sentinel1, sentinel2"):
        get_sensor("landsat9")
    with pytest.raises(SkySenseError, match="has no band 'B13'"):
        get_sensor("sentinel2").band("B13")
