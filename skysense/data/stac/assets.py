"""One STAC item -> one acquisition of a modality, or the reason it cannot be used.

The modality comes from the item's collection, else its ``platform`` (``data.stac.rules``). Band
assets are found by asset key, ``eo:bands`` name or common name (the rule's ``assets`` aliases,
and the sensor's own band names: ``B4``, ``B04`` and ``b04`` are Sentinel-2 ``B04``): one asset per
band (``bands:`` in the catalog), or one multi-band asset whose ``eo:bands`` name every band
(``file:`` with ``band_names:``). Assets whose roles say they are not data (thumbnails, metadata)
are ignored, and so are data assets that name no band (``AOT``, ``WVP``, ``visual``).

An item is skipped, with a reason (:class:`ItemSkipped`: ``check`` and a sentence), when it has no
datetime, no geometry or lies outside the area, its collection/platform has no rule, it is too
cloudy, a band asset the modality needs is missing, a single-band asset names a band the sensor
does not have, a local href does not exist, a remote href's host is not in
``data.remote.allowed_hosts`` (or the scheme is not http/https), or (Sentinel-2) its DN offset
cannot be known (see :mod:`skysense.data.products.sentinel2`).
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pystac

from skysense.core.sensors import SensorSpec, get_sensor
from skysense.data.products.sentinel2 import (
    BASELINE_04_00_DATE,
    baseline_from_product_id,
    format_baseline,
    offset_for_baseline,
    offset_problem,
    parse_baseline,
)
from skysense.data.settings import StacIngestSettings, StacModalityRule

S2_SCALE = 1e-4
_NOT_DATA_ROLES = {
    "thumbnail",
    "overview",
    "metadata",
    "visual",
    "quicklook",
    "preview",
    "snow-ice",
    "water-mask",
    "iso-19139",
    "legend",
}


class ItemSkipped(Exception):
    """An item that cannot become an acquisition: ``check`` (short name) and ``reason``."""

    def __init__(self, check: str, reason: str) -> None:
        super().__init__(reason)
        self.check, self.reason = check, reason


@dataclass(frozen=True)
class AcquisitionDraft:
    """What one usable item contributes to the locations it covers.

    Attributes:
        item_id, collection: the item.
        rule: the name of the rule that matched (``data.stac.rules``).
        modality, sensor: where it goes in the catalog.
        date: acquisition date (UTC), None for undated modalities (DEM).
        bands: band name -> href (local path or URL) for one file per band, or None.
        file, band_names: a multi-band href and its band names, or None.
        mask, mask_classes: the cloud mask href and its cloud classes.
        offset, processing_baseline: Sentinel-2 DN offset and baseline (recorded).
        input_units: units of the stored values, when the rule states them.
        cloud_cover: ``eo:cloud_cover`` (percent), None when absent.
    """

    item_id: str
    collection: str | None
    rule: str
    modality: str
    sensor: str
    date: dt.date | None
    bands: dict[str, str] | None = None
    file: str | None = None
    band_names: tuple[str, ...] | None = None
    mask: str | None = None
    mask_classes: tuple[int, ...] | None = None
    offset: float | None = None
    processing_baseline: str | None = None
    input_units: str | None = None
    cloud_cover: float | None = None
    hrefs: tuple[str, ...] = field(default_factory=tuple)


def match_rule(item: pystac.Item, settings: StacIngestSettings) -> tuple[str, StacModalityRule]:
    """The rule of an item: by collection, else by platform.

    Raises:
        ItemSkipped: no rule matches (``unknown_collection``).
    """
    rules = settings.stac.rules
    coll = (item.collection_id or "").lower()
    for name, rule in rules.items():
        if coll and coll in (c.lower() for c in rule.collections):
            return name, rule
    platform = str(item.properties.get("platform") or "").lower()
    for name, rule in rules.items():
        if platform and platform in (p.lower() for p in rule.platforms):
            return name, rule
    raise ItemSkipped(
        "unknown_collection",
        f"collection {item.collection_id!r} / platform {platform or None!r} matches no rule of "
        f"data.stac.rules ({', '.join(rules)}); add the collection to a rule's collections",
    )


def item_date(item: pystac.Item) -> dt.date | None:
    """The item's acquisition date (UTC): ``datetime``, else ``start_datetime``; None if absent."""
    when = item.datetime
    if when is None:
        start = item.properties.get("start_datetime")
        if start:
            try:
                when = dt.datetime.fromisoformat(str(start))
            except ValueError:
                return None
    if when is None:
        return None
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC)
    return when.date()


def _eo_bands(asset: pystac.Asset) -> list[dict[str, Any]]:
    bands = asset.extra_fields.get("eo:bands")
    if bands is None:  # STAC 1.1: "bands" with eo:common_name
        bands = asset.extra_fields.get("bands")
    return [b for b in bands if isinstance(b, dict)] if isinstance(bands, list) else []


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


class BandNames:
    """Maps asset keys and ``eo:bands`` names to one sensor's band names."""

    def __init__(self, spec: SensorSpec, aliases: dict[str, str]) -> None:
        self.spec = spec
        self.lookup: dict[str, str] = {}
        for b in spec.band_names:
            self.lookup[_norm(b)] = b
            m = re.fullmatch(r"B0(\d)", b)
            if m:  # Sentinel-2 B4 == B04
                self.lookup[f"b{m.group(1)}"] = b
        for alias, band in aliases.items():
            if band in spec.band_names:
                self.lookup[_norm(alias)] = band

    def band(self, *candidates: str | None) -> str | None:
        """The first candidate that names a band of the sensor."""
        for c in candidates:
            if c and _norm(c) in self.lookup:
                return self.lookup[_norm(c)]
        return None


def _is_data(asset: pystac.Asset) -> bool:
    roles = set(asset.roles or [])
    return not roles or "data" in roles or not (roles & _NOT_DATA_ROLES)


def resolve_href(
    href: str, base: Path, settings: StacIngestSettings, item_id: str, key: str
) -> str:
    """A local path (absolute) or an allowed http(s) URL for an asset href.

    Raises:
        ItemSkipped: a local file that does not exist (``href_missing``), a remote host not in
            ``data.remote.allowed_hosts`` or a scheme other than http/https/file
            (``remote_not_allowed``).
    """
    parts = urlsplit(href)
    if parts.scheme in ("http", "https"):
        host = (parts.hostname or "").lower()
        hosts = settings.access.allowed_hosts
        if host in hosts or (parts.port is not None and f"{host}:{parts.port}" in hosts):
            return href
        raise ItemSkipped(
            "remote_not_allowed",
            f"asset {key!r} is remote ({parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}/...) and "
            "remote reads are off for that host; add it to data.remote.allowed_hosts (and set "
            "data.stac.download to copy the files), or point the item at local files",
        )
    if parts.scheme not in ("", "file") and not re.fullmatch(r"[A-Za-z]", parts.scheme):
        raise ItemSkipped(
            "remote_not_allowed",
            f"asset {key!r} has a {parts.scheme}:// href; only local files and http(s) URLs of "
            "data.remote.allowed_hosts are read (download it, or use the https URL)",
        )
    text = parts.path if parts.scheme == "file" else href
    path = os.path.abspath(os.path.join(base, text))  # normalised, links kept (no resolve: fast)
    if not os.path.isfile(path):
        raise ItemSkipped(
            "href_missing",
            f"asset {key!r} of item {item_id!r}: {path} does not exist; fix the href or restore "
            "the file",
        )
    return path


def _s2_offset(
    item: pystac.Item, assets: list[pystac.Asset], date: dt.date | None
) -> tuple[float | None, str | None]:
    """Sentinel-2 DN offset and baseline of an item (``raster:bands``, then the baseline).

    Raises:
        ItemSkipped: a scale other than 1e-4, offsets that differ between bands, or an unknown
            offset for a date from 2022-01-25 on (``offset_unknown``).
    """
    props = item.properties
    baseline_text = props.get("s2:processing_baseline") or baseline_from_product_id(
        str(props.get("s2:product_uri") or props.get("s2:product_id") or item.id)
    )
    version = parse_baseline(baseline_text)
    baseline = format_baseline(version) if version else None
    kinds = {
        str(rb.get("data_type", ""))
        for a in assets
        for rb in (a.extra_fields.get("raster:bands") or [])
        if isinstance(rb, dict)
    }
    if kinds and all(k.startswith("float") for k in kinds):
        return None, baseline  # reflectance already: no DN, no offset
    found: set[float] = set()
    for asset in assets:
        for rb in asset.extra_fields.get("raster:bands") or []:
            if not isinstance(rb, dict) or ("offset" not in rb and "scale" not in rb):
                continue
            scale = float(rb.get("scale", S2_SCALE))
            if abs(scale - S2_SCALE) > 1e-12:
                raise ItemSkipped(
                    "unsupported_scale",
                    f"raster:bands scale {scale:g} is not 1e-4 (reflectance = DN / 10000)",
                )
            found.add(round(float(rb.get("offset", 0.0)) / scale, 6))
    if len(found) > 1:
        raise ItemSkipped(
            "offset_unknown", f"the band assets state different offsets {sorted(found)}"
        )
    if found:
        return found.pop(), baseline
    if props.get("earthsearch:boa_offset_applied") is True:
        return 0.0, baseline  # harmonised: the offset is already in the DN
    offset = offset_for_baseline(baseline)
    if offset is None:
        problem = offset_problem(date, None, f"item {item.id!r}")
        if problem is not None:
            raise ItemSkipped(
                "offset_unknown",
                problem.replace(
                    "State the offset of the acquisition in the catalog",
                    "Give the item s2:processing_baseline or raster:bands offset/scale, or state "
                    "it in the catalog",
                ),
            )
        offset = 0.0 if date is not None and date < BASELINE_04_00_DATE else None
    return offset, baseline


def draft_acquisition(
    item: pystac.Item, base: Path, settings: StacIngestSettings
) -> AcquisitionDraft:
    """The acquisition an item stands for (see the module doc).

    Args:
        item: the STAC item.
        base: folder relative hrefs resolve against (the snapshot file's).
        settings: ``data.stac``, bands, SCL classes and the access policy.

    Raises:
        ItemSkipped: the item cannot be used; ``check`` and ``reason`` say why.
    """
    name, rule = match_rule(item, settings)
    spec = get_sensor(rule.sensor)
    date = item_date(item)
    if date is None and rule.dated:
        raise ItemSkipped(
            "no_datetime",
            "the item has no datetime (nor start_datetime); acquisitions "
            f"of {rule.modality} need a date",
        )
    cloud = item.properties.get("eo:cloud_cover")
    cloud = float(cloud) if isinstance(cloud, (int, float)) else None
    if rule.cloud_filter and cloud is not None and cloud > settings.stac.max_cloud_cover:
        raise ItemSkipped(
            "cloud_cover",
            f"eo:cloud_cover {cloud:g} % is over data.stac.max_cloud_cover "
            f"({settings.stac.max_cloud_cover:g} %)",
        )
    names = BandNames(spec, rule.assets)
    wanted = list(settings.bands.get(rule.modality) or spec.default_bands)
    needed = [b for b in wanted if not (spec.modality == "hr" and b == "N")]
    single: dict[str, tuple[str, pystac.Asset]] = {}
    multi: list[tuple[str, pystac.Asset, list[str]]] = []
    mask: tuple[str, pystac.Asset] | None = None
    for key in sorted(item.assets):
        asset = item.assets[key]
        if rule.mask_asset and _norm(key) == _norm(rule.mask_asset):
            mask = (key, asset)
            continue
        if not _is_data(asset):
            continue
        eo = _eo_bands(asset)
        if len(eo) > 1:
            mapped = [
                names.band(b.get("name"), b.get("common_name"), b.get("eo:common_name")) for b in eo
            ]
            if any(m is None for m in mapped):
                unknown = [
                    b.get("name") or b.get("common_name") for b, m in zip(eo, mapped) if m is None
                ]
                raise ItemSkipped(
                    "unknown_band",
                    f"asset {key!r} holds band(s) {unknown} that sensor "
                    f"{spec.name!r} does not have; map them in data.stac.rules.{name}.assets",
                )
            multi.append((key, asset, [m for m in mapped if m is not None]))
            continue
        first = eo[0] if eo else {}
        band = names.band(
            key, first.get("name"), first.get("common_name"), first.get("eo:common_name")
        )
        if band is None:
            if eo and (first.get("name") or first.get("common_name")):
                raise ItemSkipped(
                    "unknown_band",
                    f"asset {key!r} holds band "
                    f"{first.get('name') or first.get('common_name')!r}, which sensor "
                    f"{spec.name!r} does not have (bands: {', '.join(spec.band_names)}); "
                    f"map it in data.stac.rules.{name}.assets or drop the asset",
                )
            continue
        single.setdefault(band, (key, asset))
    kwargs: dict[str, Any] = {}
    used: list[pystac.Asset] = []
    hrefs: list[str] = []
    if all(b in single for b in needed):
        bands = {}
        for b in wanted:
            if b in single:
                key, asset = single[b]
                bands[b] = resolve_href(asset.href, base, settings, item.id, key)
                used.append(asset)
                hrefs.append(bands[b])
        kwargs["bands"] = bands
    else:
        whole = next(((k, a, m) for k, a, m in multi if all(b in m for b in needed)), None)
        if whole is None:
            missing = [b for b in needed if b not in single]
            have = sorted(set(single) | {b for _, _, m in multi for b in m})
            raise ItemSkipped(
                "missing_band_asset",
                f"no asset for band(s) {', '.join(missing)} of "
                f"{rule.modality} (the item has {', '.join(have) or 'none'}); add the "
                f"assets or map their keys in data.stac.rules.{name}.assets",
            )
        key, asset, names_in_file = whole
        kwargs["file"] = resolve_href(asset.href, base, settings, item.id, key)
        kwargs["band_names"] = tuple(names_in_file)
        used.append(asset)
        hrefs.append(kwargs["file"])
    if mask is not None:
        kwargs["mask"] = resolve_href(mask[1].href, base, settings, item.id, mask[0])
        kwargs["mask_classes"] = tuple(settings.scl_cloud_classes)
        hrefs.append(kwargs["mask"])
    if spec.name == "sentinel2" and rule.input_units in (None, "dn"):
        kwargs["offset"], kwargs["processing_baseline"] = _s2_offset(item, used, date)
    return AcquisitionDraft(
        item_id=item.id,
        collection=item.collection_id,
        rule=name,
        modality=rule.modality,
        sensor=rule.sensor,
        date=date if rule.dated else None,
        input_units=rule.input_units,
        cloud_cover=cloud,
        hrefs=tuple(hrefs),
        **kwargs,
    )
