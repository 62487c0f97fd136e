"""Each fact of the platform has one definition, and every module that needs it takes it from there.

Checked by importing (no grep): the modules that use a fact hold the very object of its home, and
the settings defaults derive from the sensor specs and the grid constants.
"""

from __future__ import annotations

import importlib

import pytest

from skysense.core import modalities, sensors
from skysense.core.modalities import HR_GSD_M, HR_RATIO, MODALITIES, SENTINEL_GSD_M, SERIES
from skysense.core.sensors import HR_BANDS, S1_BANDS, S2_BANDS, S2_PRODUCT_BANDS, SENSORS


def _all_modules() -> list[str]:
    import pkgutil

    import skysense

    return [m.name for m in pkgutil.walk_packages(skysense.__path__, "skysense.")]


FACTS = {
    "MODALITIES": MODALITIES,
    "SERIES": SERIES,
    "HR_RATIO": HR_RATIO,
    "SENTINEL_GSD_M": SENTINEL_GSD_M,
    "HR_GSD_M": HR_GSD_M,
    "S2_BANDS": S2_BANDS,
    "S1_BANDS": S1_BANDS,
    "HR_BANDS": HR_BANDS,
    "SENSORS": SENSORS,
}


@pytest.mark.parametrize("module", _all_modules())
def test_a_module_holding_a_core_fact_holds_the_core_object(module: str) -> None:
    """Any module-level name of a core fact is the very object of :mod:`skysense.core`: no module
    defines its own copy (the HR ratio, the modality lists, the band lists, the sensor specs).
    """
    mod = importlib.import_module(module)
    for name, fact in FACTS.items():
        if hasattr(mod, name):
            assert getattr(mod, name) is fact, f"{module}.{name} is its own copy"


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("skysense.data.dataset", "MODALITIES"),
        ("skysense.models.inputs", "MODALITIES"),
        ("skysense.validation.suites", "MODALITIES"),
        ("skysense.data.chipping", "SERIES"),
        ("skysense.data.dataset", "SERIES"),
        ("skysense.evaluation.features", "SERIES"),
        ("skysense.models.presets", "HR_RATIO"),
        ("skysense.inference.scene", "HR_RATIO"),
        ("skysense.data.coregistration", "HR_RATIO"),
        ("skysense.data.synthetic.hr_texture", "HR_RATIO"),
        ("skysense.registry.pyfunc", "HR_RATIO"),
    ],
)
def test_the_users_of_a_fact_take_it_from_core(module: str, name: str) -> None:
    assert getattr(importlib.import_module(module), name) is FACTS[name]


def test_grid_facts_fit_together() -> None:
    from skysense.models.presets import PRESETS

    assert HR_GSD_M * HR_RATIO == SENTINEL_GSD_M
    for spec in PRESETS.values():
        assert spec.hr_px == HR_RATIO * spec.sentinel_px, spec.name


def test_band_lists_come_from_the_sensor_specs() -> None:
    from skysense.config import DataConfig
    from skysense.data import benchmarks
    from skysense.inference import scene

    assert S2_BANDS == SENSORS["sentinel2"].default_bands and len(S2_BANDS) == 10
    assert S1_BANDS == SENSORS["sentinel1"].default_bands
    assert HR_BANDS == SENSORS["hr"].default_bands
    assert DataConfig().s2_bands == list(S2_BANDS)
    assert DataConfig().s1_bands == list(S1_BANDS) and DataConfig().hr_bands == list(HR_BANDS)
    assert benchmarks.EUROSAT_BANDS is S2_PRODUCT_BANDS and scene._S2_FULL is S2_PRODUCT_BANDS


def test_validation_rules_take_their_sensor_facts_from_the_sensor_specs() -> None:
    from skysense.validation.settings import ValidationConfig

    rules = ValidationConfig().sensors
    for modality, name in (("s2", "sentinel2"), ("s1", "sentinel1"), ("hr", "hr"), ("dem", "dem")):
        spec = SENSORS[name]
        assert (rules[modality].nodata, rules[modality].scale, rules[modality].offset) == (
            spec.nodata,
            spec.scale,
            spec.offset,
        ), modality
        assert rules[modality].band_gsd_m == spec.native_gsd_m(), modality
    assert rules["s2"].band_gsd_m["B05"] == 20.0 and rules["s2"].band_gsd_m["SCL"] == 20.0
    assert ValidationConfig().gsd_m == {
        "s2": SENTINEL_GSD_M,
        "s1": SENTINEL_GSD_M,
        "hr": HR_GSD_M,
        "dem": SENTINEL_GSD_M,
    }


def test_chip_settings_defaults_are_the_params_defaults() -> None:
    from skysense.data.settings import ChipConfig, ChipSettings

    chip, settings = ChipConfig(), ChipSettings()
    assert (settings.size, settings.stride, settings.max_nodata_fraction, settings.workers) == (
        chip.size,
        chip.stride or chip.size,
        chip.max_nodata_fraction,
        chip.workers,
    )
    assert (
        settings.shard_bytes == chip.shard_size_mb * 2**20 and settings.gsd_m == chip.sentinel_gsd_m
    )
    assert settings.hr_ratio == chip.hr_ratio == HR_RATIO and settings.modalities == MODALITIES


def test_one_lineage_module_and_one_sample_contract() -> None:
    from skysense.core import contract, lineage
    from skysense.registry import model_loading, signature

    for gone in (
        "skysense.dvc_lineage",
        "skysense.registry.lineage",
        "skysense.training.provenance",
        "skysense.errors",
        "skysense.data.sensors",
    ):
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(gone)
    assert signature.MODALITY_SPECS is contract.MODALITY_SPECS
    assert model_loading.empty_modality is contract.empty_modality
    assert callable(lineage.dvc_md5) and callable(lineage.data_version)
    assert modalities.MODALITIES == ("hr", "s2", "s1", "dem") and sensors.SENSORS is SENSORS


def test_one_ema_rule_for_the_teacher() -> None:
    from skysense.models import ema
    from skysense.training import teacher

    assert teacher.ema_ is ema.ema_ and teacher.ema_pairs is ema.ema_pairs
