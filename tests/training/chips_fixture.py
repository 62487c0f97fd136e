"""Test fixture: a tiny chips folder (shards, manifest.parquet, stats.json) in the data layer's
format (docs/interfaces.md), written with the data layer's own ShardWriter and stats.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from skysense.data.chipping import MANIFEST_COLUMNS
from skysense.data.regions import region_id
from skysense.data.shards import ShardWriter
from skysense.data.stats import compute_stats, write_stats

# Small model overrides that fit 4-pixel chips (HR 128 px): keep tests fast on 2 cores.
TINY_OVERRIDES = {
    "sentinel_px": 4,
    "hr_px": 128,
    "hr_embed_dim": 8,
    "hr_depths": [1, 1, 1, 1],
    "hr_heads": [1, 1, 2, 2],
    "vit_dim": 32,
    "vit_depth": 1,
    "vit_heads": 2,
    "fusion_dim": 32,
    "fusion_depth": 1,
    "fusion_heads": 2,
    "fusion_ffn": 64,
    "proj_dim": 16,
    "proj_hidden": 32,
    "hr_cpb_hidden": 16,
    "n_prototypes": 4,
}


def write_tiny_chips(out: Path, n: int = 8, size: int = 4, dates: int = 2, seed: int = 0) -> Path:
    """``n`` pre-training chips of ``size`` Sentinel pixels (HR 32x finer) with all modalities."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    hr = size * 32
    with ShardWriter(out) as writer:
        for i in range(n):
            lat, lon = 46.0 + 0.01 * i, 7.0 + 0.02 * i
            base = rng.uniform(0.05, 0.4, size=(1, 10, 1, 1)).astype(np.float32)
            arrays = {
                "s2": (base + 0.02 * rng.standard_normal((dates, 10, size, size))).astype(
                    np.float32
                ),
                "s2_mask": np.ones((dates, size, size), bool),
                "s1": (-12.0 + 2.0 * rng.standard_normal((dates, 2, size, size))).astype(
                    np.float32
                ),
                "s1_mask": np.ones((dates, size, size), bool),
                "hr": rng.uniform(0, 255, size=(4, hr, hr)).astype(np.float32),
                "hr_mask": np.ones((hr, hr), bool),
                "dem": (500.0 + 20.0 * rng.standard_normal((1, size, size))).astype(np.float32),
                "dem_mask": np.ones((size, size), bool),
            }
            ref = writer.write(f"chip-{i:03d}", arrays)
            days = [(date(2023, 4, 1) + timedelta(days=30 * d)).isoformat() for d in range(dates)]
            rows.append(
                {
                    "sample_id": f"chip-{i:03d}",
                    "location": "loc-a",
                    "split": "pretrain",
                    "crs": "EPSG:32632",
                    "minx": 0.0 + 40 * i,
                    "miny": 0.0,
                    "maxx": 40.0 + 40 * i,
                    "maxy": 40.0,
                    "lat": lat,
                    "lon": lon,
                    "region": region_id(lat, lon, 4096),
                    "size": size,
                    "has_hr": True,
                    "has_s2": True,
                    "has_s1": True,
                    "has_dem": True,
                    "s2_dates": days,
                    "s1_dates": days,
                    "s2_valid": [True] * dates,
                    "s1_valid": [True] * dates,
                    "hr_date": days[0],
                    "nodata_fraction": 0.0,
                    "shard": ref.shard,
                    "offset": ref.offset,
                    "nbytes": ref.nbytes,
                }
            )
    pd.DataFrame(rows, columns=MANIFEST_COLUMNS).to_parquet(out / "manifest.parquet")
    write_stats(out, compute_stats(out))
    return out
