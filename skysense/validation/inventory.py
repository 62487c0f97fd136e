"""Inventory of a scene catalog: every raster it names, one :class:`RasterItem` per file.

The catalog is read leniently: a date that does not parse (``2023-13-45``, ``yesterday``) does
not make the whole catalog unusable, it becomes a failing item of the ``date_parses``
expectation. Everything else in the schema (unknown modality, an acquisition with neither
``file`` nor ``bands``, duplicated location ids) is still a :class:`CatalogError`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypedDict

import yaml
from pydantic import ValidationError

from skysense.core.errors import CatalogError
from skysense.data.catalog import Catalog, DatesAsText
from skysense.data.products.sentinel2_safe import SafeProductError, safe_acquisition

Role = Literal["data", "mask", "scl", "labels"]


@dataclass(frozen=True)
class DateIssue:
    """An acquisition date as written in the catalog and why it does not parse."""

    raw: str
    error: str


@dataclass(frozen=True)
class RasterItem:
    """One raster file named by the catalog, with where it sits in the catalog.

    Attributes:
        item_id: ``location/modality/acquisition-index/role[/band]``; unique per catalog.
        acq_id: ``location/modality/acquisition-index`` (``location/labels`` for labels).
        path: absolute path of the file.
        role: ``data`` (image bands), ``mask`` (cloud mask, 1 = cloud), ``scl`` (Sentinel-2 scene
            classification layer), ``labels`` (land-cover raster of the location).
        layout: ``file`` (one multi-band file) or ``bands`` (one file per band).
        band_name: the band a per-band file holds (``bands`` layout), else None.
        band_names: the declared band names of a multi-band file, else None.
        date: acquisition date; None when absent or unparseable.
        date_raw, date_error: the text of a date that does not parse, and why.
        nodata_override, input_units: the catalog overrides (``input_units``: the
            acquisition's, else the modality's).
        offset: the acquisition's DN offset (Sentinel-2: -1000 from baseline 04.00), None when
            the catalog does not state it.
        mask_classes: mask values counted as cloud (None: any non-zero value).
        source_error: why the acquisition's source (a ``safe:`` folder) cannot be read; the
            item then stands for the folder and fails ``readable``.
    """

    item_id: str
    acq_id: str
    path: Path
    location: str
    split: str
    modality: str
    sensor: str
    acq_index: int
    role: Role
    layout: Literal["file", "bands"]
    band_name: str | None = None
    band_names: tuple[str, ...] | None = None
    date: dt.date | None = None
    date_raw: str | None = None
    date_error: str | None = None
    nodata_override: float | None = None
    input_units: str | None = None
    offset: float | None = None
    mask_classes: tuple[int, ...] | None = None
    source_error: str | None = None


class _AcquisitionFields(TypedDict):
    """The :class:`RasterItem` fields every file of one acquisition shares."""

    acq_id: str
    location: str
    split: str
    modality: str
    sensor: str
    acq_index: int
    date: dt.date | None
    date_raw: str | None
    date_error: str | None
    nodata_override: float | None
    input_units: str | None
    offset: float | None
    mask_classes: tuple[int, ...] | None


def parse_date(value: Any) -> dt.date:
    """Parse an acquisition date: ISO date, ISO date-time (the day is kept) or a date object.

    Raises:
        ValueError: with the reason, when the value is not a date.
    """
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        pass
    try:
        return dt.datetime.fromisoformat(text).date()
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO date (YYYY-MM-DD)") from None


def load_catalog_leniently(path: str | Path) -> tuple[Catalog, dict[str, DateIssue]]:
    """Read a catalog, setting aside acquisition dates that do not parse.

    Args:
        path: the catalog YAML file; relative paths resolve against its folder.

    Returns:
        The catalog (unparseable dates replaced by None) and the date issues by ``acq_id``.

    Raises:
        CatalogError: the file is missing, not YAML or does not follow the catalog schema.
    """
    p = Path(path)
    if not p.is_file():
        raise CatalogError(
            f"{p}: catalog not found; run `skysense data sample --out DIR` or pass --catalog"
        )
    try:
        raw = yaml.load(p.read_text(), Loader=DatesAsText)  # a SafeLoader subclass
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{p}: not a valid YAML catalog ({exc})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("locations"), list):
        raise CatalogError(f"{p}: a catalog is a mapping with a 'locations' list")
    issues: dict[str, DateIssue] = {}
    for loc in raw["locations"]:
        if not isinstance(loc, dict) or not isinstance(loc.get("modalities"), dict):
            continue  # the schema check below names the entry
        for mod, entry in loc["modalities"].items():
            acqs = entry.get("acquisitions") if isinstance(entry, dict) else None
            for i, acq in enumerate(acqs if isinstance(acqs, list) else []):
                if not isinstance(acq, dict) or acq.get("date") is None:
                    continue
                try:
                    acq["date"] = parse_date(acq["date"]).isoformat()
                except ValueError as exc:
                    issues[f"{loc.get('id')}/{mod}/{i}"] = DateIssue(str(acq["date"]), str(exc))
                    acq["date"] = None
    try:
        cat = Catalog.model_validate({**raw, "root": str(p.parent.resolve())})
    except ValidationError as exc:
        errs = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise CatalogError(f"{p}: invalid catalog: {errs}") from None
    return cat, issues


def list_raster_items(
    catalog: Catalog, date_issues: dict[str, DateIssue] | None = None
) -> list[RasterItem]:
    """Every raster the catalog names, in catalog order: data files, masks, SCL layers, labels.

    A ``safe:`` acquisition stands for its band files and SCL layer (with its date and offset
    from the product metadata); one that cannot be read is one item with ``source_error``.
    """
    issues = date_issues or {}
    items: list[RasterItem] = []
    for loc in catalog.locations:
        for mod, entry in loc.modalities.items():
            for i, acq in enumerate(entry.acquisitions):
                acq_id = f"{loc.id}/{mod}/{i}"
                issue = issues.get(acq_id)
                source_error = None
                try:
                    acq = safe_acquisition(acq, catalog.root)
                except SafeProductError as exc:
                    source_error = f"SafeProductError: {exc}"
                common: _AcquisitionFields = {
                    "acq_id": acq_id,
                    "location": loc.id,
                    "split": loc.split,
                    "modality": mod,
                    "sensor": entry.sensor,
                    "acq_index": i,
                    "date": acq.date,
                    "date_raw": issue.raw if issue else None,
                    "date_error": issue.error if issue else None,
                    "nodata_override": getattr(entry, "nodata", None),
                    "input_units": acq.input_units or getattr(entry, "input_units", None),
                    "offset": acq.offset,
                    "mask_classes": (
                        tuple(acq.mask_classes) if acq.mask_classes is not None else None
                    ),
                }
                if source_error is not None:
                    items.append(
                        RasterItem(
                            item_id=f"{acq_id}/data",
                            path=catalog.resolve(acq.safe or Path()),
                            role="data",
                            layout="bands",
                            source_error=source_error,
                            **common,
                        )
                    )
                    continue
                if acq.file is not None:
                    items.append(
                        RasterItem(
                            item_id=f"{acq_id}/data",
                            path=catalog.resolve(acq.file),
                            role="data",
                            layout="file",
                            band_names=tuple(acq.band_names) if acq.band_names else None,
                            **common,
                        )
                    )
                for band, band_path in (acq.bands or {}).items():
                    role: Role = "scl" if band.upper() == "SCL" else "data"
                    items.append(
                        RasterItem(
                            item_id=f"{acq_id}/{role}/{band}",
                            path=catalog.resolve(band_path),
                            role=role,
                            layout="bands",
                            band_name=band,
                            **common,
                        )
                    )
                if acq.mask is not None:
                    items.append(
                        RasterItem(
                            item_id=f"{acq_id}/mask",
                            path=catalog.resolve(acq.mask),
                            role="mask",
                            layout="bands" if acq.bands else "file",
                            **common,
                        )
                    )
        if loc.labels is not None:
            items.append(
                RasterItem(
                    item_id=f"{loc.id}/labels",
                    acq_id=f"{loc.id}/labels",
                    path=catalog.resolve(loc.labels),
                    location=loc.id,
                    split=loc.split,
                    modality="labels",
                    sensor="labels",
                    acq_index=0,
                    role="labels",
                    layout="file",
                )
            )
    return items
