"""Location profiling: how a location's rasters fit together.

Each location gets a *reference*: the CRS most of its reference-modality rasters use (the first
of ``validation.required_modalities`` it has, else the first modality present) and the extent of
those rasters in that CRS. Every raster is then placed against it (``location_overlap``: share
of the raster's footprint inside the extent, after reprojection; ``crs_matches_location``), and
each location gets one row: modalities present, acquisitions and distinct dates per modality,
date span, and the footprint IoU between each pair of modalities.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from functools import lru_cache

import pandas as pd
from rasterio.crs import CRS
from rasterio.warp import transform_bounds

from skysense.core.modalities import MODALITIES
from skysense.data.catalog import Catalog, Location
from skysense.validation.settings import ValidationConfig

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class LocationReference:
    """The CRS and extent (metres in that CRS) the rasters of one location are judged against."""

    modality: str
    crs: str
    extent: Box


@lru_cache(maxsize=256)
def _crs(text: str) -> CRS:
    return CRS.from_user_input(text)


def box_in(box: Box, src_crs: str, dst_crs: str) -> Box | None:
    """A bounding box reprojected to another CRS (densified edges); None when it cannot be."""
    if src_crs == dst_crs:
        return box
    try:
        return tuple(transform_bounds(_crs(src_crs), _crs(dst_crs), *box, densify_pts=21))
    except Exception:  # noqa: BLE001 - an unprojectable box just has no overlap
        return None


def _area(b: Box) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def _intersection(a: Box, b: Box) -> float:
    return _area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes in the same CRS."""
    inter = _intersection(a, b)
    union = _area(a) + _area(b) - inter
    return inter / union if union > 0 else 0.0


def _union(boxes: list[Box]) -> Box:
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def _boxes(rows: pd.DataFrame) -> list[tuple[str, Box]]:
    return [(r.crs, (r.minx, r.miny, r.maxx, r.maxy)) for r in rows.itertuples()]


def location_references(table: pd.DataFrame, cfg: ValidationConfig) -> dict[str, LocationReference]:
    """The reference CRS and extent of every location with a readable, georeferenced data raster."""
    located = table[(table["role"] == "data") & table["crs"].notna() & table["read_error"].isna()]
    refs: dict[str, LocationReference] = {}
    for loc, rows in located.groupby("location", sort=False):
        present = list(dict.fromkeys(rows["modality"]))
        order = [m for m in cfg.required_modalities if m in present] + present
        mod_rows = rows[rows["modality"] == order[0]]
        crs = mod_rows["crs"].mode().iloc[0]
        same = mod_rows[mod_rows["crs"] == crs]
        refs[loc] = LocationReference(order[0], crs, _union([b for _, b in _boxes(same)]))
    return refs


def add_location_fit(table: pd.DataFrame, refs: dict[str, LocationReference]) -> pd.DataFrame:
    """Add ``location_crs``, ``crs_matches_location`` and ``location_overlap`` (0..1) columns."""
    out = table.copy()
    crs_col: list[str | None] = []
    match: list[bool | None] = []
    overlap: list[float | None] = []
    for r in out[["location", "crs", "minx", "miny", "maxx", "maxy"]].itertuples():
        ref = refs.get(r.location)
        if ref is None or r.crs is None or pd.isna(r.minx):
            crs_col.append(ref.crs if ref else None)
            match.append(None)
            overlap.append(None)
            continue
        crs_col.append(ref.crs)
        match.append(r.crs == ref.crs)
        box = box_in((r.minx, r.miny, r.maxx, r.maxy), r.crs, ref.crs)
        overlap.append(
            _intersection(box, ref.extent) / _area(box) if box and _area(box) > 0 else 0.0
        )
    out["location_crs"] = crs_col
    out["crs_matches_location"] = match
    out["location_overlap"] = pd.to_numeric(pd.Series(overlap, index=out.index), errors="coerce")
    return out


def location_row(
    loc: Location, data_rows: pd.DataFrame, ref: LocationReference | None
) -> dict[str, object]:
    """The profile row of one location, from its *accepted* data rasters (``data_rows``).

    See :func:`profile_locations` for the columns.
    """
    cols = ["location", "modality", "acq_id", "date", "crs", "minx", "miny", "maxx", "maxy"]
    recs = [rec for rec in data_rows[cols].itertuples(index=False) if rec[0] == loc.id]
    row: dict[str, object] = {
        "location": loc.id,
        "split": loc.split,
        "reference_modality": ref.modality if ref else None,
        "reference_crs": ref.crs if ref else None,
    }
    present = [m for m in MODALITIES if any(r[1] == m for r in recs)]
    row["modalities_present"] = ",".join(present)
    for m in MODALITIES:
        row[f"n_acq_{m}"] = len({r[2] for r in recs if r[1] == m})
        row[f"n_dates_{m}"] = len({r[3] for r in recs if r[1] == m and r[3] is not None})
    dates = sorted({r[3] for r in recs if r[3] is not None})
    row["first_date"] = dates[0].isoformat() if dates else None
    row["last_date"] = dates[-1].isoformat() if dates else None
    row["date_span_days"] = (dates[-1] - dates[0]).days if dates else None
    footprints: dict[str, Box] = {}
    # a location that states its extent (a cell of the STAC grid inside large scenes) is judged
    # inside it: each modality's footprint is clipped to the extent before the IoU
    extent = None
    if ref is not None and loc.bounds is not None and loc.crs is not None:
        extent = box_in(loc.bounds, loc.crs, ref.crs)
    if ref is not None:
        for m in present:
            moved = [
                box_in((r[5], r[6], r[7], r[8]), r[4], ref.crs)
                for r in recs
                if r[1] == m and r[4] is not None
            ]
            boxes = [b for b in moved if b is not None]
            if boxes:
                fp = _union(boxes)
                if extent is not None:
                    fp = (
                        max(fp[0], extent[0]),
                        max(fp[1], extent[1]),
                        min(fp[2], extent[2]),
                        min(fp[3], extent[3]),
                    )
                footprints[m] = fp
    pairs = {
        f"{a}-{b}": round(iou(footprints[a], footprints[b]), 4)
        for a, b in itertools.combinations(footprints, 2)
    }
    row["modality_iou"] = json.dumps(pairs)
    row["min_modality_iou"] = min(pairs.values()) if pairs else None
    return row


def location_table(rows: list[dict[str, object]]) -> pd.DataFrame:
    """The location table from :func:`location_row` rows (numeric columns as numbers)."""
    table = pd.DataFrame(rows)
    table["min_modality_iou"] = pd.to_numeric(table["min_modality_iou"], errors="coerce")
    table["date_span_days"] = pd.to_numeric(table["date_span_days"], errors="coerce")
    return table


def profile_locations(
    catalog: Catalog,
    accepted: pd.DataFrame,
    refs: dict[str, LocationReference],
    cfg: ValidationConfig,
) -> pd.DataFrame:
    """One row per catalog location, computed from its *accepted* data rasters.

    Columns: ``location``, ``split``, ``modalities_present``, ``reference_modality``,
    ``reference_crs``, ``n_acq_<m>`` and ``n_dates_<m>`` for every modality, ``first_date``,
    ``last_date``, ``date_span_days``, ``modality_iou`` (JSON of pairwise IoU) and
    ``min_modality_iou`` (None with fewer than two georeferenced modalities).
    """
    data = accepted[accepted["role"] == "data"]
    by_loc = dict(iter(data.groupby("location", sort=False)))
    empty = data.iloc[0:0]
    return location_table(
        [
            location_row(loc, by_loc.get(loc.id, empty), refs.get(loc.id))
            for loc in catalog.locations
        ]
    )
