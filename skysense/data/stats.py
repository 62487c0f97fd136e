"""Per-band normalisation statistics of a chips folder, from valid pixels only.

``stats.json`` (beside ``manifest.parquet``)::

    {"s2": {"bands": [...], "mean": [...], "std": [...], "count": [...], "units": "reflectance"},
     "s1": {... "units": "dB"}, "hr": {... "units": "dn"}, "dem": {... "units": "m"},
     "chips": 1234, "split": "pretrain"}

Means and standard deviations are in the shards' physical units (S2 reflectance, S1 dB, HR as
stored, DEM metres), accumulated in float64 over every valid pixel of every date.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from skysense.core.atomic_files import write_text_atomic
from skysense.core.sensors import SENSORS
from skysense.data.shards import MANIFEST, ShardError, ShardReader, ShardRef

STATS = "stats.json"
UNITS = {"s2": "reflectance", "s1": "dB", "hr": "dn", "dem": "m"}


class _Moments:
    def __init__(self, n_bands: int) -> None:
        self.n = np.zeros(n_bands, np.float64)
        self.s = np.zeros(n_bands, np.float64)
        self.ss = np.zeros(n_bands, np.float64)

    def add(self, data: np.ndarray, mask: np.ndarray, present: list[bool] | None = None) -> None:
        """``data`` (T) x C x H x W, ``mask`` (T) x H x W."""
        if data.ndim == 3:
            data, mask = data[None], mask[None]
        for t in range(data.shape[0]):
            m = mask[t]
            k = int(m.sum())
            if k == 0:
                continue
            px = data[t][:, m].astype(np.float64)  # C x k
            use = np.ones(px.shape[0], bool) if present is None else np.asarray(present, bool)
            self.n[use] += k
            self.s[use] += px[use].sum(axis=1)
            self.ss[use] += (px[use] ** 2).sum(axis=1)

    def result(self) -> tuple[list[float], list[float], list[int]]:
        n = np.maximum(self.n, 1)
        mean = self.s / n
        var = np.maximum(self.ss / n - mean**2, 0.0)
        std = np.sqrt(var)
        std[std == 0] = 1.0
        mean[self.n == 0] = 0.0
        return mean.tolist(), std.tolist(), self.n.astype(int).tolist()


def compute_stats(
    chips_dir: str | Path,
    split: str | None = "pretrain",
    bands: dict[str, list[str]] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Per-band mean/std per modality over the valid pixels of the chips (one pass, shard order).

    Args:
        chips_dir: folder with ``manifest.parquet`` and shards.
        split: only chips of this split (None: all); held-out chips stay unseen by default.
        bands: band names per modality to record (default: the sensors' default bands).
        progress: called with ``(done, total)`` chips.

    Raises:
        ShardError: no manifest or a damaged shard.
    """
    chips = Path(chips_dir)
    if not (chips / MANIFEST).exists():
        raise ShardError(
            f"{chips / MANIFEST}: no chip manifest; run `skysense data chip --out {chips}` first"
        )
    df = pq.read_table(
        chips / MANIFEST, columns=["sample_id", "split", "shard", "offset", "nbytes"]
    ).to_pandas()
    if split is not None:
        df = df[df["split"] == split]
    df = df.sort_values(["shard", "offset"])
    reader = ShardReader(chips)
    names: dict[str, list[str]] = {
        spec.modality: list(spec.default_bands) for spec in SENSORS.values()
    }
    names.update(bands or {})
    acc: dict[str, _Moments] = {}
    total = len(df)
    for i, (shard, off, nb) in enumerate(zip(df["shard"], df["offset"], df["nbytes"])):
        _, arrays, attrs = reader.read_at(ShardRef(shard, int(off), int(nb)))
        for mod in ("hr", "s2", "s1", "dem"):
            if mod not in arrays:
                continue
            data = arrays[mod]
            c = data.shape[-3]
            mom = acc.setdefault(mod, _Moments(c))
            if mod in attrs.get("bands", {}):
                names[mod] = list(attrs["bands"][mod])
            mom.add(data, arrays[f"{mod}_mask"], attrs.get("hr_present") if mod == "hr" else None)
        if progress:
            progress(i + 1, total)
    reader.close()
    out: dict[str, Any] = {"chips": total, "split": split}
    for mod, mom in acc.items():
        mean, std, count = mom.result()
        band_names = names.get(mod, [])[: len(mean)]
        out[mod] = {
            "bands": band_names,
            "mean": mean,
            "std": std,
            "count": count,
            "units": UNITS[mod],
        }
    return out


def write_stats(chips_dir: str | Path, stats: dict[str, Any]) -> Path:
    """Write ``stats.json`` beside the manifest."""
    path = Path(chips_dir) / STATS
    write_text_atomic(path, json.dumps(stats, indent=2))
    return path


def load_stats(path: str | Path) -> dict[str, Any]:
    """Read a ``stats.json`` (a file or a chips folder).

    Raises:
        ShardError: missing or not JSON.
    """
    p = Path(path)
    if p.is_dir():
        p = p / STATS
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise ShardError(
            f"{p}: no statistics; run `skysense data stats --chips {p.parent}`"
        ) from None
    except json.JSONDecodeError as exc:
        raise ShardError(f"{p}: not valid JSON ({exc}); re-run `skysense data stats`") from None
