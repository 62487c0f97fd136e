"""Chipping: catalog locations -> aligned multi-modal time-series chips in a few large shards.

Per location (:func:`chip_location`): the location's grid is derived (UTM, 10 m), every
acquisition is opened once under the raster access policy (:mod:`skysense.data.raster_access`;
read directly when aligned with the grid, else through a WarpedVRT), the grid is read in blocks
of chip rows and, when one row of chips over the grid's width would not fit the memory budget,
of chip columns too (memory bounded whatever the raster's width), and chips are cut in memory. Each
location writes its own part (shards + rows) under
``out_dir/_parts``; :func:`merge_manifests` then concatenates the part shards into a few large
``shard-NNNNN.bin`` files (a new generation under new names) and swaps in ``manifest.parquet``
(columns in docs/interfaces.md) before it removes the old shards, then writes ``summary.json``.
:func:`chip_catalog` does both, with locations in a process pool.

A chip keeps, per modality, the chip's pixels and validity masks; time series keep their ISO dates
and a per-date ``valid`` flag (the date's nodata/cloud fraction within the chip is at most
``max_nodata_fraction``). A modality whose chip is over the nodata limit is dropped from that chip;
a chip with no Sentinel modality left (or nothing at all) is skipped and counted.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from rasterio.warp import transform as warp_transform
from rasterio.windows import Window

from skysense.core.atomic_files import write_text_atomic
from skysense.core.errors import NoValidDataError, SkySenseError
from skysense.core.modalities import SERIES
from skysense.data.catalog import Catalog, Location
from skysense.data.coregistration import LocationReader, location_grid
from skysense.data.raster_access import RasterTooLargeError
from skysense.data.regions import region_id
from skysense.data.settings import ChipSettings
from skysense.data.shards import (
    MANIFEST,
    ShardWriter,
    concatenate_shards,
    next_shard_index,
    remove_unreferenced_shards,
    sync_folder,
)

PARTS = "_parts"
STRIP_BUDGET_BYTES = 256 * 2**20
MANIFEST_COLUMNS = [
    "sample_id",
    "location",
    "split",
    "crs",
    "minx",
    "miny",
    "maxx",
    "maxy",
    "lat",
    "lon",
    "region",
    "size",
    "has_hr",
    "has_s2",
    "has_s1",
    "has_dem",
    "s2_dates",
    "s1_dates",
    "s2_valid",
    "s1_valid",
    "hr_date",
    "nodata_fraction",
    "shard",
    "offset",
    "nbytes",
]


@dataclass
class LocationResult:
    """Outcome of chipping one location; ``error`` set (and no chips) when it failed."""

    location: str
    index: int
    chips: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    invalid_dates: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    error_type: str | None = None
    seconds: float = 0.0


@dataclass
class ChipSummary:
    """Outcome of chipping a catalog."""

    chips: int
    locations: int
    failed: dict[str, str]
    skipped: dict[str, int]
    invalid_dates: dict[str, int]
    shards: list[str]
    manifest: str
    seconds: float = 0.0
    per_location: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def _pick_dates(usable: np.ndarray, fractions: np.ndarray, limit: int | None) -> np.ndarray:
    """Indices of at most ``limit`` dates: usable dates first (spread evenly over time), then the
    most valid of the others.
    """
    idx = np.arange(len(usable))
    if limit is None or len(idx) <= limit:
        return idx
    good = idx[usable]
    if len(good) >= limit:
        return good[np.round(np.linspace(0, len(good) - 1, limit)).astype(int)]
    rest = idx[~usable][np.argsort(-fractions[~usable], kind="stable")][: limit - len(good)]
    return np.sort(np.concatenate([good, rest]))


def _block_shape(
    n_rows: int, n_cols: int, s: ChipSettings, reader: LocationReader
) -> tuple[int, int]:
    """Chip rows and chip columns per block, so that one block of every modality (all its dates,
    data and mask; HR at ``hr_ratio``^2 pixels per Sentinel pixel) fits ``STRIP_BUDGET_BYTES``.

    Whole rows of chips when one fits; otherwise one row of chips split into column blocks (at
    least one chip), so a block's memory does not grow with the raster's width.
    """
    per_px = 0
    for mod, entries in reader.readers.items():
        c = len(s.bands.get(mod, ())) or 10
        t = len(entries) if mod in SERIES or mod == "hr" else 1  # HR dates are cached per block
        per_px += t * (c * 4 + 1) * (s.hr_ratio**2 if mod == "hr" else 1)
    per_px = max(per_px, 1)

    def fitting(px_across: int, limit: int) -> int:  # chips whose span fits beside px_across
        most = (STRIP_BUDGET_BYTES // (per_px * px_across) - s.size) // s.stride + 1
        return int(min(limit, max(1, most)))

    width = (n_cols - 1) * s.stride + s.size
    if per_px * width * s.size <= STRIP_BUDGET_BYTES:
        return fitting(width, n_rows), n_cols
    return 1, fitting(s.size, n_cols)


def chip_location(
    location: Location,
    root: str | Path,
    out_dir: str | Path,
    settings: ChipSettings,
    index: int = 0,
) -> LocationResult:
    """Chip one location into ``out_dir/_parts/NNNNN/`` (shards, ``rows.json``, ``result.json``).

    Never raises for bad data: a user-fixable error (bad file, no overlap, all nodata) is
    returned in ``LocationResult.error`` and the part is removed.
    """
    t0 = time.perf_counter()
    part = Path(out_dir) / PARTS / f"{index:05d}"
    if part.exists():
        shutil.rmtree(part)
    part.mkdir(parents=True)
    result = LocationResult(location=location.id, index=index)
    try:
        rows = _chip_location_rows(location, Path(root), part, settings, result)
        (part / "rows.json").write_text(json.dumps(rows))
    except SkySenseError as exc:
        shutil.rmtree(part, ignore_errors=True)
        part.mkdir(parents=True)
        result.chips, result.skipped, result.invalid_dates = 0, {}, {}
        result.error, result.error_type = str(exc), type(exc).__name__
    except Exception as exc:  # noqa: BLE001 - a bug or library error: report it, let other locations go on
        shutil.rmtree(part, ignore_errors=True)
        part.mkdir(parents=True)
        result.chips, result.skipped = 0, {}
        result.error = (
            f"location {location.id!r}: unexpected {type(exc).__name__}: {exc}\n"
            f"{traceback.format_exc(limit=3)}"
        )
        result.error_type = type(exc).__name__
    result.seconds = time.perf_counter() - t0
    (part / "result.json").write_text(json.dumps(asdict(result)))
    return result


def _chip_location_rows(
    location: Location, root: Path, part: Path, s: ChipSettings, result: LocationResult
) -> list[dict[str, Any]]:
    grid = location_grid(location, root, s.gsd_m, s.modalities, s.access)
    if grid.width * grid.height > s.access.max_pixels:
        raise RasterTooLargeError(
            f"location {location.id!r}: its {s.gsd_m:g} m grid is {grid.width} x {grid.height} = "
            f"{grid.width * grid.height:.3g} pixels, more than data.max_raster_pixels "
            f"({s.access.max_pixels}); split the location into smaller ones or check its files' "
            "georeferencing"
        )
    size, stride, r = s.size, s.stride, s.hr_ratio
    n_rows = (grid.height - size) // stride + 1 if grid.height >= size else 0
    n_cols = (grid.width - size) // stride + 1 if grid.width >= size else 0
    if n_rows == 0 or n_cols == 0:
        raise NoValidDataError(
            f"location {location.id!r}: the common footprint ({grid.width} x {grid.height} px at "
            f"{s.gsd_m} m) is smaller than one chip ({size} px); lower data.chip.size or add data"
        )
    rows: list[dict[str, Any]] = []
    valid_px: dict[str, int] = {}
    crs_str = grid.crs.to_string()
    bands = {m: list(b) for m, b in s.bands.items()}
    with (
        LocationReader(location, root, grid, r, s.modalities, bands, s.access) as reader,
        ShardWriter(part, "part", s.shard_bytes) as writer,
    ):
        mods = reader.modalities
        valid_px = {m: 0 for m in mods}
        per_rows, per_cols = _block_shape(n_rows, n_cols, s, reader)
        hr_seen = False
        for r0 in range(0, n_rows, per_rows):
            r1 = min(n_rows, r0 + per_rows)
            for c0 in range(0, n_cols, per_cols):
                c1 = min(n_cols, c0 + per_cols)
                width = grid.width - c0 * stride if c1 == n_cols else (c1 - 1 - c0) * stride + size
                win = Window(c0 * stride, r0 * stride, width, (r1 - 1 - r0) * stride + size)
                stacks = reader.read(win, [m for m in mods if m != "hr"])
                for m, st in stacks.items():
                    valid_px[m] += int(st.valid.any(axis=0).sum())
                hr_cache: dict[int | str, Any] = {}  # HR reads by date; 'valid_px' by date
                for cr in range(r0, r1):
                    y = (cr - r0) * stride
                    for cc in range(c0, c1):
                        x = (cc - c0) * stride
                        rec = _cut_chip(location, reader, stacks, hr_cache, win, y, x, s, result)
                        if rec is None:
                            continue
                        arrays, attrs, info = rec
                        sid = f"{location.id}_{cr:04d}_{cc:04d}"
                        ref = writer.write(sid, arrays, attrs)
                        minx = grid.x0 + cc * stride * grid.res
                        maxy = grid.y0 - cr * stride * grid.res
                        rows.append(
                            {
                                "sample_id": sid,
                                "location": location.id,
                                "split": location.split,
                                "crs": crs_str,
                                "minx": minx,
                                "miny": maxy - size * grid.res,
                                "maxx": minx + size * grid.res,
                                "maxy": maxy,
                                "size": size,
                                **info,
                                "shard": ref.shard,
                                "offset": ref.offset,
                                "nbytes": ref.nbytes,
                            }
                        )
                if "hr" in mods and "valid_px" in hr_cache:
                    hr_seen = True
                    valid_px["hr"] += sum(hr_cache["valid_px"].values())
    if "hr" in valid_px and not hr_seen:
        del valid_px["hr"]  # no chip got as far as HR: judged by the Sentinel modalities
    empty = [m for m, n in valid_px.items() if n == 0]
    if empty:
        files = "; ".join(f"{m}: {', '.join(reader.files.get(m, []))}" for m in empty)
        raise NoValidDataError(
            f"location {location.id!r}: no valid pixel in {', '.join(empty)} on the location grid "
            f"(all nodata, masked or cloud) [{files}]; fix the nodata value or drop those files"
        )
    if rows:
        xs = [(row["minx"] + row["maxx"]) / 2 for row in rows]
        ys = [(row["miny"] + row["maxy"]) / 2 for row in rows]
        lons, lats = warp_transform(grid.crs, "EPSG:4326", xs, ys)
        regions = region_id(np.array(lats), np.array(lons), 4096)
        for row, lon, lat, reg in zip(rows, lons, lats, np.atleast_1d(regions)):
            row.update(lat=float(lat), lon=float(lon), region=int(reg))
    result.chips = len(rows)
    return rows


def _hr_date(reader: LocationReader, cache: dict, win: Window, d: int):
    if d not in cache:
        cache[d] = reader.read_modality("hr", win, dates=[d])
    return cache[d]


def _cut_chip(
    location, reader, stacks, hr_cache, win, y, x, s: ChipSettings, result: LocationResult
):
    """Arrays, attrs and manifest fields of one chip, or None when skipped (counted)."""
    size, r, lim = s.size, s.hr_ratio, s.max_nodata_fraction
    arrays: dict[str, np.ndarray] = {}
    attrs: dict[str, Any] = {}
    info: dict[str, Any] = {f"has_{m}": False for m in ("hr", "s2", "s1", "dem")}
    info.update(s2_dates=[], s1_dates=[], s2_valid=[], s1_valid=[], hr_date=None)
    fractions: list[float] = []
    for mod, st in stacks.items():
        v = st.valid[:, y : y + size, x : x + size]
        frac = v.reshape(len(v), -1).mean(axis=1)
        if mod in SERIES:
            usable = frac >= 1.0 - lim
            result.invalid_dates[mod] = result.invalid_dates.get(mod, 0) + int((~usable).sum())
            cover = v.any(axis=0).mean()
            if not usable.any():
                result.skipped[f"{mod}_over_nodata_limit"] = (
                    result.skipped.get(f"{mod}_over_nodata_limit", 0) + 1
                )
                continue
            keep = _pick_dates(usable, frac, s.max_dates.get(mod))
            arrays[mod] = st.data[keep, :, y : y + size, x : x + size]
            attrs.setdefault("bands", {})[mod] = st.bands
            arrays[f"{mod}_mask"] = v[keep]
            info[f"{mod}_dates"] = [st.dates[i] for i in keep]
            info[f"{mod}_valid"] = [bool(usable[i]) for i in keep]
            fractions.append(1.0 - float(cover))
        else:  # dem
            if frac[0] < 1.0 - lim:
                result.skipped["dem_over_nodata_limit"] = (
                    result.skipped.get("dem_over_nodata_limit", 0) + 1
                )
                continue
            arrays["dem"] = st.data[0, :, y : y + size, x : x + size]
            attrs.setdefault("bands", {})["dem"] = st.bands
            arrays["dem_mask"] = v[0]
            fractions.append(1.0 - float(frac[0]))
        info[f"has_{mod}"] = True
    if set(stacks) & set(SERIES) and not (info["has_s2"] or info["has_s1"]):
        result.skipped["chip_over_nodata_limit"] = (
            result.skipped.get("chip_over_nodata_limit", 0) + 1
        )
        return None
    if "hr" in reader.readers:
        n = len(reader.readers["hr"])
        best = None
        for d in reversed(range(n)):  # latest HR date whose chip is valid enough
            st = _hr_date(reader, hr_cache, win, d)
            hv = st.valid[0, y * r : (y + size) * r, x * r : (x + size) * r]
            f = float(hv.mean())
            seen = hr_cache.setdefault("valid_px", {})
            if d not in seen:  # once per strip and date, not per chip
                seen[d] = int(st.valid.sum())
            if f >= 1.0 - lim:
                best = (d, st, hv, f)
                break
        if best is None:
            result.skipped["hr_over_nodata_limit"] = (
                result.skipped.get("hr_over_nodata_limit", 0) + 1
            )
        else:
            d, st, hv, f = best
            arrays["hr"] = st.data[0, :, y * r : (y + size) * r, x * r : (x + size) * r]
            arrays["hr_mask"] = hv
            attrs["hr_present"] = st.present
            attrs.setdefault("bands", {})["hr"] = st.bands
            info["has_hr"], info["hr_date"] = True, st.dates[0]
            fractions.append(1.0 - f)
    if not arrays:
        result.skipped["chip_over_nodata_limit"] = (
            result.skipped.get("chip_over_nodata_limit", 0) + 1
        )
        return None
    info["nodata_fraction"] = float(max(fractions))
    return arrays, attrs, info


def merge_manifests(
    out_dir: str | Path, results: list[LocationResult] | None = None, shard_bytes: int = 256 * 2**20
) -> ChipSummary:
    """Finalize chipping: concatenate part shards, write ``manifest.parquet`` and ``summary.json``.

    ``results`` defaults to the ``result.json`` files found under ``out_dir/_parts`` (so a flow
    that fanned ``chip_location`` out over machines can merge afterwards).

    Crash-safe, in this order: the new shards are written under names no file in ``out_dir`` has
    (and flushed to disk), the manifest naming them replaces the old one atomically, and only then
    are the shards it does not name removed (the previous generation, and leftovers of a merge
    that died), then the parts. Until the swap the previous manifest and its shards are intact;
    after it the new ones are; a merge that raises removes the shards it had written.
    """
    out = Path(out_dir)
    parts = sorted((out / PARTS).glob("[0-9]*"))
    if results is None:
        results = [
            LocationResult(**json.loads((p / "result.json").read_text()))
            for p in parts
            if (p / "result.json").exists()
        ]
    results = sorted(results, key=lambda x: x.index)
    sources = [f for p in parts for f in sorted(p.glob("part-*.bin"))]
    first = next_shard_index(out, "shard")
    try:
        moves = concatenate_shards(sources, out, "shard", shard_bytes, start=first)
        frames = []
        for p in parts:
            rows_file = p / "rows.json"
            if not rows_file.exists():
                continue
            rows = json.loads(rows_file.read_text())
            for row in rows:
                name, base = moves[p / row["shard"]]
                row["shard"], row["offset"] = name, row["offset"] + base
            frames.append(pd.DataFrame(rows, columns=MANIFEST_COLUMNS))
        df = (
            pd.concat(frames, ignore_index=True)
            if frames
            else pd.DataFrame(columns=MANIFEST_COLUMNS)
        )
        staged = _stage_manifest(df, out / MANIFEST)
        _swap_manifest(staged, out / MANIFEST)
    except BaseException:  # the old manifest is still in place: the new shards are unused
        _remove_new_shards(out, first)
        raise
    sync_folder(out)  # the swap survives a power loss before the old shards go
    new_shards = sorted({n for n, _ in moves.values()})
    remove_unreferenced_shards(out, set(new_shards), "shard")
    skipped: dict[str, int] = {}
    invalid: dict[str, int] = {}
    for res in results:
        for k, v in res.skipped.items():
            skipped[k] = skipped.get(k, 0) + v
        for k, v in res.invalid_dates.items():
            invalid[k] = invalid.get(k, 0) + v
    summary = ChipSummary(
        chips=len(df),
        locations=len(results),
        failed={r.location: r.error for r in results if r.error},
        skipped=skipped,
        invalid_dates=invalid,
        shards=new_shards,
        manifest=str(out / MANIFEST),
        seconds=sum(r.seconds for r in results),
        per_location=[asdict(r) for r in results],
    )
    _write_summary(summary, out)
    shutil.rmtree(out / PARTS, ignore_errors=True)
    return summary


def _remove_new_shards(out: Path, first: int) -> None:
    """Remove ``shard-NNNNN.bin`` numbered from ``first``: the generation a failed merge wrote."""
    for f in out.glob("shard-*.bin"):
        stem = f.stem.removeprefix("shard-")
        if stem.isdigit() and int(stem) >= first:
            f.unlink(missing_ok=True)
    (out / f"{MANIFEST}.tmp").unlink(missing_ok=True)


def _write_summary(summary: ChipSummary, out: Path) -> None:
    """``summary.json``, replaced atomically."""
    write_text_atomic(out / "summary.json", json.dumps(summary.to_dict(), indent=2))


def _stage_manifest(df, path: Path) -> Path:
    """Write the manifest beside ``path`` (``manifest.parquet.tmp``, flushed to disk); returns
    it.
    """
    schema = pa.schema(
        [
            ("sample_id", pa.string()),
            ("location", pa.string()),
            ("split", pa.string()),
            ("crs", pa.string()),
            ("minx", pa.float64()),
            ("miny", pa.float64()),
            ("maxx", pa.float64()),
            ("maxy", pa.float64()),
            ("lat", pa.float64()),
            ("lon", pa.float64()),
            ("region", pa.int64()),
            ("size", pa.int64()),
            ("has_hr", pa.bool_()),
            ("has_s2", pa.bool_()),
            ("has_s1", pa.bool_()),
            ("has_dem", pa.bool_()),
            ("s2_dates", pa.list_(pa.string())),
            ("s1_dates", pa.list_(pa.string())),
            ("s2_valid", pa.list_(pa.bool_())),
            ("s1_valid", pa.list_(pa.bool_())),
            ("hr_date", pa.string()),
            ("nodata_fraction", pa.float64()),
            ("shard", pa.string()),
            ("offset", pa.int64()),
            ("nbytes", pa.int64()),
        ]
    )
    table = pa.Table.from_pandas(df, schema=schema, preserve_index=False)
    tmp = path.with_name(f"{path.name}.tmp")
    with open(tmp, "wb") as fh:
        pq.write_table(table, fh)
        fh.flush()
        os.fsync(fh.fileno())
    return tmp


def _swap_manifest(staged: Path, path: Path) -> None:
    """Put the staged manifest in place atomically (``os.replace``)."""
    os.replace(staged, path)


def chip_catalog(
    catalog: Catalog,
    out_dir: str | Path,
    settings: ChipSettings,
    progress: Callable[[LocationResult], None] | None = None,
) -> ChipSummary:
    """Chip every location of a catalog into ``out_dir`` (shards + ``manifest.parquet``).

    Args:
        catalog: the scene catalog (usually the validated ``accepted_catalog.yaml``).
        out_dir: chips folder; previous shards and manifest there are replaced.
        settings: what to chip and how (:meth:`ChipSettings.build` from ``params.yaml: data``).
        progress: called with each location's result as it finishes.

    Returns:
        The summary: chips written, failed locations with their errors, skipped counts.
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / PARTS, ignore_errors=True)
    results: list[LocationResult] = []
    jobs = [(loc, catalog.root, out, settings, i) for i, loc in enumerate(catalog.locations)]
    if settings.workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            res = chip_location(*job)
            results.append(res)
            if progress:
                progress(res)
    else:
        with ProcessPoolExecutor(max_workers=min(settings.workers, len(jobs))) as pool:
            futures = [pool.submit(chip_location, *job) for job in jobs]
            for fut in as_completed(futures):
                res = fut.result()
                results.append(res)
                if progress:
                    progress(res)
    summary = merge_manifests(out, results, settings.shard_bytes)
    summary.seconds = time.perf_counter() - t0
    _write_summary(summary, out)
    return summary
