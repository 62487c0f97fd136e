"""Typed configuration: ``params.yaml`` parsed into pydantic models, at the edges.

The command line, the flows and the tests read the file through :func:`load_config` and hand
each library call the sections it needs. Each layer defines its own sections
(:mod:`skysense.data.settings`, :mod:`skysense.validation.settings`,
:mod:`skysense.models.settings`,
:mod:`skysense.training.settings`, :mod:`skysense.evaluation.settings`,
:mod:`skysense.finetuning.settings`,
:mod:`skysense.registry.settings`, :mod:`skysense.inference.settings`); this module assembles
them into the file's layout, with the project layout (``paths``) and orchestration
(``pipeline``) that only the edges read. Unknown keys and bad
values are rejected with a :class:`ConfigError` that names the file, the key and what is allowed.
Command-line overrides use dotted keys: ``--set train.zero_stage=3``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError

from skysense.core.errors import ConfigError
from skysense.core.modalities import MODALITIES, Modality
from skysense.core.params_file import missing_sections_message, read_params
from skysense.core.sensors import HR_BANDS, S1_BANDS, S2_BANDS
from skysense.core.settings import Section
from skysense.data.raster_access import RasterAccessPolicy
from skysense.data.settings import (
    ChipConfig,
    ChipSettings,
    RemoteReadConfig,
    StacConfig,
    StacIngestSettings,
)
from skysense.data.synthetic.settings import SampleConfig
from skysense.evaluation.settings import EvalConfig
from skysense.finetuning.job import FinetuneJob
from skysense.finetuning.settings import FinetuneConfig
from skysense.inference.settings import PredictConfig
from skysense.models.settings import ModelConfig
from skysense.registry.settings import RegistrationSettings, RegistryConfig
from skysense.tracking.settings import TrackingConfig
from skysense.training.job import TrainingJob
from skysense.training.settings import TrainConfig
from skysense.validation.settings import ValidationConfig

DEFAULT_PARAMS = Path("params.yaml")


# --------------------------------------------------------------------------------------------
# paths
# --------------------------------------------------------------------------------------------
class PathsConfig(Section):
    """Default layout of the working folder; every command can override its own inputs/outputs."""

    sample: Path = Path("data/sample")
    catalog: Path = Path("data/sample/catalog.yaml")
    stac: Path = Path("data/stac")
    downstream: Path = Path("data/sample/downstream")
    chips: Path = Path("data/chips")
    validation: Path = Path("reports/validation")
    checkpoints: Path = Path("checkpoints/deepspeed")
    export: Path = Path("checkpoints/export")
    eval: Path = Path("reports/eval")
    finetune: Path = Path("reports/finetune")
    task_model: Path = Path("checkpoints/task_model")
    predictions: Path = Path("reports/predictions")


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------
class DataConfig(Section):
    """Data layer settings."""

    seed: int = 0
    modalities: list[Modality] = list(MODALITIES)
    s2_bands: list[str] = list(S2_BANDS)
    s1_bands: list[str] = list(S1_BANDS)
    hr_bands: list[str] = list(HR_BANDS)
    max_dates: dict[str, int] = {"s2": 8, "s1": 6}
    sample: SampleConfig = SampleConfig()
    chip: ChipConfig = ChipConfig()
    max_raster_pixels: int = Field(
        2**31, ge=1, description="most pixels (width x height) of one input raster"
    )
    max_raster_bands: int = Field(1024, ge=1, description="most bands of one input raster")
    remote: RemoteReadConfig = RemoteReadConfig()
    stac: StacConfig = StacConfig()


# --------------------------------------------------------------------------------------------
# pipeline
# --------------------------------------------------------------------------------------------
#: environment variable that overrides pipeline.alert_webhook and validation.failure_webhook
ALERT_WEBHOOK_ENV = "SKYSENSE_ALERT_WEBHOOK_URL"


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
    alert_webhook: str | None = Field(
        None,
        description="URL the Prefect automations post failed, crashed and late runs to "
        "(SKYSENSE_ALERT_WEBHOOK_URL overrides; created by `skysense pipeline serve`)",
    )


class SkySenseConfig(Section):
    """The whole of ``params.yaml``."""

    paths: PathsConfig = PathsConfig()
    data: DataConfig = DataConfig()
    validation: ValidationConfig = ValidationConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    finetune: FinetuneConfig = FinetuneConfig()
    registry: RegistryConfig = RegistryConfig()
    predict: PredictConfig = PredictConfig()
    pipeline: PipelineConfig = PipelineConfig()


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
                raise ConfigError(f"override {item!r}: {part!r} is a value, not a section")
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
        raise ConfigError(
            f"{source}: top level must be a mapping of sections, got {type(raw).__name__}"
        )
    try:
        return SkySenseConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(source, exc)) from None


def load_config(
    path: str | Path | None = None, overrides: list[str] | None = None
) -> SkySenseConfig:
    """Load ``params.yaml`` (or the embedded defaults when absent) and apply overrides.

    Args:
        path: the params file; ``None`` means ``./params.yaml`` when it exists, else defaults.
        overrides: dotted ``section.key=value`` strings.

    Raises:
        ConfigError: the file is missing, empty, cut short, not YAML (the line is named), lacks a
            top-level section, or has unknown keys or bad values (NaN and infinity included).
            The rules for a whole params file are in :mod:`skysense.core.params_file`.
    """
    raw: dict[str, Any] = {}
    missing: list[str] = []
    source = "<defaults>"
    if path is None and DEFAULT_PARAMS.exists():
        path = DEFAULT_PARAMS
    if path is not None:
        source = str(path)
        # empty, cut-short or unparsable files are errors
        raw, missing = read_params(path, tuple(SkySenseConfig.model_fields))
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


# --------------------------------------------------------------------------------------------
# the sections each library call takes, from the whole configuration
# --------------------------------------------------------------------------------------------
def raster_access(cfg: SkySenseConfig) -> RasterAccessPolicy:
    """The raster access policy of ``data.max_raster_*`` and ``data.remote``."""
    return RasterAccessPolicy.from_config(cfg.data)


def chip_settings(cfg: SkySenseConfig) -> ChipSettings:
    """What :func:`skysense.data.chipping.chip_catalog` needs from ``data``."""
    d = cfg.data
    return ChipSettings.build(
        d.chip,
        d.modalities,
        {"s2": d.s2_bands, "s1": d.s1_bands, "hr": d.hr_bands},
        d.max_dates,
        raster_access(cfg),
    )


def stac_settings(cfg: SkySenseConfig) -> StacIngestSettings:
    """What :func:`skysense.data.stac.ingest.ingest_snapshot` needs: ``data.stac``, the bands per
    modality, ``validation.scl_cloud_classes`` and the raster access policy.
    """
    d = cfg.data
    return StacIngestSettings(
        stac=d.stac,
        bands={"s2": tuple(d.s2_bands), "s1": tuple(d.s1_bands), "hr": tuple(d.hr_bands)},
        scl_cloud_classes=tuple(cfg.validation.scl_cloud_classes),
        access=raster_access(cfg),
    )


def registration_settings(cfg: SkySenseConfig) -> RegistrationSettings:
    """What :func:`skysense.registry.export_registration.register_export` needs."""
    dumped = cfg.model_dump(mode="json")
    return RegistrationSettings(
        model_name=cfg.registry.model_name,
        modalities=tuple(cfg.model.modalities),
        params={k: dumped[k] for k in ("data", "model", "train")},
        onnx=cfg.registry.onnx,
    )


def training_job(cfg: SkySenseConfig) -> TrainingJob:
    """What :func:`skysense.training.loop.train` and its launcher need."""
    return TrainingJob(
        model=cfg.model,
        train=cfg.train,
        tracking=TrackingConfig(
            tracking_uri=cfg.registry.tracking_uri, artifact_location=cfg.registry.artifact_location
        ),
        params=cfg.model_dump(mode="json"),
    )


def finetune_job(
    cfg: SkySenseConfig,
    encoder_export: Path,
    labels_root: Path,
    *,
    init: str = "pretrained",
    label_set: str | None = None,
    label_version: str | None = None,
    encoder_source: str | None = None,
    catalog: Path | None = None,
) -> FinetuneJob:
    """What :func:`skysense.finetuning.runner.run_finetune` needs: ``finetune``, the modalities
    (``finetune.modalities``, default ``model.modalities``) and the label set (default: the
    downstream set of ``finetune.task``).
    """
    ft = cfg.finetune
    return FinetuneJob(
        finetune=ft,
        init=init,
        encoder_export=encoder_export,
        label_set=label_set or ft.task,
        labels_root=labels_root,
        modalities=list(ft.modalities or cfg.model.modalities),
        label_version=label_version,
        catalog=catalog,
        extra={"encoder_source": encoder_source or str(encoder_export)},
    )
