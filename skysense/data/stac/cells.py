"""The grid of locations of a STAC ingest: square cells of ``location_m`` in each UTM zone.

A cell is ``[i * L, (i + 1) * L) x [j * L, (j + 1) * L)`` in the WGS84 / UTM zone of its centre
(``L = data.stac.location_m``, 640 m by default: a SkySense 64 px Sentinel footprint), so cells do
not depend on the area searched or on which items a snapshot holds: a location keeps its id when
new items arrive. Candidate cells are those inside an item of the first required modality; a
location is a candidate cell that at least one item of every required modality covers entirely
(item geometries in degrees, the cell's outline densified into degrees), with its centre inside
the area when one is given. Coverage is found with shapely's STRtree, so the cost grows with the
number of items and cells, not their product.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from rasterio.warp import transform as warp_transform

from skysense.data.grid import utm_crs

_DENSIFY = 4  # points per cell edge transformed to degrees
_EDGE_M = 0.01  # a cell is tested 1 cm inside its edges: an edge on an item's edge still counts


@dataclass(frozen=True, order=True)
class Cell:
    """One location cell: its UTM zone (EPSG code) and integer position (``i``, ``j``) in it."""

    epsg: int
    i: int
    j: int

    def bounds(self, side_m: float) -> tuple[float, float, float, float]:
        """``(minx, miny, maxx, maxy)`` in metres of its UTM zone."""
        return (self.i * side_m, self.j * side_m, (self.i + 1) * side_m, (self.j + 1) * side_m)

    def location_id(self, prefix: str, side_m: float) -> str:
        """A stable id: ``<prefix>-<epsg>-<minx>-<miny>`` (metres)."""
        x0, y0, _, _ = self.bounds(side_m)
        return f"{prefix}-{self.epsg}-{x0:.0f}-{y0:.0f}"


def _to_utm(geom: shapely.Geometry, epsg: int) -> shapely.Geometry:
    coords = shapely.get_coordinates(geom)
    xs, ys = warp_transform(
        "EPSG:4326", f"EPSG:{epsg}", coords[:, 0].tolist(), coords[:, 1].tolist()
    )
    return shapely.set_coordinates(geom, np.column_stack([xs, ys]))


def cell_outline_lonlat(cell: Cell, side_m: float) -> shapely.Polygon:
    """The cell's outline in degrees (edges densified, so containment is judged on the ground)."""
    x0, y0, x1, y1 = cell.bounds(side_m)
    x0, y0, x1, y1 = x0 + _EDGE_M, y0 + _EDGE_M, x1 - _EDGE_M, y1 - _EDGE_M
    t = np.linspace(0.0, 1.0, _DENSIFY, endpoint=False)
    xs = np.concatenate(
        [x0 + (x1 - x0) * t, np.full_like(t, x1), x1 - (x1 - x0) * t, np.full_like(t, x0)]
    )
    ys = np.concatenate(
        [np.full_like(t, y0), y0 + (y1 - y0) * t, np.full_like(t, y1), y1 - (y1 - y0) * t]
    )
    lon, lat = warp_transform(f"EPSG:{cell.epsg}", "EPSG:4326", xs.tolist(), ys.tolist())
    return shapely.Polygon(np.column_stack([lon, lat]))


def candidate_cells(geoms: Sequence[shapely.Geometry], side_m: float) -> set[Cell]:
    """Cells lying entirely inside at least one of ``geoms`` (degrees), each in its own zone."""
    cells: set[Cell] = set()
    for geom in geoms:
        if geom is None or geom.is_empty:
            continue
        c = geom.centroid
        epsg = utm_crs(c.x, c.y).to_epsg()
        g = _to_utm(geom, epsg)
        minx, miny, maxx, maxy = g.bounds
        i = np.arange(math.floor(minx / side_m), math.ceil(maxx / side_m))
        j = np.arange(math.floor(miny / side_m), math.ceil(maxy / side_m))
        if i.size == 0 or j.size == 0:
            continue
        grid_i, grid_j = np.meshgrid(i, j)
        ii, jj = grid_i.ravel(), grid_j.ravel()
        boxes = shapely.box(
            ii * side_m + _EDGE_M,
            jj * side_m + _EDGE_M,
            (ii + 1) * side_m - _EDGE_M,
            (jj + 1) * side_m - _EDGE_M,
        )
        inside = shapely.covers(g, boxes)
        for a, b in zip(ii[inside], jj[inside]):
            cells.add(Cell(epsg, int(a), int(b)))
    return cells


def in_own_zone(cell: Cell, side_m: float) -> bool:
    """Whether the cell's centre lies in the UTM zone the cell is defined in (no duplicates
    across a zone boundary).
    """
    x0, y0, x1, y1 = cell.bounds(side_m)
    lon, lat = warp_transform(f"EPSG:{cell.epsg}", "EPSG:4326", [(x0 + x1) / 2], [(y0 + y1) / 2])
    return utm_crs(lon[0], lat[0]).to_epsg() == cell.epsg


def covering(
    cells: Sequence[Cell], geoms: Sequence[shapely.Geometry], side_m: float
) -> dict[int, list[int]]:
    """For each cell (by position in ``cells``), the positions of the ``geoms`` covering it."""
    out: dict[int, list[int]] = {}
    if not cells or not geoms:
        return out
    tree = shapely.STRtree(list(geoms))
    outlines = [cell_outline_lonlat(c, side_m) for c in cells]
    pairs = tree.query(outlines, predicate="covered_by")
    for ci, gi in zip(pairs[0].tolist(), pairs[1].tolist()):
        out.setdefault(ci, []).append(gi)
    for v in out.values():
        v.sort()
    return out
