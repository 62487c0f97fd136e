"""``skysense data stac``: a STAC snapshot -> ``catalog.yaml``, ``items.json``, ``skipped.parquet``.

:func:`ingest_snapshot` reads a saved ItemCollection, turns every item into an acquisition draft
of its modality (:mod:`.assets`) or a skipped row with its reason, lays the grid of location
cells (:mod:`.cells`), and writes, in ``OUT``:

- ``catalog.yaml``: the scene catalog (:mod:`skysense.data.catalog`); one location per cell that
  every ``data.stac.required_modalities`` covers, with its extent (``crs``, ``bounds``) and, per
  modality, the acquisitions whose items cover the cell entirely (one per date: the least cloudy,
  then the first item id; a DEM: one), each with its date, band files, cloud mask and classes,
  DN offset and processing baseline (Sentinel-2) and input units (Sentinel-1);
- ``items.json``: the snapshot (an ItemCollection, relative hrefs made absolute), unless it is
  the input file itself;
- ``skipped.parquet``: one row per item that cannot be used (``item_id``, ``collection``,
  ``modality``, ``check``, ``reason``).

The same snapshot and settings give byte-identical files (items, cells and acquisitions are
sorted). Nothing is downloaded unless ``data.stac.download`` is set and the hrefs are remote (of
hosts in ``data.remote.allowed_hosts``): the files then go to ``OUT/assets/<item>/`` (a file
already there is kept).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.parquet as pq
import pystac
import requests
import shapely
import shapely.geometry
import yaml
from rasterio.warp import transform as warp_transform

from skysense.core.atomic_files import replace_atomically, write_text_atomic
from skysense.core.errors import SkySenseError
from skysense.core.modalities import MODALITIES
from skysense.data.catalog import Acquisition, Catalog, Location, ModalityEntry
from skysense.data.settings import StacIngestSettings
from skysense.data.stac.assets import AcquisitionDraft, ItemSkipped, draft_acquisition
from skysense.data.stac.cells import Cell, candidate_cells, covering, in_own_zone
from skysense.data.stac.snapshot import load_snapshot

CATALOG = "catalog.yaml"
SNAPSHOT = "items.json"
SKIPPED = "skipped.parquet"
SKIPPED_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("collection", pa.string()),
        ("modality", pa.string()),
        ("check", pa.string()),
        ("reason", pa.string()),
    ]
)


class StacIngestError(SkySenseError):
    """The snapshot gives no catalog (no location), or its assets cannot be downloaded."""


@dataclass
class StacIngestResult:
    """What an ingest wrote and found."""

    catalog: str | None
    snapshot: str
    skipped_file: str
    items: int
    used_items: int
    skipped: dict[str, int]
    locations: int
    acquisitions: dict[str, int]
    downloaded: int = 0
    seconds: float = 0.0
    unused_items: int = 0
    per_modality_items: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def _geometry(item: pystac.Item) -> shapely.Geometry | None:
    if not item.geometry:
        return None
    try:
        geom = shapely.geometry.shape(item.geometry)
    except Exception:  # noqa: BLE001 - a malformed GeoJSON geometry is the item's fault
        return None
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    return None if geom.is_empty else geom


def _is_relative(href: str) -> bool:
    return not urlsplit(href).scheme and not os.path.isabs(href)


def _copy_snapshot(src: Path, items: list[pystac.Item], dest: Path) -> Path:
    """``dest``: the snapshot file as it is, or, when hrefs are relative, with them made
    absolute (so the copy reads the same files wherever it lies).
    """
    if not any(_is_relative(a.href) for it in items for a in it.assets.values()):
        with replace_atomically(dest) as tmp:
            shutil.copyfile(src, tmp)
        return dest
    base = src.parent
    if src.suffix.lower() in (".ndjson", ".jsonl"):
        features = [json.loads(line) for line in src.read_text().splitlines() if line.strip()]
        data: dict[str, Any] = {"type": "FeatureCollection", "features": features}
    else:
        data = json.loads(src.read_text())
        if data.get("type") == "Feature":
            data = {"type": "FeatureCollection", "features": [data]}
    for feature in data.get("features", []):
        for asset in (feature.get("assets") or {}).values():
            href = asset.get("href") if isinstance(asset, dict) else None
            if isinstance(href, str) and _is_relative(href):
                asset["href"] = os.path.abspath(os.path.join(base, href))
    write_text_atomic(dest, json.dumps(data) + "\n")
    return dest


def _write_catalog(catalog: Catalog, path: Path) -> Path:
    """The catalog as YAML (the :func:`~skysense.data.catalog.save_catalog` layout: paths inside
    the folder relative to it), dumped with libyaml: large catalogs write in seconds.
    """
    root = os.path.abspath(path.parent)

    def rel(text: str) -> str:
        if "://" in text or text.startswith(("http:/", "https:/")):
            return text
        full = os.path.abspath(os.path.join(root, text))
        inside = os.path.commonpath([root, full]) == root
        return os.path.relpath(full, root) if inside else full

    data = catalog.model_dump(mode="json", exclude={"root"}, exclude_none=True)
    for loc in data["locations"]:
        for entry in loc["modalities"].values():
            for acq in entry["acquisitions"]:
                for key in ("file", "mask", "safe"):
                    if key in acq:
                        acq[key] = rel(acq[key])
                if "bands" in acq:
                    acq["bands"] = {k: rel(v) for k, v in acq["bands"].items()}
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    write_text_atomic(path, yaml.dump(data, Dumper=dumper, sort_keys=False))
    return path


def _write_skipped(rows: list[dict[str, Any]], path: Path) -> Path:
    rows = sorted(rows, key=lambda r: (r["item_id"], r["check"]))
    table = pa.Table.from_pylist(rows, schema=SKIPPED_SCHEMA)
    with replace_atomically(path) as tmp:
        pq.write_table(table, tmp)
    return path


def _download(url: str, dest: Path) -> Path:
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with requests.get(url, stream=True, timeout=60) as resp:
            resp.raise_for_status()
            with replace_atomically(dest) as tmp, open(tmp, "wb") as fh:
                fh.writelines(resp.iter_content(1 << 20))
    except (requests.RequestException, OSError) as exc:
        host = urlsplit(url).hostname
        raise StacIngestError(
            f"downloading an asset from {host} failed ({type(exc).__name__}); "
            "retry, or set data.stac.download false to read it remotely"
        ) from None
    return dest


def _choose(drafts: list[AcquisitionDraft], dated: bool) -> list[AcquisitionDraft]:
    """One acquisition per date (least cloudy, then first item id); undated: the first item."""
    ranked = sorted(
        drafts, key=lambda d: (d.cloud_cover if d.cloud_cover is not None else 0.0, d.item_id)
    )
    if not dated:
        return ranked[:1]
    by_date: dict[Any, AcquisitionDraft] = {}
    for d in ranked:
        by_date.setdefault(d.date, d)
    return [by_date[k] for k in sorted(by_date, key=lambda x: (x is None, x))]


def _acquisition(d: AcquisitionDraft, local: dict[str, str]) -> Acquisition:
    def loc(href: str) -> Path:
        return Path(local.get(href, href))

    return Acquisition(
        date=d.date,
        file=loc(d.file) if d.file else None,
        band_names=list(d.band_names) if d.band_names else None,
        bands={b: loc(h) for b, h in d.bands.items()} if d.bands else None,
        mask=loc(d.mask) if d.mask else None,
        mask_classes=list(d.mask_classes) if d.mask_classes is not None else None,
        offset=d.offset,
        processing_baseline=d.processing_baseline,
        input_units=d.input_units,
    )


def ingest_snapshot(
    snapshot: str | Path,
    out_dir: str | Path,
    settings: StacIngestSettings,
    area: tuple[float, float, float, float] | None = None,
) -> StacIngestResult:
    """Write ``catalog.yaml``, ``items.json`` and ``skipped.parquet`` for a STAC snapshot.

    Args:
        snapshot: the saved ItemCollection (JSON or ``.ndjson``); relative hrefs resolve
            against its folder.
        out_dir: the output folder.
        settings: ``data.stac``, bands per modality, SCL classes, access policy.
        area: ``(west, south, east, north)`` in degrees; items outside it are skipped and
            locations have their centre inside it (None: wherever the items are).

    Returns:
        Counts and the paths written (``catalog`` None when no location was found; the other
        files are still written).

    Raises:
        StacSnapshotError: the snapshot cannot be read.
        StacIngestError: a download failed.
    """
    start = time.perf_counter()
    snap_path = Path(snapshot).resolve()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = snap_path.parent
    loaded = load_snapshot(snap_path)
    stac = settings.stac
    area_box = shapely.box(*area) if area is not None else None
    skipped: list[dict[str, Any]] = [
        {**row, "collection": None, "modality": None} for row in loaded.invalid
    ]
    drafts: dict[str, list[tuple[AcquisitionDraft, shapely.Geometry]]] = defaultdict(list)
    sensors: dict[str, str] = {}
    seen: set[tuple[str | None, str]] = set()
    for item in sorted(loaded.items, key=lambda it: (it.id, it.collection_id or "")):
        row = {"item_id": item.id, "collection": item.collection_id, "modality": None}
        key = (item.collection_id, item.id)
        if key in seen:
            skipped.append(
                {**row, "check": "duplicate_item", "reason": "the snapshot holds this item twice"}
            )
            continue
        seen.add(key)
        geom = _geometry(item)
        if geom is None:
            skipped.append(
                {**row, "check": "no_geometry", "reason": "the item has no usable geometry"}
            )
            continue
        if area_box is not None and not geom.intersects(area_box):
            skipped.append(
                {
                    **row,
                    "check": "outside_area",
                    "reason": f"its geometry lies outside the area {list(area or ())} (degrees)",
                }
            )
            continue
        try:
            draft = draft_acquisition(item, base, settings)
        except ItemSkipped as exc:
            skipped.append({**row, "check": exc.check, "reason": exc.reason})
            continue
        if sensors.setdefault(draft.modality, draft.sensor) != draft.sensor:
            skipped.append(
                {
                    **row,
                    "modality": draft.modality,
                    "check": "sensor_conflict",
                    "reason": f"modality {draft.modality} is read as sensor "
                    f"{sensors[draft.modality]!r}, this item's rule names {draft.sensor!r}",
                }
            )
            continue
        drafts[draft.modality].append((draft, geom))
    side = stac.location_m
    required = [m for m in stac.required_modalities] or [m for m in MODALITIES if m in drafts]
    anchor = drafts.get(required[0], []) if required else []
    cells = sorted(c for c in candidate_cells([g for _, g in anchor], side) if in_own_zone(c, side))
    if area_box is not None:
        cells = [c for c in cells if area_box.contains(_centre(c, side))]
    cover = {m: covering(cells, [g for _, g in drafts[m]], side) for m in drafts}
    used: set[str] = set()
    chosen: list[tuple[Cell, dict[str, list[AcquisitionDraft]]]] = []
    for ci, cell in enumerate(cells):
        if not all(ci in cover.get(m, {}) for m in required):
            continue
        per_mod: dict[str, list[AcquisitionDraft]] = {}
        for m in MODALITIES:
            hits = [drafts[m][gi][0] for gi in cover.get(m, {}).get(ci, [])]
            if hits:
                rule = stac.rules[hits[0].rule]
                per_mod[m] = _choose(hits, rule.dated)
                used.update(d.item_id for d in per_mod[m])
        chosen.append((cell, per_mod))
    local: dict[str, str] = {}
    if stac.download:
        for _, per_mod in chosen:
            for ds in per_mod.values():
                for d in ds:
                    for h in d.hrefs:
                        if urlsplit(h).scheme in ("http", "https") and h not in local:
                            name = Path(urlsplit(h).path).name or "asset"
                            local[h] = str(
                                _download(h, out / "assets" / d.item_id / name).resolve()
                            )
    locations = []
    counts: dict[str, int] = defaultdict(int)
    for cell, per_mod in chosen:
        mods: dict[str, ModalityEntry] = {}
        for mod_name, ds in per_mod.items():
            mods[mod_name] = ModalityEntry(
                sensor=sensors[mod_name], acquisitions=[_acquisition(d, local) for d in ds]
            )
            counts[mod_name] += len(ds)
        locations.append(
            Location(
                id=cell.location_id(stac.name, side),
                split="pretrain",
                crs=f"EPSG:{cell.epsg}",
                bounds=cell.bounds(side),
                modalities=mods,
            )
        )
    catalog_path = None
    target = out / CATALOG
    if locations:
        cat = Catalog(name=stac.name, locations=locations, root=out.resolve())
        catalog_path = str(_write_catalog(cat, target))
    elif target.exists():
        target.unlink()  # an old catalog would stand for this snapshot
    snap_out = out / SNAPSHOT
    if snap_out.resolve() != snap_path:
        _copy_snapshot(snap_path, loaded.items, snap_out)
    _write_skipped(skipped, out / SKIPPED)
    n_items = len(loaded.items) + len(loaded.invalid)
    all_checks: dict[str, int] = defaultdict(int)
    for r in skipped:
        all_checks[r["check"]] += 1
    usable = sum(len(v) for v in drafts.values())
    return StacIngestResult(
        catalog=catalog_path,
        snapshot=str(snap_out),
        skipped_file=str(out / SKIPPED),
        items=n_items,
        used_items=len(used),
        skipped=dict(sorted(all_checks.items())),
        locations=len(locations),
        acquisitions=dict(counts),
        downloaded=len(local),
        seconds=round(time.perf_counter() - start, 3),
        unused_items=usable - len(used),
        per_modality_items={m: len(v) for m, v in sorted(drafts.items())},
    )


def _centre(cell: Cell, side: float) -> shapely.Point:
    x0, y0, x1, y1 = cell.bounds(side)
    lon, lat = warp_transform(f"EPSG:{cell.epsg}", "EPSG:4326", [(x0 + x1) / 2], [(y0 + y1) / 2])
    return shapely.Point(lon[0], lat[0])
