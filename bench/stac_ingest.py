"""STAC ingest throughput: items per second from a snapshot, and the catalog of a 50 x 50 km area.

Generates a snapshot of at least ``--items`` STAC items (default 10,000) from the real
BigEarthNet Sentinel-2 / Sentinel-1 pair in ``tests/data/real`` (items made with pystac, as in
the tests): copies of the pair whose geometries are shifted over a ``--km`` x ``--km`` area
(default 50 km) on a 1 km lattice, on several dates; every copy's hrefs are the real files. Then
runs :func:`skysense.data.stac.ingest.ingest_snapshot` on it (read the snapshot, match rules and
band assets, check hrefs, lay the 640 m cells, find the covering items, write catalog.yaml,
items.json, skipped.parquet) and prints one JSON line: items, items per second, locations,
acquisitions, wall and CPU seconds, catalog size, and the seconds of each phase.

Usage: ``python bench/stac_ingest.py [--items 10000] [--km 50]``
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import json
import math
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from stac_items import BEN_PAIRS, ben_s1_item, ben_s2_item, save_items

from skysense.config import load_config, stac_settings
from skysense.data.stac.ingest import ingest_snapshot


def _shift(item, new_id: str, dx_m: float, dy_m: float, when: dt.datetime):
    out = item.clone()
    out.id, out.datetime = new_id, when
    lat0 = out.geometry["coordinates"][0][0][1]
    dlon = dx_m / (111_320.0 * math.cos(math.radians(lat0)))
    dlat = dy_m / 110_574.0
    ring = [[x + dlon, y + dlat] for x, y in out.geometry["coordinates"][0]]
    out.geometry = {"type": "Polygon", "coordinates": [ring]}
    xs, ys = [p[0] for p in ring], [p[1] for p in ring]
    out.bbox = [min(xs), min(ys), max(xs), max(ys)]
    return out


def make_snapshot(
    path: Path, n_items: int, km: float
) -> tuple[Path, tuple[float, float, float, float]]:
    """At least ``n_items`` shifted copies of the real pair over ``km`` x ``km``, and the area."""
    s2_id, s1_id = BEN_PAIRS[0]
    s2, s1 = ben_s2_item(s2_id), ben_s1_item(s1_id)
    side = int(km)  # 1 km lattice: each 1.2 km patch covers at least one 640 m cell
    dates = max(1, math.ceil(n_items / (2 * side * side)))
    items = []
    for d in range(dates):
        s2_when = dt.datetime(2017, 6, 13, 10, 10, tzinfo=dt.UTC) + dt.timedelta(days=5 * d)
        s1_when = dt.datetime(2017, 6, 13, 16, 50, tzinfo=dt.UTC) + dt.timedelta(days=6 * d)
        for i in range(side):
            for j in range(side):
                items.append(_shift(s2, f"s2-{d}-{i}-{j}", 1000.0 * i, 1000.0 * j, s2_when))
                items.append(_shift(s1, f"s1-{d}-{i}-{j}", 1000.0 * i, 1000.0 * j, s1_when))
    save_items(items, path)
    west, south = s2.bbox[0], s2.bbox[1]
    lat0 = s2.bbox[1]
    east = west + km * 1000.0 / (111_320.0 * math.cos(math.radians(lat0)))
    north = south + km * 1000.0 / 110_574.0
    return path, (west, south, east, north)


def main() -> None:
    """Run the bench and print its figures."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--km", type=float, default=50.0)
    ap.add_argument("--profile", action="store_true", help="print the top functions by time")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        snap, area = make_snapshot(Path(tmp) / "snap" / "items.json", args.items, args.km)
        make_s = time.perf_counter() - t0
        settings = stac_settings(load_config(ROOT / "params.yaml"))
        prof = cProfile.Profile() if args.profile else None
        w0, c0 = time.perf_counter(), time.process_time()
        if prof:
            prof.enable()
        res = ingest_snapshot(snap, Path(tmp) / "out", settings, area=area)
        if prof:
            prof.disable()
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        catalog = Path(res.catalog) if res.catalog else None
        figures = {
            "items": res.items,
            "used_items": res.used_items,
            "skipped": res.skipped,
            "area_km": [args.km, args.km],
            "locations": res.locations,
            "acquisitions": res.acquisitions,
            "ingest_wall_s": round(wall, 2),
            "ingest_cpu_s": round(cpu, 2),
            "items_per_s": round(res.items / wall, 1),
            "catalog_mb": round(catalog.stat().st_size / 1e6, 2) if catalog else 0.0,
            "snapshot_mb": round(snap.stat().st_size / 1e6, 2),
            "make_snapshot_s": round(make_s, 2),
        }
        print(json.dumps(figures))
        if prof:
            pstats.Stats(prof).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
