"""Reading downstream sets: scene classification and segmentation chips in physical units.

The layout (written by the bundled sample, :mod:`skysense.data.synthetic.downstream`, or by a
team for its own labelled chips)::

    downstream/
      classification/index.csv          sample_id,class,class_id,location,path,fraction
      classification/classes.csv        class_id,name
      classification/<class>/<sample_id>/{s2.tif, s2_cloud.tif, s1.tif, hr.tif, dem.tif}
      segmentation/index.csv            sample_id,location,path,dominant_class
      segmentation/classes.csv          class_id,name
      segmentation/<sample_id>/{same files, mask.tif}

``s2.tif`` and ``s1.tif`` hold a chip's whole time series, bands stacked date-major (T x 10
reflectance x 10000, nodata 0; T x 2 sigma0 dB, nodata -99), each band described
``<YYYY-MM-DD> <band>`` and the dates in the ``acquisition_dates`` tag; ``s2_cloud.tif`` has one
band per date (1 = cloud).
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from typing import Any, Literal

import numpy as np
from rasterio.warp import transform as warp_transform

from skysense.core.errors import SkySenseError
from skysense.core.sensors import S1_BANDS, S2_BANDS, SENSORS
from skysense.data.raster_access import open_dataset
from skysense.data.regions import region_id

Kind = Literal["classification", "segmentation"]
KINDS: tuple[Kind, ...] = ("classification", "segmentation")
CLASSES_FILE = "classes.csv"
S2_NODATA = SENSORS["sentinel2"].nodata
S1_NODATA = SENSORS["sentinel1"].nodata


class DownstreamError(SkySenseError):
    """A downstream set is missing or malformed (no index.csv, a chip folder without files)."""


class SampleList(list):
    """A list of sample dicts that also knows its task and class names.

    Attributes:
        task: ``multiclass`` (``label`` int64), ``multilabel`` (``label`` multi-hot float32) or
            ``segmentation`` (``mask`` int64 ``s x s``, 255 = unlabelled).
        class_names: name of each class id / multi-hot position.
    """

    def __init__(self, items: list[dict[str, Any]], task: str, class_names: list[str]) -> None:
        super().__init__(items)
        self.task = task
        self.class_names = list(class_names)


def _doy(date: dt.date) -> int:
    return date.timetuple().tm_yday


def _read_series(
    folder: Path, key: str, n_bands: int
) -> tuple[list[dt.date], np.ndarray, np.ndarray | None, Any]:
    """A chip's series ``key`` (``s2``/``s1``): dates, ``T x bands x H x W`` stored values, the
    ``T x H x W`` cloud mask when the chip has one, and the dataset profile (CRS, bounds).

    Reads ``<key>.tif`` (date-major stack, dates in ``acquisition_dates``); a chip without it has
    no such series (empty dates).
    """
    stacked = folder / f"{key}.tif"
    if stacked.exists():
        with open_dataset(stacked) as src:
            data = src.read()
            dates = [
                dt.date.fromisoformat(d)
                for d in src.tags().get("acquisition_dates", "").split(",")
                if d
            ]
            where = (src.bounds, src.crs)
        if not dates or data.shape[0] != len(dates) * n_bands:
            raise DownstreamError(
                f"{stacked}: {data.shape[0]} bands for {len(dates)} dates in its "
                f"acquisition_dates tag (expected {n_bands} per date); rewrite the chip"
            )
        cloud = None
        if (folder / f"{key}_cloud.tif").exists():
            with open_dataset(folder / f"{key}_cloud.tif") as src:
                cloud = src.read() == 1
        return dates, data.reshape(len(dates), n_bands, *data.shape[1:]), cloud, where
    return [], np.zeros((0, n_bands, 0, 0)), None, None


def read_chip(
    folder: Path, min_valid_fraction: float = 0.5, n_regions: int = 4096
) -> dict[str, Any]:
    """Read one chip folder into a sample dict in physical units (numpy).

    Keys: ``id``, ``lat``, ``lon``, ``region``; ``s2`` (``T x 10 x s x s`` reflectance),
    ``s2_doy``, ``s2_valid`` (clear and with data on at least ``min_valid_fraction`` of the chip);
    ``s1`` (``T x 2 x s x s`` dB), ``s1_doy``, ``s1_valid``; ``hr`` (``4 x 32s x 32s`` uint8 as
    stored); ``dem`` (``1 x s x s`` metres). Pixels without data, and S2 pixels under the cloud
    mask, are NaN: :func:`skysense.models.batch.arrays_to_batch` sets them to the band mean, as
    chipping does for the pre-training chips, so a downstream chip reaches the encoder exactly as
    the same window of a pre-training shard would.
    """
    folder = Path(folder)
    out: dict[str, Any] = {"id": folder.name}
    s2_dates, dn, cloud, where = _read_series(folder, "s2", len(S2_BANDS))
    if not s2_dates or not (folder / "dem.tif").exists():
        raise DownstreamError(
            f"{folder}: chip folder without an S2 series (s2.tif) or dem.tif; rewrite "
            "it with `skysense data sample --out DIR`"
        )
    bounds, crs = where
    nodata = (dn == S2_NODATA).all(axis=1)  # T x H x W
    bad = nodata | cloud if cloud is not None else nodata
    refl = dn.astype(np.float32) * 1e-4
    refl[np.broadcast_to(bad[:, None], refl.shape)] = np.nan
    out["s2"] = refl
    out["s2_doy"] = np.array([_doy(d) for d in s2_dates], dtype=np.int64)
    out["s2_valid"] = (~bad).reshape(len(s2_dates), -1).mean(axis=1) >= min_valid_fraction
    s1_dates, db, _, _ = _read_series(folder, "s1", len(S1_BANDS))
    if s1_dates:
        db = db.astype(np.float32)
        bad1 = ~np.isfinite(db).all(axis=1) | (db == S1_NODATA).any(axis=1)
        db[np.broadcast_to(bad1[:, None], db.shape)] = np.nan
        out["s1"] = db
        out["s1_doy"] = np.array([_doy(d) for d in s1_dates], dtype=np.int64)
        out["s1_valid"] = (~bad1).reshape(len(s1_dates), -1).mean(axis=1) >= min_valid_fraction
    if (folder / "hr.tif").exists():
        with open_dataset(folder / "hr.tif") as src:
            out["hr"] = src.read()
    with open_dataset(folder / "dem.tif") as src:
        out["dem"] = src.read(1, masked=True).filled(np.nan).astype(np.float32)[None]
    xs, ys = warp_transform(
        crs, "EPSG:4326", [(bounds.left + bounds.right) / 2], [(bounds.bottom + bounds.top) / 2]
    )
    out["lon"], out["lat"] = float(xs[0]), float(ys[0])
    out["region"] = int(region_id(out["lat"], out["lon"], n_regions))
    if (folder / "mask.tif").exists():
        with open_dataset(folder / "mask.tif") as src:
            out["mask"] = src.read(1).astype(np.int64)
    return out


def load_downstream(
    root: str | Path, kind: Kind, min_valid_fraction: float = 0.5, n_regions: int = 4096
) -> SampleList:
    """Load a downstream set (the layout in the module docstring).

    Args:
        root: the ``downstream`` folder (``paths.downstream``).
        kind: ``classification`` (``label`` int64 per sample) or ``segmentation`` (``mask``).
        min_valid_fraction: share of clear pixels with data for a date to count as valid.
        n_regions: size of the geo region grid for ``region``.

    Returns:
        A :class:`SampleList` of sample dicts (see :func:`read_chip`), in index order.

    Raises:
        DownstreamError: the index or the class list is missing, or the index names a folder that
            does not exist.
    """
    root = Path(root)
    index = root / kind / "index.csv"
    if kind not in KINDS:
        raise DownstreamError(
            f"unknown downstream set {kind!r}; use 'classification' or 'segmentation'"
        )
    if not index.exists():
        raise DownstreamError(
            f"{index}: not found; write the sample with `skysense data sample --out DIR` "
            "or point paths.downstream at its downstream folder"
        )
    with open(index, newline="") as fh:
        rows = list(csv.DictReader(fh))
    samples = []
    for row in rows:
        folder = root / kind / row["path"]
        if not folder.is_dir():
            raise DownstreamError(
                f"{index}: row {row['sample_id']} names {folder}, which does not exist"
            )
        s = read_chip(folder, min_valid_fraction, n_regions)
        s["id"] = row["sample_id"]
        s["location"] = row["location"]
        if kind == "classification":
            s["label"] = np.int64(int(row["class_id"]))
        samples.append(s)
    task = "multiclass" if kind == "classification" else "segmentation"
    return SampleList(samples, task, read_class_names(root / kind / CLASSES_FILE))


def read_class_names(path: Path) -> list[str]:
    """Class names by id from a ``classes.csv`` (``class_id,name``; ids 0..n-1).

    Raises:
        DownstreamError: the file is missing or its ids are not 0..n-1.
    """
    if not path.is_file():
        raise DownstreamError(
            f"{path}: not found; a downstream set lists its classes there "
            "(class_id,name); rewrite the sample with `skysense data sample`"
        )
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    try:
        by_id = {int(r["class_id"]): r["name"] for r in rows}
    except (KeyError, TypeError, ValueError):
        raise DownstreamError(f"{path}: needs the columns class_id,name with integer ids") from None
    if sorted(by_id) != list(range(len(by_id))):
        raise DownstreamError(f"{path}: class ids must be 0..{len(by_id) - 1}, got {sorted(by_id)}")
    return [by_id[i] for i in range(len(by_id))]
