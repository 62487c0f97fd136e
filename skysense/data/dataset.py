"""Torch dataset over chip shards, and the collate function that pads series and modalities.

Sample and batch dicts follow docs/interfaces.md. Opening a :class:`ChipDataset` reads only the
Parquet manifest; each item is one seek + read in one shard. Works with ``DataLoader``
``num_workers > 0`` (shard files are reopened per process) and with ``DistributedSampler``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import Dataset

from skysense.core.contract import Batch, Sample
from skysense.core.modalities import MODALITIES, SERIES
from skysense.core.sensors import SENSORS
from skysense.data.regions import region_id
from skysense.data.shards import MANIFEST, ShardError, ShardReader, ShardRef
from skysense.data.stats import STATS, load_stats


def day_of_year(dates: Iterable[str | None]) -> np.ndarray:
    """ISO dates -> day of year (1..366); unknown dates -> 0."""
    return np.array(
        [dt.date.fromisoformat(d).timetuple().tm_yday if d else 0 for d in dates], dtype=np.int64
    )


def _default_stats() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for spec in SENSORS.values():
        mean, std = spec.normalisation()
        out[spec.modality] = {
            "bands": list(spec.default_bands),
            "mean": mean.tolist(),
            "std": std.tolist(),
        }
    return out


class ChipDataset(Dataset):
    """Multi-modal chips from a chips folder (``manifest.parquet`` + shards).

    Args:
        chips_dir: the folder ``skysense data chip`` wrote.
        split: ``pretrain`` or ``heldout`` (None: all chips).
        n_regions: size of the geo region grid (``spec.n_regions`` of the model preset).
        stats: ``"auto"`` (``stats.json`` of the folder when present, else the sensors' defaults),
            a path to a stats file, a stats dict, or None (no normalisation: physical units).
        exclude_ids: sample ids to leave out (e.g. downstream test chips).
        modalities: modalities to return (default: all the chips have).

    Raises:
        ShardError: the folder has no manifest.
    """

    def __init__(
        self,
        chips_dir: str | Path,
        split: str | None = None,
        n_regions: int = 4096,
        stats: str | Path | dict[str, Any] | None = "auto",
        exclude_ids: Iterable[str] | None = None,
        modalities: Sequence[str] | None = None,
    ) -> None:

        self.chips_dir = Path(chips_dir)
        if not (self.chips_dir / MANIFEST).exists():
            raise ShardError(
                f"{self.chips_dir / MANIFEST}: no chip manifest; run `skysense data chip --out "
                f"{self.chips_dir}`"
            )
        cols = [
            "sample_id",
            "split",
            "lat",
            "lon",
            "s2_dates",
            "s1_dates",
            "s2_valid",
            "s1_valid",
            "shard",
            "offset",
            "nbytes",
        ]
        table = pq.read_table(self.chips_dir / MANIFEST, columns=cols)
        rows = table.to_pylist()
        excluded = set(exclude_ids or ())
        self.rows = [
            r
            for r in rows
            if (split is None or r["split"] == split) and r["sample_id"] not in excluded
        ]
        self.n_regions = n_regions
        self.modalities = tuple(modalities or MODALITIES)
        self.reader = ShardReader(self.chips_dir)
        if isinstance(stats, dict):
            self.stats: dict[str, Any] | None = stats
        elif stats == "auto":
            path = self.chips_dir / STATS
            self.stats = load_stats(path) if path.exists() else _default_stats()
        elif stats is None:
            self.stats = None
        else:
            self.stats = load_stats(stats)
        self._norm: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for mod in MODALITIES:
            if self.stats and mod in self.stats:
                mean = np.asarray(self.stats[mod]["mean"], np.float32)
                std = np.asarray(self.stats[mod]["std"], np.float32)
                self._norm[mod] = (mean, np.where(std > 0, std, 1.0).astype(np.float32))

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def ids(self) -> list[str]:
        """Sample ids in dataset order."""
        return [r["sample_id"] for r in self.rows]

    def _normalise(self, mod: str, data: np.ndarray, mask: np.ndarray) -> torch.Tensor:
        """``(data - mean) / std`` per band as float32, 0 where ``mask`` is False."""
        x = data.astype(np.float32, copy=True)  # a plain cast, then in-place passes
        if mod in self._norm:
            mean, std = self._norm[mod]
            c = x.shape[-3]
            x -= mean[:c].reshape(c, 1, 1)
            x *= (np.float32(1.0) / std[:c]).reshape(c, 1, 1)
        if not mask.all():  # most chips are fully valid: skip a pass over the data
            x *= mask[:, None] if x.ndim == 4 else mask[None]  # T x C x H x W with T x H x W masks
        return torch.from_numpy(x)

    def __getitem__(self, index: int) -> Sample:
        """The chip at ``index`` as a :class:`~skysense.core.contract.Sample`."""
        row = self.rows[index]
        sid, arrays, _ = self.reader.read_at(ShardRef(row["shard"], row["offset"], row["nbytes"]))
        if sid != row["sample_id"]:
            raise ShardError(
                f"{self.chips_dir / row['shard']}@{row['offset']}: holds {sid!r}, manifest says "
                f"{row['sample_id']!r}; the manifest and shards are out of sync, re-run chipping"
            )
        sample: dict[str, Any] = {
            "id": sid,
            "lat": float(row["lat"]),
            "lon": float(row["lon"]),
            "region": torch.tensor(
                region_id(row["lat"], row["lon"], self.n_regions), dtype=torch.int64
            ),
        }
        for mod in self.modalities:
            if mod not in arrays:
                continue
            sample[mod] = self._normalise(mod, arrays[mod], arrays[f"{mod}_mask"])
            if mod in SERIES:
                sample[f"{mod}_doy"] = torch.from_numpy(day_of_year(row[f"{mod}_dates"]))
                sample[f"{mod}_valid"] = torch.tensor(list(row[f"{mod}_valid"]), dtype=torch.bool)
        return cast(Sample, sample)


def collate_samples(samples: Sequence[Sample] | Sequence[Mapping[str, Any]]) -> Batch:
    """Stack samples into a batch (docs/interfaces.md).

    Time series are padded to the longest ``T`` in the batch (``*_doy`` 0 and ``*_valid`` False on
    padding); a modality missing for some samples is zero-filled there and flagged by ``has_*``
    (B bool); a modality missing for all samples is a missing key. ``ids`` is a list of str.
    """
    b = len(samples)
    rows: Sequence[Mapping[str, Any]] = samples  # a Sample read by computed keys (f"{mod}_doy")
    batch: dict[str, Any] = {
        "ids": [s["id"] for s in rows],
        "lat": torch.tensor([float(s["lat"]) for s in rows], dtype=torch.float32),
        "lon": torch.tensor([float(s["lon"]) for s in rows], dtype=torch.float32),
        "region": torch.stack([torch.as_tensor(s["region"], dtype=torch.int64) for s in rows]),
    }
    for mod in MODALITIES:
        have = [mod in s for s in rows]
        if not any(have):
            continue
        ref = next(s[mod] for s in rows if mod in s)
        batch[f"has_{mod}"] = torch.tensor(have, dtype=torch.bool)
        if mod in SERIES:
            t_max = max(s[mod].shape[0] for s in rows if mod in s)
            data = torch.zeros((b, t_max, *ref.shape[1:]), dtype=ref.dtype)
            doy = torch.zeros((b, t_max), dtype=torch.int64)
            valid = torch.zeros((b, t_max), dtype=torch.bool)
            for i, s in enumerate(rows):
                if mod in s:
                    t = s[mod].shape[0]
                    data[i, :t] = s[mod]
                    doy[i, :t] = s[f"{mod}_doy"]
                    valid[i, :t] = s[f"{mod}_valid"]
            batch[mod], batch[f"{mod}_doy"], batch[f"{mod}_valid"] = data, doy, valid
        else:
            data = torch.zeros((b, *ref.shape), dtype=ref.dtype)
            for i, s in enumerate(rows):
                if mod in s:
                    data[i] = s[mod]
            batch[mod] = data
    for key in ("label", "mask"):
        if all(key in s for s in rows):
            batch[key] = torch.stack([torch.as_tensor(s[key], dtype=torch.int64) for s in rows])
    return cast(Batch, batch)
