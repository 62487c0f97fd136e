"""The expectation suites: what rasters, locations and chips must satisfy, from ``params.yaml``.

Each expectation is a :class:`Check`: a named rule (``gsd``, ``cloud_fraction``...) with its
severity (``critical`` quarantines the failing items, ``warning`` only reports; defaults in
:data:`DEFAULT_SEVERITY`, overridden by ``validation.severity``) and the profile columns whose
values explain a failure. Every rule is one expectation over the whole table, never a per-modality
``row_condition`` (each of those costs GX a pandas query and a copy of the frame): the facts and
thresholds a rule needs per row (expected GSD and the GSD ratio, the physical range that applies,
``modality:value`` keys for per-modality allowed sets, values masked to the rows a rule covers)
are computed in pandas by :func:`prepare_rasters` and :func:`prepare_locations`; every pass/fail
decision is made by great-expectations on the prepared tables.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from skysense.core.errors import ValidationFailed
from skysense.core.modalities import MODALITIES
from skysense.core.sensors import SENSORS
from skysense.data.products.sentinel2 import BASELINE_04_00_DATE, offset_problem
from skysense.validation.settings import ValidationConfig

DEFAULT_SEVERITY: dict[str, str] = {
    # rasters
    "readable": "critical",
    "raster_access": "critical",
    "raster_size": "critical",
    "crs_set": "critical",
    "crs_projected": "warning",
    "crs_matches_location": "warning",
    "location_overlap": "critical",
    "gsd": "critical",
    "band_count": "critical",
    "declared_bands": "critical",
    "dtype": "critical",
    "nodata_value": "warning",
    "valid_fraction": "critical",
    "cloud_fraction": "critical",
    "finite_values": "critical",
    "value_range": "critical",
    "s1_calibrated": "critical",
    "s2_offset_known": "critical",
    "date_parses": "critical",
    "date_present": "critical",
    "date_not_future": "critical",
    "date_in_window": "critical",
    "unique_acquisition": "critical",
    # locations
    "unique_location": "critical",
    "required_modalities": "critical",
    "enough_dates": "critical",
    "modalities_overlap": "critical",
    # chips
    "unique_chip": "critical",
    "chip_readable": "critical",
    "chip_valid_fraction": "critical",
    "chip_required_modalities": "critical",
    "chip_enough_dates": "critical",
    "chip_finite_values": "critical",
    "chip_value_range": "critical",
    "chip_location_accepted": "critical",
}

TABLE_IDS = {"rasters": "item_id", "locations": "location", "chips": "sample_id"}


@dataclass
class Check:
    """One expectation of a suite and how to explain its failures.

    Attributes:
        name: the rule's name (the key of ``validation.severity``).
        severity: ``critical`` or ``warning``.
        expectation: the great-expectations expectation (``meta.check`` holds ``name``).
        observed: profile columns reported as the observed values of a failing item.
        reason: a sentence saying what the rule asks, with its threshold.
    """

    name: str
    severity: str
    expectation: Any
    observed: list[str]
    reason: str


@dataclass
class Suite:
    """The checks of one table (``rasters``, ``locations`` or ``chips``)."""

    table: str
    checks: list[Check] = field(default_factory=list)

    @property
    def id_column(self) -> str:
        """Column that names an item of this table."""
        return TABLE_IDS[self.table]


def severities(cfg: ValidationConfig) -> dict[str, str]:
    """Default severities with ``validation.severity`` applied.

    Raises:
        ValidationFailed: ``validation.severity`` names a check that does not exist.
    """
    unknown = sorted(set(cfg.severity) - set(DEFAULT_SEVERITY))
    if unknown:
        raise ValidationFailed(
            f"validation.severity names unknown checks {unknown}; "
            f"known checks: {', '.join(DEFAULT_SEVERITY)}"
        )
    return {**DEFAULT_SEVERITY, **cfg.severity}


class _Builder:
    """Adds expectations with their check name, severity and explanation."""

    def __init__(self, table: str, cfg: ValidationConfig) -> None:
        import great_expectations as gx

        self.E = gx.expectations
        self.suite = Suite(table)
        self.sev = severities(cfg)

    def add(self, name: str, cls: str, observed: list[str], reason: str, **kwargs: Any) -> None:
        sev = self.sev[name]
        exp = getattr(self.E, cls)(
            meta={"check": name, "severity": sev, "key": len(self.suite.checks)},
            description=f"[{name}, {sev}] {reason}",
            **kwargs,
        )
        self.suite.checks.append(Check(name, sev, exp, observed, reason))


def _key(modality: Any, value: Any) -> str | None:
    """``modality:value`` (a per-modality allowed-set key), None when the value is missing."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{modality}:{value}"


def prepare_rasters(table: pd.DataFrame, cfg: ValidationConfig) -> pd.DataFrame:
    """Add the derived columns the raster suite reads (one expectation per rule, no row conditions).

    - ``expected_gsd_m`` (per-band native GSD or the modality's, metres) and ``gsd_ratio``
      (observed / expected);
    - ``band_count_key``: ``<modality> file:<bands>`` for multi-band data files, ``band
      file:<bands>``
      for per-band files (masks excluded), None where no band rule applies;
    - ``dtype_key`` (``<modality>:<dtype>`` of data files whose modality has allowed dtypes),
      ``nodata_expected`` (the modality's nodata value on data rows);
    - ``data_valid_fraction`` and ``data_cloud_fraction``: the fractions on data rows only;
    - ``value_range`` (the key of ``validation.ranges``), ``range_min`` and ``range_max`` (its
      bounds,
      physical units) on data rows;
    - ``date_presence``: ``<modality>:dated`` or ``<modality>:undated`` (labels: ``labels:...``);
    - ``band_key`` and ``date_key`` (acquisition identity for the duplicate check);
    - ``calibrated`` (data rows: False when the input units are raw, uncalibrated numbers of the
      sensor, e.g. Sentinel-1 GRD ``dn``) and ``offset_known`` (Sentinel-2 DN rows: False when
      the DN offset is not recorded for a date from 2022-01-25 on).
    """
    out = table.copy()
    for col in (
        "phys_min",
        "phys_max",
        "valid_fraction",
        "nan_fraction",
        "location_overlap",
        "cloud_fraction",
        "gsd_m",
        "band_count",
        "nodata",
        "pixel_count",
        "max_pixels",
        "max_bands",
    ):
        out[col] = pd.to_numeric(out[col], errors="coerce")
    is_data = out["role"].eq("data")
    expected, band_keys, dtype_keys, nodata, range_keys, lo, hi = [], [], [], [], [], [], []
    for r in out[["modality", "role", "layout", "band_name", "band_count", "dtype"]].itertuples(
        index=False
    ):
        rule = cfg.sensors.get(r.modality)
        gsd = cfg.gsd_m.get(r.modality)
        if rule is not None and r.band_name is not None and r.band_name in rule.band_gsd_m:
            gsd = rule.band_gsd_m[r.band_name]
        expected.append(gsd if r.role in ("data", "scl") else None)
        if r.layout == "bands" and r.role != "mask":
            band_keys.append(_key("band file", r.band_count))
        elif r.role == "data" and r.layout == "file" and rule is not None:
            band_keys.append(_key(f"{r.modality} file", r.band_count))
        else:
            band_keys.append(None)
        data_rule = rule if r.role == "data" else None
        dtype_keys.append(_key(r.modality, r.dtype) if data_rule and data_rule.dtypes else None)
        nodata.append(data_rule.nodata if data_rule else None)
        key = data_rule.value_range if data_rule else None
        bounds = cfg.ranges.get(key, (None, None)) if key else (None, None)
        range_keys.append(key)
        lo.append(bounds[0])
        hi.append(bounds[1])
    out["expected_gsd_m"] = pd.to_numeric(pd.Series(expected, index=out.index), errors="coerce")
    out["gsd_ratio"] = out["gsd_m"] / out["expected_gsd_m"]
    out["band_count_key"] = band_keys
    out["dtype_key"] = dtype_keys
    out["nodata_expected"] = pd.to_numeric(pd.Series(nodata, index=out.index), errors="coerce")
    out["data_valid_fraction"] = out["valid_fraction"].where(is_data)
    out["data_cloud_fraction"] = out["cloud_fraction"].where(is_data)
    out["value_range"] = range_keys
    out["range_min"] = pd.to_numeric(pd.Series(lo, index=out.index), errors="coerce")
    out["range_max"] = pd.to_numeric(pd.Series(hi, index=out.index), errors="coerce")
    has_date = out["date"].notna().map({True: ":dated", False: ":undated"})
    out["date_presence"] = out["modality"].astype(str) + has_date
    out["band_key"] = out["band_name"].fillna("")
    out["date_key"] = [
        d.isoformat() if isinstance(d, dt.date) else (raw or "")
        for d, raw in zip(out["date"], out["date_raw"])
    ]
    calibrated: list[bool | None] = []
    offset_known: list[bool | None] = []
    for r in out[["role", "sensor", "input_units", "date", "offset"]].itertuples(index=False):
        spec = SENSORS.get(r.sensor)
        units = r.input_units if isinstance(r.input_units, str) else None
        if r.role != "data" or spec is None or units is None:
            calibrated.append(None)
            offset_known.append(None)
            continue
        calibrated.append(spec.calibration_problem(units) is None)
        if spec.modality == "s2" and units == "dn":
            offset = None if r.offset is None or pd.isna(r.offset) else float(r.offset)
            date = r.date if isinstance(r.date, dt.date) else None
            offset_known.append(offset_problem(date, offset, "") is None)
        else:
            offset_known.append(None)
    out["calibrated"] = pd.Series(calibrated, index=out.index, dtype=object)
    out["offset_known"] = pd.Series(offset_known, index=out.index, dtype=object)
    return out


def raster_suite(cfg: ValidationConfig, today: dt.date) -> Suite:
    """Expectations on the raster profile table (one row per file), one per rule."""
    for mod, rule in cfg.sensors.items():
        if rule.value_range is not None and rule.value_range not in cfg.ranges:
            raise ValidationFailed(
                f"validation.sensors.{mod}.value_range is {rule.value_range!r}, not a key of "
                f"validation.ranges ({', '.join(cfg.ranges)}); fix one of the two"
            )
    b = _Builder("rasters", cfg)
    b.add(
        "readable",
        "ExpectColumnValuesToBeNull",
        ["read_error"],
        "the file opens and reads as a raster",
        column="read_error",
    )
    b.add(
        "raster_access",
        "ExpectColumnValuesToBeNull",
        ["access_error"],
        "the file is a local GeoTIFF or JPEG 2000 raster (no VRT, no /vsi path, no URL of a host "
        "outside data.remote.allowed_hosts, no external overview file)",
        column="access_error",
    )
    b.add(
        "raster_size",
        "ExpectColumnPairValuesAToBeGreaterThanB",
        ["width", "height", "pixel_count", "max_pixels"],
        "width x height is at most data.max_raster_pixels",
        column_A="max_pixels",
        column_B="pixel_count",
        or_equal=True,
        ignore_row_if="either_value_is_missing",
    )
    b.add(
        "raster_size",
        "ExpectColumnPairValuesAToBeGreaterThanB",
        ["band_count", "max_bands"],
        "the band count is at most data.max_raster_bands",
        column_A="max_bands",
        column_B="band_count",
        or_equal=True,
        ignore_row_if="either_value_is_missing",
    )
    b.add(
        "crs_set",
        "ExpectColumnValuesToBeInSet",
        ["has_crs", "georeferencing"],
        "the raster is georeferenced (a CRS or GCPs)",
        column="has_crs",
        value_set=[True],
    )
    b.add(
        "crs_projected",
        "ExpectColumnValuesToBeInSet",
        ["crs"],
        "the CRS is projected (geographic CRSs are reprojected on read)",
        column="crs_projected",
        value_set=[True],
    )
    b.add(
        "crs_matches_location",
        "ExpectColumnValuesToBeInSet",
        ["crs", "location_crs"],
        "the CRS is the location's",
        column="crs_matches_location",
        value_set=[True],
    )
    b.add(
        "location_overlap",
        "ExpectColumnValuesToBeBetween",
        ["location_overlap", "crs", "location_crs"],
        f"more than {cfg.min_location_overlap:.0%} of the footprint lies inside the location's "
        "extent (after reprojection)",
        column="location_overlap",
        min_value=cfg.min_location_overlap,
        strict_min=True,
    )
    lo, hi = 1.0 - cfg.gsd_tolerance, 1.0 + cfg.gsd_tolerance
    b.add(
        "gsd",
        "ExpectColumnValuesToBeBetween",
        ["gsd_m", "expected_gsd_m"],
        f"GSD within {cfg.gsd_tolerance:.0%} of the modality's (ratio {lo:g}..{hi:g})",
        column="gsd_ratio",
        min_value=lo,
        max_value=hi,
    )
    counts = [f"{m} file:{n}" for m, rule in cfg.sensors.items() for n in rule.band_counts]
    b.add(
        "band_count",
        "ExpectColumnValuesToBeInSet",
        ["band_count", "band_count_key"],
        "a multi-band file has its modality's band count ("
        + ", ".join(f"{m}: {rule.band_counts}" for m, rule in cfg.sensors.items())
        + "), a per-band file one band",
        column="band_count_key",
        value_set=counts + ["band file:1"],
    )
    dtypes = {m: rule.dtypes for m, rule in cfg.sensors.items() if rule.dtypes}
    if dtypes:
        b.add(
            "dtype",
            "ExpectColumnValuesToBeInSet",
            ["dtype"],
            "data is stored as its modality's dtype ("
            + ", ".join(f"{m}: {d}" for m, d in dtypes.items())
            + ")",
            column="dtype_key",
            value_set=[f"{m}:{d}" for m, ds in dtypes.items() for d in ds],
        )
    nodata = {m: rule.nodata for m, rule in cfg.sensors.items() if rule.nodata is not None}
    if nodata:
        b.add(
            "nodata_value",
            "ExpectColumnPairValuesToBeEqual",
            ["nodata", "nodata_expected"],
            "a declared nodata value is the modality's ("
            + ", ".join(f"{m}: {v:g}" for m, v in nodata.items())
            + ")",
            column_A="nodata",
            column_B="nodata_expected",
            ignore_row_if="either_value_is_missing",
        )
    b.add(
        "declared_bands",
        "ExpectColumnPairValuesToBeEqual",
        ["band_count", "declared_bands"],
        "a multi-band file has as many bands as its band_names",
        column_A="band_count",
        column_B="declared_bands",
        ignore_row_if="either_value_is_missing",
    )
    b.add(
        "valid_fraction",
        "ExpectColumnValuesToBeBetween",
        ["valid_fraction", "nodata"],
        f"at least {cfg.min_valid_fraction:.0%} of the pixels are valid (not nodata/NaN)",
        column="data_valid_fraction",
        min_value=cfg.min_valid_fraction,
    )
    b.add(
        "cloud_fraction",
        "ExpectColumnValuesToBeBetween",
        ["cloud_fraction", "cloud_source"],
        f"at most {cfg.max_cloud_fraction:.0%} cloud (cloud mask or SCL)",
        column="data_cloud_fraction",
        max_value=cfg.max_cloud_fraction,
    )
    b.add(
        "finite_values",
        "ExpectColumnValuesToBeBetween",
        ["nan_fraction"],
        f"at most {cfg.max_nan_fraction:.0%} NaN pixels that are not declared nodata",
        column="nan_fraction",
        max_value=cfg.max_nan_fraction,
    )
    ranges = ", ".join(f"{k} [{a:g}, {z:g}]" for k, (a, z) in cfg.ranges.items())
    observed = ["phys_min", "phys_max", "range_min", "range_max", "band_min", "band_max"]
    b.add(
        "value_range",
        "ExpectColumnPairValuesAToBeGreaterThanB",
        observed,
        f"the smallest value is inside the modality's physical range ({ranges})",
        column_A="phys_min",
        column_B="range_min",
        or_equal=True,
        ignore_row_if="either_value_is_missing",
    )
    b.add(
        "value_range",
        "ExpectColumnPairValuesAToBeGreaterThanB",
        observed,
        f"the largest value is inside the modality's physical range ({ranges})",
        column_A="range_max",
        column_B="phys_max",
        or_equal=True,
        ignore_row_if="either_value_is_missing",
    )
    b.add(
        "s1_calibrated",
        "ExpectColumnValuesToBeInSet",
        ["input_units", "dtype"],
        "Sentinel-1 data is calibrated backscatter (sigma0/gamma0 as linear power, amplitude or "
        "dB; input_units says which): raw GRD digital numbers are not turned into "
        "20*log10(DN); calibrate the product first (e.g. with sarsen) or use sentinel-1-rtc",
        column="calibrated",
        value_set=[True],
    )
    b.add(
        "s2_offset_known",
        "ExpectColumnValuesToBeInSet",
        ["date", "offset"],
        f"Sentinel-2 digital numbers acquired from {BASELINE_04_00_DATE.isoformat()} on "
        "(processing baseline 04.00) have a recorded DN offset (catalog 'offset': -1000 for "
        "baseline 04.00 or later, 0 for harmonised data, or a 'safe:' folder whose metadata "
        "says); reflectance = (DN + offset) / 10000",
        column="offset_known",
        value_set=[True],
    )
    b.add(
        "date_parses",
        "ExpectColumnValuesToBeNull",
        ["date_raw", "date_error"],
        "the acquisition date is an ISO date",
        column="date_error",
    )
    kinds = [*MODALITIES, "labels"]
    b.add(
        "date_present",
        "ExpectColumnValuesToBeInSet",
        ["date", "date_raw", "date_presence"],
        f"acquisitions of {cfg.dated_modalities} have a date",
        column="date_presence",
        value_set=[f"{m}:dated" for m in kinds]
        + [f"{m}:undated" for m in kinds if m not in cfg.dated_modalities],
    )
    b.add(
        "date_not_future",
        "ExpectColumnValuesToBeBetween",
        ["date"],
        f"the date is not after today ({today.isoformat()})",
        column="date",
        max_value=today,
    )
    w0, w1 = (dt.date.fromisoformat(d) for d in cfg.date_window)
    b.add(
        "date_in_window",
        "ExpectColumnValuesToBeBetween",
        ["date"],
        f"the date is inside the window {w0.isoformat()}..{w1.isoformat()}",
        column="date",
        min_value=w0,
        max_value=w1,
    )
    b.add(
        "unique_acquisition",
        "ExpectCompoundColumnsToBeUnique",
        ["location", "modality", "date_key", "band_key"],
        "no two files of a location hold the same modality, date and band (the first is kept)",
        column_list=["location", "modality", "role", "band_key", "date_key"],
    )
    return b.suite


def prepare_locations(table: pd.DataFrame, cfg: ValidationConfig) -> pd.DataFrame:
    """Add ``present_n_dates_<m>``: distinct dates of an optional modality where it is present."""
    out = table.copy()
    for m in cfg.min_dates:
        if m not in cfg.required_modalities:
            out[f"present_n_dates_{m}"] = out[f"n_dates_{m}"].where(out[f"n_acq_{m}"] > 0)
    return out


def location_suite(cfg: ValidationConfig) -> Suite:
    """Expectations on the location table (one row per location, from accepted rasters)."""
    b = _Builder("locations", cfg)
    b.add(
        "unique_location",
        "ExpectColumnValuesToBeUnique",
        ["location"],
        "location ids are unique",
        column="location",
    )
    for m in cfg.required_modalities:
        b.add(
            "required_modalities",
            "ExpectColumnValuesToBeBetween",
            [f"n_acq_{m}", "modalities_present"],
            f"the location has at least one accepted {m} acquisition",
            column=f"n_acq_{m}",
            min_value=1,
        )
    for m, k in cfg.min_dates.items():
        required = m in cfg.required_modalities
        b.add(
            "enough_dates",
            "ExpectColumnValuesToBeBetween",
            [f"n_dates_{m}"],
            f"at least {k} distinct accepted {m} dates"
            + ("" if required else f" where {m} is present"),
            column=f"n_dates_{m}" if required else f"present_n_dates_{m}",
            min_value=k,
        )
    b.add(
        "modalities_overlap",
        "ExpectColumnValuesToBeBetween",
        ["min_modality_iou", "modality_iou"],
        f"every pair of modalities overlaps with IoU >= {cfg.min_overlap_iou:g}",
        column="min_modality_iou",
        min_value=cfg.min_overlap_iou,
    )
    return b.suite


def chip_suite(cfg: ValidationConfig) -> Suite:
    """Expectations on the chip table (one row per manifest chip)."""
    b = _Builder("chips", cfg)
    b.add(
        "unique_chip",
        "ExpectColumnValuesToBeUnique",
        ["sample_id"],
        "sample ids are unique",
        column="sample_id",
    )
    b.add(
        "chip_valid_fraction",
        "ExpectColumnValuesToBeBetween",
        ["valid_fraction"],
        f"at least {cfg.min_valid_fraction:.0%} of the chip is valid",
        column="valid_fraction",
        min_value=cfg.min_valid_fraction,
    )
    for m in cfg.required_modalities:
        b.add(
            "chip_required_modalities",
            "ExpectColumnValuesToBeInSet",
            [f"has_{m}"],
            f"the chip has {m}",
            column=f"has_{m}",
            value_set=[True],
        )
    for m, k in cfg.min_dates.items():
        if m in cfg.required_modalities:
            b.add(
                "chip_enough_dates",
                "ExpectColumnValuesToBeBetween",
                [f"n_valid_dates_{m}"],
                f"at least {k} valid {m} dates",
                column=f"n_valid_dates_{m}",
                min_value=k,
            )
    b.add(
        "chip_readable",
        "ExpectColumnValuesToBeNull",
        ["read_error", "shard"],
        "the chip's arrays read from its shard",
        column="read_error",
    )
    b.add(
        "chip_finite_values",
        "ExpectColumnValuesToBeBetween",
        ["inf_count"],
        "no infinite values in the chip's arrays",
        column="inf_count",
        max_value=0,
    )
    for m, rule in cfg.sensors.items():
        if rule.value_range is None or rule.value_range not in cfg.ranges:
            continue
        vlo, vhi = cfg.ranges[rule.value_range]
        for col in (f"{m}_min", f"{m}_max"):
            b.add(
                "chip_value_range",
                "ExpectColumnValuesToBeBetween",
                [f"{m}_min", f"{m}_max"],
                f"{m} values within [{vlo:g}, {vhi:g}]",
                column=col,
                min_value=vlo,
                max_value=vhi,
            )
    b.add(
        "chip_location_accepted",
        "ExpectColumnValuesToBeInSet",
        ["location"],
        "the chip's location passed validation",
        column="location_accepted",
        value_set=[True],
    )
    return b.suite
