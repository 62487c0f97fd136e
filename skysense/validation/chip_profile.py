"""Chip profiling: one row per chip of a chip manifest, with value ranges read from the shards.

Kept apart from raster profiling so catalog validation works before any chip exists. The manifest
is read with pandas (columns in ``docs/interfaces.md``) and the arrays with
``skysense.data.shards.ShardReader`` (physical units: reflectance, dB, metres).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from skysense.core.errors import ValidationFailed
from skysense.core.modalities import MODALITIES
from skysense.data.shards import ShardReader
from skysense.validation.settings import ValidationConfig

MANIFEST = "manifest.parquet"


def _count_true(value: Any) -> int | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return int(np.asarray(value, dtype=bool).sum())


def profile_chips(
    chips_dir: str | Path, cfg: ValidationConfig, accepted_locations: set[str]
) -> pd.DataFrame:
    """Profile every chip of ``chips_dir/manifest.parquet``.

    Args:
        chips_dir: the chip folder (manifest and shards).
        cfg: validation settings (which modalities have physical ranges).
        accepted_locations: locations that passed catalog validation.

    Returns:
        One row per chip: ``sample_id``, ``location``, ``modality`` (None), ``valid_fraction``
        (1 - manifest ``nodata_fraction``), ``has_<m>``, ``n_valid_dates_<m>`` for dated
        modalities, ``<m>_min``/``<m>_max`` in physical units, ``inf_count`` (non-finite values
        other than NaN nodata), ``read_error`` and ``location_accepted``.

    Raises:
        ValidationFailed: the folder or its manifest does not exist, or shards cannot be opened.
    """
    folder = Path(chips_dir)
    manifest_path = folder / MANIFEST
    if not folder.is_dir() or not manifest_path.is_file():
        raise ValidationFailed(
            f"{manifest_path}: no chip manifest; run `skysense data chip` first or drop --chips"
        )
    try:
        manifest = pd.read_parquet(manifest_path)
    except Exception as exc:  # noqa: BLE001 - a broken manifest is the user's to fix
        raise ValidationFailed(
            f"{manifest_path}: not a readable Parquet manifest ({exc})"
        ) from None
    for col in ("sample_id", "location"):
        if col not in manifest.columns:
            raise ValidationFailed(
                f"{manifest_path}: column {col!r} is missing (see docs/interfaces.md)"
            )
    reader = ShardReader(folder)
    rows = []
    for rec in manifest.to_dict("records"):
        row: dict[str, Any] = {
            "sample_id": str(rec["sample_id"]),
            "location": str(rec["location"]),
            "modality": None,
            "shard": rec.get("shard"),
            "valid_fraction": 1.0 - float(rec.get("nodata_fraction") or 0.0),
            "read_error": None,
            "inf_count": None,
            "location_accepted": str(rec["location"]) in accepted_locations,
        }
        for m in MODALITIES:
            row[f"has_{m}"] = bool(rec.get(f"has_{m}", False))
            row[f"{m}_min"] = row[f"{m}_max"] = None
        for dated in cfg.dated_modalities:
            valid = rec.get(f"{dated}_valid")
            row[f"n_valid_dates_{dated}"] = (
                _count_true(valid) if valid is not None else len(rec.get(f"{dated}_dates") or [])
            )
        try:
            arrays = reader.read(row["sample_id"])
            inf = 0
            for m in MODALITIES:
                arr = arrays.get(m)
                if arr is None or np.asarray(arr).dtype.kind not in "fiu":
                    continue
                a = np.asarray(arr, dtype=np.float64)
                inf += int(np.isinf(a).sum())
                finite = a[np.isfinite(a)]
                if finite.size:
                    row[f"{m}_min"], row[f"{m}_max"] = float(finite.min()), float(finite.max())
            row["inf_count"] = inf
        except Exception as exc:  # noqa: BLE001 - one bad chip is a failing row, not a dead run
            row["read_error"] = f"{type(exc).__name__}: {exc}"
        rows.append(row)
    table = pd.DataFrame(rows)
    for m in MODALITIES:
        for col in (f"{m}_min", f"{m}_max"):
            table[col] = (
                pd.to_numeric(table[col], errors="coerce") if len(table) else table.get(col)
            )
    return table
