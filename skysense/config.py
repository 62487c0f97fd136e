"""Typed configuration: ``params.yaml`` parsed into pydantic models.

Every stage, flow and test reads its settings through :func:`load_config`. Unknown keys and bad
values are rejected with a :class:`ConfigError` that names the file, the key and what is allowed.
Command-line overrides use dotted keys: ``--set train.zero_stage=3``.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from skysense.core.errors import ConfigError
from skysense.core.modalities import HR_GSD_M, HR_RATIO, SENTINEL_GSD_M
from skysense.core.sensors import HR_BANDS, S1_BANDS, S2_BANDS, SENSORS

DEFAULT_PARAMS = Path("params.yaml")


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, assignments are validated, and
    every float (nested in lists, tuples and dicts too) must be finite: NaN or infinity makes
    comparisons silently false (a NaN threshold passes every check)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


# --------------------------------------------------------------------------------------------
# paths
# --------------------------------------------------------------------------------------------
class PathsConfig(Section):
    """Default layout of the working folder; every command can override its own inputs/outputs."""

    sample: Path = Path("data/sample")
    catalog: Path = Path("data/sample/catalog.yaml")
    downstream: Path = Path("data/sample/downstream")
    chips: Path = Path("data/chips")
    validation: Path = Path("reports/validation")
    checkpoints: Path = Path("checkpoints/deepspeed")
    export: Path = Path("checkpoints/export")
    eval: Path = Path("reports/eval")
    predictions: Path = Path("reports/predictions")


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------
class SampleConfig(Section):
    """The bundled synthetic sample: deterministic multi-modal scenes written as GeoTIFFs."""

    locations: int = Field(6, ge=1, description="pre-training locations")
    heldout_locations: int = Field(4, ge=1, description="locations kept for downstream sets (probes "
                                   "are cross-validated leave-location-out)")
    size_px: int = Field(64, ge=16, description="scene size on the 10 m grid, pixels")
    s2_dates: int = Field(8, ge=1)
    s1_dates: int = Field(6, ge=1)
    year: int = 2023
    cloud_probability: float = Field(0.25, ge=0.0, le=1.0)
    downstream_chip_px: int = Field(8, ge=4, description="downstream chip size, 10 m pixels")
    block_px: int = Field(16, ge=4, description="side of a landscape unit (block of 1-4 fields), 10 m pixels")
    workers: int = Field(2, ge=1, description="processes writing places in parallel (1: in this process)")
    hr_jpeg_quality: int | None = Field(
        90, ge=1, le=100, description="JPEG quality of HR GeoTIFFs (lossy, as orthophotos); null = lossless"
    )


class ChipConfig(Section):
    """Chipping of catalog scenes into aligned multi-modal chips stored in shards."""

    size: int = Field(8, ge=4, description="chip size on the 10 m Sentinel grid, pixels (= the preset's sentinel_px)")
    hr_ratio: int = Field(HR_RATIO, ge=HR_RATIO, le=HR_RATIO,
                          description=f"HR grid is exactly {HR_RATIO}x finer (SkySense)")
    stride: int | None = Field(None, ge=1, description="pixels between chips; default = size")
    max_nodata_fraction: float = Field(0.5, ge=0.0, le=1.0)
    shard_size_mb: int = Field(256, ge=1)
    workers: int = Field(2, ge=1)
    sentinel_gsd_m: float = Field(SENTINEL_GSD_M, gt=0)
    allow_partial: bool = Field(
        False, description="finish with success when some locations failed (the summary lists "
        "them); default: a failed location fails the command (--allow-partial)")


class RemoteReadConfig(Section):
    """Remote raster reads (off unless hosts are named; see skysense.data.raster_access)."""

    allowed_hosts: list[str] = Field([], description="hosts (name or name:port) whose http(s) URLs "
                                     "catalogs and scene lists may name; empty = local files only")


class DataConfig(Section):
    """Data layer settings."""

    seed: int = 0
    modalities: list[Literal["hr", "s2", "s1", "dem"]] = ["hr", "s2", "s1", "dem"]
    s2_bands: list[str] = list(S2_BANDS)
    s1_bands: list[str] = list(S1_BANDS)
    hr_bands: list[str] = list(HR_BANDS)
    max_dates: dict[str, int] = {"s2": 8, "s1": 6}
    sample: SampleConfig = SampleConfig()
    chip: ChipConfig = ChipConfig()
    max_raster_pixels: int = Field(2**31, ge=1, description="most pixels (width x height) of one input raster")
    max_raster_bands: int = Field(1024, ge=1, description="most bands of one input raster")
    remote: RemoteReadConfig = RemoteReadConfig()


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------
Severity = Literal["critical", "warning"]


class SensorRule(Section):
    """What one modality's rasters must look like: band count, dtype, nodata, physical units."""

    band_counts: list[int] = Field(description="allowed band counts of a multi-band file")
    dtypes: list[str] = Field([], description="allowed stored dtypes; empty = any")
    nodata: float | None = Field(None, allow_inf_nan=True,
                                 description="nodata value assumed when a file declares none (NaN allowed)")
    scale: float = Field(1.0, description="integer DN x scale + offset = physical value")
    offset: float = 0.0
    value_range: str | None = Field(None, description="key of validation.ranges, None = no check")
    band_gsd_m: dict[str, float] = Field({}, description="native GSD of named band files, metres")


def sensor_rule(name: str, **policy: Any) -> SensorRule:
    """The validation rule of sensor ``name`` with its facts (nodata, scale, offset, native band
    GSDs) from :data:`skysense.core.sensors.SENSORS`; ``policy`` adds the accepted band counts,
    dtypes and value range."""
    spec = SENSORS[name]
    return SensorRule(nodata=spec.nodata, scale=spec.scale, offset=spec.offset,
                      band_gsd_m=spec.native_gsd_m(), **policy)


class ValidationConfig(Section):
    """Thresholds and severities of the great-expectations suites in front of training."""

    required_modalities: list[str] = ["s2", "s1"]
    min_dates: dict[str, int] = {"s2": 3, "s1": 2}
    gsd_m: dict[str, float] = {"s2": SENTINEL_GSD_M, "s1": SENTINEL_GSD_M, "hr": HR_GSD_M,
                               "dem": SENTINEL_GSD_M}
    gsd_tolerance: float = Field(0.25, ge=0.0, description="relative tolerance on GSD")
    min_valid_fraction: float = Field(0.5, ge=0.0, le=1.0)
    max_cloud_fraction: float = Field(0.6, ge=0.0, le=1.0)
    min_overlap_iou: float = Field(0.5, ge=0.0, le=1.0)
    date_window: tuple[str, str] = ("2015-06-23", "2100-01-01")
    ranges: dict[str, tuple[float, float]] = {
        "s2_reflectance": (0.0, 1.6),
        "s1_db": (-50.0, 10.0),
        "dem_m": (-450.0, 9000.0),
    }
    severity: dict[str, Severity] = {}
    min_accepted: int = Field(1, ge=0, description="fewest accepted locations to go on")
    max_profile_px: int = Field(512, ge=16, description="decimated read size for profiling")
    workers: int = Field(2, ge=1)
    sensors: dict[str, SensorRule] = {
        "s2": sensor_rule("sentinel2", band_counts=[len(S2_BANDS)], dtypes=["uint16"],
                          value_range="s2_reflectance"),
        "s1": sensor_rule("sentinel1", band_counts=[len(S1_BANDS)], dtypes=["float32"],
                          value_range="s1_db"),
        "hr": sensor_rule("hr", band_counts=[3, len(HR_BANDS)], dtypes=["uint8", "uint16"]),
        "dem": sensor_rule("dem", band_counts=[1], value_range="dem_m"),
    }
    dated_modalities: list[str] = Field(["s2", "s1"], description="modalities whose acquisitions need a date")
    min_location_overlap: float = Field(
        0.0, ge=0.0, lt=1.0, description="a raster's footprint share inside its location must exceed this"
    )
    max_nan_fraction: float = Field(0.0, ge=0.0, le=1.0, description="NaN pixels not declared nodata")
    scl_cloud_classes: list[int] = Field([3, 8, 9, 10], description="Sentinel-2 SCL classes counted as cloud")


# --------------------------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------------------------
class ModelConfig(Section):
    """Which preset to build, and overrides of its fields (e.g. ``{'s2_depth': 2}``)."""

    preset: str = "skysense-tiny"
    overrides: dict[str, Any] = {}
    modalities: list[Literal["hr", "s2", "s1", "dem"]] = ["hr", "s2", "s1", "dem"]

    @field_validator("overrides")
    @classmethod
    def _finite_overrides(cls, value: dict[str, Any]) -> dict[str, Any]:
        """Preset overrides are untyped here: reject NaN/infinity in them as the typed fields do."""
        for key, item in value.items():
            _require_finite(item, f"overrides.{key}")
        return value


def _require_finite(value: Any, where: str) -> None:
    """Raise ``ValueError`` naming ``where`` when ``value`` holds a NaN or infinite float."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} is {value}; use a finite number")
    if isinstance(value, dict):
        for key, item in value.items():
            _require_finite(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _require_finite(item, f"{where}[{i}]")


# --------------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------------
class LossWeights(Section):
    """Weights of the pre-training loss components (weighted sum)."""

    pixel: float = 1.0
    object: float = 0.5
    image: float = 1.0
    fused: float = 1.0
    cross_modal: float = 0.5


class AugmentConfig(Section):
    """Two-view augmentation for teacher-student pre-training."""

    crop_fraction: tuple[float, float] = (0.5, 1.0)
    flip: bool = True
    spectral_jitter: float = Field(0.1, ge=0.0)
    date_keep: tuple[float, float] = (0.5, 1.0)
    modality_dropout: float = Field(0.2, ge=0.0, le=1.0)


class TrainConfig(Section):
    """DeepSpeed pre-training."""

    zero_stage: Literal[0, 1, 2, 3] = 2
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    backend: Literal["auto", "gloo", "nccl"] = "auto"
    nproc: int = Field(2, ge=1)
    micro_batch: int = Field(4, ge=1)
    grad_accum: int = Field(1, ge=1)
    steps: int = Field(40, ge=1)
    lr: float = Field(5e-4, gt=0)
    min_lr: float = Field(1e-5, ge=0)
    warmup_steps: int = Field(5, ge=0)
    weight_decay: float = Field(0.05, ge=0)
    grad_clip: float = Field(1.0, ge=0)
    layer_decay: float | None = Field(None, gt=0, le=1)
    activation_checkpointing: bool | None = None
    offload_optimizer: bool = False
    torch_adam: bool = True
    zero3_persistence_threshold: int = Field(
        100_000, ge=0, description="ZeRO-3: parameters with fewer elements stay whole on every rank"
    )
    ema_momentum: tuple[float, float] = (0.99, 1.0)
    export_encoder: Literal["teacher", "student"] = Field(
        "teacher", description="encoder written to the export: the EMA teacher (DINO practice, "
        "measured at or above the student on the sample) or the student")
    checkpoint_every: int = Field(20, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    seed: int = 0
    num_workers: int = Field(0, ge=0)
    loss_weights: LossWeights = LossWeights()
    augment: AugmentConfig = AugmentConfig()
    experiment: str = "skysense-pretrain"


# --------------------------------------------------------------------------------------------
# eval
# --------------------------------------------------------------------------------------------
class EvalConfig(Section):
    """Frozen-encoder downstream evaluation."""

    linear_epochs: int = Field(100, ge=1)
    linear_lr: float = Field(1e-2, gt=0)
    knn_k: int = Field(5, ge=1)
    seg_epochs: int = Field(60, ge=1)
    seg_lr: float = Field(1e-2, gt=0)
    batch_size: int = Field(16, ge=1)
    random_baseline: bool = True
    seed: int = 0
    folds: int = Field(5, ge=2, description="cross-validation folds by sample (stratified), used "
                       "when split is 'sample' or the set has a single location")
    split: Literal["location", "sample"] = Field(
        "location", description="'location': leave-one-location-out folds (the probe never sees the "
        "tested place); 'sample': stratified folds by sample")
    pooling: Literal["mean", "mean_std"] = Field(
        "mean", description="scene feature: mean of the per-pixel embedding, or mean and std")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    bigearthnet: Path | None = None
    eurosat: Path | None = None


# --------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------
class MetricRule(Section):
    """One metric of the promotion policy."""

    min_improvement: float = 0.0
    higher_is_better: bool = True


class PromotionPolicy(Section):
    """When a challenger may replace the champion."""

    decide: dict[str, MetricRule] = {"linear_acc": MetricRule(min_improvement=0.0)}
    no_regress: dict[str, float] = {"miou": 0.02}


class RegistryConfig(Section):
    """MLflow tracking and model registry."""

    tracking_uri: str = "sqlite:///mlflow.db"
    lock_url: str | None = Field(
        None, description="database of the promotion lock for a server store (the MLflow "
        "server's PostgreSQL backend); default SKYSENSE_REGISTRY_LOCK_URL; keep passwords out "
        "of this file (PGPASSWORD, ~/.pgpass)")
    artifact_location: Path = Path("mlartifacts")
    model_name: str = "skysense-encoder"
    policy: PromotionPolicy = PromotionPolicy()


# --------------------------------------------------------------------------------------------
# predict
# --------------------------------------------------------------------------------------------
class PredictConfig(Section):
    """Sliding-window inference on GeoTIFF scenes."""

    window: int = Field(64, ge=8, description="window on the 10 m grid, pixels")
    overlap: int = Field(16, ge=0)
    batch_size: int = Field(4, ge=1)
    output_dtype: Literal["float32", "float16"] = "float32"
    block: int = Field(256, ge=16, multiple_of=16, description="output tile/block side, pixels")
    device: Literal["auto", "cpu", "cuda"] = "auto"


# --------------------------------------------------------------------------------------------
# pipeline
# --------------------------------------------------------------------------------------------
class PipelineConfig(Section):
    """Prefect orchestration."""

    cron: str = "0 2 * * 1"
    task_runner: Literal["thread", "process", "dask"] = "thread"
    dask_address: str | None = None
    max_workers: int = Field(2, ge=1)
    retries: int = Field(2, ge=0)
    retry_delay_s: float = Field(5.0, ge=0)
    use_dvc: bool = True
    dvc_remote: str = "local"
    dvc_remote_url: str = "../.dvc-remote"
    dvc_push: bool = Field(False, description="dvc push the stage outputs before registering")


class SkySenseConfig(Section):
    """The whole of ``params.yaml``."""

    paths: PathsConfig = PathsConfig()
    data: DataConfig = DataConfig()
    validation: ValidationConfig = ValidationConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    registry: RegistryConfig = RegistryConfig()
    predict: PredictConfig = PredictConfig()
    pipeline: PipelineConfig = PipelineConfig()

    @field_validator("model")
    @classmethod
    def _known_preset(cls, value: ModelConfig) -> ModelConfig:
        from skysense.models.presets import PRESETS  # local import: keep config light

        if PRESETS and value.preset not in PRESETS:
            raise ValueError(
                f"unknown preset {value.preset!r}; allowed: {', '.join(sorted(PRESETS))}"
            )
        return value


# --------------------------------------------------------------------------------------------
# loading and overrides
# --------------------------------------------------------------------------------------------
def parse_override(item: str) -> tuple[list[str], Any]:
    """Parse ``section.key=value`` into a key path and a YAML-typed value."""
    if "=" not in item:
        raise ConfigError(
            f"override {item!r} is malformed: use section.key=value, e.g. train.zero_stage=3"
        )
    key, raw = item.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"override {item!r} has an empty key: use section.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {item!r}: value is not valid YAML ({exc})") from exc
    return parts, value


def apply_overrides(raw: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Return a copy of ``raw`` with dotted overrides applied."""
    out = copy.deepcopy(raw)
    for item in overrides or []:
        parts, value = parse_override(item)
        node = out
        for part in parts[:-1]:
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(
                    f"override {item!r}: {part!r} is a value, not a section"
                )
            node = nxt
        node[parts[-1]] = value
    return out


def _format_errors(source: str, exc: ValidationError) -> str:
    lines = [f"{source}: invalid configuration"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            parent = err["loc"][:-1]
            allowed = _allowed_keys(parent)
            msg = f"unknown key; allowed keys here: {', '.join(allowed)}"
        elif err["type"] == "literal_error":
            msg = f"{msg} (got {err.get('input')!r})"
        elif err["type"] == "finite_number":
            msg = f"{msg}, not {err.get('input')!r}: NaN and infinity are not allowed"
        lines.append(f"  - {loc}: {msg}")
    lines.append("Fix the key in the params file or the --set override and run again.")
    return "\n".join(lines)


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    model: Any = SkySenseConfig
    for part in loc:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = field.annotation
    return sorted(getattr(model, "model_fields", {}).keys())


def config_from_dict(raw: dict[str, Any], source: str = "<params>") -> SkySenseConfig:
    """Validate a raw mapping into a :class:`SkySenseConfig`."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: top level must be a mapping of sections, got {type(raw).__name__}")
    try:
        return SkySenseConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(source, exc)) from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> SkySenseConfig:
    """Load ``params.yaml`` (or the embedded defaults when absent) and apply overrides.

    Args:
        path: the params file; ``None`` means ``./params.yaml`` when it exists, else defaults.
        overrides: dotted ``section.key=value`` strings.

    Raises:
        ConfigError: the file is missing, empty, cut short, not YAML (the line is named), lacks a
            top-level section, or has unknown keys or bad values (NaN and infinity included).
            The rules for a whole params file are in :mod:`skysense.params_file`.
    """
    raw: dict[str, Any] = {}
    missing: list[str] = []
    source = "<defaults>"
    if path is None and DEFAULT_PARAMS.exists():
        path = DEFAULT_PARAMS
    if path is not None:
        from skysense.params_file import missing_sections_message, read_params

        source = str(path)
        raw, missing = read_params(path)  # empty, cut-short or unparsable files are errors
    raw = apply_overrides(raw, overrides)
    try:
        cfg = config_from_dict(raw, source)
    except ConfigError as exc:
        if missing:
            raise ConfigError(f"{exc}\n{missing_sections_message(source, missing)}") from None
        raise
    if missing:
        raise ConfigError(missing_sections_message(source, missing))
    return cfg


def dump_config(cfg: SkySenseConfig) -> str:
    """The resolved configuration as YAML."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
